//! The `ferrite` processes under test: one per namespace, each configured the way
//! docs/operations.md tells users to (a cluster CA from `ferrite cluster init`, one shared
//! API key, every other node as a seed peer), and the faults that act on processes:
//! `kill -9`, graceful restart, SIGSTOP and SIGCONT.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::net::{node_ip, Net};

/// Ports every node listens on, at its own address.
pub const MQTT_PORT: u16 = 1883;
/// The HTTP API port.
pub const HTTP_PORT: u16 = 8080;
/// The cluster (QUIC) port.
const CLUSTER_PORT: u16 = 7000;

/// How a node is doing, as the nemesis left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Running.
    Up,
    /// Killed or stopped, not restarted yet.
    Down,
    /// Stopped with SIGSTOP.
    Paused,
}

/// One node: its files and its process.
#[derive(Debug)]
struct Node {
    id: usize,
    dir: PathBuf,
    child: Option<Child>,
    state: State,
}

/// The cluster under test.
#[derive(Debug)]
pub struct Cluster {
    binary: PathBuf,
    base: PathBuf,
    nodes: Vec<Node>,
    /// The API key every node shares: (access key id, secret).
    pub key: (String, String),
}

/// The MQTT address of node `i`.
pub fn mqtt_addr(i: usize) -> SocketAddr {
    SocketAddr::new(node_ip(i).into(), MQTT_PORT)
}

/// The HTTP address of node `i`.
pub fn http_addr(i: usize) -> SocketAddr {
    SocketAddr::new(node_ip(i).into(), HTTP_PORT)
}

fn config_text(i: usize, nodes: usize, dir: &Path, base: &Path) -> String {
    let ip = node_ip(i);
    let peers: Vec<String> =
        (1..=nodes).filter(|&j| j != i).map(|j| format!("\"{j}@{}:{CLUSTER_PORT}\"", node_ip(j))).collect();
    format!(
        "# Written by ferrite-chaos.\n\
         data_dir = \"{data}\"\n\
         mqtt_addr = \"{ip}:{MQTT_PORT}\"\nws_addr = \"{ip}:8083\"\nhttp_addr = \"{ip}:{HTTP_PORT}\"\n\
         mqtts_addr = \"{ip}:8883\"\nwss_addr = \"{ip}:8443\"\nhttps_addr = \"{ip}:8444\"\n\n\
         [auth]\n# The test network is private: clients connect without credentials.\nallow_anonymous = true\n\n\
         [limits]\n# Workloads update a few shadows as fast as they are answered.\nshadow_requests_per_second_per_thing = 0\n\n\
         [cluster]\nnode_id = {i}\naddr = \"{ip}:{CLUSTER_PORT}\"\npeers = [{peers}]\nca_cert = \"{ca}\"\nca_key = \"{key}\"\n",
        data = dir.join("data").display(),
        peers = peers.join(", "),
        ca = base.join("cluster-ca.pem").display(),
        key = base.join("cluster-ca.key").display(),
    )
}

impl Cluster {
    /// Writes the CA, the shared key and one config per node under `base`, and starts every
    /// node inside its namespace.
    pub fn start(binary: &Path, base: &Path, net: &Net) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(base)?;
        let out = Command::new(binary)
            .args(["cluster", "init", "--dir"])
            .arg(base)
            .output()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        anyhow::ensure!(out.status.success(), "ferrite cluster init: {}", String::from_utf8_lossy(&out.stderr));
        // The first key of a credentials file is its `default` profile; `keys create` writes
        // both, the way an operator gets a key for the nodes and one for a tool.
        let out =
            Command::new(binary).args(["keys", "create", "--profile", "chaos", "--data-dir"]).arg(base).output()?;
        anyhow::ensure!(out.status.success(), "ferrite keys create: {}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(base.join("credentials"))?;
        let key = ferrite_aws::credentials::profile_key(&text, "default").context("the shared key")?;
        let mut nodes = Vec::new();
        for i in 1..=net.nodes() {
            let dir = base.join(format!("node-{i}"));
            std::fs::create_dir_all(dir.join("data"))?;
            std::fs::copy(base.join("credentials"), dir.join("data").join("credentials"))?;
            std::fs::write(dir.join("ferrite.toml"), config_text(i, net.nodes(), &dir, base))?;
            nodes.push(Node { id: i, dir, child: None, state: State::Down });
        }
        let mut cluster = Cluster { binary: binary.to_path_buf(), base: base.to_path_buf(), nodes, key };
        for i in 1..=net.nodes() {
            cluster.launch(i, net)?;
        }
        Ok(cluster)
    }

    /// Where the cluster's files are.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True for a cluster of no nodes (never, once started).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The state of node `i`.
    pub fn state(&self, i: usize) -> State {
        self.nodes[i - 1].state
    }

    /// Starts node `i` and waits until its API answers `/health`.
    pub fn launch(&mut self, i: usize, net: &Net) -> anyhow::Result<()> {
        let node = &mut self.nodes[i - 1];
        let prefix = net.exec_in(i);
        let mut command = Command::new(&prefix[0]);
        command.args(&prefix[1..]).arg(&self.binary).args(["serve", "--config"]).arg(node.dir.join("ferrite.toml"));
        command.args(["--log-level", "info"]);
        let log = node.dir.join("ferrite.log");
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        command.stdin(Stdio::null()).stdout(log_file.try_clone()?).stderr(log_file);
        let mut child = command.spawn().with_context(|| format!("cannot start node {i}"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(ferrite_http_client::api::request(&http_addr(i), "GET", "/health", b"", None), Ok((200, _))) {
            if let Ok(Some(status)) = child.try_wait() {
                anyhow::bail!("node {i} exited ({status}) before answering /health; see {}", log.display());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("node {i} did not answer /health within 60 s; see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        node.child = Some(child);
        node.state = State::Up;
        Ok(())
    }

    fn signal(&mut self, i: usize, signal: libc::c_int) {
        if let Some(child) = &self.nodes[i - 1].child {
            // `ip netns exec` execs the node, so the child's pid is the node's.
            // SAFETY: kill(2) on a pid this process spawned and has not reaped.
            unsafe {
                libc::kill(child.id() as libc::pid_t, signal);
            }
        }
    }

    /// `kill -9` node `i`.
    pub fn kill(&mut self, i: usize) {
        self.signal(i, libc::SIGCONT);
        self.signal(i, libc::SIGKILL);
        if let Some(mut child) = self.nodes[i - 1].child.take() {
            let _ = child.wait();
        }
        self.nodes[i - 1].state = State::Down;
    }

    /// Stops node `i` gracefully (SIGTERM, then SIGKILL after 15 s).
    pub fn stop(&mut self, i: usize) {
        self.signal(i, libc::SIGCONT);
        self.signal(i, libc::SIGTERM);
        if let Some(mut child) = self.nodes[i - 1].child.take() {
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.nodes[i - 1].state = State::Down;
    }

    /// SIGSTOP node `i`.
    pub fn pause(&mut self, i: usize) {
        if self.nodes[i - 1].state == State::Up {
            self.signal(i, libc::SIGSTOP);
            self.nodes[i - 1].state = State::Paused;
        }
    }

    /// SIGCONT node `i`.
    pub fn resume(&mut self, i: usize) {
        if self.nodes[i - 1].state == State::Paused {
            self.signal(i, libc::SIGCONT);
            self.nodes[i - 1].state = State::Up;
        }
    }

    /// Resumes paused nodes and starts stopped ones.
    pub fn revive_all(&mut self, net: &Net) -> anyhow::Result<()> {
        for i in 1..=self.nodes.len() {
            match self.state(i) {
                State::Paused => self.resume(i),
                State::Down => self.launch(i, net)?,
                State::Up => {}
            }
        }
        Ok(())
    }

    /// Stops every node.
    pub fn shutdown(&mut self) {
        for i in 1..=self.nodes.len() {
            self.stop(i);
        }
    }

    /// The ids of the nodes.
    pub fn ids(&self) -> Vec<usize> {
        self.nodes.iter().map(|n| n.id).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 1..=self.nodes.len() {
            self.signal(i, libc::SIGCONT);
            self.signal(i, libc::SIGKILL);
            if let Some(mut c) = self.nodes[i - 1].child.take() {
                let _ = c.wait();
            }
        }
    }
}
