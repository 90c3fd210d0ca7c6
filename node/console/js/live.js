// MQTT over WebSocket for the console: the URL (presigned with the signed-in key, so a `ws`
// listener configured with `sigv4` and the `wss` listener accept it; an anonymous loopback
// listener ignores the signature) and the connections open now, closed at sign-out.

import { MqttClient } from "./mqtt.js";
import { presignUrl } from "./sigv4.js";
import { config, currentKey } from "./api.js";

const open = new Set();

/** The WebSocket URL: `ws://` next to an http page, `wss://` next to an https one. */
export function mqttUrl() {
  const cfg = config();
  const secure = location.protocol === "https:";
  const scheme = secure ? "wss" : "ws";
  const host = (secure ? cfg.endpoints.wss : cfg.endpoints.ws) || location.host;
  return presignUrl({ scheme, host, path: "/mqtt", region: cfg.region || "us-east-1", key: currentKey() });
}

/** Where the console's MQTT connections go, for display (without the signature). */
export function mqttEndpoint() {
  return mqttUrl().split("?")[0];
}

function randomSuffix() {
  const b = new Uint8Array(6);
  (globalThis.crypto || { getRandomValues: (a) => a.map(() => Math.floor(Math.random() * 256)) }).getRandomValues(b);
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** A new client (not yet connected) with a client id `console-PURPOSE-RANDOM`. */
export function newClient(purpose, handlers) {
  const client = new MqttClient({ url: mqttUrl, clientId: `console-${purpose}-${randomSuffix()}`, ...handlers });
  open.add(client);
  const close = client.close.bind(client);
  client.close = () => {
    open.delete(client);
    close();
  };
  return client;
}

/** Closes every connection (sign-out). */
export function closeAll() {
  for (const c of [...open]) c.close();
}
