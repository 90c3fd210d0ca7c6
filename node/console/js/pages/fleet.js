// Fleet: counts (connected now, things by type and by group), a chart of connections and
// messages per second over the last hour, search with fleet indexing's query language, and
// each job's progress per execution status.

import * as api from "../api.js";
import { parseMetrics, metricValue } from "../metrics.js";
import { lineChart, rates } from "../chart.js";
import { h, replace, field, table, section, errorBox, button, positionOf } from "../ui.js";

const COUNT_CAP = 10000;

/** How many items a nextToken list has, reading at most COUNT_CAP: `{n, capped}`. */
async function count(list, fieldName) {
  let n = 0;
  let token;
  do {
    const page = await list(token);
    n += (page[fieldName] || []).length;
    token = page.nextToken;
  } while (token && n < COUNT_CAP);
  return { n, capped: !!token };
}

const shown = ({ n, capped }) => (capped ? `${n.toLocaleString()}+` : n.toLocaleString());

const JOB_STATES = [
  ["numberOfQueuedThings", "Queued", "queued"],
  ["numberOfInProgressThings", "In progress", "in-progress"],
  ["numberOfSucceededThings", "Succeeded", "succeeded"],
  ["numberOfFailedThings", "Failed", "failed"],
  ["numberOfRejectedThings", "Rejected", "rejected"],
  ["numberOfTimedOutThings", "Timed out", "timed-out"],
  ["numberOfCanceledThings", "Canceled", "canceled"],
  ["numberOfRemovedThings", "Removed", "removed"],
];

function progressBar(details) {
  const total = JOB_STATES.reduce((n, [k]) => n + (details[k] || 0), 0);
  const bar = h("div", { class: "progress", role: "img", "aria-label": JOB_STATES.map(([k, label]) => `${label} ${details[k] || 0}`).join(", ") });
  if (!total) return bar;
  for (const [k, , cls] of JOB_STATES) {
    const n = details[k] || 0;
    if (n) bar.append(h("span", { class: `seg ${cls}`, style: `width:${(100 * n) / total}%` }));
  }
  return bar;
}

export function render(main) {
  let timer = null;
  const counts = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  const charts = h("div", { class: "charts" }, h("p", { class: "loading" }, "Loading…"));
  const results = h("div", { "aria-live": "polite" });
  const jobs = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  const indexNote = h("div");

  async function loadCounts() {
    try {
      const samples = parseMetrics(await api.getText("/metrics"));
      const [things, types, groups] = await Promise.all([
        count((t) => api.listThings({ maxResults: 250, nextToken: t }), "things"),
        api.all((t) => api.listThingTypes({ maxResults: 250, nextToken: t }), "thingTypes", 200),
        api.all((t) => api.listThingGroups({ maxResults: 250, nextToken: t }), "thingGroups", 200),
      ]);
      const byType = await Promise.all(types.map(async (t) => [t.thingTypeName, await count((tok) => api.listThings({ thingTypeName: t.thingTypeName, maxResults: 250, nextToken: tok }), "things")]));
      const byGroup = await Promise.all(groups.map(async (g) => [g.groupName, await count((tok) => api.listThingsInThingGroup(g.groupName, { maxResults: 250, nextToken: tok }), "things")]));
      const typed = byType.reduce((n, [, c]) => n + c.n, 0);
      replace(
        counts,
        h("div", { class: "tiles" },
          h("div", { class: "tile" }, h("span", { class: "value", "data-count": "connected" }, String(metricValue(samples, "ferrite_connections_open"))), h("span", { class: "label" }, "connected now")),
          h("div", { class: "tile" }, h("span", { class: "value", "data-count": "things" }, shown(things)), h("span", { class: "label" }, "things")),
          h("div", { class: "tile" }, h("span", { class: "value" }, String(types.length)), h("span", { class: "label" }, "thing types")),
          h("div", { class: "tile" }, h("span", { class: "value" }, String(groups.length)), h("span", { class: "label" }, "thing groups"))),
        h("div", { class: "columns" },
          table(["Type", "Things"], [...byType.map(([n, c]) => [n, shown(c)]), ...(things.capped ? [] : [["(no type)", String(Math.max(0, things.n - typed))]])], { caption: "Things by type", empty: "No thing types." }),
          table(["Group", "Things"], byGroup.map(([n, c]) => [n, shown(c)]), { caption: "Things by group (direct members)", empty: "No thing groups." })),
      );
    } catch (e) {
      replace(counts, errorBox(e));
    }
  }

  async function loadCharts() {
    try {
      const history = await api.statsHistory();
      const samples = history.samples || [];
      if (!samples.length) {
        replace(charts, h("p", {}, "No samples yet: the node takes one every " + (history.intervalSeconds || 10) + " seconds."));
        return;
      }
      // The last hour, or less while the node is younger (five minutes at least).
      const to = samples[samples.length - 1].t;
      const from = Math.min(Math.max(samples[0].t, to - 60 * 60 * 1000), to - 5 * 60 * 1000);
      const at = new Date(to).toLocaleTimeString();
      const received = rates(samples, "received");
      const sent = rates(samples, "sent");
      const last = (xs) => (xs.length ? xs[xs.length - 1][1] : 0);
      replace(
        charts,
        h("figure", { class: "chart-box" },
          lineChart({ title: "Open MQTT connections, last hour", series: [{ name: "connections", cls: "connections", points: samples.map((s) => [s.t, s.connections]) }], from, to }),
          h("figcaption", {}, h("span", { class: "key connections" }), `Connections: ${samples[samples.length - 1].connections} at ${at}`)),
        h("figure", { class: "chart-box" },
          lineChart({ title: "Messages per second, last hour", series: [{ name: "received", cls: "received", points: received }, { name: "sent", cls: "sent", points: sent }], from, to }),
          h("figcaption", {},
            h("span", { class: "key received" }), `Received: ${last(received).toFixed(1)}/s`,
            h("span", { class: "key sent" }), `Sent: ${last(sent).toFixed(1)}/s (PUBLISH packets per second, averaged over ${history.intervalSeconds || 10} s, at ${at})`)),
      );
    } catch (e) {
      replace(charts, errorBox(e, "Stats history"));
    }
  }

  // Search.
  const queryInput = h("input", { type: "search", name: "query", autocomplete: "off", class: "mono", value: "*", spellcheck: "false" });
  const stack = [null];
  let nextToken = null;
  const prev = button("Previous", async () => { stack.pop(); await search(); }, { kind: "secondary" });
  const next = button("Next", async () => { stack.push(nextToken); await search(); }, { kind: "secondary" });
  const pager = h("div", { class: "pager" }, prev, next);

  async function search() {
    replace(results, h("p", { class: "loading" }, "Searching…"));
    queryInput.removeAttribute("aria-invalid");
    try {
      const r = await api.searchIndex({ queryString: queryInput.value, maxResults: 25, nextToken: stack[stack.length - 1] || undefined });
      nextToken = r.nextToken || null;
      const rows = (r.things || []).map((t) => {
        let reported = "";
        try {
          reported = t.shadow ? JSON.stringify(JSON.parse(t.shadow).reported ?? {}) : "";
        } catch {
          reported = t.shadow;
        }
        return [
          h("a", { href: `#/things/${encodeURIComponent(t.thingName)}` }, t.thingName),
          t.thingTypeName || "",
          t.connectivity ? (t.connectivity.connected ? "connected" : "disconnected") : "",
          Object.entries(t.attributes || {}).map(([k, v]) => `${k}=${v}`).join(", "),
          h("span", { class: "mono" }, reported),
        ];
      });
      replace(results, table(["Thing", "Type", "Connectivity", "Attributes", "Reported"], rows, { caption: `Things matching ${queryInput.value}`, empty: "No thing matches." }));
    } catch (e) {
      nextToken = null;
      replace(results, errorBox(e, e.type === "InvalidQueryException" ? "Invalid query" : "Search"));
      const pos = positionOf(e.message);
      if (pos) {
        queryInput.setAttribute("aria-invalid", "true");
        const at = Math.min(pos.column - 1, queryInput.value.length);
        queryInput.focus();
        queryInput.setSelectionRange(at, Math.min(at + 1, queryInput.value.length));
      }
      if (e.type === "IndexNotReadyException" || /indexing is (off|disabled)/i.test(e.message)) loadIndexNote();
    }
    prev.disabled = stack.length <= 1;
    next.disabled = !nextToken;
  }

  async function loadIndexNote() {
    try {
      const cfg = (await api.getIndexingConfiguration()).thingIndexingConfiguration || {};
      if ((cfg.thingIndexingMode || "OFF") !== "OFF") {
        replace(indexNote, h("p", { class: "hint" }, `Indexing: ${cfg.thingIndexingMode}, connectivity ${cfg.thingConnectivityIndexingMode || "OFF"}.`));
        return true;
      }
      replace(indexNote,
        h("p", {}, "Fleet indexing is off on this node, so there is nothing to search."),
        button("Turn on fleet indexing (registry, shadows, connectivity)", async () => {
          try {
            await api.updateIndexingConfiguration({ thingIndexingConfiguration: { thingIndexingMode: "REGISTRY_AND_SHADOW", thingConnectivityIndexingMode: "STATUS" } });
            await loadIndexNote();
            await search();
          } catch (e) {
            indexNote.append(errorBox(e));
          }
        }, { kind: "secondary" }));
      return false;
    } catch (e) {
      replace(indexNote, errorBox(e));
      return false;
    }
  }

  async function loadJobs() {
    try {
      const list = await api.all((t) => api.listJobs({ maxResults: 100, nextToken: t }), "jobs", 50);
      const described = await Promise.all(list.map((j) => api.describeJob(j.jobId).then((d) => d.job).catch(() => j)));
      const rows = described.map((j) => {
        const d = j.jobProcessDetails || {};
        return [h("span", { class: "mono" }, j.jobId), j.status, ...JOB_STATES.map(([k]) => h("span", { "data-state": k }, String(d[k] ?? 0))), progressBar(d)];
      });
      replace(jobs, table(["Job", "Status", ...JOB_STATES.map(([, l]) => l), "Progress"], rows, { label: "Jobs", empty: "No jobs." }));
      const rowEls = jobs.querySelectorAll("tbody tr");
      described.forEach((j, i) => rowEls[i]?.setAttribute("data-job", j.jobId));
    } catch (e) {
      replace(jobs, errorBox(e));
    }
  }

  const searchForm = h("form", { class: "inline-form", role: "search", onsubmit: async (ev) => {
    ev.preventDefault();
    stack.length = 1;
    await search();
  } }, field("Query", queryInput, "Fleet indexing's query language: thingName:lamp-*, attributes.room:kitchen, connectivity.connected:true, shadow.reported.temp>20 AND NOT thingTypeName:test"), h("button", { type: "submit" }, "Search"));

  replace(
    main,
    h("h1", { tabindex: "-1" }, "Fleet"),
    section("Counts", counts),
    section("Activity", charts),
    section("Search", indexNote, searchForm, results, pager),
    section("Jobs", jobs),
  );
  prev.disabled = next.disabled = true;
  loadCounts();
  loadCharts();
  loadJobs();
  loadIndexNote().then((on) => on && search());
  timer = setInterval(loadCharts, 10000);
  return () => clearInterval(timer);
}
