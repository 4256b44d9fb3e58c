//! The allocation table: a sans-IO TURN server (RFC 8656) for one shard.
//!
//! # Contract
//! - Inputs: [`Server::handle_datagram`] for bytes from a client (STUN or ChannelData, on
//!   the listener or a TCP/TLS stream), [`Server::handle_peer_datagram`] for bytes a
//!   peer sent to a relayed address, [`Server::handle_timeout`] when
//!   [`Server::poll_timeout`] has passed, [`Server::close_client`] when a stream closes.
//! - Outputs: every input returns its one immediate outcome, written into the caller's
//!   buffer (a response, or a framed ChannelData/Data indication for the client) or
//!   pointing into the input (the payload to relay to a peer). Nothing on the relay path
//!   allocates; requests may (they are rare and rate-limited).
//! - Time: `now` is the driver's monotonic clock, read once per batch; wall-clock seconds
//!   (for REST credential expiry and nonces) are derived from the epoch given to
//!   [`Server::new`], so tests step one clock and both move.
//! - Relayed sockets are opened and closed through [`RelaySockets`], which the driver
//!   implements with real UDP sockets and tests with a map; so are the ports held for a
//!   RESERVATION-TOKEN (EVEN-PORT with the R bit), shared by all shards ([`Shared`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::allocation::{Allocation, AllocationId, AllocationLimits, FiveTuple};
use super::auth::{Authenticator, Credential};
use super::error::RequestError;
use super::policy::{PeerPolicy, QuotaLedger, RateLimiter, SharedQuotas};
use super::reservation::{Reservations, SharedReservations, Token, RESERVATION_LIFETIME};
use super::stun::{attr, channel_data, looks_like_stun, method, Class, Integrity, Message, Writer};
use crate::config::{PortRange, TurnConfig};
use crate::metrics::{DirectionLabels, ReasonLabels, TransportLabels, TurnMetrics};

/// Sent in SOFTWARE (RFC 8489 §14.14).
const SOFTWARE: &[u8] = concat!("switchboard ", env!("CARGO_PKG_VERSION")).as_bytes();
/// How many ports an Allocate tries before 508 (arbitrary: other processes rarely hold
/// more than a few ports of a relay range).
const PORT_ATTEMPTS: u32 = 64;
/// Rate-limiter entries idle this long are forgotten (arbitrary, > 1/rate).
const LIMITER_IDLE: Duration = Duration::from_secs(30);
/// Source IPs the rate limiter tracks at once (arbitrary: 64 k entries is a few MB).
const LIMITER_SOURCES: usize = 65_536;
/// A response never needs more than this (largest: 420/438 with realm and nonce).
pub const MIN_OUT_BUF: usize = 1500;

/// Why binding a relayed address failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindError {
    /// The port is taken (another shard or process): try the next one.
    InUse,
    /// Anything else: give up with 508.
    Failed,
}

/// The driver's relayed sockets, opened and closed on the core's behalf.
pub trait RelaySockets {
    /// Binds `addr` as allocation `id`'s relayed socket.
    fn open(&mut self, id: AllocationId, addr: SocketAddr) -> Result<(), BindError>;
    fn close(&mut self, id: AllocationId);
    /// Binds `addr` and holds it, unused, for a later [`RelaySockets::open_reserved`]
    /// (possibly on another shard).
    fn reserve(&mut self, addr: SocketAddr) -> Result<(), BindError>;
    /// Makes the socket held at `addr` allocation `id`'s relayed socket.
    fn open_reserved(&mut self, id: AllocationId, addr: SocketAddr) -> Result<(), BindError>;
    /// Closes the socket held at `addr`.
    fn release(&mut self, addr: SocketAddr);
}

/// State the shards of one process share, each part touched per Allocate or timer sweep,
/// never per packet.
#[derive(Debug, Clone)]
pub struct Shared {
    pub quotas: SharedQuotas,
    pub reservations: SharedReservations,
}

impl Shared {
    pub fn new(config: &TurnConfig) -> Self {
        Self {
            quotas: QuotaLedger::shared(config.user_quota, config.total_quota),
            // Each reservation needs an Allocate, so the allocation cap bounds them too.
            reservations: Reservations::shared(config.total_quota as usize),
        }
    }
}

/// The outcome of a datagram from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Output {
    /// Nothing to send (dropped, or an indication consumed).
    None,
    /// Send `out[..len]` back to the client.
    Reply(usize),
    /// Send `input[payload]` from allocation `id`'s relayed address to `peer`.
    ToPeer {
        id: AllocationId,
        peer: SocketAddr,
        payload: Range<usize>,
    },
}

/// A framed packet for a client: `out[..len]` goes to `five_tuple`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct ToClient {
    pub five_tuple: FiveTuple,
    pub len: usize,
}

/// Relay counters kept as plain integers on the hot path; [`Server::flush_stats`] moves
/// them into the shared metrics once per batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub to_peer_packets: u64,
    pub to_peer_bytes: u64,
    pub to_client_packets: u64,
    pub to_client_bytes: u64,
}

/// What a successful request answers with.
enum Success {
    Binding {
        mapped: SocketAddr,
    },
    Allocate {
        relay: SocketAddr,
        lifetime: u32,
        mapped: SocketAddr,
        token: Option<Token>,
    },
    Refresh {
        lifetime: u32,
    },
    Empty,
}

struct Slot {
    generation: u32,
    allocation: Option<Allocation>,
}

pub struct Server {
    auth: Authenticator,
    policy: PeerPolicy,
    quotas: SharedQuotas,
    reservations: SharedReservations,
    /// Keys the RESERVATION-TOKENs this shard draws (unguessable, so another client
    /// cannot claim the port).
    token_key: [u8; 32],
    token_counter: u64,
    limiter: RateLimiter,
    metrics: TurnMetrics,
    /// The relay counters' label children, looked up once: flushing them per receive batch
    /// is then a few atomic adds, no hashing or lock.
    relay_counters: RelayCounters,
    relay_ports: PortRange,
    relay_ip: Option<IpAddr>,
    limits: AllocationLimits,
    default_lifetime: Duration,
    max_lifetime: Duration,
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_tuple: HashMap<FiveTuple, AllocationId>,
    next_deadline: Option<Instant>,
    next_limiter_sweep: Instant,
    epoch: (Instant, u64),
    port_cursor: u32,
    indication_counter: u64,
    stats: RelayStats,
}

/// Handles to the relayed packet and byte counters of each direction.
struct RelayCounters {
    to_peer_packets: Counter,
    to_peer_bytes: Counter,
    to_client_packets: Counter,
    to_client_bytes: Counter,
}

impl RelayCounters {
    fn new(m: &TurnMetrics) -> Self {
        let child = |f: &Family<DirectionLabels, Counter>, direction| {
            f.get_or_create(&DirectionLabels { direction }).clone()
        };
        Self {
            to_peer_packets: child(&m.relayed_packets, "to_peer"),
            to_peer_bytes: child(&m.relayed_bytes, "to_peer"),
            to_client_packets: child(&m.relayed_packets, "to_client"),
            to_client_bytes: child(&m.relayed_bytes, "to_client"),
        }
    }
}

impl Server {
    /// `start`/`unix_at_start` tie the monotonic clock to wall-clock seconds;
    /// `nonce_key` and `seed` must be random per process (the driver draws them).
    pub fn new(
        config: &TurnConfig,
        shared: Shared,
        metrics: TurnMetrics,
        nonce_key: [u8; 32],
        seed: u64,
        start: Instant,
        unix_at_start: u64,
    ) -> Self {
        let auth = Authenticator::new(
            config.realm.clone(),
            config.secret.clone(),
            config.static_users.clone(),
            nonce_key,
            config.nonce_lifetime.as_secs().max(1),
        );
        let mut own_ips: Vec<IpAddr> = config.relay_ip.into_iter().collect();
        let mut listener_ports = vec![config.listen.port()];
        if !config.listen.ip().is_unspecified() {
            own_ips.push(config.listen.ip());
        }
        if let Some(tls) = &config.tls {
            listener_ports.push(tls.addr.port());
        }
        Self {
            auth,
            policy: PeerPolicy {
                allow: config.allow_peers.clone(),
                deny: config.deny_peers.clone(),
                own_ips,
                listener_ports,
            },
            quotas: shared.quotas,
            reservations: shared.reservations,
            token_key: nonce_key,
            token_counter: seed,
            limiter: RateLimiter::new(config.unauth_rate, config.unauth_burst, LIMITER_SOURCES),
            relay_counters: RelayCounters::new(&metrics),
            metrics,
            relay_ports: config.relay_ports,
            relay_ip: config.relay_ip,
            limits: AllocationLimits {
                max_permissions: config.max_permissions,
                max_channels: config.max_channels,
                bandwidth: config.max_bandwidth,
            },
            default_lifetime: config.default_lifetime,
            max_lifetime: config.max_lifetime,
            slots: Vec::new(),
            free: Vec::new(),
            by_tuple: HashMap::new(),
            next_deadline: None,
            next_limiter_sweep: start + LIMITER_IDLE,
            epoch: (start, unix_at_start),
            port_cursor: (seed % u64::from(config.relay_ports.len())) as u32,
            indication_counter: seed,
            stats: RelayStats::default(),
        }
    }

    // ---- getters -------------------------------------------------------------------

    pub fn allocation_count(&self) -> usize {
        self.by_tuple.len()
    }

    pub fn allocation(&self, five_tuple: &FiveTuple) -> Option<&Allocation> {
        self.by_tuple.get(five_tuple).and_then(|id| self.get(*id))
    }

    pub fn realm(&self) -> &str {
        self.auth.realm()
    }

    fn get(&self, id: AllocationId) -> Option<&Allocation> {
        let slot = self.slots.get(id.slot as usize)?;
        (slot.generation == id.generation)
            .then_some(slot.allocation.as_ref())
            .flatten()
    }

    fn get_mut(&mut self, id: AllocationId) -> Option<&mut Allocation> {
        let slot = self.slots.get_mut(id.slot as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.allocation.as_mut()
    }

    fn unix(&self, now: Instant) -> u64 {
        self.epoch.1 + now.saturating_duration_since(self.epoch.0).as_secs()
    }

    // ---- inputs --------------------------------------------------------------------

    /// A datagram (or stream frame) from a client. `out` must hold [`MIN_OUT_BUF`] bytes.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        five_tuple: FiveTuple,
        data: &[u8],
        out: &mut [u8],
        sockets: &mut dyn RelaySockets,
    ) -> Output {
        if channel_data::looks_like(data) {
            return self.on_channel_data(now, five_tuple, data);
        }
        if !looks_like_stun(data) {
            self.metrics.dropped("not_turn");
            return Output::None;
        }
        let msg = match Message::parse(data) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::debug!(error = %e, len = data.len(), "malformed STUN message dropped");
                self.metrics.dropped("malformed");
                return Output::None;
            }
        };
        match (msg.class, msg.method) {
            (Class::Request, _) => self.on_request(now, five_tuple, &msg, out, sockets),
            (Class::Indication, method::SEND) => self.on_send(now, five_tuple, &msg, data),
            _ => {
                self.metrics.dropped("unexpected_message");
                Output::None
            }
        }
    }

    /// A datagram a peer sent to allocation `id`'s relayed address; frames it for the
    /// client into `out` (ChannelData if the peer has a channel, else a Data indication).
    pub fn handle_peer_datagram(
        &mut self,
        now: Instant,
        id: AllocationId,
        peer: SocketAddr,
        data: &[u8],
        out: &mut [u8],
    ) -> Option<ToClient> {
        self.indication_counter = self.indication_counter.wrapping_add(1);
        let counter = self.indication_counter;
        let Some(a) = self.get_mut(id) else {
            self.metrics.dropped("no_allocation");
            return None;
        };
        if !a.is_permitted(now, peer.ip()) {
            self.metrics.dropped("no_permission");
            return None;
        }
        if !a.admit(now, data.len()) {
            self.metrics.dropped("bandwidth");
            return None;
        }
        let peer = SocketAddr::new(super::stun::normalise(peer.ip()), peer.port());
        let five_tuple = a.five_tuple;
        let len = match a.channel_for(now, peer) {
            Some(number) => {
                channel_data::write(out, number, data, five_tuple.transport.is_stream())
            }
            None => {
                let mut txid = [0u8; 12];
                txid[4..].copy_from_slice(&counter.to_be_bytes());
                Writer::new(out, Class::Indication, method::DATA, txid)
                    .xor_address(attr::XOR_PEER_ADDRESS, peer)
                    .attr(attr::DATA, data)
                    .finish()
            }
        };
        let Some(len) = len else {
            self.metrics.dropped("too_large");
            return None;
        };
        self.stats.to_client_packets += 1;
        self.stats.to_client_bytes += data.len() as u64;
        Some(ToClient { five_tuple, len })
    }

    /// A stream transport closed: its allocation goes with it (RFC 8656 §3.1).
    pub fn close_client(&mut self, five_tuple: &FiveTuple, sockets: &mut dyn RelaySockets) {
        if let Some(id) = self.by_tuple.get(five_tuple).copied() {
            self.remove(id, sockets);
        }
    }

    /// When [`Server::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sweep = (self.limiter.tracked() > 0).then_some(self.next_limiter_sweep);
        match (self.next_deadline, sweep) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Expires allocations, permissions and channels whose time has come.
    pub fn handle_timeout(&mut self, now: Instant, sockets: &mut dyn RelaySockets) {
        if now >= self.next_limiter_sweep {
            self.limiter.sweep(now, LIMITER_IDLE);
            self.next_limiter_sweep = now + LIMITER_IDLE;
        }
        if self.next_deadline.is_none_or(|d| d > now) {
            return;
        }
        // Any shard may sweep the shared table: the held sockets are the driver's, shared
        // too. The earliest reservation left keeps this shard's timer armed.
        let (gone, mut next) = match self.reservations.lock() {
            Ok(mut table) => (table.expire(now), table.next_expiry()),
            Err(_) => (Vec::new(), None),
        };
        for addr in gone {
            sockets.release(addr);
        }
        let mut expired = Vec::new();
        let (mut perms, mut chans) = (0, 0);
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(a) = slot.allocation.as_mut() else {
                continue;
            };
            if a.expires <= now {
                expired.push(AllocationId {
                    slot: index as u32,
                    generation: slot.generation,
                });
                continue;
            }
            let (p, c) = a.expire(now);
            perms += p;
            chans += c;
            let d = a.next_deadline();
            next = Some(next.map_or(d, |n| n.min(d)));
        }
        self.metrics.permissions.dec_by(perms as i64);
        self.metrics.channels.dec_by(chans as i64);
        for id in expired {
            tracing::debug!(?id, "allocation expired");
            self.remove(id, sockets);
        }
        self.next_deadline = next;
    }

    /// Adds the relay counters gathered since the last call to the metrics.
    pub fn flush_stats(&mut self) -> RelayStats {
        let s = std::mem::take(&mut self.stats);
        let c = &self.relay_counters;
        if s.to_peer_packets > 0 {
            c.to_peer_packets.inc_by(s.to_peer_packets);
            c.to_peer_bytes.inc_by(s.to_peer_bytes);
        }
        if s.to_client_packets > 0 {
            c.to_client_packets.inc_by(s.to_client_packets);
            c.to_client_bytes.inc_by(s.to_client_bytes);
        }
        s
    }

    // ---- relay path ----------------------------------------------------------------

    fn on_channel_data(&mut self, now: Instant, five_tuple: FiveTuple, data: &[u8]) -> Output {
        let Some((number, payload)) = channel_data::parse(data) else {
            self.metrics.dropped("malformed");
            return Output::None;
        };
        let Some(id) = self.by_tuple.get(&five_tuple).copied() else {
            self.metrics.dropped("no_allocation");
            return Output::None;
        };
        let Some(a) = self.get_mut(id) else {
            return Output::None;
        };
        let Some(peer) = a.channel_peer(now, number) else {
            self.metrics.dropped("unbound_channel");
            return Output::None;
        };
        self.relay_to_peer(now, id, peer, payload, data)
    }

    fn on_send(
        &mut self,
        now: Instant,
        five_tuple: FiveTuple,
        msg: &Message,
        data: &[u8],
    ) -> Output {
        let Some(id) = self.by_tuple.get(&five_tuple).copied() else {
            self.metrics.dropped("no_allocation");
            return Output::None;
        };
        let (Ok(Some(peer)), Some(payload)) =
            (msg.xor_address(attr::XOR_PEER_ADDRESS), msg.get(attr::DATA))
        else {
            self.metrics.dropped("malformed");
            return Output::None;
        };
        self.relay_to_peer(now, id, peer, payload, data)
    }

    fn relay_to_peer(
        &mut self,
        now: Instant,
        id: AllocationId,
        peer: SocketAddr,
        payload: &[u8],
        data: &[u8],
    ) -> Output {
        if self.policy.is_listener(peer) {
            self.metrics.dropped("forbidden_peer");
            return Output::None;
        }
        let Some(a) = self.get_mut(id) else {
            return Output::None;
        };
        if !a.is_permitted(now, peer.ip()) {
            self.metrics.dropped("no_permission");
            return Output::None;
        }
        if !a.admit(now, payload.len()) {
            self.metrics.dropped("bandwidth");
            return Output::None;
        }
        // `payload` is a subslice of `data`: its offset is the pointer difference.
        let start = payload.as_ptr() as usize - data.as_ptr() as usize;
        self.stats.to_peer_packets += 1;
        self.stats.to_peer_bytes += payload.len() as u64;
        Output::ToPeer {
            id,
            peer,
            payload: start..start + payload.len(),
        }
    }

    // ---- requests ------------------------------------------------------------------

    fn on_request(
        &mut self,
        now: Instant,
        five_tuple: FiveTuple,
        msg: &Message,
        out: &mut [u8],
        sockets: &mut dyn RelaySockets,
    ) -> Output {
        let client_ip = five_tuple.client.ip();
        if msg.integrity.is_none() && !self.limiter.allow(client_ip, now) {
            self.metrics.dropped("rate_limited");
            return Output::None;
        }
        if msg.method == method::BINDING {
            let result = match msg.unknown {
                Some(t) => Err(RequestError::UnknownAttribute(t)),
                None => Ok(Success::Binding {
                    mapped: five_tuple.client,
                }),
            };
            return self.respond(now, five_tuple, msg, result, None, out);
        }
        let credential = match self.authenticate(now, five_tuple, msg) {
            Ok(c) => c,
            Err(e) => {
                // Failed authentication with integrity costs HMACs: it is rate-limited too.
                if msg.integrity.is_some() && !self.limiter.allow(client_ip, now) {
                    self.metrics.dropped("rate_limited");
                    return Output::None;
                }
                self.metrics
                    .auth_failures
                    .get_or_create(&ReasonLabels { reason: e.label() })
                    .inc();
                if msg.method == method::ALLOCATE {
                    self.count_allocate_failure(e);
                }
                return self.respond(now, five_tuple, msg, Err(e), None, out);
            }
        };
        let result = match msg.unknown {
            Some(t) => Err(RequestError::UnknownAttribute(t)),
            None => self.dispatch(now, five_tuple, msg, &credential, sockets),
        };
        if let Err(e) = result {
            tracing::debug!(method = msg.method, error = %e, "TURN request refused");
            if msg.method == method::ALLOCATE {
                self.count_allocate_failure(e);
            }
        }
        self.respond(now, five_tuple, msg, result, Some(credential.key), out)
    }

    fn dispatch(
        &mut self,
        now: Instant,
        five_tuple: FiveTuple,
        msg: &Message,
        credential: &Credential,
        sockets: &mut dyn RelaySockets,
    ) -> Result<Success, RequestError> {
        let username = msg.text(attr::USERNAME).ok().flatten().unwrap_or_default();
        if !matches!(
            msg.method,
            method::ALLOCATE | method::REFRESH | method::CREATE_PERMISSION | method::CHANNEL_BIND
        ) {
            return Err(RequestError::BadRequest("unknown method"));
        }
        if msg.method == method::ALLOCATE {
            return self.on_allocate(now, five_tuple, msg, username, credential, sockets);
        }
        let id = self
            .by_tuple
            .get(&five_tuple)
            .copied()
            .ok_or(RequestError::AllocationMismatch)?;
        if self.get(id).is_some_and(|a| a.username != username) {
            return Err(RequestError::WrongCredentials);
        }
        match msg.method {
            method::REFRESH => self.on_refresh(now, id, msg, sockets),
            method::CREATE_PERMISSION => self.on_create_permission(now, id, msg),
            method::CHANNEL_BIND => self.on_channel_bind(now, id, msg),
            _ => Err(RequestError::BadRequest("unknown method")),
        }
    }

    /// RFC 8489 §9.2.4, in its order: integrity missing (401), USERNAME/REALM/NONCE
    /// missing (400), nonce stale (438), username unknown or expired (401), integrity
    /// wrong (401).
    fn authenticate(
        &self,
        now: Instant,
        five_tuple: FiveTuple,
        msg: &Message,
    ) -> Result<Credential, RequestError> {
        if msg.integrity.is_none() {
            return Err(RequestError::Unauthorized);
        }
        let bad = |_| RequestError::BadRequest("USERNAME, REALM or NONCE malformed");
        let (Some(username), Some(realm), Some(nonce)) = (
            msg.text(attr::USERNAME).map_err(bad)?,
            msg.text(attr::REALM).map_err(bad)?,
            msg.get(attr::NONCE),
        ) else {
            return Err(RequestError::BadRequest(
                "USERNAME, REALM and NONCE required",
            ));
        };
        let unix = self.unix(now);
        self.auth.check_nonce(nonce, five_tuple.client, unix)?;
        if realm != self.auth.realm() {
            return Err(RequestError::BadCredentials);
        }
        let credential = self.auth.credential(username, unix)?;
        if !msg.verify_integrity(&credential.key) {
            return Err(RequestError::BadCredentials);
        }
        Ok(credential)
    }

    fn on_allocate(
        &mut self,
        now: Instant,
        five_tuple: FiveTuple,
        msg: &Message,
        username: &str,
        credential: &Credential,
        sockets: &mut dyn RelaySockets,
    ) -> Result<Success, RequestError> {
        if let Some(a) = self.allocation(&five_tuple) {
            // RFC 8656 §7.2: a retransmitted Allocate gets the original success.
            if a.allocate_transaction == msg.transaction_id {
                let left = a.expires.saturating_duration_since(now).as_secs() as u32;
                return Ok(Success::Allocate {
                    relay: a.relay,
                    lifetime: left,
                    mapped: five_tuple.client,
                    token: a.reservation_token,
                });
            }
            return Err(RequestError::AllocationMismatch);
        }
        let transport = msg
            .get(attr::REQUESTED_TRANSPORT)
            .ok_or(RequestError::BadRequest("REQUESTED-TRANSPORT required"))?;
        if transport.len() != 4 {
            return Err(RequestError::BadRequest("REQUESTED-TRANSPORT malformed"));
        }
        if transport[0] != 17 {
            return Err(RequestError::UnsupportedTransport);
        }
        // We cannot promise DF on relayed datagrams: RFC 8656 §7.2 says answer 420.
        if msg.get(attr::DONT_FRAGMENT).is_some() {
            return Err(RequestError::UnknownAttribute(attr::DONT_FRAGMENT));
        }
        // RFC 8656 §14.6: one byte, its top bit R asks to reserve the next port too.
        let even = match msg.get(attr::EVEN_PORT) {
            None => None,
            Some([flags, ..]) => Some(Reserve(flags & 0x80 != 0)),
            Some([]) => return Err(RequestError::BadRequest("EVEN-PORT malformed")),
        };
        let token = match msg.get(attr::RESERVATION_TOKEN) {
            None => None,
            Some(v) => Some(
                Token::try_from(v)
                    .map_err(|_| RequestError::BadRequest("RESERVATION-TOKEN malformed"))?,
            ),
        };
        if token.is_some() && even.is_some() {
            return Err(RequestError::BadRequest("EVEN-PORT with RESERVATION-TOKEN"));
        }
        if token.is_some() && msg.get(attr::REQUESTED_ADDRESS_FAMILY).is_some() {
            return Err(RequestError::BadRequest(
                "REQUESTED-ADDRESS-FAMILY with RESERVATION-TOKEN",
            ));
        }
        let relay_ip = self.relay_ip.unwrap_or(five_tuple.server.ip());
        if let Some(family) = msg.get(attr::REQUESTED_ADDRESS_FAMILY) {
            let wanted_v4 = match family.first() {
                Some(0x01) => true,
                Some(0x02) => false,
                _ => return Err(RequestError::AddressFamilyNotSupported),
            };
            if wanted_v4 != relay_ip.is_ipv4() {
                return Err(RequestError::AddressFamilyNotSupported);
            }
        }
        let lifetime = self.lifetime(msg)?;
        self.quotas
            .lock()
            .map_err(|_| RequestError::ServerError)?
            .try_acquire(&credential.quota_user)?;
        let id = self.reserve_slot();
        let bound = match token {
            Some(token) => self.claim_reservation(now, id, &token, sockets),
            None => self.bind_port(now, id, relay_ip, even, sockets),
        };
        let (relay, token) = match bound {
            Ok(bound) => bound,
            Err(e) => {
                self.release_slot(id);
                if let Ok(mut q) = self.quotas.lock() {
                    q.release(&credential.quota_user);
                }
                return Err(e);
            }
        };
        let allocation = Allocation::new(
            now,
            five_tuple,
            relay,
            username.to_string(),
            credential.quota_user.clone(),
            credential.key,
            lifetime,
            msg.transaction_id,
            self.limits,
        );
        let mut allocation = allocation;
        allocation.reservation_token = token;
        self.slots[id.slot as usize].allocation = Some(allocation);
        self.by_tuple.insert(five_tuple, id);
        self.schedule(now + lifetime);
        self.metrics.allocations_active.inc();
        self.metrics
            .allocations_created
            .get_or_create(&TransportLabels {
                transport: five_tuple.transport.label(),
            })
            .inc();
        tracing::debug!(?id, %relay, transport = five_tuple.transport.label(), "allocation created");
        Ok(Success::Allocate {
            relay,
            lifetime: lifetime.as_secs() as u32,
            mapped: five_tuple.client,
            token,
        })
    }

    fn on_refresh(
        &mut self,
        now: Instant,
        id: AllocationId,
        msg: &Message,
        sockets: &mut dyn RelaySockets,
    ) -> Result<Success, RequestError> {
        if msg.u32(attr::LIFETIME).map_err(|_| bad_attr())? == Some(0) {
            self.remove(id, sockets);
            return Ok(Success::Refresh { lifetime: 0 });
        }
        let lifetime = self.lifetime(msg)?;
        if let Some(a) = self.get_mut(id) {
            a.refresh(now, lifetime);
        }
        self.schedule(now + lifetime);
        Ok(Success::Refresh {
            lifetime: lifetime.as_secs() as u32,
        })
    }

    fn on_create_permission(
        &mut self,
        now: Instant,
        id: AllocationId,
        msg: &Message,
    ) -> Result<Success, RequestError> {
        let mut peers = Vec::new();
        for (t, value) in msg.attributes() {
            if t == attr::XOR_PEER_ADDRESS {
                let peer = super::stun::decode_xor_address(value, &msg.transaction_id)
                    .ok_or_else(bad_attr)?;
                peers.push(peer);
            }
        }
        if peers.is_empty() {
            return Err(RequestError::BadRequest("XOR-PEER-ADDRESS required"));
        }
        let relay = self
            .get(id)
            .map(|a| a.relay)
            .ok_or(RequestError::ServerError)?;
        for peer in &peers {
            self.check_peer(relay, *peer)?;
        }
        let ips: Vec<IpAddr> = peers.iter().map(SocketAddr::ip).collect();
        let a = self.get_mut(id).ok_or(RequestError::ServerError)?;
        if !a.has_room_for(&ips) {
            return Err(RequestError::InsufficientCapacity);
        }
        let before = a.permission_count();
        for ip in ips {
            a.permit(now, ip)?;
        }
        let added = a.permission_count() - before;
        self.metrics.permissions.inc_by(added as i64);
        self.schedule(now + super::allocation::PERMISSION_LIFETIME);
        Ok(Success::Empty)
    }

    fn on_channel_bind(
        &mut self,
        now: Instant,
        id: AllocationId,
        msg: &Message,
    ) -> Result<Success, RequestError> {
        let number = match msg.get(attr::CHANNEL_NUMBER) {
            Some(v) if v.len() == 4 => u16::from_be_bytes([v[0], v[1]]),
            _ => return Err(RequestError::BadRequest("CHANNEL-NUMBER required")),
        };
        if !(channel_data::MIN_CHANNEL..=channel_data::MAX_CHANNEL).contains(&number) {
            return Err(RequestError::BadRequest("channel number out of range"));
        }
        let peer = msg
            .xor_address(attr::XOR_PEER_ADDRESS)
            .map_err(|_| bad_attr())?
            .ok_or(RequestError::BadRequest("XOR-PEER-ADDRESS required"))?;
        let relay = self
            .get(id)
            .map(|a| a.relay)
            .ok_or(RequestError::ServerError)?;
        self.check_peer(relay, peer)?;
        let a = self.get_mut(id).ok_or(RequestError::ServerError)?;
        if !a.has_room_for(&[peer.ip()]) {
            return Err(RequestError::InsufficientCapacity);
        }
        let (perms, chans) = (a.permission_count(), a.channel_count());
        a.bind_channel(now, number, peer)?;
        a.permit(now, peer.ip())?;
        let (perms, chans) = (a.permission_count() - perms, a.channel_count() - chans);
        self.metrics.permissions.inc_by(perms as i64);
        self.metrics.channels.inc_by(chans as i64);
        self.schedule(now + super::allocation::PERMISSION_LIFETIME);
        Ok(Success::Empty)
    }

    // ---- helpers -------------------------------------------------------------------

    fn check_peer(&self, relay: SocketAddr, peer: SocketAddr) -> Result<(), RequestError> {
        if super::stun::normalise(peer.ip()).is_ipv4() != relay.is_ipv4() {
            return Err(RequestError::PeerAddressFamilyMismatch);
        }
        self.policy.check(peer)
    }

    /// RFC 8656 §7.2: the client's LIFETIME capped at the maximum, never below the default.
    fn lifetime(&self, msg: &Message) -> Result<Duration, RequestError> {
        let requested = msg.u32(attr::LIFETIME).map_err(|_| bad_attr())?;
        Ok(requested.map_or(self.default_lifetime, |secs| {
            Duration::from_secs(u64::from(secs))
                .min(self.max_lifetime)
                .max(self.default_lifetime)
        }))
    }

    fn schedule(&mut self, deadline: Instant) {
        self.next_deadline = Some(self.next_deadline.map_or(deadline, |d| d.min(deadline)));
    }

    fn reserve_slot(&mut self) -> AllocationId {
        match self.free.pop() {
            Some(slot) => AllocationId {
                slot,
                generation: self.slots[slot as usize].generation,
            },
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    allocation: None,
                });
                AllocationId {
                    slot: (self.slots.len() - 1) as u32,
                    generation: 0,
                }
            }
        }
    }

    fn release_slot(&mut self, id: AllocationId) {
        let slot = &mut self.slots[id.slot as usize];
        slot.allocation = None;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.slot);
    }

    /// Binds a relayed port from the range; with EVEN-PORT an even one, and with its R
    /// bit also reserves the next port, returning the token that claims it.
    fn bind_port(
        &mut self,
        now: Instant,
        id: AllocationId,
        ip: IpAddr,
        even: Option<Reserve>,
        sockets: &mut dyn RelaySockets,
    ) -> Result<(SocketAddr, Option<Token>), RequestError> {
        let reserve = matches!(even, Some(Reserve(true)));
        if reserve && !self.reservations_have_room() {
            return Err(RequestError::InsufficientCapacity);
        }
        let range = self.relay_ports;
        let len = range.len();
        for _ in 0..len.min(PORT_ATTEMPTS) {
            let port = (u32::from(range.min) + self.port_cursor % len) as u16;
            self.port_cursor = (self.port_cursor + 1) % len;
            if (even.is_some() && port % 2 == 1) || (reserve && port == range.max) {
                continue;
            }
            let addr = SocketAddr::new(ip, port);
            match sockets.open(id, addr) {
                Ok(()) => {}
                Err(BindError::InUse) => continue,
                Err(BindError::Failed) => break,
            }
            if !reserve {
                return Ok((addr, None));
            }
            let next = SocketAddr::new(ip, port + 1);
            match sockets.reserve(next) {
                Ok(()) => {}
                Err(e) => {
                    sockets.close(id);
                    match e {
                        BindError::InUse => continue,
                        BindError::Failed => break,
                    }
                }
            }
            match self.record_reservation(now, next) {
                Some(token) => return Ok((addr, Some(token))),
                None => {
                    sockets.release(next);
                    sockets.close(id);
                    break;
                }
            }
        }
        Err(RequestError::InsufficientCapacity)
    }

    fn reservations_have_room(&self) -> bool {
        self.reservations.lock().is_ok_and(|r| r.has_room())
    }

    /// Draws a token for the port held at `addr` and records it; `None` if the table is
    /// full.
    fn record_reservation(&mut self, now: Instant, addr: SocketAddr) -> Option<Token> {
        let mut table = self.reservations.lock().ok()?;
        // A drawn token is taken only by a collision with another shard's: draw again.
        for _ in 0..4 {
            self.token_counter = self.token_counter.wrapping_add(1);
            let token = reservation_token(&self.token_key, self.token_counter);
            if table.insert(token, addr, now + RESERVATION_LIFETIME) {
                drop(table);
                self.schedule(now + RESERVATION_LIFETIME);
                return Some(token);
            }
            if !table.has_room() {
                return None;
            }
        }
        None
    }

    /// RFC 8656 §7.2: the port a RESERVATION-TOKEN holds, or 508 if the token is unknown,
    /// used or expired.
    fn claim_reservation(
        &mut self,
        now: Instant,
        id: AllocationId,
        token: &Token,
        sockets: &mut dyn RelaySockets,
    ) -> Result<(SocketAddr, Option<Token>), RequestError> {
        let taken = self
            .reservations
            .lock()
            .map_err(|_| RequestError::ServerError)?
            .take(token, now);
        match taken {
            Ok(addr) => match sockets.open_reserved(id, addr) {
                Ok(()) => Ok((addr, None)),
                Err(_) => Err(RequestError::InsufficientCapacity),
            },
            Err(expired) => {
                if let Some(addr) = expired {
                    sockets.release(addr);
                }
                Err(RequestError::InsufficientCapacity)
            }
        }
    }

    fn remove(&mut self, id: AllocationId, sockets: &mut dyn RelaySockets) {
        let Some(slot) = self.slots.get_mut(id.slot as usize) else {
            return;
        };
        if slot.generation != id.generation {
            return;
        }
        let Some(a) = slot.allocation.take() else {
            return;
        };
        self.by_tuple.remove(&a.five_tuple);
        if let Ok(mut q) = self.quotas.lock() {
            q.release(&a.quota_user);
        }
        self.metrics.allocations_active.dec();
        self.metrics.permissions.dec_by(a.permission_count() as i64);
        self.metrics.channels.dec_by(a.channel_count() as i64);
        sockets.close(id);
        self.release_slot(id);
    }

    fn count_allocate_failure(&self, e: RequestError) {
        if e == RequestError::QuotaReached {
            self.metrics.quota_rejections.inc();
        }
        self.metrics
            .allocations_failed
            .get_or_create(&ReasonLabels { reason: e.label() })
            .inc();
    }

    /// Writes the response: attributes, then MESSAGE-INTEGRITY(-SHA256) with the
    /// request's algorithm if it authenticated, then FINGERPRINT if the request had one.
    fn respond(
        &self,
        now: Instant,
        five_tuple: FiveTuple,
        msg: &Message,
        result: Result<Success, RequestError>,
        key: Option<[u8; 16]>,
        out: &mut [u8],
    ) -> Output {
        let class = if result.is_ok() {
            Class::Success
        } else {
            Class::Error
        };
        let mut w = Writer::new(out, class, msg.method, msg.transaction_id);
        match result {
            Ok(Success::Binding { mapped }) => {
                w.xor_address(attr::XOR_MAPPED_ADDRESS, mapped);
            }
            Ok(Success::Allocate {
                relay,
                lifetime,
                mapped,
                token,
            }) => {
                w.xor_address(attr::XOR_RELAYED_ADDRESS, relay)
                    .u32(attr::LIFETIME, lifetime)
                    .xor_address(attr::XOR_MAPPED_ADDRESS, mapped);
                if let Some(token) = token {
                    w.attr(attr::RESERVATION_TOKEN, &token);
                }
            }
            Ok(Success::Refresh { lifetime }) => {
                w.u32(attr::LIFETIME, lifetime);
            }
            Ok(Success::Empty) => {}
            Err(e) => {
                let (code, reason) = e.code();
                self.metrics
                    .request_errors
                    .get_or_create(&ReasonLabels { reason: e.label() })
                    .inc();
                w.error_code(code, reason);
                if let RequestError::UnknownAttribute(t) = e {
                    w.attr(attr::UNKNOWN_ATTRIBUTES, &t.to_be_bytes());
                }
                if e.challenges() {
                    let nonce = self.auth.nonce(five_tuple.client, self.unix(now));
                    w.attr(attr::REALM, self.auth.realm().as_bytes())
                        .attr(attr::NONCE, &nonce);
                }
            }
        }
        w.attr(attr::SOFTWARE, SOFTWARE);
        if let Some(key) = key {
            let sha256 = matches!(msg.integrity, Some(Integrity::Sha256 { .. }));
            w.sync().integrity(&key, sha256);
        }
        if msg.has_fingerprint {
            w.fingerprint();
        }
        match w.finish() {
            Some(len) => Output::Reply(len),
            None => {
                self.metrics.dropped("response_too_large");
                Output::None
            }
        }
    }
}

/// EVEN-PORT's R bit: reserve the next port too.
#[derive(Debug, Clone, Copy)]
struct Reserve(bool);

/// A RESERVATION-TOKEN: the first 8 bytes of HMAC-SHA256(key, label, counter).
fn reservation_token(key: &[u8; 32], counter: u64) -> Token {
    use hmac::{Hmac, Mac};
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(b"switchboard reservation token");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let mut token = [0; 8];
    token.copy_from_slice(&digest[..8]);
    token
}

fn bad_attr() -> RequestError {
    RequestError::BadRequest("malformed attribute")
}
