//! What every handler can reach.

use std::sync::Arc;

use prometheus_client::registry::Registry;

use crate::domain::ControlPlane;
use crate::metrics::ControlMetrics;

#[derive(Clone)]
pub struct AppState {
    pub control: ControlPlane,
    pub metrics: ControlMetrics,
    /// The process-wide registry `/metrics` encodes (other roles register into it too).
    pub registry: Arc<Registry>,
}
