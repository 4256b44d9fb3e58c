//! The `sfu` role: the SFU's worker threads (UDP media, `--sfu-addr`) and the Janus
//! WebSocket (`/janus` on the HTTP and HTTPS listeners, served by the api role).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use prometheus_client::registry::Registry;
use sfu::driver::ws::{self, JanusState};
use sfu::grant::GrantKey;
use sfu::metrics::Metrics;

use super::{Running, Shutdown};
use crate::config::Settings;

/// File in the data dir holding the generated grant secret (hex).
const GRANT_KEY_FILE: &str = "sfu-grant.key";

/// Starts the workers and builds the `/janus` routes; the api role serves those.
pub fn start(
    settings: &Settings,
    registry: &mut Registry,
    shutdown: Shutdown,
) -> anyhow::Result<(Running, Router)> {
    let config = &settings.sfu.config;
    let secret = grant_secret(
        settings.sfu.grant_secret.as_deref(),
        &settings.store.data_dir,
    )?;
    let metrics = Metrics::register(registry);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (workers, threads) = sfu::driver::spawn_workers(config, metrics.clone(), stop_rx)?;
    let state = Arc::new(JanusState {
        workers: workers.clone(),
        grants: GrantKey::new(&secret),
        require_grant: config.require_grant,
        session_timeout: config.session_timeout,
        clock: ws::system_clock(),
        metrics,
    });
    let routes = ws::router(state);
    let task = tokio::spawn(async move {
        shutdown.wait().await;
        let _ = stop_tx.send(true);
        tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await?;
        Ok(())
    });
    let ports: Vec<String> = workers
        .addrs()
        .iter()
        .map(|a| a.port().to_string())
        .collect();
    Ok((
        Running {
            role: "sfu",
            banner: vec![
                (
                    "SFU media (UDP)".into(),
                    format!("{} ports {}", config.public_ip, ports.join(",")),
                ),
                (
                    "SFU signaling".into(),
                    "/janus (Janus videoroom API)".into(),
                ),
            ],
            task,
        },
        routes,
    ))
}

/// The grant secret: configured, else read from (or generated into) the data dir, so
/// `cargo run` needs no configuration and restarts keep issued grants valid.
pub fn grant_secret(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = configured {
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join(GRANT_KEY_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let text = text.trim();
        anyhow::ensure!(text.len() >= 32, "{} is too short", path.display());
        return Ok(text.as_bytes().to_vec());
    }
    let secret = format!(
        "{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    );
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(text.as_bytes())
    }
    #[cfg(not(unix))]
    std::fs::write(path, text)
}
