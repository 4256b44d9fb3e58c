//! The roles one process can play (`--roles`), each started by its own module.
//!
//! A role registers its metrics into the shared registry, may contribute routes to the
//! HTTP/HTTPS listeners (WebSocket faces such as `/ws` and `/janus`), and runs until the
//! shutdown signal fires. `serve.rs` only sequences them.

pub mod api;
pub mod sfu;
pub mod turn;
pub mod xmpp;

use std::str::FromStr;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A face of the server that `--roles` can switch on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The QuickBlox REST control plane (and the HTTP listeners other roles' routes use).
    Api,
    /// XMPP chat and signaling (TCP, and WebSocket on the api role's listeners).
    Xmpp,
    /// The media plane: the SFU's UDP workers and the Janus WebSocket (`/janus`).
    Sfu,
    /// The TURN relay (UDP/TCP `--turn-addr`, TLS `--turn-tls-addr`).
    Turn,
}

impl Role {
    /// Every role this build has, in start order; the default of `--roles`.
    pub const ALL: &'static [Role] = &[Role::Api, Role::Xmpp, Role::Sfu, Role::Turn];

    pub fn name(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Xmpp => "xmpp",
            Role::Turn => "turn",
            Role::Sfu => "sfu",
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .iter()
            .copied()
            .find(|r| r.name() == s.trim())
            .ok_or_else(|| {
                let known: Vec<_> = Role::ALL.iter().map(|r| r.name()).collect();
                format!("unknown role {s:?} (known: {})", known.join(", "))
            })
    }
}

/// Fires once when the process should stop; every role task waits on a clone.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    pub async fn wait(mut self) {
        // An error means the sender is gone, which also means: stop.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// A started role: what the banner should print, and the task to await on shutdown.
pub struct Running {
    pub role: &'static str,
    /// `(label, value)` lines for the startup banner, e.g. `("XMPP (TCP)", "127.0.0.1:5222")`.
    pub banner: Vec<(String, String)>,
    pub task: JoinHandle<anyhow::Result<()>>,
}
