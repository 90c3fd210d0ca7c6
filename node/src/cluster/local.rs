//! `ferrite cluster local`: a cluster of N nodes on loopback, for trying clustering on one
//! machine. The first run picks free ports, makes a cluster CA and writes one config per node
//! under the base directory (`node-N/ferrite.toml`, data in `node-N/data`, log in
//! `node-N/ferrite.log`); later runs with the same directory start the same nodes again.
//! All nodes share one API key (`BASE/credentials`).

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::certs::{self, CA_CERT_FILE, CA_KEY_FILE, DEVICE_CA_CERT_FILE, DEVICE_CA_KEY_FILE};

/// Flags of `ferrite cluster local`.
#[derive(Debug, clap::Args)]
pub struct LocalArgs {
    /// How many nodes.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub nodes: u64,
    /// Directory for the cluster CA, the shared API key and each node's config, data and log.
    #[arg(long, value_name = "DIR")]
    pub base_dir: PathBuf,
    /// Log level of the nodes (their logs go to node-N/ferrite.log).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,
}

fn node_dir(base: &Path, id: u64) -> PathBuf {
    base.join(format!("node-{id}"))
}

fn config_path(base: &Path, id: u64) -> PathBuf {
    node_dir(base, id).join("ferrite.toml")
}

/// Node ids with a config under `base`.
fn existing_nodes(base: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("node-")?.parse().ok())
        .filter(|id| config_path(base, *id).exists())
        .collect();
    ids.sort_unstable();
    ids
}

/// Six free TCP ports and one free UDP port per node, all distinct.
fn free_ports(nodes: u64) -> anyhow::Result<Vec<([SocketAddr; 6], SocketAddr)>> {
    let mut held_tcp = Vec::new();
    let mut held_udp = Vec::new();
    let mut out = Vec::new();
    for _ in 0..nodes {
        let mut tcp = Vec::new();
        for _ in 0..6 {
            let l = TcpListener::bind("127.0.0.1:0").context("cannot find a free TCP port")?;
            tcp.push(l.local_addr()?);
            held_tcp.push(l);
        }
        let u = UdpSocket::bind("127.0.0.1:0").context("cannot find a free UDP port")?;
        let udp = u.local_addr()?;
        held_udp.push(u);
        out.push((<[SocketAddr; 6]>::try_from(tcp).map_err(|_| anyhow::anyhow!("six ports"))?, udp));
    }
    Ok(out)
}

fn toml_path(p: &Path) -> String {
    p.display().to_string().replace('\\', "\\\\").replace('"', "\\\"")
}

/// Writes the configs of a new `nodes`-node cluster under `base`.
fn write_configs(base: &Path, nodes: u64) -> anyhow::Result<()> {
    let ports = free_ports(nodes)?;
    let (ca_cert, ca_key) = (base.join(CA_CERT_FILE), base.join(CA_KEY_FILE));
    let (device_ca, device_key) = (base.join(DEVICE_CA_CERT_FILE), base.join(DEVICE_CA_KEY_FILE));
    for (i, (tcp, udp)) in ports.iter().enumerate() {
        let id = i as u64 + 1;
        let dir = node_dir(base, id);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let peers: Vec<String> = ports
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(j, (_, addr))| format!("\"{}@{addr}\"", j + 1))
            .collect();
        let text = format!(
            "# Written by `ferrite cluster local`; the next start with this base directory reuses it.\n\
             data_dir = \"{data}\"\n\
             mqtt_addr = \"{}\"\nws_addr = \"{}\"\nhttp_addr = \"{}\"\nmqtts_addr = \"{}\"\nwss_addr = \"{}\"\nhttps_addr = \"{}\"\n\n\
             [tls]\nca_cert = \"{device_ca}\"\nca_key = \"{device_key}\"\n\n\
             [cluster]\nnode_id = {id}\naddr = \"{udp}\"\npeers = [{peers}]\nca_cert = \"{ca}\"\nca_key = \"{key}\"\n",
            tcp[0],
            tcp[1],
            tcp[2],
            tcp[3],
            tcp[4],
            tcp[5],
            data = toml_path(&dir.join("data")),
            peers = peers.join(", "),
            ca = toml_path(&ca_cert),
            key = toml_path(&ca_key),
            device_ca = toml_path(&device_ca),
            device_key = toml_path(&device_key),
        );
        std::fs::write(config_path(base, id), text)?;
    }
    Ok(())
}

/// A started node: its process and the `listening` line it printed.
struct Started {
    id: u64,
    child: Child,
    exited: bool,
}

fn start_node(base: &Path, id: u64, log_level: &str) -> anyhow::Result<(Started, String)> {
    let exe = std::env::current_exe().context("cannot find the ferrite binary")?;
    let dir = node_dir(base, id);
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let shared = base.join("credentials");
    if !data.join("credentials").exists() {
        std::fs::copy(&shared, data.join("credentials")).context("cannot copy the shared API key")?;
    }
    let mut command = Command::new(exe);
    command.args(["serve", "--config"]).arg(config_path(base, id)).args(["--log-level", log_level]);
    let (child, line) = spawn_listening(&mut command, &format!("node {id}"), &dir.join("ferrite.log"))?;
    Ok((Started { id, child, exited: false }, line))
}

/// Starts `command` (a `ferrite serve`) with its log appended to `log`, and waits up to 60 s
/// for its `listening` line, which it returns. `what` names the node in errors; a node that
/// does not start in time is killed. Also used by the chaos harness.
pub fn spawn_listening(command: &mut Command, what: &str, log: &Path) -> anyhow::Result<(Child, String)> {
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("listening ") {
                let _ = tx.send(line);
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            return Ok((child, line));
        }
        if let Ok(Some(status)) = child.try_wait() {
            anyhow::bail!("{what} exited ({status}) before listening; see {}", log.display());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("{what} did not start within 60 s; see {}", log.display());
        }
    }
}

fn stop(nodes: &mut [Started]) {
    for n in nodes.iter_mut().filter(|n| !n.exited) {
        // SAFETY: kill(2) with a pid this process spawned and has not reaped.
        unsafe {
            libc::kill(n.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in nodes.iter_mut() {
        while !n.exited && Instant::now() < deadline {
            if let Ok(Some(_)) = n.child.try_wait() {
                n.exited = true;
            } else {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if !n.exited {
            let _ = n.child.kill();
            let _ = n.child.wait();
        }
    }
}

/// Runs `ferrite cluster local`.
pub fn run(args: LocalArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=99).contains(&args.nodes), "--nodes must be between 1 and 99");
    let base = &args.base_dir;
    std::fs::create_dir_all(base).with_context(|| format!("cannot create {}", base.display()))?;
    let base = &base.canonicalize()?;
    if !base.join(CA_CERT_FILE).exists() {
        certs::create_ca(base)?;
    }
    if !base.join(DEVICE_CA_CERT_FILE).exists() {
        certs::create_device_ca(base)?;
    }
    crate::credentials::Credentials::load_or_create(base)?;
    let existing = existing_nodes(base);
    if existing.is_empty() {
        write_configs(base, args.nodes)?;
    } else {
        let expected: Vec<u64> = (1..=args.nodes).collect();
        anyhow::ensure!(
            existing == expected,
            "{} holds a cluster of nodes {existing:?}; start it with --nodes {} or use another --base-dir",
            base.display(),
            existing.len()
        );
    }
    // Signals are taken over before any node starts: an interrupt that arrives while the
    // nodes start must still stop them, not leave them running without this process.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut interrupt, mut term) = {
        let _entered = runtime.enter();
        use tokio::signal::unix::{signal, SignalKind};
        (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?)
    };
    let mut nodes = Vec::new();
    for id in 1..=args.nodes {
        match start_node(base, id, &args.log_level) {
            Ok((node, listening)) => {
                println!("node {id} pid={} {listening}", node.child.id());
                nodes.push(node);
            }
            Err(e) => {
                stop(&mut nodes);
                return Err(e);
            }
        }
    }
    println!("API key for every node: AWS_SHARED_CREDENTIALS_FILE={}", base.join("credentials").display());
    println!("configs, data and logs under {}; press Ctrl-C to stop the cluster", base.display());
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    runtime.block_on(async {
        loop {
            tokio::select! {
                _ = interrupt.recv() => break,
                _ = term.recv() => break,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    for n in nodes.iter_mut().filter(|n| !n.exited) {
                        if let Ok(Some(status)) = n.child.try_wait() {
                            n.exited = true;
                            println!("node {} exited ({status})", n.id);
                            let _ = std::io::stdout().flush();
                        }
                    }
                }
            }
        }
        anyhow::Ok(())
    })?;
    stop(&mut nodes);
    Ok(())
}
