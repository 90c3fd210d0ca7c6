//! Command-line interface of the `ferrite` binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
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
    /// Back up a running node: registry, identity (certificates, policies, authorizers),
    /// shadows, rules, jobs, retained messages and persistent sessions as of one moment,
    /// plus its TLS files and root access key. The file is secret (it holds keys): it is
    /// written readable by its owner only.
    ///
    /// Example: ferrite backup --http 127.0.0.1:8080 --out ferrite-2026-12-06.backup
    Backup(crate::backup_cli::BackupArgs),
    /// Restore a backup into a new data directory, then start a node on it. To seed a new
    /// cluster, restore the same file into every node's data directory before their first
    /// start (with --skip-sessions on all but one).
    ///
    /// Example: ferrite restore ferrite-2026-12-06.backup --data-dir /var/lib/ferrite
    Restore(crate::backup_cli::RestoreArgs),
}

/// Flags of `ferrite serve`; each has a key of the same name (with `_`) in the TOML file.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML config file. Keys: data_dir, mqtt_addr, ws_addr, http_addr, mqtts_addr, wss_addr,
    /// https_addr, region, account_id, log_level, log_json, workers, rules_dir, and [limits],
    /// [tls], [auth] and [cluster] tables (see docs/configuration.md). Addresses are
    /// HOST:PORT, HOST an IP address or a host name such as localhost.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check the configuration (the file and these flags) and exit: 0 when the node would
    /// start with it, 1 listing every problem. Touches nothing on disk and binds no port.
    ///
    /// Example: ferrite serve --check --config /etc/ferrite/ferrite.toml
    #[arg(long)]
    pub check: bool,
    /// Where RocksDB keeps sessions and retained messages [default: ./ferrite-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// MQTT over TCP listen address [default: 127.0.0.1:1883]
    #[arg(long, value_name = "HOST:PORT")]
    pub mqtt_addr: Option<String>,
    /// MQTT over WebSocket listen address, path /mqtt [default: 127.0.0.1:8083]
    #[arg(long, value_name = "HOST:PORT")]
    pub ws_addr: Option<String>,
    /// HTTP listen address for /health, /metrics and the AWS-compatible API [default: 127.0.0.1:8080]
    #[arg(long, value_name = "HOST:PORT")]
    pub http_addr: Option<String>,
    /// MQTT over TLS listen address; clients authenticate with X.509 certificates
    /// registered with the node [default: 127.0.0.1:8883]
    #[arg(long, value_name = "HOST:PORT")]
    pub mqtts_addr: Option<String>,
    /// MQTT over secure WebSocket listen address, path /mqtt [default: 127.0.0.1:8443]
    #[arg(long, value_name = "HOST:PORT")]
    pub wss_addr: Option<String>,
    /// HTTPS listen address for the API; clients that negotiate ALPN x-amzn-mqtt-ca speak
    /// MQTT here, as on AWS IoT's port 443 [default: 127.0.0.1:8444]
    #[arg(long, value_name = "HOST:PORT")]
    pub https_addr: Option<String>,
    /// Region in the ARNs that IoT policies name (`arn:aws:iot:REGION:...`) [default: us-east-1]
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Account id in ARNs (12 digits); set it to your AWS account id to use policies copied
    /// from AWS unchanged [default: 000000000000]
    #[arg(long, value_name = "ID")]
    pub account_id: Option<String>,
    /// Log filter: error, warn, info, debug, trace or off, or TARGET=LEVEL directives such as
    /// `info,ferrite::rules=debug`; raft and cranelift log at warn unless named [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Worker threads (actix arbiters) that own client connections, at least 1. One per core
    /// suits a machine of its own; where busy clients share the cores (publishers on the same
    /// box), fewer leave them CPU, and with 1 no delivery crosses threads [default: CPU cores]
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Directory of rule files (`*.sql`, see docs/rules.md), reloaded when a file changes; a
    /// set with errors is not loaded and the running rules stay [default: ./rules when present]
    #[arg(long, value_name = "DIR")]
    pub rules_dir: Option<PathBuf>,
    /// Print logs as JSON lines (one object per line, every field) instead of text; key
    /// `log_json = true`
    #[arg(long)]
    pub log_json: bool,
    /// This node's id in its cluster (a positive number, unique, never reused); without it
    /// the node runs alone
    #[arg(long, value_name = "ID", help_heading = "Cluster")]
    pub node_id: Option<u64>,
    /// UDP address of this node's QUIC endpoint for its peers
    #[arg(long, value_name = "HOST:PORT", help_heading = "Cluster")]
    pub cluster_addr: Option<String>,
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
    /// Resolves defaults, the config file and flags into one configuration, or lists every
    /// problem found (one per line, each naming its key or flag).
    pub fn resolve(&self) -> anyhow::Result<NodeConfig> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                // Every unknown key, with its line and what it was probably meant to be.
                let unknown = crate::config_check::unknown_keys(&text);
                if !unknown.is_empty() {
                    anyhow::bail!("invalid config file {}:\n  {}", path.display(), unknown.join("\n  "));
                }
                ConfigFile::parse(path, &text)?
            }
            None => ConfigFile::default(),
        };
        let mut problems = crate::config_check::limit_problems(&file.limits);
        let mut broker = BrokerConfig::default();
        NodeConfig::apply_limits(&mut broker, &file.limits);
        if let Some(region) = self.region.clone().or(file.region.clone()) {
            broker.region = region;
        }
        let mut address = |key: &str, flag: &Option<String>, value: &Option<String>, default: &str| {
            let (name, text) = match (flag, value) {
                (Some(f), _) => (format!("--{}", key.replace('_', "-")), f.as_str()),
                (None, Some(v)) => (key.to_string(), v.as_str()),
                (None, None) => (key.to_string(), default),
            };
            crate::address::resolve_address(&name, text).unwrap_or_else(|e| {
                problems.push(e);
                SocketAddr::from(([127, 0, 0, 1], 0))
            })
        };
        let mqtt_addr = address("mqtt_addr", &self.mqtt_addr, &file.mqtt_addr, "127.0.0.1:1883");
        let ws_addr = address("ws_addr", &self.ws_addr, &file.ws_addr, "127.0.0.1:8083");
        let http_addr = address("http_addr", &self.http_addr, &file.http_addr, "127.0.0.1:8080");
        let mqtts_addr = address("mqtts_addr", &self.mqtts_addr, &file.mqtts_addr, "127.0.0.1:8883");
        let wss_addr = address("wss_addr", &self.wss_addr, &file.wss_addr, "127.0.0.1:8443");
        let https_addr = address("https_addr", &self.https_addr, &file.https_addr, "127.0.0.1:8444");
        let default_workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let workers = self.workers.or(file.workers).unwrap_or(default_workers);
        if !(1..=1024).contains(&workers) {
            let name = if self.workers.is_some() { "--workers" } else { "workers" };
            problems.push(format!("{name} = {workers}: must be from 1 to 1024"));
        }
        let log_level = self.log_level.clone().or(file.log_level).unwrap_or_else(|| "info".into());
        if let Err(e) = crate::logging::filter_directives(&log_level) {
            problems.push(format!("log_level: {e}"));
        }
        if let Some(id) = self.account_id.as_deref().or(file.account_id.as_deref()) {
            if let Err(e) = crate::registry::check_account_id(id) {
                problems.push(format!("account_id = {id:?}: {e}"));
            }
        }
        let rules_dir = self.rules_dir.clone().or(file.rules_dir).or_else(|| {
            let default = PathBuf::from("rules");
            default.is_dir().then_some(default)
        });
        if let Some(dir) = rules_dir.as_ref().filter(|d| !d.is_dir()) {
            problems.push(format!("rules_dir = {:?}: no such directory", dir.display().to_string()));
        }
        let mut cluster = file.cluster.clone();
        cluster.node_id = self.node_id.or(cluster.node_id);
        cluster.addr = self.cluster_addr.clone().or(cluster.addr);
        if !self.peers.is_empty() {
            cluster.peers = self.peers.clone();
        }
        cluster.ca_cert = self.cluster_ca_cert.clone().or(cluster.ca_cert);
        cluster.ca_key = self.cluster_ca_key.clone().or(cluster.ca_key);
        if self.join {
            cluster.join = Some(true);
        }
        let cluster = crate::cluster::ClusterConfig::resolve(&cluster).unwrap_or_else(|e| {
            problems.push(format!("{e:#}"));
            None
        });
        let jobs_minute_ms = at_least_one(&mut problems, "[jobs] minute_ms", file.jobs.minute_ms, 60_000);
        let ownership_token_secs = at_least_one(
            &mut problems,
            "[provisioning] ownership_token_secs",
            file.provisioning.ownership_token_secs,
            3600,
        );
        let cfg = NodeConfig {
            data_dir: self.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from("ferrite-data")),
            mqtt_addr,
            ws_addr,
            http_addr,
            mqtts_addr,
            wss_addr,
            https_addr,
            tls: file.tls.clone(),
            allow_anonymous: file.auth.allow_anonymous.unwrap_or(false),
            auth: file.auth.clone(),
            account_id: self.account_id.clone().or(file.account_id.clone()),
            log_level,
            log_json: self.log_json || file.log_json.unwrap_or(false),
            workers,
            rules_dir,
            broker,
            max_connections: file.limits.max_connections.caps(),
            shutdown_drain: std::time::Duration::from_secs(file.shutdown_drain_secs.unwrap_or(10)),
            cluster,
            jobs_minute_ms,
            ownership_token_secs,
        };
        if let Err(e) = crate::server::auth::listeners(&cfg) {
            problems.push(format!("[auth]: {e:#}"));
        }
        problems.extend(unreadable_files(&cfg));
        if !problems.is_empty() {
            let source = self.config.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default();
            anyhow::bail!("invalid configuration{source}:\n  {}", problems.join("\n  "));
        }
        Ok(cfg)
    }
}

/// `value`, or `default` when unset; 0 is a problem naming `key`.
fn at_least_one(problems: &mut Vec<String>, key: &str, value: Option<u64>, default: u64) -> u64 {
    match value {
        Some(0) => {
            problems.push(format!("{key} = 0: must be at least 1"));
            default
        }
        Some(v) => v,
        None => default,
    }
}

/// The files the configuration names that cannot be read (certificates and keys), each as a
/// problem naming its key: found before the start, not half-way through it.
fn unreadable_files(cfg: &NodeConfig) -> Vec<String> {
    let mut named: Vec<(&str, &std::path::Path)> = Vec::new();
    let tls = &cfg.tls;
    for (key, path) in [
        ("[tls] server_cert", &tls.server_cert),
        ("[tls] server_key", &tls.server_key),
        ("[tls] ca_cert", &tls.ca_cert),
        ("[tls] ca_key", &tls.ca_key),
    ] {
        if let Some(p) = path {
            named.push((key, p));
        }
    }
    if let Some(c) = &cfg.cluster {
        named.push(("[cluster] ca_cert", &c.ca_cert));
        // The key is read only to issue this node's certificate on its first start (it may be
        // gone afterwards).
        if let Some(k) = c.ca_key.as_ref().filter(|_| !cfg.data_dir.join("cluster").join("node.pem").exists()) {
            named.push(("[cluster] ca_key", k));
        }
    }
    named
        .into_iter()
        .filter_map(|(key, path)| {
            std::fs::File::open(path)
                .err()
                .map(|e| format!("{key} = {:?}: cannot read it ({e})", path.display().to_string()))
        })
        .collect()
}

/// `ferrite serve --check`: what the configuration resolves to, or every problem in it.
fn check(args: &ServeArgs) -> anyhow::Result<()> {
    let cfg = args.resolve()?;
    let source = args.config.as_ref().map_or("built-in defaults and flags".to_string(), |p| p.display().to_string());
    println!("configuration OK: {source}");
    println!(
        "  data_dir={} mqtt={} ws={} http={} mqtts={} wss={} https={} workers={} log_level={}",
        cfg.data_dir.display(),
        cfg.mqtt_addr,
        cfg.ws_addr,
        cfg.http_addr,
        cfg.mqtts_addr,
        cfg.wss_addr,
        cfg.https_addr,
        cfg.workers,
        cfg.log_level
    );
    if let Some(c) = &cfg.cluster {
        println!("  cluster node {} at {} with {} peer(s)", c.node_id, c.addr, c.peers.len());
    }
    Ok(())
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) if args.check => check(&args),
        Command::Serve(args) => args.resolve().and_then(|cfg| {
            crate::logging::init(&cfg.log_level, cfg.log_json)?;
            crate::node::run(cfg)
        }),
        Command::Bench(args) => crate::bench::run(args),
        Command::Rules(command) => return finish(crate::rules_cli::run(command)),
        Command::Keys(command) => crate::credentials::run(command),
        Command::Cluster(command) => crate::cluster::cli::run(command),
        Command::Backup(args) => crate::backup_cli::backup(args),
        Command::Restore(args) => crate::backup_cli::restore(args),
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
