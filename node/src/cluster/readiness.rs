//! Whether this node can serve writes now: what `GET /ready` answers, for load balancers and
//! Kubernetes readiness probes (`/health` stays the liveness answer: the process is up).
//! A node is ready when, in every replicated group, it is a voter, knows a leader it can
//! reach, and has applied nearly everything committed. A node alone (no cluster) is ready
//! once it listens.

use ferrite_cluster::GroupStatus;

use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the node has been told to stop: it is draining and should get no new clients.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Marks the node as stopping (SIGTERM): from now on it is not ready.
pub fn mark_stopping() {
    STOPPING.store(true, Ordering::Relaxed);
}

/// True once [`mark_stopping`] was called.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::Relaxed)
}

/// Applied entries a member may trail the commit index by and still count as caught up.
pub const MAX_APPLY_LAG: u64 = 1000;

/// Every reason this node cannot serve writes now (empty: ready). `node` is this node's id;
/// `reachable` says whether a peer's link is up.
pub fn problems(node: u64, groups: &[GroupStatus], reachable: impl Fn(u64) -> bool) -> Vec<String> {
    let mut problems = Vec::new();
    for g in groups {
        if !g.voters.contains(&node) {
            problems.push(format!("{}: this node is not a member (not joined yet, or removed)", g.name));
        } else if g.leader == 0 {
            problems.push(format!("{}: no leader (an election is under way or no majority is reachable)", g.name));
        } else if g.leader != node && !reachable(g.leader) {
            problems.push(format!("{}: the leader, node {}, cannot be reached", g.name, g.leader));
        } else if g.commit.saturating_sub(g.applied) > MAX_APPLY_LAG {
            problems.push(format!("{}: {} committed entries not applied yet", g.name, g.commit - g.applied));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, leader: u64, voters: &[u64], commit: u64, applied: u64) -> GroupStatus {
        GroupStatus {
            group: 0,
            name: name.into(),
            leader,
            term: 1,
            role: "follower",
            commit,
            applied,
            voters: voters.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn a_caught_up_member_that_reaches_every_leader_is_ready() {
        let groups = [group("meta", 1, &[1, 2, 3], 10, 10), group("shard-0", 2, &[1, 2, 3], 50, 49)];
        assert!(problems(1, &groups, |id| id == 2).is_empty());
    }

    #[test]
    fn each_reason_is_named_with_its_group() {
        let groups = [
            group("meta", 0, &[1, 2, 3], 10, 10),
            group("shard-0", 3, &[1, 2, 3], 10, 10),
            group("shard-1", 1, &[1, 2, 3], 5000, 10),
            group("owners", 2, &[2, 3], 10, 10),
        ];
        let found = problems(1, &groups, |_| false);
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found[0].starts_with("meta: no leader"));
        assert!(found[1].contains("node 3, cannot be reached"));
        assert!(found[2].contains("4990 committed entries not applied"));
        assert!(found[3].contains("not a member"));
    }
}
