// A small MQTT 3.1.1 client over WebSocket (binary frames, subprotocol `mqtt`): CONNECT with
// a clean session, SUBSCRIBE, UNSUBSCRIBE, PUBLISH at QoS 0 and 1 (with retain), PUBACK both
// ways (and QoS 2 answered, should a server send it), PINGREQ keep-alive, and reconnection
// with the subscriptions restored. The codec (encode/decode) is pure and separate from the
// socket, so selftest.js checks it without a server.

const encoder = new TextEncoder();

/** MQTT's Remaining Length: 7 bits per byte, high bit set on all but the last. */
export function encodeLength(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function str(s) {
  const b = encoder.encode(s);
  return [b.length >> 8, b.length & 0xff, ...b];
}

function packet(first, body) {
  return new Uint8Array([first, ...encodeLength(body.length), ...body]);
}

function u16(n) {
  return [n >> 8, n & 0xff];
}

/** Packet encoders: each returns the bytes of one packet. */
export const encode = {
  connect: ({ clientId, keepalive, username, password }) => {
    let flags = 0x02; // clean session
    const payload = [...str(clientId)];
    if (username !== undefined) {
      flags |= 0x80;
      payload.push(...str(username));
    }
    if (password !== undefined) {
      flags |= 0x40;
      payload.push(...str(password));
    }
    return packet(0x10, [...str("MQTT"), 4, flags, ...u16(keepalive), ...payload]);
  },
  publish: ({ topic, payload, qos = 0, retain = false, id = 0, dup = false }) => {
    const body = [...str(topic)];
    if (qos > 0) body.push(...u16(id));
    const bytes = typeof payload === "string" ? encoder.encode(payload) : payload || new Uint8Array();
    // Built by hand: payloads can be large, and spreading them into an array is slow.
    const len = encodeLength(body.length + bytes.length);
    const out = new Uint8Array(1 + len.length + body.length + bytes.length);
    out[0] = 0x30 | (dup ? 8 : 0) | (qos << 1) | (retain ? 1 : 0);
    out.set(len, 1);
    out.set(body, 1 + len.length);
    out.set(bytes, 1 + len.length + body.length);
    return out;
  },
  puback: (id) => packet(0x40, u16(id)),
  pubrec: (id) => packet(0x50, u16(id)),
  pubcomp: (id) => packet(0x70, u16(id)),
  subscribe: (id, filters) => packet(0x82, [...u16(id), ...filters.flatMap(({ filter, qos }) => [...str(filter), qos])]),
  unsubscribe: (id, filters) => packet(0xa2, [...u16(id), ...filters.flatMap((f) => str(f))]),
  pingreq: () => packet(0xc0, []),
  disconnect: () => packet(0xe0, []),
};

/**
 * Splits `buffer` (bytes received so far) into whole packets: `{packets, rest}` where each
 * packet is `{type, flags, body}` and `rest` the bytes of an incomplete packet.
 */
export function splitPackets(buffer) {
  const packets = [];
  let i = 0;
  for (;;) {
    if (buffer.length - i < 2) break;
    let length = 0, mult = 1, j = i + 1, done = false;
    while (j < buffer.length && j < i + 5) {
      const b = buffer[j++];
      length += (b & 0x7f) * mult;
      mult *= 128;
      if (!(b & 0x80)) {
        done = true;
        break;
      }
    }
    if (!done) {
      if (j >= i + 5) throw new Error("malformed Remaining Length");
      break;
    }
    if (buffer.length - j < length) break;
    packets.push({ type: buffer[i] >> 4, flags: buffer[i] & 0x0f, body: buffer.subarray(j, j + length) });
    i = j + length;
  }
  return { packets, rest: buffer.slice(i) };
}

/** A PUBLISH packet's fields. */
export function decodePublish({ flags, body }) {
  const qos = (flags >> 1) & 3;
  const topicLength = (body[0] << 8) | body[1];
  const topic = new TextDecoder().decode(body.subarray(2, 2 + topicLength));
  let at = 2 + topicLength;
  let id = 0;
  if (qos > 0) {
    id = (body[at] << 8) | body[at + 1];
    at += 2;
  }
  return { topic, qos, retain: !!(flags & 1), dup: !!(flags & 8), id, payload: body.slice(at) };
}

/** Does `topic` match the subscription `filter` (`+` one level, `#` the rest)? */
export function topicMatches(filter, topic) {
  const f = filter.split("/");
  const t = topic.split("/");
  if (topic.startsWith("$") && (f[0] === "+" || f[0] === "#")) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

const CONNACK_CODES = {
  1: "unacceptable protocol version",
  2: "client identifier rejected",
  3: "server unavailable",
  4: "bad user name or password",
  5: "not authorized",
};

/**
 * One MQTT connection. `url()` gives the WebSocket URL for each (re)connection (presigned
 * URLs expire); `onMessage({topic, payload, qos, retain})`; `onState(state, detail)` with
 * `connecting`, `connected`, `disconnected` or `closed`.
 */
export class MqttClient {
  constructor({ url, clientId, keepalive = 30, onMessage = () => {}, onState = () => {} }) {
    this.url = url;
    this.clientId = clientId;
    this.keepalive = keepalive;
    this.onMessage = onMessage;
    this.onState = onState;
    this.state = "disconnected";
    this.subscriptions = new Map(); // filter -> granted qos
    this.pending = new Map(); // packet id -> {resolve, reject}
    this.nextId = 1;
    this.buffer = new Uint8Array();
    this.closedByUser = false;
    this.retryMs = 1000;
  }

  setState(state, detail = "") {
    this.state = state;
    this.detail = detail;
    this.onState(state, detail);
  }

  /** Connects (resolves at a successful CONNACK, rejects with the reason otherwise). */
  connect() {
    this.closedByUser = false;
    clearTimeout(this.retryTimer);
    this.setState("connecting");
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(this.url(), ["mqtt"]);
      } catch (e) {
        this.setState("disconnected", e.message);
        reject(e);
        return;
      }
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      this.buffer = new Uint8Array();
      this.connack = { resolve, reject };
      ws.onopen = () => ws.send(encode.connect({ clientId: this.clientId, keepalive: this.keepalive }));
      ws.onmessage = (ev) => this.receive(new Uint8Array(ev.data));
      ws.onclose = (ev) => this.closed(ev);
      ws.onerror = () => {}; // onclose follows and says what happened
    });
  }

  receive(bytes) {
    const joined = new Uint8Array(this.buffer.length + bytes.length);
    joined.set(this.buffer);
    joined.set(bytes, this.buffer.length);
    let split;
    try {
      split = splitPackets(joined);
    } catch (e) {
      this.ws.close();
      return;
    }
    this.buffer = split.rest;
    for (const p of split.packets) this.handle(p);
  }

  handle(p) {
    const id = p.body.length >= 2 ? (p.body[0] << 8) | p.body[1] : 0;
    switch (p.type) {
      case 2: { // CONNACK
        const rc = p.body[1];
        const waiting = this.connack;
        this.connack = null;
        if (rc !== 0) {
          this.refused = `connection refused: ${CONNACK_CODES[rc] || "code " + rc}`;
          waiting?.reject(new Error(this.refused));
          this.ws.close();
          return;
        }
        this.refused = null;
        this.retryMs = 1000;
        this.setState("connected");
        this.ping = setInterval(() => this.send(encode.pingreq()), this.keepalive * 1000 * 0.75);
        waiting?.resolve();
        // After a reconnection: the same subscriptions again.
        if (this.subscriptions.size) {
          const filters = [...this.subscriptions].map(([filter, qos]) => ({ filter, qos }));
          this.request((i) => encode.subscribe(i, filters)).catch(() => {});
        }
        break;
      }
      case 3: { // PUBLISH
        const m = decodePublish(p);
        if (m.qos === 1) this.send(encode.puback(m.id));
        if (m.qos === 2) this.send(encode.pubrec(m.id));
        this.onMessage(m);
        break;
      }
      case 4: // PUBACK
      case 7: // PUBCOMP
        this.settle(id, []);
        break;
      case 6: // PUBREL
        this.send(encode.pubcomp(id));
        break;
      case 9: // SUBACK
        this.settle(id, [...p.body.subarray(2)]);
        break;
      case 11: // UNSUBACK
        this.settle(id, []);
        break;
      default: // PINGRESP and anything else
        break;
    }
  }

  settle(id, value) {
    const waiting = this.pending.get(id);
    if (waiting) {
      this.pending.delete(id);
      waiting.resolve(value);
    }
  }

  send(bytes) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes);
  }

  /** Sends the packet `make(id)` with a fresh packet id; resolves with its acknowledgement. */
  request(make) {
    if (this.state !== "connected") return Promise.reject(new Error("not connected"));
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffff ? 1 : this.nextId + 1;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.send(make(id));
    });
  }

  /** Subscribes; resolves with the granted QoS (rejects when the server refuses, 0x80). */
  async subscribe(filter, qos = 0) {
    const [granted] = await this.request((id) => encode.subscribe(id, [{ filter, qos }]));
    if (granted === undefined || granted >= 0x80) throw new Error(`the node refused the subscription to ${filter}`);
    this.subscriptions.set(filter, granted);
    return granted;
  }

  async unsubscribe(filter) {
    this.subscriptions.delete(filter);
    if (this.state === "connected") await this.request((id) => encode.unsubscribe(id, [filter]));
  }

  /** Publishes; a QoS 1 publish resolves at its PUBACK. */
  publish(topic, payload, { qos = 0, retain = false } = {}) {
    if (qos === 0) {
      if (this.state !== "connected") return Promise.reject(new Error("not connected"));
      this.send(encode.publish({ topic, payload, qos, retain }));
      return Promise.resolve();
    }
    return this.request((id) => encode.publish({ topic, payload, qos, retain, id }));
  }

  closed(ev) {
    clearInterval(this.ping);
    const why = this.refused || (ev.code === 1000 ? "" : `the connection closed (code ${ev.code})`);
    if (this.connack) {
      this.connack.reject(new Error(why || "the connection closed before CONNACK"));
      this.connack = null;
    }
    for (const { reject } of this.pending.values()) reject(new Error("the connection closed"));
    this.pending.clear();
    this.ws = null;
    if (this.closedByUser) {
      this.setState("closed");
      return;
    }
    // Try again, backing off up to 30 s; the subscriptions are restored at the next CONNACK.
    this.setState("disconnected", why);
    this.retryTimer = setTimeout(() => this.connect().catch(() => {}), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 30000);
  }

  /** Sends DISCONNECT and closes; no reconnection follows. */
  close() {
    this.closedByUser = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.ping);
    if (this.ws) {
      this.send(encode.disconnect());
      this.ws.close(1000);
    } else {
      this.setState("closed");
    }
  }
}
