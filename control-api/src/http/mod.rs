//! The QuickBlox REST API over axum.
//!
//! Every route answers QuickBlox's shapes: `.json` paths, form or JSON bodies flattened to
//! `key[sub]` parameters, `QB-Token` sessions and `{"errors": ...}` bodies.

mod error;
mod extract;
mod router;
mod routes;
mod state;
mod wire;
mod wire_chat;
mod wire_content;

use axum::Router;
use prometheus_client::registry::Registry;

pub use error::ApiError;
pub use router::{router, service};
pub use state::AppState;

use crate::domain::ControlPlane;
use crate::metrics::ControlMetrics;

/// The complete REST face: registers the control plane's metrics into `registry` (where the
/// process's other roles registered theirs) and serves it at `/metrics`.
pub fn app(control: ControlPlane, mut registry: Registry) -> Router {
    let metrics = ControlMetrics::register(&mut registry, control.push_counters().clone());
    let state = AppState::new(control, metrics, registry);
    service(router(state))
}
