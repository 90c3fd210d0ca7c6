//! `ferrite-chaos run`: builds the test network, starts the cluster, drives the workloads
//! while the nemesis injects faults, heals everything, lets the cluster converge, takes
//! the final reads, and checks the history.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::rngs::StdRng;
use rand::SeedableRng as _;
use serde_json::json;

use super::nemesis::{self, FaultKind};
use super::net::Net;
use super::nodes::{http_addr, Cluster, State};
use super::workloads::{self, Ctx, Workload};
use crate::checkers::shadow::{ShadowConfig, DEFAULT_MAX_STATES};
use crate::{CheckConfig, History, HistoryWriter, Verdict};

/// Flags of `ferrite-chaos run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Nodes in the cluster, each a `ferrite` process in its own network namespace.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// How long faults and workloads run (`60s`, `5m`, or seconds), before healing and the
    /// final checks.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Faults to inject, comma-separated: partition, kill, pause, restart.
    #[arg(long, value_delimiter = ',', default_value = "partition,kill,pause,restart")]
    pub faults: Vec<FaultKind>,
    /// Workloads to run, comma-separated: qos1, shadow, retained, takeover, moving,
    /// offline, shared.
    #[arg(long, value_delimiter = ',', default_value = "qos1,shadow,retained,takeover,moving,offline,shared")]
    pub workloads: Vec<Workload>,
    /// Seed of the fault schedule and the workloads' choices [default: random, printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// The `ferrite` binary [default: $FERRITE_BIN, else `ferrite` beside this program].
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// Directory for the history, the report and the nodes' data and logs.
    #[arg(long, value_name = "DIR", default_value = "chaos-out")]
    pub out: PathBuf,
    /// Search budget of the shadow checker, in explored states per key.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_STATES)]
    pub max_states: u64,
}

/// Parses `60s`, `5m`, `1h` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration such as 60s or 5m"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?}: the unit must be s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

fn ferrite_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("FERRITE_BIN") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe()?.with_file_name("ferrite"),
        },
    };
    anyhow::ensure!(path.exists(), "no ferrite binary at {}: build it or pass --binary", path.display());
    Ok(path.canonicalize()?)
}

/// Waits until every node answers, sees every peer, agrees on every group's leader, and
/// has applied the same index in every group.
fn wait_converged(nodes: &[usize], within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        match converged(nodes) {
            Ok(()) => return Ok(()),
            Err(why) => last = why,
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    anyhow::bail!("the cluster did not converge within {}s: {last}", within.as_secs())
}

fn converged(nodes: &[usize]) -> Result<(), String> {
    let mut views = Vec::new();
    for &i in nodes {
        let (status, doc) = ferrite_http_client::api::request(&http_addr(i), "GET", "/cluster/status", b"", None)
            .map_err(|e| format!("node {i}: {e}"))?;
        if status != 200 {
            return Err(format!("node {i} answered {status}"));
        }
        if let Some(p) = doc["peers"].as_array().into_iter().flatten().find(|p| p["connected"] != json!(true)) {
            return Err(format!("node {i} is not connected to node {}", p["node"]));
        }
        let groups: Vec<(String, u64, u64)> = doc["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| {
                (
                    g["name"].as_str().unwrap_or("").to_string(),
                    g["leader"].as_u64().unwrap_or(0),
                    g["applied"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        if let Some((name, _, _)) = groups.iter().find(|(_, leader, _)| *leader == 0) {
            return Err(format!("node {i} sees no leader for {name}"));
        }
        views.push((i, groups));
    }
    let (first, reference) = &views[0];
    for (i, groups) in &views[1..] {
        if groups != reference {
            return Err(format!("nodes {first} and {i} differ: {reference:?} vs {groups:?}"));
        }
    }
    Ok(())
}

/// Runs the whole thing; the verdict decides the exit code.
pub fn run(args: RunArgs) -> anyhow::Result<Verdict> {
    // SAFETY: geteuid has no preconditions.
    anyhow::ensure!(
        unsafe { libc::geteuid() } == 0,
        "ferrite-chaos run needs root: it creates network namespaces, veth pairs and a bridge"
    );
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    let binary = ferrite_binary(args.binary.as_deref())?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    if args.out.exists() {
        std::fs::remove_dir_all(&args.out).with_context(|| format!("cannot clear {}", args.out.display()))?;
    }
    std::fs::create_dir_all(&args.out)?;
    let out = args.out.canonicalize()?;
    let names = |v: &[String]| v.join(",");
    eprintln!(
        "ferrite-chaos: seed {seed}, {} nodes, {}s, faults {}, workloads {}",
        args.nodes,
        args.duration.as_secs(),
        names(&args.faults.iter().map(|f| format!("{f:?}").to_lowercase()).collect::<Vec<_>>()),
        names(&args.workloads.iter().map(|w| format!("{w:?}").to_lowercase()).collect::<Vec<_>>()),
    );
    let mut net = Net::create(args.nodes)?;
    let mut cluster = Cluster::start(&binary, &out.join("cluster"), &net)?;
    let ids = cluster.ids();
    wait_converged(&ids, Duration::from_secs(60)).context("the cluster did not form")?;
    eprintln!("ferrite-chaos: cluster up (data and logs in {})", out.join("cluster").display());
    let history_path = out.join("history.jsonl");
    let history = Arc::new(HistoryWriter::create(&history_path)?);
    let ctx = Ctx::new(history.clone(), args.nodes, seed);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut tasks = Vec::new();
    for w in &args.workloads {
        match w {
            Workload::Qos1 => tasks.extend(runtime.block_on(workloads::qos1::start(ctx.clone()))),
            Workload::Shadow => tasks.extend(runtime.block_on(async { workloads::shadow::start(ctx.clone()) })),
            Workload::Retained => tasks.extend(runtime.block_on(async { workloads::retained::start(ctx.clone()) })),
            Workload::Takeover => {
                tasks.extend(runtime.block_on(async { workloads::takeover::start(ctx.clone(), cluster.key.clone()) }))
            }
            Workload::Moving => tasks.extend(runtime.block_on(workloads::delivery::start_moving(ctx.clone(), false))),
            Workload::Offline => tasks.extend(runtime.block_on(workloads::delivery::start_moving(ctx.clone(), true))),
            Workload::Shared => tasks.extend(runtime.block_on(workloads::delivery::start_shared(ctx.clone()))),
        }
    }
    let never = AtomicBool::new(false);
    let until = Instant::now() + args.duration;
    let faults = nemesis::run(&args.faults, &mut rng, &mut net, &mut cluster, &history, &never, until)?;
    ctx.stop.store(true, Ordering::Relaxed);
    net.heal()?;
    cluster.revive_all(&net)?;
    let _ = history.fault("heal-all", json!({}));
    eprintln!("ferrite-chaos: faulty phase over ({faults:?}); healed, waiting for the cluster to converge");
    let converged = wait_converged(&ids, Duration::from_secs(120));
    if let Err(e) = &converged {
        eprintln!("ferrite-chaos: {e:#}");
        let _ = history.fault("not-converged", json!({"error": format!("{e:#}")}));
    }
    ctx.settled.store(true, Ordering::Relaxed);
    runtime.block_on(async {
        let all = futures_join(tasks);
        if tokio::time::timeout(Duration::from_secs(180), all).await.is_err() {
            eprintln!("ferrite-chaos: some clients did not finish within 180 s after the run");
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    let down: Vec<usize> = ids.iter().copied().filter(|&i| cluster.state(i) != State::Up).collect();
    cluster.shutdown();
    drop(net);
    anyhow::ensure!(down.is_empty(), "nodes {down:?} were not running at the end");
    let ops = crate::history::load(&history_path)?;
    let history = History::from_ops(&ops).context("pairing the history")?;
    let config = CheckConfig { shadow: ShadowConfig { max_states: args.max_states } };
    let report = crate::check(&history, &config)?;
    print!("{}", crate::summary(&report));
    let report_path = out.join("report.json");
    std::fs::write(&report_path, serde_json::to_string_pretty(&report)? + "\n")?;
    eprintln!("ferrite-chaos: history {}, report {}", history_path.display(), report_path.display());
    if converged.is_err() {
        eprintln!("ferrite-chaos: the cluster did not converge after healing: that is a failure too");
        return Ok(Verdict::Invalid);
    }
    Ok(report.verdict)
}

/// Waits for every task.
async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}
