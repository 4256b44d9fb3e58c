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

pub use error::ApiError;
pub use router::{router, service};
pub use state::AppState;
