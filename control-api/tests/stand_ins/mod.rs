//! Loopback stand-ins of the push providers, shared by `tests/fcm.rs`, `tests/apns.rs` and
//! the binary's end-to-end test (`tests/push_providers.rs` at the workspace root).

pub mod apns;
pub mod fcm;
