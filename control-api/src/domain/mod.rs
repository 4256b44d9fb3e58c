//! Domain services of the control plane: plain Rust over a [`Store`] and a [`Clock`].
//!
//! No axum, no SQL: the REST layer and the XMPP server both call [`ControlPlane`].

pub mod apps;
pub mod clock;
pub mod error;
pub mod ids;
pub mod model;
pub mod password;
pub mod sessions;
pub mod signature;
pub mod store;
pub mod user_query;
pub mod users;

use std::sync::Arc;

pub use clock::Clock;
pub use error::DomainError;
pub use store::Store;

use crate::config::ControlConfig;

/// The control plane's services, cheap to clone and shared by every request.
#[derive(Clone)]
pub struct ControlPlane {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: Arc<ControlConfig>,
}

impl ControlPlane {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: ControlConfig) -> Self {
        Self {
            store,
            clock,
            config: Arc::new(config),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn config(&self) -> &ControlConfig {
        &self.config
    }

    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }
}
