//! One module per resource, each exporting `fn routes() -> Router<AppState>`.

pub mod account;
pub mod ops;
pub mod session;
pub mod users;
