// The MQTT test client: one connection over WebSocket that lives for the whole sign-in (it
// keeps its subscriptions and messages while other pages are open), subscriptions with
// unsubscribe, publish with QoS 0/1 and retain, and the messages as they arrive.

import { newClient, mqttEndpoint } from "../live.js";
import { h, replace, field, section, errorBox, note, formatPayload, button } from "../ui.js";

const MAX_MESSAGES = 500;
const session = { client: null, messages: [], view: null, seq: 0 };

/** Forgets the connection and the messages (sign-out). */
export function reset() {
  session.client?.close();
  session.client = null;
  session.messages = [];
  session.view = null;
}

function ensureClient() {
  if (session.client) return session.client;
  session.client = newClient("mqtt", {
    onMessage: (m) => {
      const entry = { ...m, at: new Date(), seq: ++session.seq };
      session.messages.unshift(entry);
      if (session.messages.length > MAX_MESSAGES) session.messages.length = MAX_MESSAGES;
      session.view?.added(entry);
    },
    onState: () => session.view?.state(),
  });
  session.client.connect().catch(() => {});
  return session.client;
}

function messageItem(m) {
  const shown = formatPayload(m.payload);
  const flags = [`QoS ${m.qos}`];
  if (m.retain) flags.push("retained");
  return h(
    "li",
    { class: "message", "data-topic": m.topic },
    h("div", { class: "message-head" },
      h("span", { class: "topic mono" }, m.topic),
      h("time", { datetime: m.at.toISOString() }, m.at.toLocaleTimeString()),
      h("span", { class: "flags" }, flags.join(", ")),
      h("span", { class: "kind" }, shown.kind === "hex" ? `${m.payload.length} bytes, hex` : shown.kind === "json" ? "JSON" : "text")),
    h("pre", { class: `payload ${shown.kind}`, tabindex: "0", "aria-label": `Payload on ${m.topic}` }, shown.text),
  );
}

export function render(main) {
  const client = ensureClient();

  const status = h("p", { class: "conn", role: "status" });
  const subList = h("ul", { class: "subs", "aria-label": "Active subscriptions" });
  const subStatus = h("div");
  const pubStatus = h("div");
  const messages = h("ol", { class: "messages", reversed: true, "aria-label": "Messages received" });
  const count = h("span", { class: "count" });

  function showState() {
    const s = client.state;
    status.dataset.state = s;
    status.textContent =
      s === "connected" ? `Connected to ${mqttEndpoint()} as ${client.clientId}.`
        : s === "connecting" ? `Connecting to ${mqttEndpoint()}…`
          : `Not connected${client.detail ? ": " + client.detail : ""}.` + (s === "closed" ? "" : " Trying again…");
  }

  function showSubs() {
    const items = [...client.subscriptions].map(([filter, qos]) =>
      h("li", { "data-filter": filter },
        h("span", { class: "mono" }, filter), ` (QoS ${qos})`,
        button("Unsubscribe", async () => {
          try {
            await client.unsubscribe(filter);
            replace(subStatus, note(`Unsubscribed from ${filter}.`));
          } catch (e) {
            replace(subStatus, errorBox(e));
          }
          showSubs();
        }, { kind: "secondary small", "aria-label": `Unsubscribe from ${filter}` })));
    replace(subList, items.length ? items : h("li", { class: "empty" }, "No subscriptions."));
  }

  function showCount() {
    count.textContent = `${session.messages.length} message${session.messages.length === 1 ? "" : "s"}` +
      (session.messages.length >= MAX_MESSAGES ? ` (the last ${MAX_MESSAGES} kept)` : "");
  }

  session.view = {
    added: (m) => {
      messages.prepend(messageItem(m));
      while (messages.children.length > MAX_MESSAGES) messages.lastChild.remove();
      showCount();
    },
    state: showState,
  };

  const filterInput = h("input", { name: "filter", required: true, autocomplete: "off", placeholder: "sensors/#", class: "mono" });
  const subQos = h("select", { name: "subQos" }, h("option", { value: "0" }, "0"), h("option", { value: "1", selected: true }, "1"));
  const subscribeForm = h("form", { class: "inline-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const filter = filterInput.value.trim();
    if (!filter) return;
    try {
      const granted = await client.subscribe(filter, Number(subQos.value));
      replace(subStatus, note(`Subscribed to ${filter} (granted QoS ${granted}).`));
      filterInput.value = "";
    } catch (e) {
      replace(subStatus, errorBox(e, `Subscribing to ${filter}`));
    }
    showSubs();
  } }, field("Topic filter", filterInput), field("QoS", subQos), h("button", { type: "submit" }, "Subscribe"));

  const topicInput = h("input", { name: "topic", required: true, autocomplete: "off", placeholder: "sensors/kitchen", class: "mono" });
  const pubQos = h("select", { name: "pubQos" }, h("option", { value: "0" }, "0"), h("option", { value: "1" }, "1"));
  const retain = h("input", { type: "checkbox", name: "retain", id: "publish-retain" });
  const payload = h("textarea", { name: "payload", rows: "5", spellcheck: "false", class: "code" });
  payload.value = '{\n  "temperature": 21.5\n}';
  const publishForm = h("form", { class: "stack", onsubmit: async (ev) => {
    ev.preventDefault();
    const topic = topicInput.value.trim();
    const qos = Number(pubQos.value);
    try {
      await client.publish(topic, payload.value, { qos, retain: retain.checked });
      replace(pubStatus, note(qos ? `Published to ${topic}; the node acknowledged it.` : `Published to ${topic}.`));
    } catch (e) {
      replace(pubStatus, errorBox(e, `Publishing to ${topic}`));
    }
  } },
  h("div", { class: "row" }, field("Topic", topicInput), field("QoS", pubQos)),
  h("div", { class: "field checkbox" }, retain, h("label", { for: retain.id }, "Retain")),
  field("Payload", payload),
  h("div", { class: "actions" }, h("button", { type: "submit" }, "Publish")),
  pubStatus);

  replace(
    main,
    h("h1", { tabindex: "-1" }, "MQTT test client"),
    status,
    h("div", { class: "columns" },
      section("Subscribe", subscribeForm, subStatus, h("h3", {}, "Active subscriptions"), subList),
      section("Publish", publishForm)),
    section("Messages",
      h("div", { class: "toolbar" }, count,
        button("Clear", () => {
          session.messages = [];
          messages.replaceChildren();
          showCount();
        }, { kind: "secondary small" })),
      messages),
  );
  for (const m of session.messages.slice().reverse()) messages.prepend(messageItem(m));
  showState();
  showSubs();
  showCount();

  return () => {
    session.view = null;
  };
}
