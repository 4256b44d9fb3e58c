//! The `api` role: the REST control plane on the plain-HTTP and TLS listeners, plus any
//! routes other roles hand in (their WebSocket faces).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;

use anyhow::Context;
use axum::Router;
// TCP_NODELAY on every accepted connection: WebSocket faces (/janus, /ws) send small
// frames, which Nagle's algorithm would hold until the peer's delayed ACK (~40 ms each).
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::Handle;
use control_api::ControlPlane;
use prometheus_client::registry::Registry;

use super::{Running, Shutdown};
use crate::config::Settings;
use crate::tls;

/// The listeners, bound before anything else starts so the banner can print real ports.
pub struct Listeners {
    pub http: TcpListener,
    pub https: TcpListener,
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
}

pub fn bind(settings: &Settings) -> anyhow::Result<Listeners> {
    let http = bind_one(settings.http_addr)?;
    let https = bind_one(settings.https_addr)?;
    Ok(Listeners {
        http_addr: http.local_addr()?,
        https_addr: https.local_addr()?,
        http,
        https,
    })
}

fn bind_one(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// An address a local client can dial: a wildcard bind is reachable on loopback.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
}

/// The certificate the TLS listener serves (for the banner: where it is, was it generated).
pub struct Certificate {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub generated: bool,
}

pub fn certificate(settings: &Settings) -> anyhow::Result<Certificate> {
    let (cert, key, generated) = tls::certificate(settings.tls.clone(), &settings.store.data_dir)?;
    Ok(Certificate {
        cert,
        key,
        generated,
    })
}

/// Serves the REST API and `extra` routes on both listeners until `shutdown` fires, then
/// lets in-flight requests finish within the grace period.
pub async fn start(
    settings: &Settings,
    listeners: Listeners,
    certificate: &Certificate,
    control: ControlPlane,
    registry: Registry,
    extra: Vec<Router>,
    shutdown: Shutdown,
) -> anyhow::Result<Running> {
    // Scheduled push events; several API nodes may run it: deliveries are claimed in the store.
    let scheduler = tokio::spawn(control.clone().run_push_scheduler(shutdown.clone().wait()));
    let mut app = control_api::http::app(control, registry);
    for routes in extra {
        app = app.merge(routes);
    }
    let rustls = RustlsConfig::from_pem_file(&certificate.cert, &certificate.key)
        .await
        .with_context(|| {
            format!(
                "loading TLS certificate {} and key {}",
                certificate.cert.display(),
                certificate.key.display()
            )
        })?;
    let http_handle = Handle::new();
    let https_handle = Handle::new();
    let http = tokio::spawn(
        axum_server::from_tcp(listeners.http)
            .acceptor(NoDelayAcceptor::new())
            .handle(http_handle.clone())
            .serve(
                app.clone()
                    .into_make_service_with_connect_info::<SocketAddr>(),
            ),
    );
    let https = tokio::spawn(
        axum_server::from_tcp(listeners.https)
            .acceptor(RustlsAcceptor::new(rustls).acceptor(NoDelayAcceptor::new()))
            .handle(https_handle.clone())
            .serve(app.into_make_service_with_connect_info::<SocketAddr>()),
    );
    let grace = settings.shutdown_grace;
    let task = tokio::spawn(async move {
        shutdown.wait().await;
        http_handle.graceful_shutdown(Some(grace));
        https_handle.graceful_shutdown(Some(grace));
        http.await?.context("HTTP listener")?;
        https.await?.context("HTTPS listener")?;
        scheduler.await.context("push scheduler")?;
        Ok(())
    });
    let http = reachable(listeners.http_addr);
    let https = reachable(listeners.https_addr);
    Ok(Running {
        role: "api",
        banner: vec![
            ("REST API (HTTP)".into(), format!("http://{http}")),
            ("REST API (HTTPS)".into(), format!("https://{https}")),
            ("metrics".into(), format!("http://{http}/metrics")),
            ("health".into(), format!("http://{http}/health")),
        ],
        task,
    })
}
