//! Switchboard's load generator and its report.
//!
//! - [`scenario`] drives a server: `api` (QuickBlox REST), `chat` (XMPP over TCP, any
//!   standard server), `turn` (TURN allocations and relayed packets over UDP or TCP,
//!   through a loopback peer the tester runs), `conference` (Janus videoroom over WebSocket,
//!   str0m peers publishing Opus + simulcast VP8 and subscribing to each other).
//! - [`run`] is what every scenario shares: the client ramp-up, the pacer, the time and
//!   count bounds, Ctrl-C, the live progress line and the once-a-second samples.
//! - [`report`] is the JSON report (`switchboard-loadtest/1`): HDR histograms serialised
//!   as base64 V2+DEFLATE so `merge` is exact, per-second series and server CPU per unit
//!   of work; [`html`] renders it as one self-contained page; [`slo`] checks it.
//! - [`stats`] is per-flow packet statistics (one-way latency, loss, RFC 3550 jitter).
//! - [`procstat`] reads a server's CPU seconds and RSS from `/proc/PID`.
//!
//! Out of scope: non-loopback targets (refused by [`target::loopback`]), TLS.

pub mod html;
pub mod procstat;
pub mod report;
pub mod run;
pub mod scenario;
pub mod slo;
pub mod stats;
pub mod target;
