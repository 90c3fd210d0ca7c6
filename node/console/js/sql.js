// A small tokenizer for AWS IoT SQL, for showing rules with syntax highlighting: keywords,
// strings, numbers, functions (a name before `(`), operators, identifiers and comments. It
// only colours text; the node's checker is what judges a statement.

import { h } from "./ui.js";

const KEYWORDS = new Set(
  ("SELECT FROM WHERE AS AND OR NOT IN IS NULL TRUE FALSE CASE WHEN THEN ELSE END VALUE LIKE " +
    "UNDEFINED CREATE RULE DO DESCRIPTION DISABLED ENABLED WITH VERSION").split(" "),
);

/** Tokens of `sql`: `{type, text}` with type kw, str, num, fn, op, id, comment or ws. */
export function tokenize(sql) {
  const out = [];
  let i = 0;
  const push = (type, text) => out.push({ type, text });
  while (i < sql.length) {
    const rest = sql.slice(i);
    let m;
    if ((m = /^\s+/.exec(rest))) push("ws", m[0]);
    else if ((m = /^--[^\n]*/.exec(rest))) push("comment", m[0]);
    else if ((m = /^\/\*[\s\S]*?(?:\*\/|$)/.exec(rest))) push("comment", m[0]);
    else if ((m = /^'(?:[^'\\]|\\.|'')*'?/.exec(rest))) push("str", m[0]);
    else if ((m = /^"(?:[^"\\]|\\.)*"?/.exec(rest))) push("id", m[0]);
    else if ((m = /^`(?:[^`\\]|\\.)*`?/.exec(rest))) push("id", m[0]);
    else if ((m = /^(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)/.exec(rest))) push("num", m[0]);
    else if ((m = /^[A-Za-z_$][\w$]*/.exec(rest))) {
      const after = sql.slice(i + m[0].length);
      if (KEYWORDS.has(m[0].toUpperCase())) push("kw", m[0]);
      else if (/^\s*\(/.test(after)) push("fn", m[0]);
      else push("id", m[0]);
    } else if ((m = /^(?:<>|<=|>=|!=|\|\||[-+*/%<>=!(),.;[\]{}:&|^~])/.exec(rest))) push("op", m[0]);
    else push("op", rest[0]);
    i += out[out.length - 1].text.length;
  }
  return out;
}

/** A <pre><code> of `sql` with each token in a span classed `tok-TYPE`. */
export function highlight(sql, label = "SQL") {
  return h(
    "pre",
    { class: "sql", tabindex: "0", "aria-label": label },
    h("code", {}, tokenize(sql).map((t) => (t.type === "ws" ? t.text : h("span", { class: `tok-${t.type}` }, t.text)))),
  );
}
