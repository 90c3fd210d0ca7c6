// Things: the list (a name prefix search, by SearchIndex when fleet indexing is on and by
// reading ListThings pages otherwise; Next and Previous pages) and the create form.

import * as api from "../api.js";
import { h, replace, field, table, section, errorBox, button } from "../ui.js";

const PAGE = 25;

/** The thing name prefix as a fleet-indexing term: every character escaped but letters and digits. */
export function escapeQuery(text) {
  return text.replace(/[^A-Za-z0-9]/g, (c) => "\\" + c);
}

/** Is fleet indexing of the registry on? */
async function indexingOn() {
  try {
    const cfg = await api.getIndexingConfiguration();
    return (cfg.thingIndexingConfiguration?.thingIndexingMode || "OFF") !== "OFF";
  } catch {
    return false;
  }
}

/**
 * One page of things whose name starts with `prefix`, from `cursor`:
 * `{things, next}` where `next` is the cursor of the following page (null at the end).
 */
async function fetchPage(prefix, cursor, useIndex) {
  if (useIndex && prefix) {
    const r = await api.searchIndex({ queryString: `thingName:${escapeQuery(prefix)}*`, maxResults: PAGE, nextToken: cursor?.token });
    return { things: r.things || [], next: r.nextToken ? { token: r.nextToken } : null };
  }
  if (!prefix) {
    const r = await api.listThings({ maxResults: PAGE, nextToken: cursor?.token });
    return { things: r.things || [], next: r.nextToken ? { token: r.nextToken } : null };
  }
  // No index: read ListThings pages (in name order) and keep the names with the prefix,
  // stopping at the first name past it. The cursor is a page token and a position in it.
  const found = [];
  let token = cursor?.token;
  let skip = cursor?.skip || 0;
  for (;;) {
    const r = await api.listThings({ maxResults: 250, nextToken: token });
    const things = r.things || [];
    for (let i = skip; i < things.length; i++) {
      const t = things[i];
      if (t.thingName.startsWith(prefix)) {
        found.push(t);
        if (found.length === PAGE) {
          const more = i + 1 < things.length ? { token, skip: i + 1 } : r.nextToken ? { token: r.nextToken, skip: 0 } : null;
          return { things: found, next: more };
        }
      } else if (t.thingName > prefix) {
        return { things: found, next: null };
      }
    }
    if (!r.nextToken) return { things: found, next: null };
    token = r.nextToken;
    skip = 0;
  }
}

/** Attributes typed as `name=value` lines. */
export function parseAttributes(text) {
  const attributes = {};
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const at = line.indexOf("=");
    if (at < 1) throw new Error(`"${line.trim()}": write each attribute as name=value`);
    attributes[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return attributes;
}

function attributesText(attrs) {
  return Object.entries(attrs || {}).map(([k, v]) => `${k}=${v}`).join(", ");
}

export function render(main) {
  const state = { prefix: "", stack: [null], next: null, useIndex: false };

  const results = h("div", { "aria-live": "polite" });
  const prefixInput = h("input", { type: "search", name: "prefix", autocomplete: "off", placeholder: "e.g. sensor-" });
  const prev = button("Previous", () => go(-1), { kind: "secondary" });
  const next = button("Next", () => go(1), { kind: "secondary" });
  const pageInfo = h("span", { class: "page-info" });

  async function show() {
    const cursor = state.stack[state.stack.length - 1];
    replace(results, h("p", { class: "loading" }, "Loading…"));
    try {
      const page = await fetchPage(state.prefix, cursor, state.useIndex);
      state.next = page.next;
      const rows = page.things.map((t) => [
        h("a", { href: `#/things/${encodeURIComponent(t.thingName)}` }, t.thingName),
        t.thingTypeName || "",
        attributesText(t.attributes),
        t.version !== undefined ? String(t.version) : t.connectivity ? (t.connectivity.connected ? "connected" : "disconnected") : "",
      ]);
      const last = state.useIndex && state.prefix ? "Connectivity" : "Version";
      replace(
        results,
        table(["Name", "Type", "Attributes", last], rows, {
          caption: state.prefix ? `Things whose name starts with “${state.prefix}”` : "Things",
          empty: state.prefix ? `No thing's name starts with “${state.prefix}”.` : "No things yet: create one below.",
        }),
      );
      pageInfo.textContent = `Page ${state.stack.length}` + (state.useIndex && state.prefix ? " (fleet index)" : "");
    } catch (e) {
      replace(results, errorBox(e));
      state.next = null;
    }
    prev.disabled = state.stack.length <= 1;
    next.disabled = !state.next;
  }

  async function go(delta) {
    if (delta > 0 && state.next) state.stack.push(state.next);
    if (delta < 0 && state.stack.length > 1) state.stack.pop();
    await show();
  }

  const searchForm = h(
    "form",
    { class: "inline-form", role: "search", onsubmit: async (ev) => {
      ev.preventDefault();
      state.prefix = prefixInput.value.trim();
      state.stack = [null];
      await show();
    } },
    field("Name starts with", prefixInput),
    h("button", { type: "submit" }, "Search"),
  );

  // Create.
  const nameInput = h("input", { name: "thingName", required: true, pattern: "[a-zA-Z0-9:_\\-]+", maxlength: "128", autocomplete: "off" });
  const typeSelect = h("select", { name: "thingTypeName" }, h("option", { value: "" }, "(none)"));
  const attrsInput = h("textarea", { name: "attributes", rows: "3", spellcheck: "false", placeholder: "room=kitchen\nfloor=1" });
  const createStatus = h("div");
  const createForm = h(
    "form",
    { class: "stack", onsubmit: async (ev) => {
      ev.preventDefault();
      replace(createStatus);
      const name = nameInput.value.trim();
      try {
        const body = { attributePayload: { attributes: parseAttributes(attrsInput.value) } };
        if (typeSelect.value) body.thingTypeName = typeSelect.value;
        await api.createThing(name, body);
        location.hash = `#/things/${encodeURIComponent(name)}`;
      } catch (e) {
        replace(createStatus, errorBox(e, `Creating ${name}`));
      }
    } },
    field("Thing name", nameInput, "Letters, digits, ':', '_' and '-'; the device's MQTT client id."),
    field("Thing type", typeSelect),
    field("Attributes", attrsInput, "One name=value per line (3 at most without a type)."),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Create thing")),
    createStatus,
  );

  replace(
    main,
    h("h1", { tabindex: "-1" }, "Things"),
    section("Find things", searchForm, results, h("div", { class: "pager" }, prev, pageInfo, next)),
    section("Create a thing", createForm),
  );

  (async () => {
    state.useIndex = await indexingOn();
    await show();
    try {
      const types = await api.all((t) => api.listThingTypes({ maxResults: 250, nextToken: t }), "thingTypes", 1000);
      for (const t of types) {
        if (!t.thingTypeMetadata?.deprecated) typeSelect.append(h("option", { value: t.thingTypeName }, t.thingTypeName));
      }
    } catch {
      /* the list of types is a convenience */
    }
  })();
}
