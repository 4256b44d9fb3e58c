//! Transports: they move bytes between sockets and [`Session`](crate::core::session::Session).

pub mod tcp;
pub mod websocket;
