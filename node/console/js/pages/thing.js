// A thing's page: its registry entry (attributes, type, groups, principals and their
// policies), connectivity from the fleet index and then from its lifecycle events, its
// classic and named shadows kept live over MQTT, deletion with a confirm step, and the
// first-device flow: a certificate in one click, its files, a policy from a template or
// JSON, and how to connect.

import * as api from "../api.js";
import { config } from "../api.js";
import { newClient } from "../live.js";
import { h, newId, replace, field, table, section, errorBox, note, jsonBlock, button, downloadLink, markError, clearMark, when, copyButton } from "../ui.js";
import { escapeQuery } from "./things.js";

/** `HOST:PORT` split in two (IPv6 hosts keep their brackets). */
export function hostPort(endpoint) {
  const at = endpoint.lastIndexOf(":");
  return { host: endpoint.slice(0, at), port: endpoint.slice(at + 1) };
}

/** The policy the template makes: the thing connects as itself and uses its own topics. */
export function policyTemplate(thing, cfg) {
  const arn = `arn:aws:iot:${cfg.region}:${cfg.accountId}`;
  return JSON.stringify(
    {
      Version: "2012-10-17",
      Statement: [
        { Effect: "Allow", Action: "iot:Connect", Resource: `${arn}:client/${thing}` },
        {
          Effect: "Allow",
          Action: ["iot:Publish", "iot:Receive"],
          Resource: [`${arn}:topic/things/${thing}/*`, `${arn}:topic/$aws/things/${thing}/*`],
        },
        {
          Effect: "Allow",
          Action: "iot:Subscribe",
          Resource: [`${arn}:topicfilter/things/${thing}/*`, `${arn}:topicfilter/$aws/things/${thing}/*`],
        },
      ],
    },
    null,
    2,
  );
}

/** The commands that connect the device, with this node's MQTT/TLS endpoint. */
export function connectSnippets(thing, cfg) {
  const { host, port } = hostPort(cfg.endpoints.mqtts);
  const topic = `things/${thing}/hello`;
  const mosquitto =
    `mosquitto_pub --cafile ca.pem --cert ${thing}.cert.pem --key ${thing}.private.key \\\n` +
    `  -h ${host} -p ${port} -i ${thing} -q 1 \\\n` +
    `  -t ${topic} -m '{"hello": "world"}'`;
  const python = `# pip install awsiotsdk
from awscrt import mqtt
from awsiot import mqtt_connection_builder

connection = mqtt_connection_builder.mtls_from_path(
    endpoint="${host}",
    port=${port},
    cert_filepath="${thing}.cert.pem",
    pri_key_filepath="${thing}.private.key",
    ca_filepath="ca.pem",
    client_id="${thing}",
    clean_session=True,
    keep_alive_secs=30,
)
connection.connect().result()
future, _ = connection.publish(topic="${topic}", payload='{"hello": "world"}', qos=mqtt.QoS.AT_LEAST_ONCE)
future.result()
connection.disconnect().result()
`;
  return { mosquitto, python, topic };
}

function shadowDocument(doc) {
  // GetThingShadow's answer and update/documents' `current` have the same parts.
  const out = {};
  for (const k of ["state", "metadata", "version", "timestamp"]) if (doc[k] !== undefined) out[k] = doc[k];
  return out;
}

export function render(main, params) {
  let name;
  try {
    name = decodeURIComponent(params[0]);
  } catch {
    name = params[0]; // a malformed escape: the node will say there is no such thing
  }
  const cfg = config();
  let client = null;
  let left = false;
  const cleanup = () => {
    left = true;
    client?.close();
  };

  const title = h("h1", { tabindex: "-1" }, name);
  const summary = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  // The state (from the fleet index, then from presence events as they come) and, when
  // connectivity indexing is off, how to turn it on.
  const connState = h("div", { "aria-live": "polite" });
  const connInfo = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  const connectivity = h("div", {}, connState, connInfo);
  let seenLive = false;

  function showConnected(connected, timestamp, reason, live) {
    replace(
      connState,
      h("p", { class: connected ? "state on" : "state off", "data-connected": String(!!connected) },
        connected ? "Connected" : "Disconnected",
        timestamp ? ` since ${when(timestamp)}` : "",
        reason ? ` (${reason})` : "",
        live ? " — live, from its lifecycle events" : ""),
    );
  }
  const groups = h("div");
  const principals = h("div");
  const liveStatus = h("p", { class: "live", "data-live": "off", role: "status" }, "Connecting for live updates…");
  const shadowList = h("div", { class: "shadows" });
  const shadows = new Map(); // "" (classic) or the shadow's name -> its card's <pre>

  // Delete, with a confirm step.
  const deleteArea = h("div", { class: "actions" });
  function askDelete() {
    const yes = button(`Yes, delete ${name}`, async () => {
      try {
        await api.deleteThing(name);
        cleanup();
        location.hash = "#/things";
      } catch (e) {
        replace(deleteArea, errorBox(e, "Deleting"), deleteButton);
      }
    }, { kind: "danger" });
    replace(deleteArea, h("p", { role: "alert" }, `Delete the thing ${name}? Its shadows stay until deleted; this cannot be undone.`), yes,
      button("Cancel", () => { replace(deleteArea, deleteButton); deleteButton.focus(); }, { kind: "secondary" }));
    yes.focus();
  }
  const deleteButton = button("Delete thing", askDelete, { kind: "danger secondary" });
  deleteArea.append(deleteButton);

  // First device: certificate, policy, connect.
  const certArea = h("div", { class: "stack" });
  const certSelect = h("select", { name: "certificate" });
  const policyName = h("input", { name: "policyName", value: `${name}-policy`, autocomplete: "off", pattern: "[\\w+=,.@\\-]+" });
  const policyText = h("textarea", { name: "policyDocument", rows: "14", spellcheck: "false", class: "code" });
  policyText.value = policyTemplate(name, cfg);
  const policyMarker = h("pre", { class: "marker", hidden: true, "aria-live": "assertive" });
  const policyStatus = h("div");
  const attachBox = h("input", { type: "checkbox", name: "attach", checked: true, id: newId("attach") });
  policyText.addEventListener("input", () => clearMark(policyText, policyMarker));

  async function createPolicy(ev) {
    ev.preventDefault();
    clearMark(policyText, policyMarker);
    replace(policyStatus);
    const pname = policyName.value.trim();
    try {
      await api.createPolicy(pname, policyText.value);
    } catch (e) {
      if (e.type.startsWith("MalformedPolicy") || /line \d+, column \d+/i.test(e.message)) {
        markError(policyText, policyMarker, e.message);
        replace(policyStatus, errorBox(e, "The node refused the policy"));
      } else {
        replace(policyStatus, errorBox(e, `Creating policy ${pname}`));
      }
      return;
    }
    if (attachBox.checked && certSelect.value) {
      try {
        await api.attachPolicy(pname, certSelect.value);
        replace(policyStatus, note(`Created policy ${pname} and attached it to certificate ${certSelect.value.split("/").pop()}.`));
      } catch (e) {
        replace(policyStatus, errorBox(e, `Created policy ${pname}, but attaching it failed`));
      }
    } else {
      replace(policyStatus, note(`Created policy ${pname}.`));
    }
    await loadPrincipals();
  }

  async function createCertificate() {
    replace(certArea, h("p", { class: "loading" }, "Creating a key pair and certificate…"));
    let cert;
    try {
      cert = await api.createKeysAndCertificate();
      await api.attachThingPrincipal(name, cert.certificateArn);
    } catch (e) {
      replace(certArea, errorBox(e, "Creating the certificate"), certButton);
      return;
    }
    replace(
      certArea,
      note(`Certificate ${cert.certificateId} is active and attached to ${name}.`),
      h("p", { class: "warning" }, "Download the private key now: the node does not keep it, and this page forgets it when you leave."),
      h("div", { class: "downloads" },
        downloadLink(`${name}.cert.pem`, cert.certificatePem, `Download ${name}.cert.pem`),
        downloadLink(`${name}.private.key`, cert.keyPair.PrivateKey, `Download ${name}.private.key`),
        caLink()),
      h("p", { class: "hint" }, "Another certificate: ", certButton),
    );
    certButton.textContent = "Create another certificate";
    await loadPrincipals(cert.certificateArn);
  }
  const certButton = button("Create certificate", createCertificate);
  const caLink = () => h("a", { class: "button secondary", href: "/console/ca.pem", download: "ca.pem" }, "Download ca.pem");
  certArea.append(
    h("p", {}, "One click creates a key pair and a certificate signed by the node's CA, activates it and attaches it to this thing."),
    h("div", { class: "actions" }, certButton, caLink()),
  );

  const snippets = connectSnippets(name, cfg);
  const snippet = (label, text) => {
    const pre = h("pre", { class: "code", tabindex: "0", "aria-label": label }, text);
    return h("div", { class: "snippet" }, h("div", { class: "snippet-head" }, h("h3", {}, label), copyButton(() => text)), pre);
  };

  const firstDevice = section(
    "Connect a device",
    h("h3", {}, "1. Certificate"),
    certArea,
    h("h3", {}, "2. Policy"),
    h("form", { class: "stack", onsubmit: createPolicy },
      field("Policy name", policyName),
      field("Policy document", policyText, "The template lets this thing connect with its own name as client id and publish, subscribe and receive on things/" + name + "/* and its shadow topics. Edit it, or paste any policy JSON."),
      policyMarker,
      h("div", { class: "field checkbox" }, attachBox, h("label", { for: attachBox.id }, "Attach it to the certificate")),
      field("Certificate", certSelect),
      h("div", { class: "actions" },
        h("button", { type: "submit" }, "Create policy"),
        button("Use the template", () => { policyText.value = policyTemplate(name, cfg); clearMark(policyText, policyMarker); }, { kind: "secondary" })),
      policyStatus),
    h("h3", {}, "3. Connect"),
    h("p", {}, `Devices connect with mutual TLS to ${cfg.endpoints.mqtts}, trusting ca.pem, with the client id ${name}. Open the `,
      h("a", { href: "#/mqtt" }, "MQTT test client"), ` and subscribe to things/${name}/# to see what it publishes.`),
    snippet("mosquitto_pub", snippets.mosquitto),
    snippet("AWS IoT Device SDK for Python v2", snippets.python),
  );

  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/things" }, "Things"), " / ", name),
    title,
    section("Details", summary),
    section("Connectivity", connectivity),
    section("Shadows", liveStatus, shadowList),
    section("Groups", groups),
    section("Certificates and other principals", principals),
    firstDevice,
    section("Delete", deleteArea),
  );

  async function loadSummary() {
    try {
      const t = await api.describeThing(name);
      const attrs = Object.entries(t.attributes || {});
      replace(
        summary,
        h("dl", { class: "facts" },
          h("dt", {}, "Type"), h("dd", {}, t.thingTypeName || "(none)"),
          h("dt", {}, "ARN"), h("dd", { class: "mono" }, t.thingArn),
          h("dt", {}, "Thing ID"), h("dd", { class: "mono" }, t.thingId),
          h("dt", {}, "Version"), h("dd", {}, String(t.version ?? ""))),
        h("h3", {}, "Attributes"),
        table(["Name", "Value"], attrs.map(([k, v]) => [k, v]), { label: "Attributes", empty: "No attributes." }),
      );
      return true;
    } catch (e) {
      replace(summary, errorBox(e));
      if (e.type === "ResourceNotFoundException") {
        replace(main, h("p", { class: "crumbs" }, h("a", { href: "#/things" }, "Things")), title, errorBox(e));
        cleanup();
      }
      return false;
    }
  }

  async function loadGroups() {
    try {
      const list = await api.all((t) => api.listThingGroupsForThing(name, { maxResults: 100, nextToken: t }), "thingGroups");
      replace(groups, table(["Group"], list.map((g) => [h("span", { class: "mono" }, g.groupName)]), { label: "Groups", empty: "In no thing group." }));
    } catch (e) {
      replace(groups, errorBox(e));
    }
  }

  async function loadPrincipals(select) {
    try {
      const list = await api.all((t) => api.listThingPrincipals(name, { maxResults: 100, nextToken: t }), "principals");
      const rows = await Promise.all(list.map(async (arn) => {
        let policies = "";
        if (arn.includes(":cert/")) {
          try {
            const r = await api.listAttachedPolicies(arn);
            policies = (r.policies || []).map((p) => p.policyName).join(", ") || "(none)";
          } catch (e) {
            policies = e.message;
          }
        }
        return [h("span", { class: "mono" }, arn), policies];
      }));
      replace(principals, table(["Principal", "Policies"], rows, { label: "Principals", empty: "No certificate yet: create one under Connect a device." }));
      const keep = select || certSelect.value;
      replace(certSelect, list.filter((a) => a.includes(":cert/")).map((a) => h("option", { value: a, selected: a === keep }, a.split("/").pop())));
      if (!certSelect.options.length) certSelect.append(h("option", { value: "" }, "(no certificate yet)"));
    } catch (e) {
      replace(principals, errorBox(e));
    }
  }

  async function loadConnectivity() {
    let indexing;
    try {
      indexing = (await api.getIndexingConfiguration()).thingIndexingConfiguration || {};
    } catch (e) {
      replace(connInfo, errorBox(e));
      return;
    }
    if (indexing.thingIndexingMode === "OFF" || indexing.thingConnectivityIndexingMode !== "STATUS") {
      const turnOn = button("Turn on connectivity indexing", async () => {
        const body = { thingIndexingMode: indexing.thingIndexingMode === "OFF" || !indexing.thingIndexingMode ? "REGISTRY" : indexing.thingIndexingMode, thingConnectivityIndexingMode: "STATUS" };
        for (const k of ["namedShadowIndexingMode", "deviceDefenderIndexingMode", "customFields", "filter"]) if (indexing[k] !== undefined) body[k] = indexing[k];
        try {
          await api.updateIndexingConfiguration({ thingIndexingConfiguration: body });
          await loadConnectivity();
        } catch (e) {
          connInfo.append(errorBox(e));
        }
      }, { kind: "secondary" });
      replace(
        connInfo,
        h("p", {}, "Whether it is connected now is known when fleet indexing indexes connectivity (thingConnectivityIndexingMode STATUS), which is off on this node; until then this page shows only the connects and disconnects it sees while open."),
        h("p", {}, "Turn it on here, or with ", h("code", {}, "aws iot update-indexing-configuration --thing-indexing-configuration thingIndexingMode=REGISTRY,thingConnectivityIndexingMode=STATUS"), "."),
        turnOn,
      );
      return;
    }
    replace(connInfo);
    try {
      const r = await api.searchIndex({ queryString: `thingName:${escapeQuery(name)}`, maxResults: 1 });
      const c = r.things?.[0]?.connectivity;
      if (seenLive) return; // a lifecycle event came while the index was asked: it is newer
      if (!c) replace(connInfo, h("p", {}, "The index has no connectivity for this thing yet."));
      else showConnected(c.connected, c.timestamp, c.disconnectReason, false);
    } catch (e) {
      replace(connInfo, errorBox(e));
    }
  }

  function showShadow(shadowName, doc, live = false) {
    let card = shadows.get(shadowName);
    const label = shadowName ? `Named shadow ${shadowName}` : "Classic shadow";
    const block = jsonBlock(shadowDocument(doc), label);
    if (!card) {
      card = h("article", { class: "shadow", "data-shadow": shadowName || "$classic" }, h("h3", {}, label), h("p", { class: "meta" }), block);
      shadows.set(shadowName, card);
      // The classic shadow first, then named ones by name.
      const after = [...shadows.keys()].filter((k) => k !== shadowName).sort();
      const next = after.find((k) => k > shadowName);
      if (next !== undefined && shadows.get(next).parentNode === shadowList) shadowList.insertBefore(card, shadows.get(next));
      else shadowList.append(card);
    } else {
      card.replaceChild(block, card.querySelector("pre"));
    }
    card.querySelector(".meta").textContent = `version ${doc.version ?? "?"}` + (doc.timestamp ? `, updated ${when(doc.timestamp)}` : "") + (live ? " (live)" : "");
    shadowList.querySelector(".empty")?.remove();
  }

  function removeShadow(shadowName) {
    shadows.get(shadowName)?.remove();
    shadows.delete(shadowName);
    if (!shadows.size) shadowList.append(h("p", { class: "empty" }, "No shadows."));
  }

  function onMessage(m) {
    if (m.topic.startsWith("$aws/events/presence/")) {
      try {
        const ev = JSON.parse(new TextDecoder().decode(m.payload));
        seenLive = true;
        showConnected(ev.eventType === "connected", ev.timestamp, ev.disconnectReason, true);
      } catch {
        /* not an event document */
      }
      return;
    }
    const prefix = `$aws/things/${name}/shadow/`;
    if (!m.topic.startsWith(prefix)) return;
    const rest = m.topic.slice(prefix.length);
    const named = /^name\/([^/]+)\/(.*)$/.exec(rest);
    const shadowName = named ? named[1] : "";
    const op = named ? named[2] : rest;
    let doc;
    try {
      doc = JSON.parse(new TextDecoder().decode(m.payload));
    } catch {
      return;
    }
    if (op === "update/documents" && doc.current) showShadow(shadowName, { ...doc.current, timestamp: doc.timestamp }, true);
    if (op === "delete/accepted") removeShadow(shadowName);
  }

  async function loadShadows() {
    // Subscribe first, so no update falls between the read and the subscription.
    client = newClient("thing", {
      onMessage,
      onState: (s, why) => {
        if (s === "connected") return;
        liveStatus.dataset.live = "off";
        liveStatus.textContent = s === "connecting" ? "Connecting for live updates…" : s === "closed" ? "Live updates stopped." : `Live updates interrupted${why ? ": " + why : ""}; reconnecting…`;
      },
    });
    if (left) return client.close();
    try {
      await client.connect();
      if (left) return client.close();
      for (const f of ["update/documents", "name/+/update/documents", "delete/accepted", "name/+/delete/accepted"]) {
        await client.subscribe(`$aws/things/${name}/shadow/${f}`, 1);
      }
      // Devices connect with the thing's name as client id: their lifecycle events.
      await client.subscribe(`$aws/events/presence/+/${name}`, 1);
      liveStatus.dataset.live = "on";
      liveStatus.textContent = "Live: shadow changes appear here as they happen.";
    } catch (e) {
      liveStatus.dataset.live = "off";
      liveStatus.textContent = `No live updates (MQTT over WebSocket: ${e.message}); reload the page to see changes.`;
    }
    try {
      const classic = await api.getThingShadow(name);
      showShadow("", classic);
    } catch (e) {
      if (e.type !== "ResourceNotFoundException") shadowList.append(errorBox(e, "Classic shadow"));
    }
    try {
      const named = await api.all((t) => api.listNamedShadowsForThing(name, { pageSize: 100, nextToken: t }), "results");
      for (const n of named) {
        try {
          showShadow(n, await api.getThingShadow(name, n));
        } catch (e) {
          if (e.type !== "ResourceNotFoundException") shadowList.append(errorBox(e, `Shadow ${n}`));
        }
      }
    } catch (e) {
      shadowList.append(errorBox(e, "Named shadows"));
    }
    if (!shadows.size) shadowList.append(h("p", { class: "empty" }, "No shadows yet: one appears here when a device or an application updates it."));
  }

  (async () => {
    if (!(await loadSummary())) return;
    await Promise.all([loadConnectivity(), loadGroups(), loadPrincipals(), loadShadows()]);
  })();

  return cleanup;
}
