//! One allocation (RFC 8656 §2.2): its relayed address, lifetime, permissions (§9, 300 s)
//! and channel bindings (§12, 600 s), and its bandwidth budget.
//!
//! Permissions and channels live in small vectors with configured caps: a client has a
//! handful of peers, a scan of a few entries beats hashing, and a client cannot grow them
//! without bound.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::error::RequestError;
use super::policy::TokenBucket;
use super::stun::normalise;

/// RFC 8656 §9: permissions last 300 seconds.
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// RFC 8656 §12: channel bindings last 600 seconds.
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);

/// Names an allocation in the table: a slot and the generation that occupied it, so a
/// stale id never reaches the slot's next tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AllocationId {
    pub slot: u32,
    pub generation: u32,
}

/// How the client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// Stream transports pad ChannelData to four bytes (RFC 8656 §12.5).
    pub fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

/// The client side of an allocation (RFC 8656 §2.2: the 5-tuple).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub transport: Transport,
}

#[derive(Debug, Clone, Copy)]
struct Permission {
    ip: IpAddr,
    expires: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Channel {
    number: u16,
    peer: SocketAddr,
    expires: Instant,
}

/// Limits an allocation enforces.
#[derive(Debug, Clone, Copy)]
pub struct AllocationLimits {
    pub max_permissions: usize,
    pub max_channels: usize,
    /// Bytes per second relayed in each direction together; `None` is unlimited.
    pub bandwidth: Option<u64>,
}

#[derive(Debug)]
pub struct Allocation {
    pub five_tuple: FiveTuple,
    pub relay: SocketAddr,
    /// The USERNAME that created it; later requests must use the same (441 otherwise).
    pub username: String,
    pub quota_user: String,
    pub key: [u8; 16],
    pub expires: Instant,
    /// The Allocate transaction, so a retransmission gets the same success (§7.2).
    pub allocate_transaction: [u8; 12],
    /// The RESERVATION-TOKEN its Allocate success carried (EVEN-PORT with R), for a
    /// retransmission's answer.
    pub reservation_token: Option<[u8; 8]>,
    permissions: Vec<Permission>,
    channels: Vec<Channel>,
    limits: AllocationLimits,
    budget: TokenBucket,
}

impl Allocation {
    #[allow(clippy::too_many_arguments)] // one constructor call site, in Server::on_allocate
    pub fn new(
        now: Instant,
        five_tuple: FiveTuple,
        relay: SocketAddr,
        username: String,
        quota_user: String,
        key: [u8; 16],
        lifetime: Duration,
        allocate_transaction: [u8; 12],
        limits: AllocationLimits,
    ) -> Self {
        let burst = limits.bandwidth.map_or(0.0, |b| b as f64);
        Self {
            five_tuple,
            relay,
            username,
            quota_user,
            key,
            expires: now + lifetime,
            allocate_transaction,
            reservation_token: None,
            permissions: Vec::new(),
            channels: Vec::new(),
            limits,
            budget: TokenBucket::full(burst, now),
        }
    }

    pub fn refresh(&mut self, now: Instant, lifetime: Duration) {
        self.expires = now + lifetime;
    }

    /// Installs or refreshes a permission for `ip` (ports are ignored, RFC 8656 §9).
    pub fn permit(&mut self, now: Instant, ip: IpAddr) -> Result<(), RequestError> {
        let ip = normalise(ip);
        let expires = now + PERMISSION_LIFETIME;
        if let Some(p) = self.permissions.iter_mut().find(|p| p.ip == ip) {
            p.expires = expires;
            return Ok(());
        }
        if self.permissions.len() >= self.limits.max_permissions {
            return Err(RequestError::InsufficientCapacity);
        }
        self.permissions.push(Permission { ip, expires });
        Ok(())
    }

    /// Whether the caller can install `n` new permissions for these IPs.
    pub fn has_room_for(&self, ips: &[IpAddr]) -> bool {
        let new = ips
            .iter()
            .filter(|ip| !self.permissions.iter().any(|p| p.ip == normalise(**ip)))
            .count();
        self.permissions.len() + new <= self.limits.max_permissions
    }

    pub fn is_permitted(&self, now: Instant, ip: IpAddr) -> bool {
        let ip = normalise(ip);
        self.permissions
            .iter()
            .any(|p| p.ip == ip && p.expires > now)
    }

    /// Binds `number` to `peer` or refreshes the binding (RFC 8656 §12.2): a number
    /// bound to another peer, or a peer bound to another number, is a 400.
    pub fn bind_channel(
        &mut self,
        now: Instant,
        number: u16,
        peer: SocketAddr,
    ) -> Result<(), RequestError> {
        let peer = SocketAddr::new(normalise(peer.ip()), peer.port());
        let expires = now + CHANNEL_LIFETIME;
        for c in &mut self.channels {
            match (c.number == number, c.peer == peer) {
                (true, true) => {
                    c.expires = expires;
                    return Ok(());
                }
                (false, false) => {}
                _ => return Err(RequestError::BadRequest("channel or peer bound otherwise")),
            }
        }
        if self.channels.len() >= self.limits.max_channels {
            return Err(RequestError::InsufficientCapacity);
        }
        self.channels.push(Channel {
            number,
            peer,
            expires,
        });
        Ok(())
    }

    pub fn channel_peer(&self, now: Instant, number: u16) -> Option<SocketAddr> {
        self.channels
            .iter()
            .find(|c| c.number == number && c.expires > now)
            .map(|c| c.peer)
    }

    pub fn channel_for(&self, now: Instant, peer: SocketAddr) -> Option<u16> {
        self.channels
            .iter()
            .find(|c| c.peer == peer && c.expires > now)
            .map(|c| c.number)
    }

    /// Takes `bytes` from the bandwidth budget; `false` means drop the packet.
    pub fn admit(&mut self, now: Instant, bytes: usize) -> bool {
        match self.limits.bandwidth {
            None => true,
            Some(rate) => {
                let rate = rate as f64;
                self.budget.take(now, rate, rate, bytes as f64)
            }
        }
    }

    /// Removes expired permissions and channels; returns how many of each went.
    pub fn expire(&mut self, now: Instant) -> (usize, usize) {
        let (p, c) = (self.permissions.len(), self.channels.len());
        self.permissions.retain(|p| p.expires > now);
        self.channels.retain(|c| c.expires > now);
        (p - self.permissions.len(), c - self.channels.len())
    }

    /// The earliest moment something in this allocation expires.
    pub fn next_deadline(&self) -> Instant {
        let perms = self.permissions.iter().map(|p| p.expires);
        let chans = self.channels.iter().map(|c| c.expires);
        perms.chain(chans).fold(self.expires, Instant::min)
    }

    pub fn permission_count(&self) -> usize {
        self.permissions.len()
    }

    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocation(now: Instant) -> Allocation {
        Allocation::new(
            now,
            FiveTuple {
                client: "192.0.2.1:5000".parse().unwrap(),
                server: "192.0.2.100:3478".parse().unwrap(),
                transport: Transport::Udp,
            },
            "192.0.2.100:50000".parse().unwrap(),
            "1:alice".into(),
            "alice".into(),
            [0; 16],
            Duration::from_secs(600),
            [0; 12],
            AllocationLimits {
                max_permissions: 2,
                max_channels: 2,
                bandwidth: Some(1000),
            },
        )
    }

    #[test]
    fn permissions_expire_after_300_seconds() {
        let t0 = Instant::now();
        let mut a = allocation(t0);
        let peer: IpAddr = "198.51.100.1".parse().unwrap();
        a.permit(t0, peer).unwrap();
        assert!(a.is_permitted(t0 + Duration::from_secs(299), peer));
        assert!(!a.is_permitted(t0 + PERMISSION_LIFETIME, peer));
        // Mapped form of the same IP is the same permission.
        assert!(a.is_permitted(t0, "::ffff:198.51.100.1".parse().unwrap()));
        assert_eq!(a.next_deadline(), t0 + PERMISSION_LIFETIME);
        assert_eq!(a.expire(t0 + PERMISSION_LIFETIME), (1, 0));
        assert_eq!(a.next_deadline(), t0 + Duration::from_secs(600));
    }

    #[test]
    fn permission_cap() {
        let t0 = Instant::now();
        let mut a = allocation(t0);
        a.permit(t0, "198.51.100.1".parse().unwrap()).unwrap();
        a.permit(t0, "198.51.100.2".parse().unwrap()).unwrap();
        a.permit(t0, "198.51.100.2".parse().unwrap()).unwrap();
        assert_eq!(
            a.permit(t0, "198.51.100.3".parse().unwrap()),
            Err(RequestError::InsufficientCapacity)
        );
    }

    #[test]
    fn channels_bind_refresh_conflict_and_expire() {
        let t0 = Instant::now();
        let mut a = allocation(t0);
        let p1: SocketAddr = "198.51.100.1:7000".parse().unwrap();
        let p2: SocketAddr = "198.51.100.2:7000".parse().unwrap();
        a.bind_channel(t0, 0x4000, p1).unwrap();
        assert_eq!(a.channel_peer(t0, 0x4000), Some(p1));
        assert_eq!(a.channel_for(t0, p1), Some(0x4000));
        assert!(a.bind_channel(t0, 0x4000, p2).is_err());
        assert!(a.bind_channel(t0, 0x4001, p1).is_err());
        let t1 = t0 + Duration::from_secs(500);
        a.bind_channel(t1, 0x4000, p1).unwrap();
        assert_eq!(a.channel_peer(t0 + CHANNEL_LIFETIME, 0x4000), Some(p1));
        assert_eq!(a.channel_peer(t1 + CHANNEL_LIFETIME, 0x4000), None);
        assert_eq!(a.expire(t1 + CHANNEL_LIFETIME), (0, 1));
    }

    #[test]
    fn bandwidth_budget() {
        let t0 = Instant::now();
        let mut a = allocation(t0);
        assert!(a.admit(t0, 600));
        assert!(!a.admit(t0, 600));
        assert!(a.admit(t0 + Duration::from_secs(1), 600));
    }
}
