//! Domain services of the control plane: plain Rust over a [`Store`] and a [`Clock`].
//!
//! No axum, no SQL: the REST layer and the XMPP server both call [`ControlPlane`].

pub mod apps;
pub mod calls;
pub mod chat;
pub mod clock;
pub mod conference;
pub mod content;
pub mod data;
pub mod error;
pub mod ice;
pub mod ids;
pub mod model;
pub mod password;
pub mod push;
pub mod sessions;
pub mod signature;
pub mod store;
mod ttl_cache;
pub mod user_query;
pub mod users;

use std::sync::{Arc, OnceLock};

pub use clock::Clock;
pub use error::DomainError;
pub use store::Store;

use calls::CallStore;
use chat::{ChatNotifier, ChatStore};
use content::{BlobStorage, ContentStore};
use data::DataStore;
use model::{App, AppId, Session};
use push::{PushSender, PushStore};
use ttl_cache::TtlCache;

use crate::config::ControlConfig;
use crate::metrics::PushCounters;

/// Cached sessions at most (arbitrary: a few hundred bytes each, so a few tens of MiB at
/// worst; more distinct sessions than this within one cache TTL is far beyond one node).
const SESSION_CACHE_CAPACITY: usize = 100_000;
/// Cached applications at most (arbitrary: far more tenants than one deployment serves).
const APP_CACHE_CAPACITY: usize = 10_000;

/// The control plane's services, cheap to clone and shared by every request.
#[derive(Clone)]
pub struct ControlPlane {
    store: Arc<dyn Store>,
    /// The chat tables: the same database as `store`, behind its own trait.
    chat: Arc<dyn ChatStore>,
    /// Blob metadata: the same database again, behind its own trait.
    content: Arc<dyn ContentStore>,
    /// Blob bytes (local files or an object store); see [`ControlPlane::with_blob_storage`].
    blobs: Arc<dyn BlobStorage>,
    /// Custom-object classes and records: the same database again.
    data: Arc<dyn DataStore>,
    /// Push subscriptions and events: the same database again.
    push: Arc<dyn PushStore>,
    /// The provider clients (FCM, APNs); see [`ControlPlane::with_push_sender`].
    push_sender: Arc<dyn PushSender>,
    /// Deliveries counted where they start (REST, scheduler, chat, calls).
    push_counters: PushCounters,
    /// Finished calls' summaries: the same database again.
    calls: Arc<dyn CallStore>,
    clock: Arc<dyn Clock>,
    config: Arc<ControlConfig>,
    /// Resolved `QB-Token`s by token, shared by the clones (see [`ttl_cache`]).
    sessions: Arc<TtlCache<String, Session>>,
    /// Applications by id, for session creation (see [`ttl_cache`]).
    apps: Arc<TtlCache<AppId, App>>,
    /// Set once by the XMPP role (see [`ControlPlane::set_chat_notifier`]).
    chat_notifier: Arc<OnceLock<Arc<dyn ChatNotifier>>>,
}

impl ControlPlane {
    pub fn new<S: Store + ChatStore + CallStore + ContentStore + DataStore + PushStore>(
        store: Arc<S>,
        clock: Arc<dyn Clock>,
        config: ControlConfig,
    ) -> Self {
        Self {
            store: store.clone(),
            chat: store.clone(),
            content: store.clone(),
            data: store.clone(),
            push: store.clone(),
            push_sender: Arc::new(push::NoPushSender),
            push_counters: PushCounters::default(),
            blobs: Arc::new(content::storage::NoBlobStorage),
            calls: store,
            clock,
            sessions: Arc::new(TtlCache::new(
                config.session_cache_ttl,
                SESSION_CACHE_CAPACITY,
            )),
            apps: Arc::new(TtlCache::new(config.session_cache_ttl, APP_CACHE_CAPACITY)),
            config: Arc::new(config),
            chat_notifier: Arc::new(OnceLock::new()),
        }
    }

    /// Where blob bytes go; without this, content uploads and downloads fail with 503.
    pub fn with_blob_storage(mut self, blobs: Arc<dyn BlobStorage>) -> Self {
        self.blobs = blobs;
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn config(&self) -> &ControlConfig {
        &self.config
    }

    pub fn push_counters(&self) -> &PushCounters {
        &self.push_counters
    }

    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }
}
