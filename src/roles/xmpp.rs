//! The `xmpp` role: chat and signaling over TCP (`--xmpp-addr`) and WebSocket (`/ws` on
//! the HTTP and HTTPS listeners).

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use control_api::ControlPlane;
use prometheus_client::registry::Registry;
use signaling::XmppConfig;

use super::{Running, Shutdown};
use crate::config::Settings;

/// Binds the TCP listener and builds the `/ws` routes; the api role serves those.
/// STARTTLS uses the HTTPS listener's certificate.
pub async fn start(
    settings: &Settings,
    certificate: &super::api::Certificate,
    control: ControlPlane,
    registry: &mut Registry,
    shutdown: Shutdown,
) -> anyhow::Result<(Running, Router)> {
    let tls =
        axum_server::tls_rustls::RustlsConfig::from_pem_file(&certificate.cert, &certificate.key)
            .await
            .with_context(|| format!("loading {} for XMPP STARTTLS", certificate.cert.display()))?;
    let config = XmppConfig {
        tls: Some(tls.get_inner()),
        require_tls: settings.xmpp_require_tls,
        // 0 switches the limit off (load tests); the bucket then never runs dry.
        stanza_rate: match settings.xmpp_stanza_rate {
            0 => u32::MAX,
            rate => rate,
        },
        stanza_burst: match settings.xmpp_stanza_rate {
            0 => u32::MAX,
            rate => rate.saturating_mul(4),
        },
        calls: signaling::core::calls::table::CallLimits {
            max_opponents: settings.call_max_opponents,
            ..Default::default()
        },
        ..XmppConfig::default()
    };
    let ctx = signaling::context(
        control.clone(),
        settings.xmpp_domain.clone(),
        config,
        registry,
    );
    // Incoming calls for offline users become VoIP pushes through the push module.
    ctx.calls.set_voip_pusher(std::sync::Arc::new(
        control_api::domain::calls::PushVoipPusher::new(control),
    ));
    let listener = tokio::net::TcpListener::bind(settings.xmpp_addr)
        .await
        .with_context(|| format!("binding XMPP listener {}", settings.xmpp_addr))?;
    let addr: SocketAddr = listener.local_addr()?;
    let routes = signaling::driver::websocket::routes(ctx.clone());
    let task = tokio::spawn(async move {
        signaling::driver::tcp::serve(listener, ctx, shutdown.wait()).await;
        Ok(())
    });
    let running = Running {
        role: "xmpp",
        banner: vec![
            ("XMPP (TCP)".into(), super::api::reachable(addr).to_string()),
            (
                "XMPP STARTTLS".into(),
                if settings.xmpp_require_tls {
                    "required"
                } else {
                    "offered"
                }
                .into(),
            ),
            ("XMPP domain".into(), settings.xmpp_domain.clone()),
        ],
        task,
    };
    Ok((running, routes))
}
