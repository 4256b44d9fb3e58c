//! Reserved relayed ports (RFC 8656 §7.2, §14.6, §14.9): an Allocate with EVEN-PORT and
//! its R bit gets an even port and holds the next one for a later Allocate that presents
//! the RESERVATION-TOKEN (an RTP/RTCP pair). The later request comes from another 5-tuple,
//! which may land on another shard, so the table is shared by the shards of a process
//! (touched per Allocate and per timer sweep, never per packet).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a reserved port is held (RFC 5766 §6.2: "30 seconds or so").
pub const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

/// The 8-byte RESERVATION-TOKEN value.
pub type Token = [u8; 8];

#[derive(Debug)]
struct Reserved {
    addr: SocketAddr,
    expires: Instant,
}

/// Token → reserved address. The sockets themselves are the driver's.
#[derive(Debug)]
pub struct Reservations {
    by_token: HashMap<Token, Reserved>,
    limit: usize,
}

pub type SharedReservations = Arc<Mutex<Reservations>>;

impl Reservations {
    /// At most `limit` reservations at once (each holds a port for 30 s).
    pub fn new(limit: usize) -> Self {
        Self {
            by_token: HashMap::new(),
            limit,
        }
    }

    pub fn shared(limit: usize) -> SharedReservations {
        Arc::new(Mutex::new(Self::new(limit)))
    }

    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// Whether another reservation fits.
    pub fn has_room(&self) -> bool {
        self.by_token.len() < self.limit
    }

    /// Records a reservation; `false` if the token is taken (draw another) or the table
    /// is full.
    pub fn insert(&mut self, token: Token, addr: SocketAddr, expires: Instant) -> bool {
        if !self.has_room() || self.by_token.contains_key(&token) {
            return false;
        }
        self.by_token.insert(token, Reserved { addr, expires });
        true
    }

    /// Removes the reservation: `Ok(addr)` to use it, `Err(Some(addr))` if it expired
    /// (its port must be released), `Err(None)` if the token is unknown.
    pub fn take(&mut self, token: &Token, now: Instant) -> Result<SocketAddr, Option<SocketAddr>> {
        match self.by_token.remove(token) {
            Some(r) if r.expires > now => Ok(r.addr),
            Some(r) => Err(Some(r.addr)),
            None => Err(None),
        }
    }

    /// Removes every expired reservation, returning their addresses for release.
    pub fn expire(&mut self, now: Instant) -> Vec<SocketAddr> {
        let mut gone = Vec::new();
        self.by_token.retain(|_, r| {
            let keep = r.expires > now;
            if !keep {
                gone.push(r.addr);
            }
            keep
        });
        gone
    }

    /// The earliest expiry, if any reservation is held.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_token.values().map(|r| r.expires).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_taken_once_and_expire() {
        let t0 = Instant::now();
        let a: SocketAddr = "192.0.2.1:50001".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:50003".parse().unwrap();
        let mut r = Reservations::new(2);
        assert!(r.insert([1; 8], a, t0 + RESERVATION_LIFETIME));
        assert!(
            !r.insert([1; 8], b, t0 + RESERVATION_LIFETIME),
            "token in use"
        );
        assert!(r.insert([2; 8], b, t0 + Duration::from_secs(10)));
        assert!(!r.insert([3; 8], b, t0), "full");
        assert_eq!(r.next_expiry(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(r.take(&[1; 8], t0), Ok(a));
        assert_eq!(r.take(&[1; 8], t0), Err(None));
        assert_eq!(r.take(&[2; 8], t0 + Duration::from_secs(10)), Err(Some(b)));
        assert!(r.is_empty());
        assert!(r.insert([4; 8], a, t0 + Duration::from_secs(5)));
        assert!(r.expire(t0).is_empty());
        assert_eq!(r.expire(t0 + Duration::from_secs(5)), vec![a]);
        assert_eq!(r.next_expiry(), None);
    }
}
