//! Switchboard's media plane: a selective forwarding unit on str0m, spoken to through the Janus
//! videoroom API so janus.js and the QuickBlox conference client work unchanged.
//!
//! - [`core`] is the state machine: rooms of str0m `Rtc`s in RTP mode (ICE-lite, DTLS-SRTP),
//!   forwarding packets without depacketising, simulcast layer choice from the subscriber's
//!   request and TWCC bandwidth estimate, keyframe-gated switching with sequence number and
//!   timestamp rewriting, rate-limited keyframe requests, and active-speaker detection. It is
//!   driven by datagrams, commands and time passed in; it reads no clock and owns no socket.
//! - [`janus`] maps the Janus JSON wire format to core commands and back.
//! - [`driver`] owns the world: one worker thread per core, each with its rooms and one UDP
//!   socket (batched with `quinn-udp`), and the `/janus` WebSocket (subprotocol
//!   `janus-protocol`).
//! - [`grant`] mints and verifies the join grants (JWT, HS256) the control plane issues.
//!
//! Out of scope here: TURN (its own crate), cross-node rooms (cluster), recording.

pub mod config;
pub mod core;
pub mod driver;
pub mod grant;
pub mod janus;
pub mod metrics;

/// Installs str0m's crypto backend (OpenSSL) as the process default, once.
pub fn init_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
}
