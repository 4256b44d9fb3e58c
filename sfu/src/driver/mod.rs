//! What touches the world: worker threads with their UDP sockets, and the Janus WebSocket.

pub mod outbox;
pub mod udp;
pub mod worker;
pub mod ws;

pub use worker::{spawn_workers, Workers};
