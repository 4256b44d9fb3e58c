//! Switchboard's XMPP server: QuickBlox chat and signaling over TCP (RFC 6120) and
//! WebSocket (RFC 7395).
//!
//! - [`core::framing`] turns bytes into stream events with rxml (no DTDs, no entities).
//! - [`core::session::Session`] handles one stream: SASL PLAIN with a session token or
//!   password, resource binding, then messages, presence and iqs. Drivers feed it events
//!   and write what lands on the connection's outbound queue.
//! - [`core::router::Router`] knows which resources and room occupants are online.
//! - Messages, receipts and dialogs go through `control_api`'s domain services, so XMPP
//!   and REST share one history.
//!
//! Out of scope so far: MUC history on join, roster presence, clustering across nodes.

pub mod call_metrics;
pub mod config;
pub mod core;
pub mod driver;
pub mod metrics;

use std::sync::Arc;

use control_api::ControlPlane;
use prometheus_client::registry::Registry;

pub use config::XmppConfig;
pub use core::context::XmppContext;

/// Builds the shared context and registers metrics; the role then starts the drivers and
/// hands [`driver::websocket::routes`] to the HTTP listeners.
pub fn context(
    control: ControlPlane,
    domain: String,
    config: XmppConfig,
    registry: &mut Registry,
) -> Arc<XmppContext> {
    let calls = core::calls::Calls::new(
        config.calls.clone(),
        call_metrics::CallMetrics::register(registry),
    );
    let ctx = Arc::new(XmppContext {
        control: control.clone(),
        router: core::router::Router::new(),
        domain,
        config,
        metrics: metrics::XmppMetrics::register(registry),
        calls,
        resume: core::resume::ResumeTable::default(),
    });
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(driver::sweep_calls(Arc::downgrade(&ctx)));
    }
    control.set_chat_notifier(Arc::new(core::notifier::XmppNotifier::new(ctx.clone())));
    ctx
}
