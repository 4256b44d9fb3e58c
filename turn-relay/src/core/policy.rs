//! What the relay refuses: peer addresses (RFC 8656 §21.1: no open relay into internal
//! networks), allocation quotas, and floods of unauthenticated requests.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::error::RequestError;
use super::stun::normalise;

/// An address block such as `10.0.0.0/8` or `fc00::/7`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, normalise(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// `a.b.c.d/n`, `x::y/n`, or a bare address (a single host).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR block"))?;
        let addr = normalise(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has a bad prefix length"))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Blocks a TURN relay must not reach unless an operator allows them: loopback, RFC 1918
/// and ULA private space, link-local, multicast, unspecified/"this network", shared
/// CGNAT space (RFC 6598) and reserved 240/4 (broadcast is checked separately).
pub const DEFAULT_DENY: &[(IpAddr, u8)] = &[
    (IpAddr::V4(Ipv4Addr::new(0, 0, 0, 0)), 8),
    (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8),
    (IpAddr::V4(Ipv4Addr::new(100, 64, 0, 0)), 10),
    (IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
    (IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)), 16),
    (IpAddr::V4(Ipv4Addr::new(172, 16, 0, 0)), 12),
    (IpAddr::V4(Ipv4Addr::new(192, 168, 0, 0)), 16),
    (IpAddr::V4(Ipv4Addr::new(224, 0, 0, 0)), 4),
    (IpAddr::V4(Ipv4Addr::new(240, 0, 0, 0)), 4),
    (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 128),
    (IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
    (IpAddr::V6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0)), 7),
    (IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10),
    (IpAddr::V6(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0)), 8),
];

/// Which peers an allocation may reach. Order of the checks: the server's own TURN
/// listeners are always refused (a relay looping into itself); then an explicit deny
/// wins, then an explicit allow, then the default-denied blocks and the relay's own
/// addresses.
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
    /// Addresses of this relay (relay IPs): refused unless allowed.
    pub own_ips: Vec<IpAddr>,
    /// The TURN listener ports: a peer at an own IP on one of these is always refused.
    pub listener_ports: Vec<u16>,
}

impl PeerPolicy {
    /// Whether `peer` is one of this relay's own TURN listeners (checked per packet:
    /// a permission is per IP, so an allowed IP could otherwise reach our port).
    pub fn is_listener(&self, peer: SocketAddr) -> bool {
        let ip = normalise(peer.ip());
        self.listener_ports.contains(&peer.port())
            && (ip.is_loopback() || ip.is_unspecified() || self.own_ips.contains(&ip))
    }

    pub fn check(&self, peer: SocketAddr) -> Result<(), RequestError> {
        let ip = normalise(peer.ip());
        if self.is_listener(peer) {
            return Err(RequestError::Forbidden);
        }
        if self.deny.iter().any(|c| c.contains(ip)) {
            return Err(RequestError::Forbidden);
        }
        if self.allow.iter().any(|c| c.contains(ip)) {
            return Ok(());
        }
        let default_denied = DEFAULT_DENY
            .iter()
            .any(|(net, prefix)| Cidr::new(*net, *prefix).is_some_and(|c| c.contains(ip)));
        if default_denied || self.own_ips.contains(&ip) || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
            return Err(RequestError::Forbidden);
        }
        Ok(())
    }
}

/// Allocation counts per user and in total, shared by every shard of one process (a
/// user's clients may hash to different shards). Touched only when an allocation is
/// created or deleted, never per packet.
#[derive(Debug)]
pub struct QuotaLedger {
    per_user_limit: u32,
    total_limit: u32,
    per_user: HashMap<String, u32>,
    total: u32,
}

pub type SharedQuotas = Arc<Mutex<QuotaLedger>>;

impl QuotaLedger {
    pub fn new(per_user_limit: u32, total_limit: u32) -> Self {
        Self {
            per_user_limit,
            total_limit,
            per_user: HashMap::new(),
            total: 0,
        }
    }

    pub fn shared(per_user_limit: u32, total_limit: u32) -> SharedQuotas {
        Arc::new(Mutex::new(Self::new(per_user_limit, total_limit)))
    }

    pub fn try_acquire(&mut self, user: &str) -> Result<(), RequestError> {
        let used = self.per_user.get(user).copied().unwrap_or(0);
        if self.total >= self.total_limit || used >= self.per_user_limit {
            return Err(RequestError::QuotaReached);
        }
        *self.per_user.entry(user.to_string()).or_insert(0) += 1;
        self.total += 1;
        Ok(())
    }

    pub fn release(&mut self, user: &str) {
        if let Some(n) = self.per_user.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                self.per_user.remove(user);
            }
            self.total = self.total.saturating_sub(1);
        }
    }

    pub fn total(&self) -> u32 {
        self.total
    }

    pub fn of(&self, user: &str) -> u32 {
        self.per_user.get(user).copied().unwrap_or(0)
    }
}

/// A token bucket: `rate` units per second, up to `burst`.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn full(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            last: now,
        }
    }

    /// Takes `cost` tokens if there are that many.
    pub fn take(&mut self, now: Instant, rate: f64, burst: f64, cost: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// Per-source-IP limit on requests that cost the server work before authentication
/// (Binding, the first Allocate, every 401/438). The table is capped; when full, new
/// sources are refused until idle entries are swept.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    max_sources: usize,
    sources: HashMap<IpAddr, TokenBucket>,
}

impl RateLimiter {
    pub fn new(rate_per_sec: u32, burst: u32, max_sources: usize) -> Self {
        Self {
            rate: f64::from(rate_per_sec),
            burst: f64::from(burst.max(1)),
            max_sources,
            sources: HashMap::new(),
        }
    }

    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if let Some(bucket) = self.sources.get_mut(&ip) {
            return bucket.take(now, self.rate, self.burst, 1.0);
        }
        if self.sources.len() >= self.max_sources {
            return false;
        }
        let mut bucket = TokenBucket::full(self.burst, now);
        let allowed = bucket.take(now, self.rate, self.burst, 1.0);
        self.sources.insert(ip, bucket);
        allowed
    }

    /// Forgets sources whose bucket has been full again for `idle`.
    pub fn sweep(&mut self, now: Instant, idle: Duration) {
        self.sources
            .retain(|_, b| now.saturating_duration_since(b.last) < idle);
    }

    pub fn tracked(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_default_denied_range_is_refused() {
        let policy = PeerPolicy::default();
        for denied in [
            "0.0.0.0:1",
            "0.1.2.3:1",
            "10.1.2.3:1",
            "100.64.0.1:1",
            "127.0.0.1:1",
            "127.255.0.9:1",
            "169.254.1.1:1",
            "172.16.0.1:1",
            "172.31.255.255:1",
            "192.168.1.1:1",
            "224.0.0.1:1",
            "239.1.1.1:1",
            "255.255.255.255:1",
            "[::]:1",
            "[::1]:1",
            "[fc00::1]:1",
            "[fd12::1]:1",
            "[fe80::1]:1",
            "[ff02::1]:1",
            // IPv4-mapped IPv6 forms must not slip past the IPv4 checks.
            "[::ffff:127.0.0.1]:1",
            "[::ffff:10.0.0.1]:1",
            "[::ffff:192.168.0.1]:1",
        ] {
            assert_eq!(
                policy.check(peer(denied)),
                Err(RequestError::Forbidden),
                "{denied}"
            );
        }
        for allowed in [
            "8.8.8.8:53",
            "172.32.0.1:1",
            "[2001:4860::8888]:53",
            "[::ffff:8.8.8.8]:1",
        ] {
            assert_eq!(policy.check(peer(allowed)), Ok(()), "{allowed}");
        }
    }

    #[test]
    fn allow_and_deny_lists_and_own_addresses() {
        let policy = PeerPolicy {
            allow: vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()],
            deny: vec![
                "10.9.0.0/16".parse().unwrap(),
                "8.8.8.0/24".parse().unwrap(),
            ],
            own_ips: vec!["203.0.113.5".parse().unwrap()],
            listener_ports: vec![3478],
        };
        assert_eq!(policy.check(peer("127.0.0.1:3480")), Ok(()));
        assert_eq!(policy.check(peer("[::ffff:127.0.0.1]:3480")), Ok(()));
        assert_eq!(policy.check(peer("10.1.0.1:1")), Ok(()));
        assert!(policy.check(peer("10.9.0.1:1")).is_err());
        assert!(policy.check(peer("8.8.8.8:53")).is_err());
        assert!(policy.check(peer("127.0.0.2:1")).is_err());
        assert!(policy.check(peer("203.0.113.5:50000")).is_err());
        // Even an allowed loopback peer may not be our own TURN listener.
        assert!(policy.check(peer("127.0.0.1:3478")).is_err());
    }

    #[test]
    fn cidr_parsing() {
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("1.2.3.4".parse().unwrap()));
        assert!(!any.contains("::1".parse().unwrap()));
        assert_eq!("fc00::/7".parse::<Cidr>().unwrap().to_string(), "fc00::/7");
    }

    #[test]
    fn quota_accounting() {
        let mut q = QuotaLedger::new(2, 3);
        q.try_acquire("alice").unwrap();
        q.try_acquire("alice").unwrap();
        assert_eq!(q.try_acquire("alice"), Err(RequestError::QuotaReached));
        q.try_acquire("bob").unwrap();
        assert_eq!(q.try_acquire("carol"), Err(RequestError::QuotaReached));
        q.release("alice");
        assert_eq!(q.of("alice"), 1);
        q.try_acquire("carol").unwrap();
        assert_eq!(q.total(), 3);
        q.release("nobody");
        assert_eq!(q.total(), 3);
    }

    #[test]
    fn rate_limiter_refills_with_synthetic_time() {
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut limiter = RateLimiter::new(2, 3, 1);
        assert!((0..3).all(|_| limiter.allow(ip, t0)));
        assert!(!limiter.allow(ip, t0));
        assert!(limiter.allow(ip, t0 + Duration::from_millis(500)));
        assert!(!limiter.allow(ip, t0 + Duration::from_millis(500)));
        // The table is full: a second source is refused until the sweep.
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(!limiter.allow(other, t0));
        limiter.sweep(t0 + Duration::from_secs(60), Duration::from_secs(30));
        assert_eq!(limiter.tracked(), 0);
        assert!(limiter.allow(other, t0 + Duration::from_secs(60)));
    }
}
