//! The test network: one network namespace per node (`fc1`, `fc2`, ...), each with a veth
//! pair to a bridge (`fcbr0`) in the harness's own namespace, where the clients run.
//!
//! Node i has address 10.77.0.(10+i); the bridge has 10.77.0.1. Links between nodes are
//! cut with blackhole routes inside the namespaces (both directions), which leaves every
//! node reachable from the clients: a partition separates nodes from each other, as in a
//! data centre whose inter-node links fail. `tc netem` and iptables are not needed.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::Context as _;

/// The bridge every node's veth is attached to.
const BRIDGE: &str = "fcbr0";

/// The namespace of node `i` (1-based).
pub fn namespace(i: usize) -> String {
    format!("fc{i}")
}

/// The address of node `i` (1-based).
pub fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 10 + i as u8)
}

/// Runs `ip` with `args`; the error carries its stderr.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("cannot run `ip` (iproute2 is needed)")?;
    anyhow::ensure!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Runs `ip` inside node `i`'s namespace.
fn ip_in(i: usize, args: &[&str]) -> anyhow::Result<()> {
    let ns = namespace(i);
    let mut all = vec!["netns", "exec", ns.as_str(), "ip"];
    all.extend_from_slice(args);
    ip(&all)
}

/// The namespaces, the bridge, and which node pairs are cut.
#[derive(Debug)]
pub struct Net {
    nodes: usize,
    cut: BTreeSet<(usize, usize)>,
}

impl Net {
    /// Creates the bridge and one namespace per node, removing leftovers of an earlier run.
    pub fn create(nodes: usize) -> anyhow::Result<Net> {
        anyhow::ensure!((1..=200).contains(&nodes), "between 1 and 200 nodes");
        Net::remove_leftovers(nodes.max(16));
        ip(&["link", "add", BRIDGE, "type", "bridge"])
            .context("creating the test bridge needs root (or CAP_NET_ADMIN) and ip netns support")?;
        ip(&["addr", "add", "10.77.0.1/24", "dev", BRIDGE])?;
        ip(&["link", "set", BRIDGE, "up"])?;
        for i in 1..=nodes {
            let ns = namespace(i);
            let veth = format!("fcv{i}");
            ip(&["netns", "add", &ns])?;
            ip(&["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            ip(&["link", "set", &veth, "master", BRIDGE])?;
            ip(&["link", "set", &veth, "up"])?;
            ip_in(i, &["addr", "add", &format!("{}/24", node_ip(i)), "dev", "eth0"])?;
            ip_in(i, &["link", "set", "eth0", "up"])?;
            ip_in(i, &["link", "set", "lo", "up"])?;
        }
        Ok(Net { nodes, cut: BTreeSet::new() })
    }

    fn remove_leftovers(upto: usize) {
        for i in 1..=upto {
            let _ = Command::new("ip").args(["netns", "del", &namespace(i)]).output();
            let _ = Command::new("ip").args(["link", "del", &format!("fcv{i}")]).output();
        }
        let _ = Command::new("ip").args(["link", "del", BRIDGE]).output();
    }

    /// How many nodes the network has.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The command prefix that runs a program inside node `i`'s namespace.
    pub fn exec_in(&self, i: usize) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), namespace(i)]
    }

    /// Cuts the link between nodes `a` and `b`, both directions.
    pub fn cut(&mut self, a: usize, b: usize) -> anyhow::Result<()> {
        let pair = (a.min(b), a.max(b));
        if a == b || self.cut.contains(&pair) {
            return Ok(());
        }
        ip_in(a, &["route", "add", "blackhole", &format!("{}/32", node_ip(b))])?;
        ip_in(b, &["route", "add", "blackhole", &format!("{}/32", node_ip(a))])?;
        self.cut.insert(pair);
        Ok(())
    }

    /// Cuts every link between nodes of different `sides`; nodes in no side keep all links.
    pub fn partition(&mut self, sides: &[Vec<usize>]) -> anyhow::Result<()> {
        for (n, side) in sides.iter().enumerate() {
            for other in &sides[n + 1..] {
                for &a in side {
                    for &b in other {
                        self.cut(a, b)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Restores every cut link.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        for (a, b) in std::mem::take(&mut self.cut) {
            ip_in(a, &["route", "del", "blackhole", &format!("{}/32", node_ip(b))])?;
            ip_in(b, &["route", "del", "blackhole", &format!("{}/32", node_ip(a))])?;
        }
        Ok(())
    }

    /// The links cut now, as (lower, higher) node pairs.
    pub fn cut_links(&self) -> Vec<(usize, usize)> {
        self.cut.iter().copied().collect()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        Net::remove_leftovers(self.nodes);
    }
}
