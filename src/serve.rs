//! `switchboard serve`: opens the store, starts every configured role, prints where each
//! face listens, and shuts down gracefully on SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use control_api::config::ContentConfig;
use control_api::domain::model::App;
use control_api::push::{self, ProviderSender};
use control_api::{open_store, ControlConfig, ControlPlane, Store, SystemClock};
use prometheus_client::registry::Registry;

use crate::cli::ServeArgs;
use crate::config::{PushSettings, Settings};
use crate::roles::{self, Role, Running, Shutdown};
use crate::telemetry;

/// How often expired sessions are removed from the store.
const SESSION_PURGE_INTERVAL: Duration = Duration::from_secs(600);

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(&args)?;
    telemetry::init(settings.log_format, "info");
    // ring: pure Rust + asm, no cmake/nasm needed to build, unlike aws-lc.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let data_dir = &settings.store.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let store = open_store(&settings.store.store, data_dir)
        .await
        .with_context(|| format!("opening store {}", settings.store.display_store()))?;
    let store = Arc::new(store);

    let listeners = roles::api::bind(&settings)?;
    let public_api_url = settings
        .public_api_url
        .clone()
        .unwrap_or_else(|| format!("https://{}", roles::api::reachable(listeners.https_addr)));
    let (stop, shutdown) = Shutdown::new();
    let mut registry = Registry::default();
    let mut running: Vec<Running> = Vec::new();
    // The TURN relay binds first: the ICE servers the control plane announces name its
    // real ports. It shares only the REST secret with the control plane.
    let turn_secret = roles::turn::secret(&settings)?;
    let turn_addrs = if settings.has_role(Role::Turn) {
        let (turn, addrs) =
            roles::turn::start(&settings, &turn_secret, &mut registry, shutdown.clone())?;
        running.push(turn);
        Some(addrs)
    } else {
        None
    };
    let config = ControlConfig {
        session_ttl: settings.session_ttl,
        session_cache_ttl: settings.session_cache_ttl,
        signature_max_skew: settings.signature_max_skew,
        public_api_url: public_api_url.clone(),
        chat_endpoint: settings.xmpp_domain.clone(),
        ice: Some(roles::turn::ice_config(&settings, turn_secret, turn_addrs)),
        conference: Some(roles::sfu::conference_config(&settings, &public_api_url)?),
        content: ContentConfig {
            max_blob_bytes: settings.blob_max_bytes,
            upload_ttl: settings.blob_upload_ttl,
        },
        ..ControlConfig::default()
    };
    let blobs = control_api::storage::open_blob_storage(&settings.blob_storage, data_dir)
        .map_err(anyhow::Error::msg)?;
    let blobs_description = blobs.describe();
    let push = push_providers(&settings.push).map_err(anyhow::Error::msg)?;
    let push_description = push.describe();
    let control = ControlPlane::new(store.clone(), Arc::new(SystemClock), config)
        .with_blob_storage(blobs)
        .with_push_sender(Arc::new(push));
    let (default_app, created) = control.ensure_default_app().await?;
    let certificate = roles::api::certificate(&settings)?;

    // Roles with WebSocket faces register their metrics into `registry` and hand their
    // routes to the api role here, before it starts.
    let mut extra_routes = Vec::new();
    if settings.has_role(Role::Xmpp) {
        let (xmpp, routes) = roles::xmpp::start(
            &settings,
            &certificate,
            control.clone(),
            &mut registry,
            shutdown.clone(),
        )
        .await?;
        running.push(xmpp);
        extra_routes.push(routes);
    }
    if settings.has_role(Role::Sfu) {
        let (sfu, routes) = roles::sfu::start(&settings, &mut registry, shutdown.clone())?;
        running.push(sfu);
        extra_routes.push(routes);
    }
    if settings.has_role(Role::Api) {
        running.push(
            roles::api::start(
                &settings,
                listeners,
                &certificate,
                control.clone(),
                registry,
                extra_routes,
                shutdown.clone(),
            )
            .await?,
        );
    }
    let purger = tokio::spawn(purge_sessions(control.clone()));

    let shutdown_requested = shutdown_signal()?;
    print_banner(&Banner {
        running: &running,
        certificate: &certificate,
        store: &settings.store.display_store(),
        blobs: &blobs_description,
        push: &push_description,
        public_api_url: &public_api_url,
        app: &default_app,
        app_created: created,
    });
    let names: Vec<_> = running.iter().map(|r| r.role).collect();
    tracing::info!(roles = ?names, "switchboard ready");

    shutdown_requested.await;
    tracing::info!(grace = ?settings.shutdown_grace, "shutting down: finishing in-flight work");
    let _ = stop.send(true);
    purger.abort();
    let mut failed = None;
    for role in running {
        match role.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed = Some(e.context(format!("role {}", role.role))),
            Err(e) => failed = Some(anyhow::Error::new(e).context(format!("role {}", role.role))),
        }
    }
    store.close().await;
    match failed {
        Some(e) => Err(e),
        None => {
            tracing::info!("stopped");
            Ok(())
        }
    }
}

/// The push provider clients the settings name; key files are read and checked now, so a
/// bad one stops the start rather than the first push.
fn push_providers(settings: &PushSettings) -> Result<ProviderSender, String> {
    let roots = match &settings.ca_file {
        Some(path) => push::load_roots(path).map_err(|e| format!("push_ca_file: {e}"))?,
        None => Vec::new(),
    };
    let fcm = match &settings.fcm {
        Some((account, endpoint)) => {
            let config = push::FcmConfig::from_file(account, endpoint.clone())
                .map_err(|e| format!("push_fcm_service_account: {e}"))?;
            let sender = push::FcmSender::with_roots(config, &roots)
                .map_err(|e| format!("push_fcm_service_account {}: {e}", account.display()))?;
            Some(sender)
        }
        None => None,
    };
    let apns = match &settings.apns {
        Some(a) => {
            let config = push::ApnsConfig::from_file(
                &a.key,
                &a.key_id,
                &a.team_id,
                a.topic.clone(),
                a.endpoint.clone(),
            )
            .map_err(|e| format!("push_apns_key: {e}"))?;
            let sender = push::ApnsSender::new(config, &roots)
                .map_err(|e| format!("push_apns_key {}: {e}", a.key.display()))?;
            Some(sender)
        }
        None => None,
    };
    Ok(ProviderSender::new(fcm, apns))
}

async fn purge_sessions(control: ControlPlane) {
    let mut ticks = tokio::time::interval(SESSION_PURGE_INTERVAL);
    loop {
        ticks.tick().await;
        match control.purge_expired_sessions().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(sessions = n, "purged expired sessions"),
            Err(e) => tracing::warn!(error = %e, "purging expired sessions failed"),
        }
    }
}

/// Registers SIGINT and SIGTERM handlers now and returns the future that waits for either.
/// Registering before the banner matters: a supervisor (or test) that signals right after
/// "Switchboard ready" must get a graceful shutdown, not the default kill.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

struct Banner<'a> {
    running: &'a [Running],
    certificate: &'a roles::api::Certificate,
    store: &'a str,
    blobs: &'a str,
    push: &'a str,
    public_api_url: &'a str,
    app: &'a App,
    app_created: bool,
}

/// The startup banner on stdout: every face's URL and the default app's credentials.
/// Tests and scripts parse it: `label  value` lines, then `Switchboard ready` last.
fn print_banner(b: &Banner<'_>) {
    let cert_note = if b.certificate.generated {
        "generated, self-signed"
    } else {
        "trust it with NODE_EXTRA_CA_CERTS if self-signed"
    };
    let app_note = if b.app_created {
        "created now"
    } else {
        "existing"
    };
    println!("Switchboard {}", env!("CARGO_PKG_VERSION"));
    for role in b.running {
        for (label, value) in &role.banner {
            println!("  {label:<17} {value}");
        }
    }
    println!("  {:<17} {}", "announced API", b.public_api_url);
    println!(
        "  {:<17} {}  ({cert_note})",
        "TLS certificate",
        b.certificate.cert.display()
    );
    println!("  {:<17} {}", "store", b.store);
    println!("  {:<17} {}", "blob storage", b.blobs);
    println!("  {:<17} {}", "push", b.push);
    println!("Default application ({app_note})");
    println!("  {:<17} {}", "application id", b.app.id);
    println!("  {:<17} {}", "auth key", b.app.auth_key);
    println!("  {:<17} {}", "auth secret", b.app.auth_secret);
    println!("  {:<17} {}", "account key", b.app.account_key);
    println!("Switchboard ready");
}
