//! Switchboard's TURN relay: STUN (RFC 8489) and TURN (RFC 8656) over UDP, TCP and TLS,
//! with TURN REST API credentials minted by the control plane from a shared secret.
//!
//! - [`core`] is the state machine: the allocation table ([`core::server::Server`]) with
//!   permissions, channels and their timers, credential and nonce checks, the peer
//!   policy, quotas and rate limits. Datagrams and time go in, datagrams come out; it is
//!   tested with synthetic time and never touches a socket or a clock.
//! - [`driver`] owns the sockets: `SO_REUSEPORT` UDP listener shards (one thread and one
//!   core `Server` each, `quinn-udp` batched receive, GSO sends), the relayed UDP sockets
//!   of the shard's allocations, and TCP/TLS streams.
//! - [`config`] is what operators tune; [`metrics`] is what they watch
//!   (`switchboard_turn_*`).
//!
//! Out of scope: TCP relaying (RFC 6062), DTLS client transport, ALTERNATE-SERVER
//! redirection, and storing anything about users: credentials carry their own expiry.

pub mod config;
pub mod core;
pub mod driver;
pub mod metrics;

pub use config::{PortRange, TlsListener, TurnConfig, DEFAULT_COALESCE};
pub use driver::TurnServer;
pub use metrics::TurnMetrics;
