//! `ferrite cluster ...`: make the cluster CA, run a local cluster, show status, add and
//! remove nodes. Status and membership changes go to any member's HTTP endpoint; changes
//! are SigV4-signed with a key from a credentials file, like any AWS client's.

use ferrite_http_client::api::request;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::Value;

/// The `cluster` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Write a new cluster CA (cluster-ca.pem, cluster-ca.key) that nodes use to trust each
    /// other, and the device CA (device-ca.pem, device-ca.key) that signs every node's server
    /// certificate and the device certificates the cluster creates. Give every node the
    /// cluster CA certificate (and its key for the first start) and both device CA files.
    ///
    /// Example: ferrite cluster init --dir /etc/ferrite
    Init {
        /// Where to write the files.
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
    /// Issue a node's cluster certificate before its first start (DATA_DIR/cluster/node.pem
    /// and node.key), so that the node itself never needs the cluster CA key: for container
    /// set-ups where the key stays with a one-shot job. Does nothing when the node already has
    /// its certificate.
    ///
    /// Example: ferrite cluster issue --ca-dir ./cluster-ca --node-id 2 --data-dir /var/lib/ferrite
    Issue {
        /// The directory `ferrite cluster init` wrote (cluster-ca.pem and cluster-ca.key).
        #[arg(long, value_name = "DIR")]
        ca_dir: PathBuf,
        /// The node's id.
        #[arg(long, value_name = "ID")]
        node_id: u64,
        /// The node's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
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
        http: ferrite_cluster::PeerAddress,
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
        http: ferrite_cluster::PeerAddress,
        /// The new node's id.
        #[arg(long, value_name = "ID")]
        node_id: u64,
        /// The new node's cluster (QUIC) address.
        #[arg(long, value_name = "HOST:PORT")]
        cluster_addr: ferrite_cluster::PeerAddress,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Remove a node from the cluster (stop it afterwards).
    ///
    /// Example: ferrite cluster leave --http 127.0.0.1:8080 --node-id 3
    Leave {
        /// HTTP address of any member that stays.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
        http: ferrite_cluster::PeerAddress,
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
    /// The access key id and secret: from the environment, else the credentials file.
    pub fn load(&self) -> anyhow::Result<(String, String)> {
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
/// The status document as text: a line per peer, then a table of groups whose columns
/// line up whatever the widths of the numbers.
fn render_status(doc: &Value) -> String {
    let num = |v: &Value| v.as_u64().map_or_else(|| "-".to_string(), |n| n.to_string());
    let node = num(&doc["node"]);
    let addr = doc["address"].as_str().unwrap_or("-");
    let mut out = format!("node {node} (answering)  cluster address {addr}\n");
    let peers = doc["peers"].as_array().cloned().unwrap_or_default();
    if peers.is_empty() {
        out.push_str("peers: none (a node alone)\n");
    }
    for p in peers {
        let state = if p["connected"].as_bool().unwrap_or(false) { "connected" } else { "UNREACHABLE" };
        let outbox = p["outbox"].as_u64().unwrap_or(0);
        let waiting = if outbox > 0 { format!("  {outbox} forwarded publishes waiting") } else { String::new() };
        out.push_str(&format!("peer {} {} {state}{waiting}\n", num(&p["node"]), p["address"].as_str().unwrap_or("-")));
    }
    let mut rows =
        vec![["group", "leader", "term", "role", "commit", "applied", "voters", "lag by member"].map(String::from)];
    for g in doc["groups"].as_array().cloned().unwrap_or_default() {
        let voters: Vec<String> = g["voters"].as_array().cloned().unwrap_or_default().iter().map(num).collect();
        let lag: Vec<String> = g["matched"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| format!("{}:{}", num(&m["node"]), num(&m["lag"])))
            .collect();
        let lag = if lag.is_empty() {
            let behind = g["commit"].as_u64().unwrap_or(0).saturating_sub(g["applied"].as_u64().unwrap_or(0));
            format!("(follower; {behind} behind commit)")
        } else {
            lag.join(" ")
        };
        rows.push([
            g["name"].as_str().unwrap_or("?").to_string(),
            num(&g["leader"]),
            num(&g["term"]),
            g["role"].as_str().unwrap_or("?").to_string(),
            num(&g["commit"]),
            num(&g["applied"]),
            voters.join(","),
            lag,
        ]);
    }
    let widths: Vec<usize> = (0..8).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    // Text columns are left-aligned, numbers right-aligned; the last column is not padded.
    let numeric = [false, true, true, false, true, true, false, false];
    for row in &rows {
        let cells: Vec<String> = (0..8)
            .map(|c| match (c, numeric[c]) {
                (7, _) => row[c].clone(),
                (_, true) => format!("{:>w$}", row[c], w = widths[c]),
                (_, false) => format!("{:<w$}", row[c], w = widths[c]),
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Writes `text` to stdout; a reader that went away (`| head`) ends the output quietly.
fn print_quietly(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
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
            let (device_cert, device_key) = super::certs::create_device_ca(&dir)?;
            println!(
                "wrote the device CA to {} and {}: give both to every node as [tls] ca_cert and ca_key; devices trust {} to reach any node",
                device_cert.display(),
                device_key.display(),
                device_cert.display()
            );
            Ok(())
        }
        ClusterCommand::Issue { ca_dir, node_id, data_dir } => {
            anyhow::ensure!(node_id > 0, "--node-id must be a positive number");
            let cert = data_dir.join("cluster").join("node.pem");
            if cert.exists() {
                println!("node {node_id} already has its cluster certificate at {}", cert.display());
                return Ok(());
            }
            let (ca_cert, ca_key) = (ca_dir.join(super::certs::CA_CERT_FILE), ca_dir.join(super::certs::CA_KEY_FILE));
            super::certs::node_identity(&data_dir, node_id, &ca_cert, Some(&ca_key))?;
            println!("issued node {node_id}'s cluster certificate to {}", cert.display());
            Ok(())
        }
        ClusterCommand::Local(args) => super::local::run(args),
        ClusterCommand::Status { http, json } => {
            let (status, doc) = request(&http, "GET", "/cluster/status", b"", None).map_err(anyhow::Error::msg)?;
            ok_or_message(status, &doc)?;
            if json {
                print_quietly(&(serde_json::to_string_pretty(&doc)? + "\n"))
            } else {
                print_quietly(&render_status(&doc))
            }
        }
        ClusterCommand::Join { http, node_id, cluster_addr, key } => {
            let (id, secret) = key.load()?;
            let body = serde_json::json!({"nodeId": node_id, "address": cluster_addr.to_string()}).to_string();
            let (status, doc) = request(&http, "POST", "/cluster/members", body.as_bytes(), Some((&id, &secret)))
                .map_err(anyhow::Error::msg)?;
            ok_or_message(status, &doc)?;
            println!("node {node_id} ({cluster_addr}) is a member of every group");
            Ok(())
        }
        ClusterCommand::Leave { http, node_id, key } => {
            let (id, secret) = key.load()?;
            let path = format!("/cluster/members/{node_id}");
            let (status, doc) =
                request(&http, "DELETE", &path, b"", Some((&id, &secret))).map_err(anyhow::Error::msg)?;
            ok_or_message(status, &doc)?;
            println!("node {node_id} left every group; stop it now");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_columns_line_up_whatever_the_widths() {
        let doc = serde_json::json!({
            "node": 1, "address": "127.0.0.1:7001",
            "peers": [{"node": 2, "address": "node2:7000", "connected": true, "outbox": 0}],
            "groups": [
                {"name": "meta", "leader": 1, "term": 3, "role": "leader", "commit": 123456, "applied": 123456,
                 "voters": [1, 2, 3], "matched": [{"node": 2, "lag": 0}]},
                {"name": "shard-10", "leader": 12, "term": 1234, "role": "follower", "commit": 7, "applied": 5,
                 "voters": [1, 2], "matched": []}
            ]
        });
        let text = render_status(&doc);
        let table: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(table.len(), 3, "{text}");
        // Text columns start, and number columns end, where their heading does.
        let header = table[0];
        for line in &table[1..] {
            for heading in ["role", "voters", "lag by member"] {
                let at = header.find(heading).expect(heading);
                assert!(line.as_bytes()[at] != b' ' && line.as_bytes()[at - 1] == b' ', "{heading}:\n{text}");
            }
            for heading in ["leader", "term", "commit", "applied"] {
                let end = header.find(heading).expect(heading) + heading.len();
                assert!(
                    line.as_bytes()[end - 1].is_ascii_digit() && line.as_bytes()[end] == b' ',
                    "{heading}:\n{text}"
                );
            }
        }
        assert!(table[2].contains("(follower; 2 behind commit)"));
        assert!(table[1].contains("2:0"));
    }
}
