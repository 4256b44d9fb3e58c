//! Switchboard's control plane: the QuickBlox REST API over a pluggable store.
//!
//! Three layers, dependencies pointing down:
//! - [`http`]: axum routes translating QuickBlox wire shapes (form bodies, `QB-Token`,
//!   `{"errors": ...}`) into domain calls. Nothing else imports it.
//! - [`domain`]: plain services (applications, sessions, users) over a [`Store`], with an
//!   injected [`Clock`] so token expiry is testable without sleeping. The XMPP server uses
//!   this layer directly, never the HTTP one.
//! - [`store`]: the [`Store`] trait and its SQL implementation (SQLite by default,
//!   PostgreSQL for scale-out; one schema, migrations for both).
//! - [`storage`]: where blob bytes live (local files, or an S3-compatible object store).
//! - [`push`]: push provider clients (FCM HTTP v1, APNs over HTTP/2) and their router.
//!
//! Out of scope here: listeners, TLS and process lifecycle, which belong to the binary.

pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod push;
pub mod storage;
pub mod store;

pub use config::ControlConfig;
pub use domain::clock::{Clock, ManualClock, SystemClock};
pub use domain::{ControlPlane, DomainError};
pub use metrics::ControlMetrics;
pub use store::{open_store, Store, StoreError};
