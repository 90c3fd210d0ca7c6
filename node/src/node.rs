//! Wires a node together: storage, the broker core, the services above it (each handed
//! what it needs from below, and the broker handed what it needs from above as the
//! traits of `broker::hooks`), the listeners and the HTTP endpoint. This is the one place
//! that knows every layer.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context as _;
use ferrite_cluster::Store;

use crate::broker::{Broker, ClusterView};
use crate::cluster::Cluster;
use crate::config::NodeConfig;
use crate::metrics::Metrics;
use crate::server;
use crate::services::{Reactions, Services};

/// Builds the services over `store` and `cluster`, bottom up: the rule engine and the
/// shadows publish through a channel that a task drains into the broker (returned for the
/// caller to run once the runtime is up), and the broker calls them back through
/// [`Reactions`].
fn assemble(
    cfg: &NodeConfig,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    cluster: &Cluster,
    issuer: Arc<crate::identity::tls::CertIssuer>,
) -> anyhow::Result<(Arc<Services>, crate::broker::publisher::PublishQueue)> {
    let (publisher, queue) = crate::broker::publisher::channel();
    let rules = Arc::new(
        crate::rules::RuleEngine::start(publisher.clone(), cfg.broker.topic_limits, cfg.data_dir.clone())
            .context("cannot start the rule runtime")?,
    );
    let engine = rules.clone();
    let meta = Arc::new(ferrite_cluster::Group::open_member(
        store.clone(),
        crate::meta::META_GROUP,
        "meta",
        crate::meta::Meta::load(
            &store,
            Box::new(move |stored: &crate::rules::api::TopicRules| crate::rules::api::install(&engine, stored)),
        )?,
        &cluster.member,
    )?);
    let shadows = Arc::new(crate::shadow::ShadowService::open(
        &store,
        crate::shadow::SHADOW_SHARDS,
        &cluster.member,
        publisher.clone(),
        cfg.broker.shadow_requests_per_second_per_thing,
    )?);
    let fleet_index = index_fleet(&meta, &shadows);
    let outbox = match &cluster.net {
        Some(net) => Some((net, crate::cluster::outbox::Outbox::open(net.clone(), store.clone())?)),
        None => None,
    };
    let routes = outbox.as_ref().map(|(net, outbox)| {
        let replicate = cfg.cluster.as_ref().is_none_or(|c| c.replicate_sessions);
        crate::cluster::routes::ClusterRoutes::new((*net).clone(), outbox.clone(), replicate)
    });
    let view = ClusterView { node_id: cluster.member.id, address: cluster.local_addr(), net: cluster.net.clone() };
    let jobs = crate::jobs_runtime::JobsRuntime::new(meta.clone(), publisher.clone(), cfg.jobs_minute_ms);
    let settings = crate::provisioning_runtime::Settings {
        region: cfg.broker.region.clone(),
        token_secs: cfg.ownership_token_secs,
        node_id: cluster.member.id,
        reports_dir: cfg.data_dir.join("registration-reports"),
    };
    let provisioning =
        crate::provisioning_runtime::ProvisioningRuntime::new(meta.clone(), publisher.clone(), issuer, settings);
    let reactions = Arc::new(Reactions {
        shadows: shadows.clone(),
        rules: rules.clone(),
        jobs: jobs.clone(),
        provisioning: provisioning.clone(),
        fleet_index: fleet_index.clone(),
    });
    let peers = routes.clone().map(|r| r as Arc<dyn crate::broker::hooks::Peers>);
    let broker = Broker::open(cfg.broker.clone(), store.clone(), metrics, view, &cluster.member, peers, reactions)
        .context("cannot recover broker state")?;
    if let (Some(routes), Some((net, outbox))) = (&routes, outbox) {
        routes.serve();
        let deliver = crate::cluster::arrivals::into_broker(&broker);
        crate::cluster::arrivals::Arrivals::serve(net.clone(), store.clone(), outbox, deliver)?;
    }
    let takeover = match &cluster.net {
        Some(net) => {
            // The handover exists first: the owners group runs its hook for every applied claim.
            let handover = crate::cluster::takeover::Handover::new(cluster.member.id, broker.clone());
            let owners = ferrite_cluster::Group::open_member(
                store.clone(),
                crate::cluster::owners::OWNERS_GROUP,
                "owners",
                crate::cluster::owners::Owners::load(&*store, Some(handover.on_claim_hook()))?,
                &cluster.member,
            )?;
            let takeover = crate::cluster::takeover::Takeover::new(cluster.member.id, net.clone(), owners, handover);
            takeover.serve();
            Some(takeover)
        }
        None => None,
    };
    provisioning.set_broker(broker.clone());
    let fleet = crate::fleet_runtime::FleetRuntime::new(meta.clone(), fleet_index.clone());
    let iot_log = Arc::new(crate::iot_logging::IotLog::start(&cfg.data_dir));
    log_rule_outcomes(&meta, &iot_log);
    let data_dir = cfg.data_dir.clone();
    let history = crate::stats_history::History::start(broker.metrics.clone());
    let services = Services {
        broker,
        meta,
        shadows,
        rules,
        routes,
        takeover,
        jobs,
        provisioning,
        fleet_index,
        fleet,
        iot_log,
        data_dir,
        history,
    };
    Ok((Arc::new(services), queue))
}

/// Rule outcomes (RuleMatch, RuleExecution) go to the AWS IoT log at the level that applies
/// to the client whose message the rule ran on.
fn log_rule_outcomes(meta: &Arc<ferrite_cluster::Group<crate::meta::Meta>>, log: &Arc<crate::iot_logging::IotLog>) {
    let (meta, log) = (meta.clone(), log.clone());
    crate::rules::log::set_sink(Box::new(move |e| {
        let meta = meta.state();
        let client = e.client_id.as_deref().unwrap_or("");
        let groups: Vec<String> = if meta.logging.has_group_levels() {
            meta.registry.groups_of_thing(client).into_iter().map(|(g, _)| g).collect()
        } else {
            Vec::new()
        };
        if let Some(verbosity) = meta.logging.level_for(client, "", "", &groups) {
            log.log(verbosity, &crate::iot_logging::rule_event(e));
        }
    }));
}

/// The node's fleet index, told of every registry, configuration and shadow change from now
/// on, then built from the state as it is.
fn index_fleet(
    meta: &Arc<ferrite_cluster::Group<crate::meta::Meta>>,
    shadows: &crate::shadow::ShadowService,
) -> Arc<crate::fleet_index::FleetIndex> {
    use crate::meta::RegistryChange;
    let index = Arc::new(crate::fleet_index::FleetIndex::new());
    let follow = index.clone();
    meta.state().on_registry_changed(Box::new(move |meta, change| match change {
        RegistryChange::Things(names) => follow.things_changed(&meta.registry, names),
        RegistryChange::Groups => follow.groups_changed(&meta.registry),
        RegistryChange::All => follow.rebuild_registry(&meta.registry),
        RegistryChange::Indexing => follow.configure(meta.indexing.get()),
    }));
    let follow = index.clone();
    let stored = shadows.observe(Arc::new(move |thing, shadow, doc| follow.shadow_changed(thing, shadow, doc)));
    let state = meta.state();
    index.configure(state.indexing.get());
    index.rebuild_registry(&state.registry);
    for (thing, shadow, doc) in stored {
        index.shadow_changed(&thing, shadow.as_deref(), Some(doc));
    }
    index
}

/// The node's listening sockets, bound before anything else happens.
struct ListenSockets {
    mqtt: std::net::TcpListener,
    ws: std::net::TcpListener,
    http: std::net::TcpListener,
    mqtts: std::net::TcpListener,
    wss: std::net::TcpListener,
    https: std::net::TcpListener,
}

impl ListenSockets {
    fn bind(cfg: &NodeConfig) -> anyhow::Result<ListenSockets> {
        let bind = |addr: std::net::SocketAddr, what: &str, key: &str| {
            std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen for {what} on {addr} ({key}): is another process using it?"))
        };
        Ok(ListenSockets {
            mqtt: bind(cfg.mqtt_addr, "MQTT", "mqtt_addr")?,
            ws: bind(cfg.ws_addr, "MQTT over WebSocket", "ws_addr")?,
            http: bind(cfg.http_addr, "HTTP", "http_addr")?,
            mqtts: bind(cfg.mqtts_addr, "MQTT over TLS", "mqtts_addr")?,
            wss: bind(cfg.wss_addr, "MQTT over secure WebSocket", "wss_addr")?,
            https: bind(cfg.https_addr, "HTTPS", "https_addr")?,
        })
    }
}

/// Runs a node until SIGINT/SIGTERM.
pub fn run(cfg: NodeConfig) -> anyhow::Result<()> {
    // Everything that can refuse the start without touching the data directory comes first,
    // so a refused start leaves nothing behind and says why before any group starts.
    let sockets = ListenSockets::bind(&cfg)?;
    if let Some(id) = &cfg.account_id {
        crate::registry::set_account_id(id).map_err(anyhow::Error::msg).context("account_id")?;
    }
    let auth = server::auth::listeners(&cfg)?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data directory {}", cfg.data_dir.display()))?;
    let db_path = cfg.data_dir.join("db");
    let store =
        Arc::new(Store::open(&db_path).with_context(|| format!("cannot open storage at {}", db_path.display()))?);
    let metrics = Arc::new(Metrics::default());
    crate::identity::tls::install_provider();
    let cluster = match &cfg.cluster {
        Some(c) => crate::cluster::Cluster::start(c, &cfg.data_dir, &store).context("cannot join the cluster")?,
        None => crate::cluster::Cluster::single(),
    };
    let (cluster_addr, node_id) = (cluster.local_addr(), cluster.member.id);
    let tls = crate::identity::tls::Tls::load_or_create(&cfg.data_dir, &cfg.tls).context("cannot set up TLS")?;
    let issuer = tls.issuer.clone();
    let (services, publishes) = assemble(&cfg, store, metrics, &cluster, issuer.clone())?;
    let broker = services.broker.clone();
    let (credentials, created) = crate::credentials::Credentials::load_or_create(&cfg.data_dir)?;
    let rules_said = match &cfg.rules_dir {
        Some(dir) => Some(crate::rules::reload::load_and_watch(&services.rules, dir.clone())?),
        None => None,
    };
    let system = actix_rt::System::new();
    system.block_on(async move {
        broker.arm_recovered_timers();
        actix_rt::spawn(crate::broker::publisher::serve(publishes, broker.clone()));
        services.jobs.serve();
        services.fleet.serve();
        let workers = server::Workers::start(cfg.workers);
        let ListenSockets { mqtt, ws, http, mqtts, wss, https } = sockets;
        let (mqtt, ws, mqtts, wss, https) =
            (server::adopt(mqtt)?, server::adopt(ws)?, server::adopt(mqtts)?, server::adopt(wss)?, server::adopt(https)?);
        let (mqtt_local, ws_local, http_local) = (mqtt.local_addr()?, ws.local_addr()?, http.local_addr()?);
        let (mqtts_local, wss_local, https_local) = (mqtts.local_addr()?, wss.local_addr()?, https.local_addr()?);
        let credentials_path = credentials.path.clone();
        let mqtt_alpn: &[&[u8]] = &[crate::identity::tls::ALPN_MQTT_CA, b"mqtt"];
        let https_alpn: &[&[u8]] =
            &[crate::identity::tls::ALPN_MQTT_CA, crate::identity::tls::ALPN_HTTP_CA, b"http/1.1", crate::identity::tls::ALPN_MQTT];
        let (mqtts_config, wss_config) = (tls.server_config(mqtt_alpn)?, tls.server_config(&[b"http/1.1"])?);
        let https_config = tls.server_config(https_alpn)?;
        let (ca_path, server_cert_path, tls_created) = (tls.ca_path.clone(), tls.server_cert_path.clone(), tls.created);
        let server_identity = tls.identity.clone();
        crate::certificate_metrics::watch_file("server", server_identity.cert_path().to_path_buf());
        if cluster_addr.is_some() {
            crate::certificate_metrics::watch_file("cluster", cfg.data_dir.join("cluster").join("node.pem"));
        }
        let endpoints = crate::http::console::Endpoints {
            mqtt: mqtt_local.port(),
            ws: ws_local.port(),
            http: http_local.port(),
            mqtts: mqtts_local.port(),
            wss: wss_local.port(),
            https: https_local.port(),
        };
        let http_server = crate::http::serve(http, services.clone(), credentials, issuer, endpoints)?;
        let anonymous = [("mqtt", auth.mqtt.is_anonymous()), ("ws", auth.ws.is_anonymous())];
        let descriptors = server::admission::raise_descriptor_limit();
        let limits = server::admission::Limits::for_descriptors(descriptors, cfg.max_connections);
        tracing::info!(open_files = descriptors, client_sockets = limits.budget, "descriptor budget for client sockets");
        let admission = server::admission::Admission::new(limits, services.broker.metrics.clone());
        let listener = |socket, index| server::Listener { socket, workers: workers.clone(), admission: admission.clone(), index };
        let (mqtt, ws, mqtts, wss, https) = (listener(mqtt, 0), listener(ws, 1), listener(mqtts, 2), listener(wss, 3), listener(https, 4));
        let accepting = [
            actix_rt::spawn(server::serve_mqtt(mqtt, services.clone(), auth.mqtt)),
            actix_rt::spawn(server::serve_ws(ws, services.clone(), auth.ws)),
            actix_rt::spawn(server::serve_mqtts(mqtts, services.clone(), mqtts_config, auth.mqtts)),
            actix_rt::spawn(server::serve_wss(wss, services.clone(), wss_config, auth.wss)),
            actix_rt::spawn(server::serve_https(https, services.clone(), https_config, auth.https, http_local)),
        ];
        let http_handle = http_server.handle();
        actix_rt::spawn(publish_access_keys(services.clone(), credentials_path.clone()));
        actix_rt::spawn(http_server);
        for (listener, open) in anonymous {
            if open {
                tracing::warn!(listener, mqtt = %mqtt_local, ws = %ws_local, "this listener accepts anonymous clients with full access (development default on loopback); TLS listeners require registered client certificates or a custom authorizer");
            }
        }
        // Before the `listening` line: from then on a SIGHUP must reload, not kill.
        let signals = Signals::install();
        tracing::info!(data_dir = %cfg.data_dir.display(), workers = cfg.workers, "node started");
        println!(
            "listening mqtt={mqtt_local} ws={ws_local} http={http_local} mqtts={mqtts_local} wss={wss_local} https={https_local}"
        );
        if let Some(addr) = cluster_addr {
            println!("cluster node {node_id} at {addr} (QUIC)");
        }
        if created {
            println!("wrote a root access key for the HTTP API to {}", credentials_path.display());
        }
        // A listener on every interface is reached on this machine through loopback.
        let reach = match http_local.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::SocketAddr::from(([127, 0, 0, 1], http_local.port())),
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, http_local.port()))
            }
            _ => http_local,
        };
        println!(
            "use it with: AWS_SHARED_CREDENTIALS_FILE={} aws iot-data get-thing-shadow --endpoint-url http://{reach} ...",
            credentials_path.display()
        );
        println!("web console: http://{reach}/console/ (sign in with that key)");
        if tls_created {
            println!(
                "wrote a development CA to {} and a server certificate for localhost to {}",
                ca_path.display(),
                server_cert_path.display()
            );
        }
        if let Some(said) = rules_said {
            println!("{said}");
        }
        let _ = std::io::stdout().flush();
        let rules = services.rules.clone();
        let rules_dir = cfg.rules_dir.clone();
        signals
            .wait_for_shutdown(move || {
                tracing::info!(credentials = %credentials_path.display(), "SIGHUP: reloading rule files and the server certificate; access keys are reread from the credentials file on their next use");
                if let Some(dir) = &rules_dir {
                    let _ = crate::rules::reload::apply(&rules, dir, "SIGHUP");
                }
                match server_identity.reload() {
                    Ok(()) => tracing::info!(certificate = %server_identity.cert_path().display(), "SIGHUP: TLS listeners now present the certificate read from its file"),
                    Err(e) => tracing::error!(error = format!("{e:#}"), "SIGHUP: the server certificate was not reloaded; the listeners keep the one they had"),
                }
            })
            .await;
        // Not ready from now on; stop accepting, then give deliveries and rule actions under
        // way a bounded time.
        crate::cluster::readiness::mark_stopping();
        for listener in &accepting {
            listener.abort();
        }
        let http_stopped = http_handle.stop(true);
        // Commands under way at a leader that stops would end with an unknown outcome: the
        // groups this node leads move to another member first.
        let leading = services.hand_over_leadership(std::time::Duration::from_secs(3)).await;
        if leading > 0 {
            tracing::warn!(groups = leading, "stopping while still leading groups: no other member took over in time");
        }
        drain(&broker, cfg.shutdown_drain).await;
        let clients = broker.disconnect_all(ferrite_mqtt::packet::reason::SERVER_SHUTTING_DOWN);
        tracing::info!(clients, "shutting down: disconnecting clients");
        // Give the connection actors a moment to flush their DISCONNECT.
        tokio::time::sleep(std::time::Duration::from_millis(if clients > 0 { 300 } else { 0 })).await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), http_stopped).await;
        anyhow::Ok(())
    })?;
    // After the runtime and its servers are gone, so that this is the last line.
    drop(system);
    tracing::info!("stopped");
    Ok(())
}

/// Keeps the cluster's replicated access keys in line with this node's credentials file:
/// its keys are published, and a key that leaves the file is revoked on every node. Looks
/// again every 2 s (the file is how operators create and delete keys).
async fn publish_access_keys(services: Arc<crate::services::Services>, path: std::path::PathBuf) {
    let me = services.broker.cluster.node_id;
    let mut before = None;
    let mut warned = false;
    loop {
        match crate::credentials::file_keys(&path) {
            Ok(now) => {
                let commands = services.meta.state().access_keys.reconcile(me, &now, before.as_ref());
                let mut done = true;
                for command in commands {
                    let what = match &command {
                        crate::access_keys::Command::Put { id, .. } => format!("publish {id}"),
                        crate::access_keys::Command::Revoke { id } => format!("revoke {id}"),
                    };
                    if let Err(e) = crate::meta::propose(&services.meta, crate::meta::Command::AccessKey(command)).await
                    {
                        done = false;
                        if !std::mem::replace(&mut warned, true) {
                            tracing::warn!(error = %e, change = what, "publishing this node's access keys to the cluster failed; retrying");
                        }
                    }
                }
                if done {
                    warned = false;
                    before = Some(now);
                }
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot read the credentials file to publish its keys"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// Waits, at most `limit`, until no message is queued or unacknowledged for a connected
/// client and no rule action has work left, saying what it waits for every second.
async fn drain(broker: &crate::broker::Broker, limit: std::time::Duration) {
    let started = std::time::Instant::now();
    let mut said = None;
    loop {
        let (deliveries, actions) = (broker.deliveries_pending(), crate::rules::actions::jobs_pending());
        if deliveries == 0 && actions == 0 {
            if said.is_some() {
                tracing::info!(
                    waited_ms = started.elapsed().as_millis() as u64,
                    "drained: every delivery acknowledged and every rule action done"
                );
            }
            return;
        }
        if started.elapsed() >= limit {
            tracing::warn!(
                deliveries,
                actions,
                limit_secs = limit.as_secs(),
                "stopping with work left: persistent sessions keep their messages in storage, the rest is lost"
            );
            return;
        }
        if said.is_none_or(|at: std::time::Instant| at.elapsed() >= std::time::Duration::from_secs(1)) {
            tracing::info!(
                deliveries,
                actions,
                "draining before stop: messages awaiting acknowledgement and rule actions under way"
            );
            said = Some(std::time::Instant::now());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The node's handlers for SIGTERM and SIGHUP (SIGHUP would otherwise end the process
/// without a word), installed once the node is about to say it is listening.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals { term: signal(SignalKind::terminate()).ok(), hangup: signal(SignalKind::hangup()).ok() }
    }

    /// Waits for SIGINT or SIGTERM, running `on_hangup` for every SIGHUP meanwhile.
    async fn wait_for_shutdown(mut self, on_hangup: impl Fn()) {
        let (Some(term), Some(hangup)) = (self.term.as_mut(), self.hangup.as_mut()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = term.recv() => return,
                _ = hangup.recv() => on_hangup(),
            }
        }
    }
}
