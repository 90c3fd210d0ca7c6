//! Command-line interface of the `ferrite` binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::broker::BrokerConfig;
use crate::config::{ConfigFile, NodeConfig};

/// Ferrite: a self-hosted IoT platform that speaks AWS IoT Core's protocols.
///
/// Start a node with `ferrite serve` (no configuration needed): it listens for MQTT on
/// 127.0.0.1:1883, MQTT over WebSocket on 127.0.0.1:8083/mqtt and HTTP (/health,
/// /metrics) on 127.0.0.1:8080, and keeps its data in ./ferrite-data.
#[derive(Debug, Parser)]
#[command(name = "ferrite", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: MQTT broker, WebSocket gateway and HTTP endpoint.
    ///
    /// Precedence: flags override the config file, which overrides built-in defaults.
    /// Use port 0 to let the OS choose; the node prints the bound addresses on one
    /// line: `listening mqtt=HOST:PORT ws=HOST:PORT http=HOST:PORT mqtts=HOST:PORT
    /// wss=HOST:PORT https=HOST:PORT`.
    ///
    /// TLS listeners authenticate clients with X.509 certificates registered through the API
    /// (CreateKeysAndCertificate, RegisterCertificate) or with a custom authorizer
    /// (CreateAuthorizer); IoT policies (CreatePolicy, AttachPolicy) decide what they may do.
    /// Without a [tls] table the first start writes a development CA (DATA_DIR/tls/ca.pem)
    /// and a server certificate for localhost. The plain listeners allow anonymous clients
    /// only on loopback (or with `allow_anonymous = true` under [auth]); [auth] can give any
    /// listener custom-authorizer or JWT authentication instead.
    ///
    /// Example: ferrite serve --data-dir /var/lib/ferrite --mqtt-addr 0.0.0.0:1883
    Serve(Box<ServeArgs>),
    /// Load generator: drive an MQTT broker (ferrite or any other) and report
    /// messages/s sent and received, lost, duplicated, and latency percentiles.
    ///
    /// Example: ferrite bench --target 127.0.0.1:1883 --scenario fan-in -n 10 --qos 1 --duration 10
    Bench(crate::bench::BenchArgs),
    /// Rules in AWS IoT SQL: check rule files, evaluate a statement, run case files.
    ///
    /// Example: ferrite rules check rules/
    #[command(subcommand)]
    Rules(crate::rules_cli::RulesCommand),
    /// Access keys of the HTTP API (SigV4), kept in DATA_DIR/credentials in the AWS
    /// shared-credentials format.
    ///
    /// Example: ferrite keys create --data-dir /var/lib/ferrite --profile ops
    #[command(subcommand)]
    Keys(crate::credentials::KeysCommand),
    /// Clusters of nodes replicated with Raft: make the cluster CA, try a local cluster, see
    /// members and group leaders, add and remove nodes.
    ///
    /// Example: ferrite cluster local --nodes 3 --base-dir /tmp/ferrite-cluster
    #[command(subcommand)]
    Cluster(crate::cluster::cli::ClusterCommand),
}

/// Flags of `ferrite serve`; each has a key of the same name (with `_`) in the TOML file.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML config file. Keys: data_dir, mqtt_addr, ws_addr, http_addr, mqtts_addr, wss_addr,
    /// https_addr, region, account_id, log_level, workers, rules_dir, and [limits], [tls], [auth]
    /// and [cluster] tables (see docs/configuration.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where RocksDB keeps sessions and retained messages [default: ./ferrite-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// MQTT over TCP listen address [default: 127.0.0.1:1883]
    #[arg(long, value_name = "HOST:PORT")]
    pub mqtt_addr: Option<SocketAddr>,
    /// MQTT over WebSocket listen address, path /mqtt [default: 127.0.0.1:8083]
    #[arg(long, value_name = "HOST:PORT")]
    pub ws_addr: Option<SocketAddr>,
    /// HTTP listen address for /health, /metrics and the AWS-compatible API [default: 127.0.0.1:8080]
    #[arg(long, value_name = "HOST:PORT")]
    pub http_addr: Option<SocketAddr>,
    /// MQTT over TLS listen address; clients authenticate with X.509 certificates
    /// registered with the node [default: 127.0.0.1:8883]
    #[arg(long, value_name = "HOST:PORT")]
    pub mqtts_addr: Option<SocketAddr>,
    /// MQTT over secure WebSocket listen address, path /mqtt [default: 127.0.0.1:8443]
    #[arg(long, value_name = "HOST:PORT")]
    pub wss_addr: Option<SocketAddr>,
    /// HTTPS listen address for the API; clients that negotiate ALPN x-amzn-mqtt-ca speak
    /// MQTT here, as on AWS IoT's port 443 [default: 127.0.0.1:8444]
    #[arg(long, value_name = "HOST:PORT")]
    pub https_addr: Option<SocketAddr>,
    /// Region in the ARNs that IoT policies name (`arn:aws:iot:REGION:...`) [default: us-east-1]
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Account id in ARNs (12 digits); set it to your AWS account id to use policies copied
    /// from AWS unchanged [default: 000000000000]
    #[arg(long, value_name = "ID")]
    pub account_id: Option<String>,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive such as
    /// `ferrite=debug` [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Worker threads (actix arbiters) that own client connections [default: CPU cores]
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Directory of rule files (`*.sql`, see docs/rules.md), reloaded when a file changes; a
    /// set with errors is not loaded and the running rules stay [default: ./rules when present]
    #[arg(long, value_name = "DIR")]
    pub rules_dir: Option<PathBuf>,
    /// Print logs as JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
    /// This node's id in its cluster (a positive number, unique, never reused); without it
    /// the node runs alone
    #[arg(long, value_name = "ID", help_heading = "Cluster")]
    pub node_id: Option<u64>,
    /// UDP address of this node's QUIC endpoint for its peers
    #[arg(long, value_name = "HOST:PORT", help_heading = "Cluster")]
    pub cluster_addr: Option<SocketAddr>,
    /// Another member, as ID@HOST:PORT (repeat for each); with --join, any running member
    #[arg(long = "peer", value_name = "ID@HOST:PORT", help_heading = "Cluster")]
    pub peers: Vec<String>,
    /// The cluster CA certificate from `ferrite cluster init`
    #[arg(long, value_name = "FILE", help_heading = "Cluster")]
    pub cluster_ca_cert: Option<PathBuf>,
    /// The cluster CA key: on the first start the node issues its own certificate with it
    #[arg(long, value_name = "FILE", help_heading = "Cluster")]
    pub cluster_ca_key: Option<PathBuf>,
    /// Start as a new member of a running cluster and wait to be added (`ferrite cluster join`)
    #[arg(long, help_heading = "Cluster")]
    pub join: bool,
}

impl ServeArgs {
    /// Resolves defaults, the config file and flags into one configuration.
    pub fn resolve(&self) -> anyhow::Result<NodeConfig> {
        let file = match &self.config {
            Some(p) => ConfigFile::load(p)?,
            None => ConfigFile::default(),
        };
        let mut broker = BrokerConfig::default();
        NodeConfig::apply_limits(&mut broker, &file.limits);
        if let Some(region) = self.region.clone().or(file.region.clone()) {
            broker.region = region;
        }
        let default_workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let mut cluster = file.cluster.clone();
        cluster.node_id = self.node_id.or(cluster.node_id);
        cluster.addr = self.cluster_addr.or(cluster.addr);
        if !self.peers.is_empty() {
            cluster.peers = self.peers.clone();
        }
        cluster.ca_cert = self.cluster_ca_cert.clone().or(cluster.ca_cert);
        cluster.ca_key = self.cluster_ca_key.clone().or(cluster.ca_key);
        if self.join {
            cluster.join = Some(true);
        }
        let cluster = crate::cluster::ClusterConfig::resolve(&cluster)?;
        Ok(NodeConfig {
            data_dir: self.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from("ferrite-data")),
            mqtt_addr: self.mqtt_addr.or(file.mqtt_addr).unwrap_or_else(|| "127.0.0.1:1883".parse().expect("valid")),
            ws_addr: self.ws_addr.or(file.ws_addr).unwrap_or_else(|| "127.0.0.1:8083".parse().expect("valid")),
            http_addr: self.http_addr.or(file.http_addr).unwrap_or_else(|| "127.0.0.1:8080".parse().expect("valid")),
            mqtts_addr: self.mqtts_addr.or(file.mqtts_addr).unwrap_or_else(|| "127.0.0.1:8883".parse().expect("valid")),
            wss_addr: self.wss_addr.or(file.wss_addr).unwrap_or_else(|| "127.0.0.1:8443".parse().expect("valid")),
            https_addr: self.https_addr.or(file.https_addr).unwrap_or_else(|| "127.0.0.1:8444".parse().expect("valid")),
            tls: file.tls.clone(),
            allow_anonymous: file.auth.allow_anonymous.unwrap_or(false),
            auth: file.auth.clone(),
            account_id: self.account_id.clone().or(file.account_id.clone()),
            log_level: self.log_level.clone().or(file.log_level).unwrap_or_else(|| "info".into()),
            workers: self.workers.or(file.workers).unwrap_or(default_workers).max(1),
            rules_dir: self.rules_dir.clone().or(file.rules_dir).or_else(|| {
                let default = PathBuf::from("rules");
                default.is_dir().then_some(default)
            }),
            broker,
            max_connections: file.limits.max_connections.caps(),
            shutdown_drain: std::time::Duration::from_secs(file.shutdown_drain_secs.unwrap_or(10)),
            cluster,
            jobs_minute_ms: match file.jobs.minute_ms {
                Some(0) => anyhow::bail!("[jobs] minute_ms must be at least 1"),
                Some(ms) => ms,
                None => 60_000,
            },
            ownership_token_secs: match file.provisioning.ownership_token_secs {
                Some(0) => anyhow::bail!("[provisioning] ownership_token_secs must be at least 1"),
                Some(s) => s,
                None => 3600,
            },
        })
    }
}

fn init_logging(level: &str, json: bool) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| anyhow::anyhow!("invalid --log-level {level:?}: {e}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => args.resolve().and_then(|cfg| {
            init_logging(&cfg.log_level, args.log_json)?;
            crate::node::run(cfg)
        }),
        Command::Bench(args) => crate::bench::run(args),
        Command::Rules(command) => return finish(crate::rules_cli::run(command)),
        Command::Keys(command) => crate::credentials::run(command),
        Command::Cluster(command) => crate::cluster::cli::run(command),
    };
    finish(result.map(|()| ExitCode::SUCCESS))
}

fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
