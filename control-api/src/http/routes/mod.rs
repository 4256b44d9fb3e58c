//! One module per resource, each exporting `fn routes() -> Router<AppState>`.

pub mod account;
pub mod blobs;
pub mod call_history;
pub mod calls;
pub mod classes;
pub mod conference;
pub mod data;
pub mod dialogs;
pub mod messages;
pub mod ops;
pub mod push;
pub mod session;
pub mod users;
