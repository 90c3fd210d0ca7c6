//! `ferrite cluster ...`: make the cluster CA, run a local cluster, show status, add and
//! remove nodes. Status and membership changes go to any member's HTTP endpoint; changes
//! are SigV4-signed with a key from a credentials file, like any AWS client's.

use ferrite_http_client::api::request;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::Value;

/// The `cluster` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Write a new cluster CA (cluster-ca.pem, cluster-ca.key) that nodes use to trust each
    /// other. Give every node the certificate, and the key for its first start.
    ///
    /// Example: ferrite cluster init --dir /etc/ferrite
    Init {
        /// Where to write the files.
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
    /// Start a cluster of N nodes on free loopback ports to try it: prints one line per
    /// node (`node ID pid=PID listening mqtt=... ws=... http=... mqtts=... wss=... https=...`)
    /// and runs until interrupted. Starting it again with the same directory brings the same
    /// cluster back with its data.
    ///
    /// Example: ferrite cluster local --nodes 3 --base-dir /tmp/ferrite-cluster
    Local(super::local::LocalArgs),
    /// Show the members, each group's leader and term, applied indexes and replication lag,
    /// as seen by one member.
    ///
    /// Example: ferrite cluster status --http 127.0.0.1:8080
    Status {
        /// HTTP address of any member.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// Print the JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add a node to the running cluster. Start the new node first with `--join` and the
    /// cluster CA; then run this against any member.
    ///
    /// Example: ferrite cluster join --http 127.0.0.1:8080 --node-id 4 --cluster-addr 10.0.0.4:7000
    Join {
        /// HTTP address of any member.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// The new node's id.
        #[arg(long, value_name = "ID")]
        node_id: u64,
        /// The new node's cluster (QUIC) address.
        #[arg(long, value_name = "HOST:PORT")]
        cluster_addr: SocketAddr,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Remove a node from the cluster (stop it afterwards).
    ///
    /// Example: ferrite cluster leave --http 127.0.0.1:8080 --node-id 3
    Leave {
        /// HTTP address of any member that stays.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// The id of the node to remove.
        #[arg(long, value_name = "ID")]
        node_id: u64,
        #[command(flatten)]
        key: KeyArgs,
    },
}

/// Which access key signs a membership change.
#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    /// Shared-credentials file with the key [default: $AWS_SHARED_CREDENTIALS_FILE, else
    /// ./ferrite-data/credentials]
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// The profile in that file.
    #[arg(long, value_name = "NAME", default_value = "default")]
    profile: String,
}

impl KeyArgs {
    fn load(&self) -> anyhow::Result<(String, String)> {
        if let (Ok(id), Ok(secret)) = (std::env::var("AWS_ACCESS_KEY_ID"), std::env::var("AWS_SECRET_ACCESS_KEY")) {
            return Ok((id, secret));
        }
        let path = self
            .credentials
            .clone()
            .or_else(|| std::env::var_os("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("ferrite-data/credentials"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read credentials from {}", path.display()))?;
        ferrite_aws::credentials::profile_key(&text, &self.profile)
            .with_context(|| format!("{} has no key under profile [{}]", path.display(), self.profile))
    }
}

fn ok_or_message(status: u16, body: &Value) -> anyhow::Result<()> {
    if status == 200 {
        return Ok(());
    }
    let message = body.get("message").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| body.to_string());
    anyhow::bail!("the node answered {status}: {message}")
}

/// Prints `/cluster/status` as a table a person reads at a glance.
fn print_status(doc: &Value) {
    let node = doc["node"].as_u64().unwrap_or(0);
    let addr = doc["address"].as_str().unwrap_or("-");
    println!("node {node} (answering)  cluster address {addr}");
    let peers = doc["peers"].as_array().cloned().unwrap_or_default();
    if peers.is_empty() {
        println!("peers: none (a node alone)");
    }
    for p in peers {
        let state = if p["connected"].as_bool().unwrap_or(false) { "connected" } else { "UNREACHABLE" };
        let outbox = p["outbox"].as_u64().unwrap_or(0);
        let waiting = if outbox > 0 { format!("  {outbox} forwarded publishes waiting") } else { String::new() };
        println!("peer {} {} {state}{waiting}", p["node"], p["address"].as_str().unwrap_or("-"));
    }
    println!(
        "{:<10} {:>6} {:>6} {:<13} {:>10} {:>10} {:<12} lag by member",
        "group", "leader", "term", "role", "commit", "applied", "voters"
    );
    for g in doc["groups"].as_array().cloned().unwrap_or_default() {
        let voters: Vec<String> =
            g["voters"].as_array().cloned().unwrap_or_default().iter().map(|v| v.to_string()).collect();
        let lag: Vec<String> = g["matched"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| format!("{}:{}", m["node"], m["lag"]))
            .collect();
        let lag = if lag.is_empty() {
            format!(
                "(follower; {} behind commit)",
                g["commit"].as_u64().unwrap_or(0).saturating_sub(g["applied"].as_u64().unwrap_or(0))
            )
        } else {
            lag.join(" ")
        };
        println!(
            "{:<10} {:>6} {:>6} {:<13} {:>10} {:>10} {:<12} {lag}",
            g["name"].as_str().unwrap_or("?"),
            g["leader"],
            g["term"],
            g["role"].as_str().unwrap_or("?"),
            g["commit"],
            g["applied"],
            voters.join(","),
        );
    }
}

/// Runs a `cluster` subcommand.
pub fn run(command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Init { dir } => {
            let (cert, key) = super::certs::create_ca(&dir)?;
            println!("wrote the cluster CA certificate to {}", cert.display());
            println!(
                "wrote its private key to {} (keep it secret; nodes need it only on their first start)",
                key.display()
            );
            Ok(())
        }
        ClusterCommand::Local(args) => super::local::run(args),
        ClusterCommand::Status { http, json } => {
            let (status, doc) = request(http, "GET", "/cluster/status", b"", None).map_err(anyhow::Error::msg)?;
            ok_or_message(status, &doc)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print_status(&doc);
            }
            Ok(())
        }
        ClusterCommand::Join { http, node_id, cluster_addr, key } => {
            let (id, secret) = key.load()?;
            let body = serde_json::json!({"nodeId": node_id, "address": cluster_addr.to_string()}).to_string();
            let (status, doc) = request(http, "POST", "/cluster/members", body.as_bytes(), Some((&id, &secret)))
                .map_err(anyhow::Error::msg)?;
            ok_or_message(status, &doc)?;
            println!("node {node_id} ({cluster_addr}) is a member of every group");
            Ok(())
        }
        ClusterCommand::Leave { http, node_id, key } => {
            let (id, secret) = key.load()?;
            let path = format!("/cluster/members/{node_id}");
            let (status, doc) =
                request(http, "DELETE", &path, b"", Some((&id, &secret))).map_err(anyhow::Error::msg)?;
            ok_or_message(status, &doc)?;
            println!("node {node_id} left every group; stop it now");
            Ok(())
        }
    }
}
