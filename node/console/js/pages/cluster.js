// Cluster: this node's readiness (/ready), its peers, and every Raft group with its leader,
// term, indexes and each member's lag (/cluster/status). Refreshed every 5 seconds.

import * as api from "../api.js";
import { h, replace, table, section, errorBox, button } from "../ui.js";

export function render(main) {
  const ready = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  const members = h("div");
  const groups = h("div");
  const updated = h("p", { class: "hint" });

  async function load() {
    try {
      const [r, status] = await Promise.all([api.getJson("/ready"), api.getJson("/cluster/status")]);
      const isReady = r.status === "ready";
      replace(ready,
        h("p", { class: isReady ? "state on" : "state off", "data-ready": String(isReady) }, isReady ? "Ready: this node serves writes." : "Not ready"),
        r.problems?.length ? h("ul", {}, r.problems.map((p) => h("li", {}, p))) : null);
      const voters = new Set((status.groups || []).flatMap((g) => g.voters || []));
      voters.add(status.node);
      const peers = new Map((status.peers || []).map((p) => [p.node, p]));
      const rows = [...voters].sort((a, b) => a - b).map((id) => {
        const p = peers.get(id);
        const self = id === status.node;
        const leads = (status.groups || []).filter((g) => g.leader === id).map((g) => g.name);
        return [
          String(id) + (self ? " (this node)" : ""),
          self ? status.address || "(runs alone)" : p?.address || "",
          self ? "—" : p ? (p.connected ? "connected" : "not connected") : "unknown",
          leads.join(", ") || "—",
          self || !p ? "" : String(p.outbox ?? ""),
        ];
      });
      replace(members, table(["Node", "Address", "Link", "Leads", "Outbox"], rows, { caption: "Members" }));
      const groupRows = (status.groups || []).map((g) => [
        g.name,
        g.leader ? String(g.leader) : "none",
        String(g.term),
        g.role || "",
        String(g.commit),
        String(g.applied),
        String(Math.max(0, (g.commit || 0) - (g.applied || 0))),
        (g.matched || []).length ? g.matched.map((m) => `node ${m.node}: ${m.lag}`).join(", ") : "(known on the leader)",
      ]);
      replace(groups, table(["Group", "Leader", "Term", "Role here", "Commit", "Applied", "Apply lag", "Member lag"], groupRows, { caption: "Raft groups" }));
      groups.querySelectorAll("tbody tr").forEach((tr, i) => tr.setAttribute("data-group", status.groups[i].name));
      updated.textContent = `Node ${status.node}; updated ${new Date().toLocaleTimeString()}.`;
    } catch (e) {
      replace(ready, errorBox(e));
    }
  }

  replace(
    main,
    h("h1", { tabindex: "-1" }, "Cluster"),
    section("Readiness", ready, updated, button("Refresh", load, { kind: "secondary small" })),
    section("Members", members),
    section("Groups", groups),
  );
  load();
  const timer = setInterval(load, 5000);
  return () => clearInterval(timer);
}
