//! The `sfu` role: the SFU's worker threads (UDP media, `--sfu-addr`) and the Janus
//! WebSocket (`/janus` on the HTTP and HTTPS listeners, served by the api role).

use control_api::domain::conference::ConferenceConfig;
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

/// What the control plane needs to admit users to this SFU: the grant secret (shared,
/// never the database) and the Janus URL clients connect to.
pub fn conference_config(
    settings: &Settings,
    public_api_url: &str,
) -> anyhow::Result<ConferenceConfig> {
    let janus_url = match public_api_url.strip_prefix("https://") {
        Some(host) => format!("wss://{host}/janus"),
        None => format!(
            "ws://{}/janus",
            public_api_url.trim_start_matches("http://")
        ),
    };
    Ok(ConferenceConfig {
        grant_secret: grant_secret(
            settings.sfu.grant_secret.as_deref(),
            &settings.store.data_dir,
        )?,
        grant_ttl: GRANT_TTL,
        janus_url,
    })
}

/// Joining takes seconds; a grant outliving that only widens what a leaked one allows.
const GRANT_TTL: std::time::Duration = std::time::Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use control_api::domain::conference::{mint_grant, ConferenceRole};
    use sfu::grant::{GrantKey, GrantRole};

    #[test]
    fn grants_minted_by_the_control_plane_verify_in_the_sfu() {
        let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let token = mint_grant(
            b"shared",
            7,
            42,
            "dialog1",
            ConferenceRole::Subscriber,
            now,
            super::GRANT_TTL,
        );
        let grant = GrantKey::new(b"shared")
            .verify(&token, 1_800_000_000 + 10)
            .unwrap();
        assert_eq!(
            (grant.app, grant.user, grant.room.as_str()),
            (7, 42, "dialog1")
        );
        assert_eq!(grant.role, GrantRole::Subscriber);
        assert!(GrantKey::new(b"other")
            .verify(&token, 1_800_000_000)
            .is_err());
        assert!(GrantKey::new(b"shared")
            .verify(&token, 1_800_000_000 + 300)
            .is_err());
    }
}
