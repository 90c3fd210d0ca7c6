//! The cluster's Prometheus metrics, read at scrape time from what every group and the
//! transport report (`GroupStatus`, the peers' links and outboxes): per group its leader,
//! term, commit and applied indexes and lags, proposals retried and failed; per peer
//! reachability and forwarded publishes awaiting acknowledgement; and readiness. On a node
//! alone only readiness and the groups' own figures appear.

use ferrite_cluster::{GroupStatus, FAILURE_KINDS};

use crate::metrics::write_family as family;

/// The group families for `groups`.
fn render_groups(out: &mut String, groups: &[GroupStatus]) {
    let per_group = |f: fn(&GroupStatus) -> u64| -> Vec<(String, u64)> {
        groups.iter().map(|g| (format!("group=\"{}\"", g.name), f(g))).collect()
    };
    family(
        out,
        "cluster_group_leader",
        "gauge",
        "The group's leader as this node knows it (0: none).",
        per_group(|g| g.leader),
    );
    family(
        out,
        "cluster_group_is_leader",
        "gauge",
        "1 when this node leads the group.",
        per_group(|g| u64::from(g.role == "leader")),
    );
    family(out, "cluster_group_term", "gauge", "The group's Raft term.", per_group(|g| g.term));
    family(
        out,
        "cluster_group_commit_index",
        "gauge",
        "The highest log index known committed.",
        per_group(|g| g.commit),
    );
    family(
        out,
        "cluster_group_applied_index",
        "gauge",
        "The highest log index applied here.",
        per_group(|g| g.applied),
    );
    family(
        out,
        "cluster_group_apply_lag",
        "gauge",
        "Committed entries not yet applied here.",
        per_group(|g| g.commit.saturating_sub(g.applied)),
    );
    let member_lag = groups.iter().flat_map(|g| {
        g.matched.iter().map(move |(member, matched)| {
            (format!("group=\"{}\",member=\"{member}\"", g.name), g.commit.saturating_sub(*matched))
        })
    });
    family(
        out,
        "cluster_group_member_lag",
        "gauge",
        "On the leader: entries each member lacks of the commit index.",
        member_lag,
    );
    family(
        out,
        "cluster_proposals_retried_total",
        "counter",
        "Commands this node proposed again after a leader change or a late answer.",
        per_group(|g| g.proposals_retried),
    );
    let failed = groups.iter().flat_map(|g| {
        FAILURE_KINDS
            .iter()
            .zip(g.proposals_failed)
            .map(move |(kind, n)| (format!("group=\"{}\",reason=\"{kind}\"", g.name), n))
    });
    family(out, "cluster_proposals_failed_total", "counter", "Proposals answered with an error, by reason.", failed);
}

/// A peer as the metrics show it: id, link up, forwarded publishes unacknowledged and
/// their bytes.
pub type PeerFigures = (u64, bool, usize, usize);

/// Every cluster metric of this node: `ready` as `/ready` answers, its groups, its peers
/// (none on a node alone) and the rows of the owners table (none on a node alone).
pub fn render(ready: bool, groups: &[GroupStatus], peers: &[PeerFigures], client_ids: Option<usize>) -> String {
    let mut out = String::new();
    family(&mut out, "cluster_ready", "gauge", "1 when GET /ready answers 200.", [(String::new(), u64::from(ready))]);
    if let Some(n) = client_ids {
        family(
            &mut out,
            "cluster_client_ids",
            "gauge",
            "Client ids with an owner in the owners group (released once their session is gone).",
            [(String::new(), n as u64)],
        );
    }
    render_groups(&mut out, groups);
    if !peers.is_empty() {
        family(
            &mut out,
            "cluster_peer_connected",
            "gauge",
            "1 while the QUIC link to the peer is up.",
            peers.iter().map(|(id, up, _, _)| (format!("peer=\"{id}\""), u64::from(*up))),
        );
        family(
            &mut out,
            "cluster_outbox_messages",
            "gauge",
            "Forwarded QoS 1/2 publishes the peer has not acknowledged.",
            peers.iter().map(|(id, _, n, _)| (format!("peer=\"{id}\""), *n as u64)),
        );
        family(
            &mut out,
            "cluster_outbox_bytes",
            "gauge",
            "Bytes of the forwarded publishes the peer has not acknowledged (held in memory and on disk).",
            peers.iter().map(|(id, _, _, b)| (format!("peer=\"{id}\""), *b as u64)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_gets_its_lines_with_labels() {
        let g = GroupStatus {
            name: "meta".into(),
            leader: 2,
            term: 7,
            role: "leader",
            commit: 100,
            applied: 98,
            voters: vec![1, 2, 3],
            matched: vec![(1, 90), (3, 100)],
            proposals_retried: 4,
            proposals_failed: [1, 0, 0, 0, 0],
            ..Default::default()
        };
        let mut out = String::new();
        render_groups(&mut out, &[g]);
        for line in [
            "ferrite_cluster_group_leader{group=\"meta\"} 2",
            "ferrite_cluster_group_is_leader{group=\"meta\"} 1",
            "ferrite_cluster_group_apply_lag{group=\"meta\"} 2",
            "ferrite_cluster_group_member_lag{group=\"meta\",member=\"1\"} 10",
            "ferrite_cluster_proposals_retried_total{group=\"meta\"} 4",
            "ferrite_cluster_proposals_failed_total{group=\"meta\",reason=\"timeout\"} 1",
            "# TYPE ferrite_cluster_proposals_failed_total counter",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing in\n{out}");
        }
    }
}
