//! The nemesis: faults on a schedule drawn from the seed, one at a time, each repaired
//! before the next. Every fault and repair is a history record.
//!
//! Kinds: `partition` (a random majority/minority split, the leader of a group isolated,
//! or a bridge: two halves that both see one node), `kill` (`kill -9`, restarted at the
//! repair), `pause` (SIGSTOP, SIGCONT at the repair) and `restart` (a graceful stop and
//! start). The schedule depends on the seed only; what a fault hits (a leader) also depends
//! on the cluster's state when it is drawn.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::Rng as _;
use serde_json::{json, Value};

use super::net::Net;
use super::nodes::{http_addr, Cluster, State};
use crate::HistoryWriter;

/// A kind of fault the run may inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// Cut links between groups of nodes.
    Partition,
    /// `kill -9` a node, restart it at the repair.
    Kill,
    /// SIGSTOP a node, SIGCONT at the repair.
    Pause,
    /// Stop a node gracefully and start it again.
    Restart,
}

impl std::str::FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "partition" => Ok(FaultKind::Partition),
            "kill" => Ok(FaultKind::Kill),
            "pause" => Ok(FaultKind::Pause),
            "restart" => Ok(FaultKind::Restart),
            other => Err(format!("unknown fault {other:?}: expected partition, kill, pause or restart")),
        }
    }
}

/// The leaders of the cluster's groups as some reachable node sees them: group name -> node.
pub fn leaders(nodes: &[usize]) -> BTreeMap<String, u64> {
    for &i in nodes {
        let Ok((200, doc)) = ferrite_http_client::api::request(&http_addr(i), "GET", "/cluster/status", b"", None)
        else {
            continue;
        };
        let groups = doc["groups"].as_array().cloned().unwrap_or_default();
        return groups
            .iter()
            .filter_map(|g| Some((g["name"].as_str()?.to_string(), g["leader"].as_u64().filter(|l| *l > 0)?)))
            .collect();
    }
    BTreeMap::new()
}

/// What a fault did, to repair it.
enum Applied {
    Partition,
    Killed(usize),
    Paused(usize),
    Nothing,
}

/// Draws and injects faults until `stop`; returns how many of each it injected.
pub fn run(
    kinds: &[FaultKind],
    rng: &mut StdRng,
    net: &mut Net,
    cluster: &mut Cluster,
    history: &Arc<HistoryWriter>,
    stop: &AtomicBool,
    until: Instant,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    let sleep_until = |d: Duration| {
        let end = (Instant::now() + d).min(until);
        while Instant::now() < end && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    while Instant::now() < until && !stop.load(Ordering::Relaxed) && !kinds.is_empty() {
        sleep_until(Duration::from_millis(rng.gen_range(2000..5000)));
        if Instant::now() >= until {
            break;
        }
        let kind = *kinds.choose(rng).expect("kinds is not empty");
        let up: Vec<usize> = cluster.ids().into_iter().filter(|&i| cluster.state(i) == State::Up).collect();
        let (applied, name, detail) = inject(kind, rng, net, cluster, &up)?;
        let _ = history.fault(&name, detail.clone());
        eprintln!("ferrite-chaos: [{:>5.1}s] {name} {detail}", history.elapsed_ns() as f64 / 1e9);
        *counts.entry(name.split(' ').next().unwrap_or("fault").to_string()).or_insert(0) += 1;
        sleep_until(Duration::from_millis(rng.gen_range(3000..8000)));
        repair(applied, net, cluster, history)?;
    }
    Ok(counts)
}

fn inject(
    kind: FaultKind,
    rng: &mut StdRng,
    net: &mut Net,
    cluster: &mut Cluster,
    up: &[usize],
) -> anyhow::Result<(Applied, String, Value)> {
    let n = cluster.len();
    let Some(&victim) = up.choose(rng) else { return Ok((Applied::Nothing, "none".into(), json!({}))) };
    Ok(match kind {
        FaultKind::Partition => {
            let mut all: Vec<usize> = (1..=n).collect();
            all.shuffle(rng);
            let variant = rng.gen_range(0..3);
            let (sides, what) = match variant {
                // Isolate the leader of a random group.
                0 => {
                    let leaders = leaders(up);
                    let groups: Vec<(&String, &u64)> = leaders.iter().collect();
                    match groups.choose(rng) {
                        Some((group, &leader)) => {
                            let leader = leader as usize;
                            let rest: Vec<usize> = (1..=n).filter(|&i| i != leader).collect();
                            (vec![vec![leader], rest], format!("isolate leader of {group}"))
                        }
                        None => (vec![vec![victim], (1..=n).filter(|&i| i != victim).collect()], "isolate".into()),
                    }
                }
                // Two halves that both still reach one node.
                1 if n >= 3 => {
                    let bridge = all[0];
                    let half = (n - 1) / 2;
                    let (a, b) = all[1..].split_at(half);
                    let mut a = a.to_vec();
                    let mut b = b.to_vec();
                    a.sort_unstable();
                    b.sort_unstable();
                    (vec![a, b], format!("bridge through node {bridge}"))
                }
                // A random majority and minority.
                _ => {
                    let minority = if n <= 2 { 1 } else { rng.gen_range(1..=(n - 1) / 2) };
                    let (small, big) = all.split_at(minority.min(n));
                    let mut small = small.to_vec();
                    let mut big = big.to_vec();
                    small.sort_unstable();
                    big.sort_unstable();
                    (vec![small, big], "majority/minority".into())
                }
            };
            net.partition(&sides)?;
            (Applied::Partition, "partition".into(), json!({"kind": what, "sides": sides, "cut": net.cut_links()}))
        }
        FaultKind::Kill => {
            cluster.kill(victim);
            (Applied::Killed(victim), "kill".into(), json!({"node": victim}))
        }
        FaultKind::Pause => {
            cluster.pause(victim);
            (Applied::Paused(victim), "pause".into(), json!({"node": victim}))
        }
        FaultKind::Restart => {
            cluster.stop(victim);
            cluster.launch(victim, net)?;
            (Applied::Nothing, "restart".into(), json!({"node": victim}))
        }
    })
}

fn repair(applied: Applied, net: &mut Net, cluster: &mut Cluster, history: &HistoryWriter) -> anyhow::Result<()> {
    match applied {
        Applied::Partition => {
            net.heal()?;
            let _ = history.fault("heal", json!({}));
        }
        Applied::Killed(i) => {
            cluster.launch(i, net)?;
            let _ = history.fault("start", json!({"node": i}));
        }
        Applied::Paused(i) => {
            cluster.resume(i);
            let _ = history.fault("resume", json!({"node": i}));
        }
        Applied::Nothing => {}
    }
    Ok(())
}
