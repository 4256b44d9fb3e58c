//! What every handler can reach.

use std::sync::Arc;

use prometheus_client::registry::Registry;

use crate::domain::ControlPlane;
use crate::metrics::ControlMetrics;

/// Cloned by every extractor and middleware of every request: one reference count, not
/// one per service and metric inside.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub control: ControlPlane,
    pub metrics: ControlMetrics,
    /// The process-wide registry `/metrics` encodes (other roles register into it too).
    pub registry: Registry,
}

impl AppState {
    pub fn new(control: ControlPlane, metrics: ControlMetrics, registry: Registry) -> Self {
        Self(Arc::new(Shared {
            control,
            metrics,
            registry,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
