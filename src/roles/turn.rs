//! The `turn` role: the TURN relay on `--turn-addr` (UDP and TCP) and `--turn-tls-addr`
//! (TLS), admitting clients with TURN REST API credentials the control plane mints from
//! the same shared secret.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use control_api::domain::ice::IceConfig;
use prometheus_client::registry::Registry;
use turn_relay::{TlsListener, TurnConfig, TurnMetrics, TurnServer};

use super::{Running, Shutdown};
use crate::config::Settings;

/// Where the relay listens once bound (port 0 resolved).
#[derive(Debug, Clone, Copy)]
pub struct TurnAddrs {
    pub listen: SocketAddr,
    pub tls: Option<SocketAddr>,
}

/// The REST API shared secret: configured, or random and kept in DATA_DIR/turn-secret so
/// restarts (and other processes on the same data dir) agree on it.
pub fn secret(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &settings.turn.secret {
        anyhow::ensure!(!secret.is_empty(), "turn_secret must not be empty");
        return Ok(secret.clone().into_bytes());
    }
    let path = settings.store.data_dir.join("turn-secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if !existing.is_empty() {
            return Ok(existing.as_bytes().to_vec());
        }
    }
    let secret = control_api::domain::ids::credential(40);
    write_secret(&path, &secret)?;
    Ok(secret.into_bytes())
}

fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    Ok(())
}

/// The ICE servers `GET /calls/ice_servers.json` announces: this process's relay if it
/// runs one, else the configured addresses (a control-plane-only node).
pub fn ice_config(settings: &Settings, secret: Vec<u8>, bound: Option<TurnAddrs>) -> IceConfig {
    let turn = &settings.turn;
    let listen = bound.map_or(turn.addr, |b| b.listen);
    let tls = bound.map_or(turn.tls_addr, |b| b.tls);
    let host = turn
        .public_host
        .clone()
        .unwrap_or_else(|| url_host(super::api::reachable(listen)));
    let port = listen.port();
    let mut turn_urls = vec![
        format!("turn:{host}:{port}?transport=udp"),
        format!("turn:{host}:{port}?transport=tcp"),
    ];
    if let Some(tls) = tls {
        turn_urls.push(format!("turns:{host}:{}?transport=tcp", tls.port()));
    }
    IceConfig {
        secret,
        stun_urls: vec![format!("stun:{host}:{port}")],
        turn_urls,
        credential_ttl: turn.credential_ttl,
    }
}

fn url_host(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    }
}

/// Binds the relay, registers its metrics and runs it until `shutdown`.
pub fn start(
    settings: &Settings,
    secret: &[u8],
    registry: &mut Registry,
    shutdown: Shutdown,
) -> anyhow::Result<(Running, TurnAddrs)> {
    let turn = &settings.turn;
    let mut config = TurnConfig::new(turn.addr, Some(secret.to_vec()));
    config.realm = turn.realm.clone();
    config.static_users = turn.static_users.clone();
    config.relay_ports = turn.relay_ports;
    config.relay_ip = turn.relay_ip;
    config.allow_peers = turn.allow_peers.clone();
    config.deny_peers = turn.deny_peers.clone();
    config.user_quota = turn.user_quota;
    config.total_quota = turn.total_quota;
    config.max_bandwidth = turn.max_bandwidth;
    config.coalesce = turn.coalesce;
    if let Some(workers) = turn.workers {
        config.workers = workers;
    }
    if let Some(addr) = turn.tls_addr {
        let (cert, key) = match &turn.tls {
            Some(files) => files.clone(),
            None => {
                let c = super::api::certificate(settings)?;
                (c.cert, c.key)
            }
        };
        config.tls = Some(TlsListener { addr, cert, key });
    }
    let metrics = TurnMetrics::register(registry);
    let server = TurnServer::start(config, metrics)
        .with_context(|| format!("starting the TURN relay on {}", turn.addr))?;
    server.register_kernel_drops(registry);
    let addrs = TurnAddrs {
        listen: server.udp_addr,
        tls: server.tls_addr,
    };
    let task = tokio::spawn(async move {
        shutdown.wait().await;
        tokio::task::spawn_blocking(move || server.stop())
            .await
            .context("stopping the TURN relay")?;
        Ok(())
    });
    let shown = super::api::reachable(addrs.listen);
    let mut banner = vec![
        ("TURN (UDP)".to_string(), shown.to_string()),
        ("TURN (TCP)".to_string(), shown.to_string()),
    ];
    if let Some(tls) = addrs.tls {
        banner.push(("TURN (TLS)".into(), super::api::reachable(tls).to_string()));
    }
    banner.push(("TURN realm".into(), settings.turn.realm.clone()));
    Ok((
        Running {
            role: "turn",
            banner,
            task,
        },
        addrs,
    ))
}
