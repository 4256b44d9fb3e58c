//! Settings of the relay, typed and validated; the binary fills them from flags, the
//! environment and the TOML file. Defaults assume a public-facing relay for WebRTC calls
//! (a few allocations per user, 100-byte to 1.2-kB media packets).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::core::policy::Cidr;

/// Inclusive UDP port range for relayed addresses (`--turn-relay-ports 49152-65535`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub min: u16,
    pub max: u16,
}

impl PortRange {
    pub fn len(&self) -> u32 {
        u32::from(self.max) - u32::from(self.min) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?} is not a port range like 49152-65535"))?;
        let min: u16 = a.trim().parse().map_err(|_| format!("bad port in {s:?}"))?;
        let max: u16 = b.trim().parse().map_err(|_| format!("bad port in {s:?}"))?;
        if min == 0 || min > max {
            return Err(format!("{s:?}: need 1 <= min <= max"));
        }
        Ok(Self { min, max })
    }
}

/// Default receive coalescing window: far below what a WebRTC jitter buffer notices
/// (tens of milliseconds), long enough for a busy relay to gather real batches.
pub const DEFAULT_COALESCE: Duration = Duration::from_micros(200);
/// Longest receive coalescing window accepted (see `TurnConfig::coalesce`).
pub const MAX_COALESCE: Duration = Duration::from_millis(1);

/// TLS listener: address plus PEM certificate chain and key.
#[derive(Debug, Clone)]
pub struct TlsListener {
    pub addr: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// UDP and TCP listener (RFC 8656: 3478).
    pub listen: SocketAddr,
    /// TURN over TLS (RFC 8656: 5349), if configured.
    pub tls: Option<TlsListener>,
    pub realm: String,
    /// TURN REST API shared secret (also used by the control plane to mint credentials).
    pub secret: Option<Vec<u8>>,
    /// Operator-configured `username -> password`.
    pub static_users: HashMap<String, String>,
    pub relay_ports: PortRange,
    /// Address relayed transport addresses are bound to and announced with; default:
    /// the local address the client reached.
    pub relay_ip: Option<IpAddr>,
    /// Peer CIDRs allowed despite the default deny list (e.g. `127.0.0.1` in tests).
    pub allow_peers: Vec<Cidr>,
    /// Peer CIDRs always refused.
    pub deny_peers: Vec<Cidr>,
    /// Allocations one user may hold at once (486 beyond).
    pub user_quota: u32,
    /// Allocations the process holds at once (486 beyond).
    pub total_quota: u32,
    /// Per-allocation relay budget in bytes per second; `None` is unlimited. Default
    /// 1 MB/s: a 720p call with simulcast is well under that.
    pub max_bandwidth: Option<u64>,
    /// RFC 8656 §7.2: 600 s unless the client asks otherwise; capped at `max_lifetime`.
    pub default_lifetime: Duration,
    pub max_lifetime: Duration,
    /// How long a nonce stays valid before 438 (coturn's default: 600 s).
    pub nonce_lifetime: Duration,
    /// Unauthenticated requests per second per source IP, and their burst.
    pub unauth_rate: u32,
    pub unauth_burst: u32,
    /// Per-allocation caps (arbitrary, far above what a WebRTC agent installs).
    pub max_permissions: usize,
    pub max_channels: usize,
    /// UDP listener sockets on the same port (`SO_REUSEPORT`), one per worker thread.
    pub workers: usize,
    /// Receive coalescing window (see `driver::coalesce`): after a wake that handled any
    /// datagram, a shard reads its sockets again only once this much time has passed, so
    /// packets are read and sent in larger batches. It bounds the delay a packet gains each
    /// time it passes this relay; zero turns coalescing off. At most 1 ms: longer, a busy
    /// shard's socket buffers (capped by `net.core.rmem_max`, 208 KiB by default) fill up
    /// while it waits.
    pub coalesce: Duration,
}

impl TurnConfig {
    /// Defaults for `listen`, with a REST secret.
    pub fn new(listen: SocketAddr, secret: Option<Vec<u8>>) -> Self {
        Self {
            listen,
            tls: None,
            realm: "switchboard".into(),
            secret,
            static_users: HashMap::new(),
            relay_ports: PortRange {
                min: 49152,
                max: 65535,
            },
            relay_ip: None,
            allow_peers: Vec::new(),
            deny_peers: Vec::new(),
            user_quota: 10,
            total_quota: 10_000,
            max_bandwidth: Some(1_000_000),
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            nonce_lifetime: Duration::from_secs(600),
            unauth_rate: 20,
            unauth_burst: 100,
            max_permissions: 64,
            max_channels: 64,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
            coalesce: DEFAULT_COALESCE,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.realm.is_empty() || self.realm.len() > 127 {
            return Err("turn realm must be 1 to 127 bytes".into());
        }
        if self.secret.is_none() && self.static_users.is_empty() {
            return Err("turn needs a REST secret or static users".into());
        }
        if self.coalesce > MAX_COALESCE {
            return Err("turn coalescing window must be at most 1 ms (1000 us)".into());
        }
        if self.workers == 0 {
            return Err("turn workers must be at least 1".into());
        }
        if self.default_lifetime.is_zero() || self.max_lifetime < self.default_lifetime {
            return Err("turn lifetimes: need 0 < default <= max".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(coalesce: Duration) -> TurnConfig {
        let mut c = TurnConfig::new("127.0.0.1:3478".parse().unwrap(), Some(b"s".to_vec()));
        c.coalesce = coalesce;
        c
    }

    #[test]
    fn the_coalescing_window_is_bounded_and_may_be_off() {
        assert!(config(Duration::ZERO).validate().is_ok());
        assert!(config(DEFAULT_COALESCE).validate().is_ok());
        assert!(config(MAX_COALESCE).validate().is_ok());
        let err = config(MAX_COALESCE + Duration::from_micros(1))
            .validate()
            .unwrap_err();
        assert!(err.contains("coalescing"), "{err}");
    }
}
