// Rules: the API's and the rule files' (listed by the node, read-only here: they change with
// their files), each with its counters from /metrics; a rule's SQL highlighted; enable and
// disable; create from SQL with a republish action, the checker's error shown in place.

import * as api from "../api.js";
import { parseMetrics } from "../metrics.js";
import { highlight } from "../sql.js";
import { h, replace, field, table, section, errorBox, note, jsonBlock, button, markError, clearMark } from "../ui.js";

/** Per rule: matched, passed, errors, and action failures (total and per action). */
export function ruleCounters(samples) {
  const out = {};
  const of = (rule) => (out[rule] ??= { matched: 0, passed: 0, errors: 0, actionFailed: 0, actions: {} });
  for (const s of samples) {
    const rule = s.labels.rule;
    if (rule === undefined) continue;
    if (s.name === "ferrite_rule_matched_total") of(rule).matched += s.value;
    else if (s.name === "ferrite_rule_passed_total") of(rule).passed += s.value;
    else if (s.name === "ferrite_rule_errors_total") of(rule).errors += s.value;
    else if (s.name === "ferrite_rule_action_failed_total") {
      of(rule).actionFailed += s.value;
      const action = s.labels.action || "?";
      of(rule).actions[action] = (of(rule).actions[action] || 0) + s.value;
    }
  }
  return out;
}

/** A rule listed by the node that comes from a rule file: the API's rules carry `createdAt`. */
export function isFileRule(listed) {
  return listed.createdAt === undefined || listed.createdAt === null;
}

export function render(main) {
  const list = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  const detail = h("div", { class: "rule-detail", "aria-live": "polite" });
  const listStatus = h("div");
  let selected = null;

  async function load() {
    let rules, counters = {};
    try {
      rules = await api.all((t) => api.listTopicRules({ maxResults: 1000, nextToken: t }), "rules");
    } catch (e) {
      replace(list, errorBox(e));
      return;
    }
    try {
      counters = ruleCounters(parseMetrics(await api.getText("/metrics")));
    } catch {
      /* counters are extra */
    }
    const rows = rules.map((r) => {
      const c = counters[r.ruleName] || { matched: 0, passed: 0, errors: 0, actionFailed: 0 };
      const file = isFileRule(r);
      const toggle = file ? h("span", { class: "muted" }, "read-only") :
        button(r.ruleDisabled ? "Enable" : "Disable", async () => {
          try {
            await (r.ruleDisabled ? api.enableTopicRule(r.ruleName) : api.disableTopicRule(r.ruleName));
            replace(listStatus, note(`${r.ruleDisabled ? "Enabled" : "Disabled"} ${r.ruleName}.`));
          } catch (e) {
            replace(listStatus, errorBox(e));
          }
          await load();
        }, { kind: "secondary small", "aria-label": `${r.ruleDisabled ? "Enable" : "Disable"} ${r.ruleName}` });
      return [
        button(r.ruleName, () => show(r), { kind: "link", "aria-label": `View rule ${r.ruleName}` }),
        h("span", { class: "mono" }, r.topicPattern || ""),
        file ? "rule file" : "API",
        h("span", { class: r.ruleDisabled ? "state off" : "state on", "data-rule-state": r.ruleDisabled ? "disabled" : "enabled" }, r.ruleDisabled ? "disabled" : "enabled"),
        h("span", { "data-metric": "matched" }, String(c.matched)),
        h("span", { "data-metric": "passed" }, String(c.passed)),
        h("span", { "data-metric": "errors" }, String(c.errors)),
        h("span", { "data-metric": "action-failures" }, String(c.actionFailed)),
        toggle,
      ];
    });
    replace(list, table(["Rule", "Topic", "Source", "State", "Matched", "Passed", "Errors", "Action failures", ""], rows, {
      caption: "Rules", empty: "No rules: create one below, or put .sql rule files in the node's rules directory.",
    }));
    const rowsEl = list.querySelectorAll("tbody tr");
    rules.forEach((r, i) => rowsEl[i]?.setAttribute("data-rule", r.ruleName));
    if (selected) {
      const again = rules.find((r) => r.ruleName === selected);
      if (again) show(again, counters);
    }
  }

  async function show(listed, counters) {
    selected = listed.ruleName;
    replace(detail, h("p", { class: "loading" }, "Loading…"));
    try {
      const [r, samples] = await Promise.all([api.getTopicRule(listed.ruleName), counters ? null : api.getText("/metrics").then(parseMetrics).catch(() => [])]);
      const c = (counters || ruleCounters(samples))[listed.ruleName];
      const rule = r.rule || {};
      const file = isFileRule(listed);
      const actions = Object.entries(c?.actions || {});
      const del = file ? null : button("Delete rule", async () => {
        const yes = button(`Yes, delete ${listed.ruleName}`, async () => {
          try {
            await api.deleteTopicRule(listed.ruleName);
            selected = null;
            replace(detail, note(`Deleted ${listed.ruleName}.`));
            await load();
          } catch (e) {
            detail.append(errorBox(e));
          }
        }, { kind: "danger" });
        del.replaceWith(h("span", { class: "confirm" }, `Delete ${listed.ruleName}? `, yes,
          button("Cancel", () => show(listed), { kind: "secondary" })));
        yes.focus();
      }, { kind: "danger secondary" });
      replace(
        detail,
        h("h3", {}, `Rule ${listed.ruleName}`),
        file ? h("p", { class: "muted" }, "Defined in a rule file: the node runs it as the file says; change the file to change it.") : null,
        rule.description ? h("p", {}, rule.description) : null,
        highlight(rule.sql || "", `SQL of ${listed.ruleName}`),
        h("p", { class: "mono small" }, r.ruleArn || ""),
        h("h4", {}, "Actions"),
        jsonBlock(rule.actions || [], `Actions of ${listed.ruleName}`),
        actions.length ? table(["Action", "Failures"], actions.map(([a, n]) => [a, String(n)]), { caption: "Action failures" }) : null,
        del,
      );
    } catch (e) {
      replace(detail, errorBox(e));
    }
  }

  // Create.
  const nameInput = h("input", { name: "ruleName", required: true, pattern: "[a-zA-Z0-9_]+", autocomplete: "off" });
  const sqlInput = h("textarea", { name: "sql", rows: "5", spellcheck: "false", class: "code", required: true });
  sqlInput.value = "SELECT temperature, topic(2) AS device FROM 'sensors/+/data' WHERE temperature > 30";
  const sqlMarker = h("pre", { class: "marker", hidden: true, "aria-live": "assertive" });
  const topicInput = h("input", { name: "republishTopic", required: true, autocomplete: "off", class: "mono", value: "alerts/hot" });
  const descInput = h("input", { name: "description", autocomplete: "off" });
  const createStatus = h("div");
  sqlInput.addEventListener("input", () => clearMark(sqlInput, sqlMarker));
  const createForm = h("form", { class: "stack", onsubmit: async (ev) => {
    ev.preventDefault();
    clearMark(sqlInput, sqlMarker);
    replace(createStatus);
    const name = nameInput.value.trim();
    const payload = {
      sql: sqlInput.value,
      actions: [{ republish: { roleArn: "arn:aws:iam::000000000000:role/ferrite", topic: topicInput.value.trim(), qos: 0 } }],
      ruleDisabled: false,
      awsIotSqlVersion: "2016-03-23",
    };
    if (descInput.value.trim()) payload.description = descInput.value.trim();
    try {
      await api.createTopicRule(name, payload);
      replace(createStatus, note(`Created rule ${name}: it runs from now on.`));
      selected = name;
      await load();
    } catch (e) {
      if (e.type === "SqlParseException" || /Line \d+:\d+/.test(e.message)) {
        markError(sqlInput, sqlMarker, e.message);
        replace(createStatus, errorBox(e, "The node refused the SQL"));
      } else {
        replace(createStatus, errorBox(e, `Creating rule ${name}`));
      }
    }
  } },
  field("Rule name", nameInput, "Letters, digits and '_'."),
  field("SQL", sqlInput, "AWS IoT SQL (version 2016-03-23)."),
  sqlMarker,
  field("Republish to topic", topicInput, "What the rule selects is published on this topic (substitution templates such as ${topic(2)} work)."),
  field("Description", descInput),
  h("div", { class: "actions" }, h("button", { type: "submit" }, "Create rule")),
  createStatus);

  replace(
    main,
    h("h1", { tabindex: "-1" }, "Rules"),
    section("All rules", h("div", { class: "toolbar" }, button("Refresh", load, { kind: "secondary small" })), listStatus, list, detail),
    section("Create a rule", createForm),
  );
  load();
}
