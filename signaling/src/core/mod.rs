//! Protocol logic: framing, addressing, routing and per-stream handling.

pub mod address;
pub mod calls;
pub mod context;
pub mod extdisco;
pub mod framing;
pub(crate) mod messages;
pub(crate) mod muc;
pub mod notifier;
pub(crate) mod presence;
pub mod resume;
pub mod router;
pub mod session;
pub mod stanza;
