//! Wires a node together: storage, broker core, listeners and the HTTP endpoint.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context as _;
use ferrite_cluster::Store;

use crate::broker::Broker;
use crate::config::NodeConfig;
use crate::metrics::Metrics;
use crate::server;

/// Runs a node until SIGINT/SIGTERM.
pub fn run(cfg: NodeConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data directory {}", cfg.data_dir.display()))?;
    let db_path = cfg.data_dir.join("db");
    let store =
        Arc::new(Store::open(&db_path).with_context(|| format!("cannot open storage at {}", db_path.display()))?);
    let metrics = Arc::new(Metrics::default());
    let broker = Broker::open(cfg.broker.clone(), store, metrics).context("cannot recover broker state")?;
    let (credentials, created) = crate::credentials::Credentials::load_or_create(&cfg.data_dir)?;
    broker.rules.start(&broker, cfg.data_dir.clone()).context("cannot start the rule runtime")?;
    crate::rules::api::run_api_rules(&broker);
    if let Some(dir) = &cfg.rules_dir {
        anyhow::ensure!(dir.is_dir(), "--rules-dir {}: no such directory", dir.display());
        crate::rules::reload::load_and_watch(&broker, dir.clone())?;
    }
    let system = actix_rt::System::new();
    system.block_on(async move {
        broker.arm_recovered_timers();
        let workers = server::Workers::start(cfg.workers);
        let mqtt = server::bind(cfg.mqtt_addr, "MQTT").await?;
        let ws = server::bind(cfg.ws_addr, "MQTT over WebSocket").await?;
        let http = std::net::TcpListener::bind(cfg.http_addr)
            .with_context(|| format!("cannot listen for HTTP on {}", cfg.http_addr))?;
        let (mqtt_local, ws_local, http_local) = (mqtt.local_addr()?, ws.local_addr()?, http.local_addr()?);
        let credentials_path = credentials.path.clone();
        let http_server = crate::http::serve(http, broker.clone(), credentials)?;
        actix_rt::spawn(server::serve_mqtt(mqtt, broker.clone(), workers.clone()));
        actix_rt::spawn(server::serve_ws(ws, broker.clone(), workers.clone()));
        actix_rt::spawn(http_server);
        tracing::warn!("authentication is not enabled yet: every client connects anonymously");
        tracing::info!(data_dir = %cfg.data_dir.display(), workers = cfg.workers, "node started");
        println!("listening mqtt={mqtt_local} ws={ws_local} http={http_local}");
        if created {
            println!("wrote a root access key for the HTTP API to {}", credentials_path.display());
        }
        println!(
            "use it with: AWS_SHARED_CREDENTIALS_FILE={} aws iot-data get-thing-shadow --endpoint-url http://{http_local} ...",
            credentials_path.display()
        );
        let _ = std::io::stdout().flush();
        wait_for_shutdown().await;
        let clients = broker.disconnect_all(crate::mqtt::packet::reason::SERVER_SHUTTING_DOWN);
        tracing::info!(clients, "shutting down: disconnecting clients");
        // Give the connection actors a moment to flush their DISCONNECT.
        tokio::time::sleep(std::time::Duration::from_millis(if clients > 0 { 300 } else { 0 })).await;
        anyhow::Ok(())
    })
}

async fn wait_for_shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
