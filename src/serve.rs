//! `switchboard serve`: opens the store, binds every face, prints where they listen, and
//! shuts down gracefully on SIGINT/SIGTERM.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;
use axum_server::Handle;
use control_api::domain::model::App;
use control_api::{open_store, ControlConfig, ControlPlane, Store, SystemClock};
use prometheus_client::registry::Registry;

use crate::cli::ServeArgs;
use crate::config::Settings;
use crate::{telemetry, tls};

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
    let store: Arc<dyn Store> = Arc::new(store);

    let http_listener = bind(settings.http_addr)?;
    let https_listener = bind(settings.https_addr)?;
    let http_addr = http_listener.local_addr()?;
    let https_addr = https_listener.local_addr()?;

    let public_api_url = settings
        .public_api_url
        .clone()
        .unwrap_or_else(|| format!("https://{}", reachable(https_addr)));
    let config = ControlConfig {
        session_ttl: settings.session_ttl,
        signature_max_skew: settings.signature_max_skew,
        public_api_url: public_api_url.clone(),
        chat_endpoint: settings.xmpp_domain.clone(),
    };
    let control = ControlPlane::new(store.clone(), Arc::new(SystemClock), config);
    let (default_app, created) = control.ensure_default_app().await?;

    let app = control_api::http::app(control.clone(), Registry::default());

    let (cert, key, generated) = tls::certificate(settings.tls.clone(), data_dir)?;
    let rustls = RustlsConfig::from_pem_file(&cert, &key)
        .await
        .with_context(|| {
            format!(
                "loading TLS certificate {} and key {}",
                cert.display(),
                key.display()
            )
        })?;

    let http_handle = Handle::new();
    let https_handle = Handle::new();
    let http_server = tokio::spawn(
        axum_server::from_tcp(http_listener)
            .handle(http_handle.clone())
            .serve(app.clone().into_make_service()),
    );
    let https_server = tokio::spawn(
        axum_server::from_tcp_rustls(https_listener, rustls)
            .handle(https_handle.clone())
            .serve(app.into_make_service()),
    );
    let purger = tokio::spawn(purge_sessions(control.clone()));

    print_banner(&Banner {
        http_addr,
        https_addr,
        cert: &cert,
        generated,
        store: &settings.store.display_store(),
        public_api_url: &public_api_url,
        app: &default_app,
        app_created: created,
    });
    tracing::info!(%http_addr, %https_addr, "switchboard ready");

    shutdown_signal().await;
    tracing::info!(grace = ?settings.shutdown_grace, "shutting down: finishing in-flight requests");
    http_handle.graceful_shutdown(Some(settings.shutdown_grace));
    https_handle.graceful_shutdown(Some(settings.shutdown_grace));
    purger.abort();
    http_server.await?.context("HTTP listener")?;
    https_server.await?.context("HTTPS listener")?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// An address a local client can dial: a wildcard bind is reachable on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
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

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}

struct Banner<'a> {
    http_addr: SocketAddr,
    https_addr: SocketAddr,
    cert: &'a std::path::Path,
    generated: bool,
    store: &'a str,
    public_api_url: &'a str,
    app: &'a App,
    app_created: bool,
}

/// The startup banner on stdout: every face's URL and the default app's credentials.
fn print_banner(b: &Banner<'_>) {
    let http = reachable(b.http_addr);
    let https = reachable(b.https_addr);
    let cert_note = if b.generated {
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
    println!("  REST API (HTTP)   http://{http}");
    println!("  REST API (HTTPS)  https://{https}");
    println!("  announced API     {}", b.public_api_url);
    println!("  metrics           http://{http}/metrics");
    println!("  health            http://{http}/health");
    println!("  TLS certificate   {}  ({cert_note})", b.cert.display());
    println!("  store             {}", b.store);
    println!("Default application ({app_note})");
    println!("  application id    {}", b.app.id);
    println!("  auth key          {}", b.app.auth_key);
    println!("  auth secret       {}", b.app.auth_secret);
    println!("  account key       {}", b.app.account_key);
    println!("Switchboard ready");
}
