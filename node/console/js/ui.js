// DOM helpers: elements built from data (text is always set as text, never parsed as HTML),
// tables that scroll on narrow screens, payload formatting, downloads, and errors shown at
// their line and column in an editor.

/** An element: h("a", {href: "#/x", class: "c", onclick: f}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "for") el.htmlFor = v;
    else if (k === "value") el.value = v;
    else if (k === "checked" || k === "disabled" || k === "selected") el[k] = !!v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
/** A fresh element id with a readable prefix. */
export function newId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A labelled form field: the label's `for` names the control. */
export function field(label, control, hint) {
  if (!control.id) control.id = newId("f");
  const hintEl = hint ? h("p", { class: "hint", id: control.id + "-hint" }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hintEl);
}

/**
 * A table inside a horizontally scrolling wrapper. `columns` are headings; `rows` arrays of
 * cells. `caption` is shown above it; `label` (default: the caption) names the scrolling
 * region for assistive technology.
 */
export function table(columns, rows, { caption, label, empty = "Nothing here yet." } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-wrap", tabindex: "0", role: "region", "aria-label": label || caption || columns.join(", ") },
    h(
      "table",
      { style: `--cols: ${columns.length}` },
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((cell) => h("td", {}, cell))))),
    ),
  );
}

/** A section with a heading. */
export function section(title, ...children) {
  const id = newId("s");
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

/** An error box (AWS's message as the node sent it). */
export function errorBox(err, prefix = "") {
  const message = err && err.message ? err.message : String(err);
  return h("div", { class: "error", role: "alert" }, prefix ? `${prefix}: ${message}` : message);
}

/** A success note. */
export function note(text) {
  return h("div", { class: "ok", role: "status" }, text);
}

/** Pretty JSON text. */
export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

/** A <pre> of pretty JSON. */
export function jsonBlock(value, label) {
  return h("pre", { class: "json", tabindex: "0", "aria-label": label || "JSON document" }, pretty(value));
}

/** How to show a payload: pretty JSON, UTF-8 text, or hex for anything else. */
export function formatPayload(bytes) {
  let text = null;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    text = null;
  }
  // Control characters other than whitespace: binary, shown as hex.
  if (text !== null && !/[\u0000-\u0008\u000e-\u001f\u007f]/.test(text)) {
    const trimmed = text.trim();
    if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
      try {
        return { kind: "json", text: pretty(JSON.parse(trimmed)) };
      } catch {
        /* text that only looks like JSON */
      }
    }
    return { kind: "text", text };
  }
  const lines = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const row = [...bytes.subarray(i, i + 16)];
    lines.push(
      i.toString(16).padStart(6, "0") + "  " + row.map((b) => b.toString(16).padStart(2, "0")).join(" ").padEnd(48) +
        "  " + row.map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join(""),
    );
  }
  return { kind: "hex", text: lines.join("\n") };
}

/** A link that downloads `text` as `filename` (a Blob URL). */
export function downloadLink(filename, text, label, type = "application/x-pem-file") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  return h("a", { class: "button secondary", href: url, download: filename }, label || `Download ${filename}`);
}

/** A button that runs `action` (async); clicks while it runs are ignored (aria-busy). */
export function button(label, action, { kind = "", type = "button", ...attrs } = {}) {
  const b = h("button", { type, class: kind, ...attrs }, label);
  if (action) {
    b.addEventListener("click", async (ev) => {
      ev.preventDefault();
      if (b.getAttribute("aria-busy") === "true") return;
      b.setAttribute("aria-busy", "true");
      try {
        await action(ev);
      } finally {
        b.removeAttribute("aria-busy");
      }
    });
  }
  return b;
}

/** Local date and time of a timestamp (milliseconds, or seconds when small). */
export function when(t) {
  if (t === undefined || t === null || t === "") return "";
  const ms = typeof t === "number" && t < 1e11 ? t * 1000 : t;
  const d = new Date(ms);
  return isNaN(d) ? String(t) : d.toLocaleString();
}

/**
 * The line and column an error message names: the policy checker's
 * `line 4, column 5: ...`, the SQL checker's `Line 2:28: ...` and fleet queries'
 * `line 1, column 12`. Null when it names none.
 */
export function positionOf(message) {
  const m = /\bline (\d+), column (\d+)/i.exec(message) || /\bLine (\d+):(\d+)/i.exec(message);
  return m ? { line: Number(m[1]), column: Number(m[2]) } : null;
}

/** The character offset of a 1-based line and column in `text`. */
export function offsetOf(text, line, column) {
  const lines = text.split("\n");
  let offset = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
  const current = lines[Math.min(line, lines.length) - 1] || "";
  return offset + Math.min(Math.max(column - 1, 0), current.length);
}

/**
 * Shows an error at its position in an editor: the textarea's range is selected (and
 * focused), and `marker` gets the line with a caret under the column, rustc-style. Without a
 * position, the marker shows the message alone.
 */
export function markError(textarea, marker, message) {
  const pos = positionOf(message);
  textarea.setAttribute("aria-invalid", "true");
  marker.hidden = false;
  if (!pos) {
    replace(marker, message);
    return null;
  }
  const text = textarea.value;
  const lineText = text.split("\n")[pos.line - 1] ?? "";
  const gutter = String(pos.line).length;
  const caretPad = " ".repeat(Math.max(0, Math.min(pos.column - 1, lineText.length)));
  marker.dataset.line = pos.line;
  marker.dataset.column = pos.column;
  replace(
    marker,
    h("span", { class: "where" }, `line ${pos.line}, column ${pos.column}`),
    "\n",
    h("span", { class: "gutter" }, `${pos.line} | `),
    lineText,
    "\n",
    h("span", { class: "gutter" }, `${" ".repeat(gutter)} | `),
    h("span", { class: "caret" }, caretPad + "^ " + message),
  );
  const start = offsetOf(text, pos.line, pos.column);
  // Select the offending character (or, at the end of a line, the position itself).
  const end = start < text.length && text[start] !== "\n" ? start + 1 : start;
  textarea.focus();
  textarea.setSelectionRange(start, end);
  // Scroll the line into view: lines are a fixed height in the editor's font.
  const lineHeight = parseFloat(getComputedStyle(textarea).lineHeight) || 18;
  textarea.scrollTop = Math.max(0, (pos.line - 3) * lineHeight);
  return pos;
}

/** Clears what markError showed. */
export function clearMark(textarea, marker) {
  textarea.removeAttribute("aria-invalid");
  marker.hidden = true;
  marker.replaceChildren();
  delete marker.dataset.line;
  delete marker.dataset.column;
}

/** Copy-to-clipboard button for a <pre> (where the Clipboard API is available). */
export function copyButton(getText, label = "Copy") {
  return button(label, async (ev) => {
    const b = ev.currentTarget;
    try {
      await navigator.clipboard.writeText(getText());
      b.textContent = "Copied";
    } catch {
      b.textContent = "Select and copy by hand";
    }
    setTimeout(() => (b.textContent = label), 1500);
  }, { kind: "secondary small" });
}
