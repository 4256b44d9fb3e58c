//! The sans-IO TURN core: no sockets, no tokio, no clock reads. Drivers feed it
//! datagrams and time; it answers with bytes to send.

pub mod allocation;
pub mod auth;
pub mod error;
pub mod policy;
pub mod reservation;
pub mod server;
pub mod stun;
