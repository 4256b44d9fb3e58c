//! All the rooms one worker owns, the demultiplexer that routes its socket's datagrams to a
//! peer, and the timer heap that wakes only the peers that are due.
//!
//! # Contract
//!
//! Inputs: [`Shard::handle_datagram`], [`Shard::handle_timeout`], [`Shard::handle_command`].
//! After each, drain [`Shard::poll_output`] until `None`, then sleep until
//! [`Shard::poll_timeout`] or the next datagram or command. The shard reads no clock and
//! touches no socket; the driver (`driver/worker.rs`) does both.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use str0m::net::{Protocol, Receive};
use str0m::Input;

use super::api::{Command, FeedId, HandleId, Reply, RoomError, RoomId, RoomInfo, Stats};
use super::demux::{parse_ufrag, stun_local_ufrag};
use super::room::{Room, RoomOutput, RoomSettings};
use crate::grant::{Grant, GrantRole};

/// Timer expirations handled per [`Shard::handle_timeout`] call at most, so one wake cannot
/// starve the socket (arbitrary; far above what a worker's peers produce per millisecond).
const MAX_TIMERS_PER_WAKE: usize = 4096;

#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// The address announced as ICE host candidate (public IP, this worker's port); also the
    /// destination str0m sees on every datagram.
    pub candidate: SocketAddr,
    /// Default for rooms created by a join or without `publishers`.
    pub max_publishers: usize,
    /// Refuse joins without a valid grant (off only for tests and closed networks).
    pub require_grant: bool,
}

/// Where a learned source address goes: room slot, peer slot, peer generation.
type PeerKey = (usize, usize, u32);

pub struct Shard {
    config: ShardConfig,
    rooms: Vec<Option<Room>>,
    free_rooms: Vec<usize>,
    room_by_id: HashMap<String, usize>,
    handles: HashMap<HandleId, usize>,
    addrs: HashMap<SocketAddr, PeerKey>,
    timers: BinaryHeap<Reverse<(Instant, usize, usize)>>,
    /// Rooms that may have output queued, most recent last.
    pending: Vec<usize>,
    /// Output of rooms that no longer exist.
    out: VecDeque<RoomOutput>,
    stats: Stats,
    touched: Vec<usize>,
    gone: Vec<(usize, u32)>,
}

impl Shard {
    pub fn new(config: ShardConfig) -> Self {
        Self {
            config,
            rooms: Vec::new(),
            free_rooms: Vec::new(),
            room_by_id: HashMap::new(),
            handles: HashMap::new(),
            addrs: HashMap::new(),
            timers: BinaryHeap::new(),
            pending: Vec::new(),
            out: VecDeque::new(),
            stats: Stats::default(),
            touched: Vec::new(),
            gone: Vec::new(),
        }
    }

    pub fn config(&self) -> &ShardConfig {
        &self.config
    }

    /// Counters since the last call.
    pub fn take_stats(&mut self) -> Stats {
        self.stats.take()
    }

    /// (rooms, peers, published tracks) for the gauges.
    pub fn gauges(&self) -> (usize, usize, usize) {
        let mut peers = 0;
        let mut tracks = 0;
        for room in self.rooms.iter().flatten() {
            let (p, t) = room.counts();
            peers += p;
            tracks += t;
        }
        (self.room_by_id.len(), peers, tracks)
    }

    /// Calls `f` with the bandwidth estimate of every connected subscriber (for the estimate
    /// distribution, sampled by the driver).
    pub fn subscriber_estimates(&self, mut f: impl FnMut(u64)) {
        for room in self.rooms.iter().flatten() {
            room.subscriber_estimates(&mut f);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _, _))| *t)
    }

    pub fn poll_output(&mut self) -> Option<RoomOutput> {
        if let Some(o) = self.out.pop_front() {
            return Some(o);
        }
        while let Some(&ri) = self.pending.last() {
            if let Some(o) = self
                .rooms
                .get_mut(ri)
                .and_then(Option::as_mut)
                .and_then(Room::poll_output)
            {
                return Some(o);
            }
            self.pending.pop();
        }
        None
    }

    /// One UDP datagram from `source`.
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        self.stats.packets_in += 1;
        self.stats.bytes_in += datagram.len() as u64;
        let Some((ri, slot)) = self.route(source, datagram) else {
            self.stats.unknown_source += 1;
            return;
        };
        let input = match Receive::new(Protocol::Udp, source, self.config.candidate, datagram) {
            Ok(r) => Input::Receive(now, r),
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        if let Some(room) = self.rooms.get_mut(ri).and_then(Option::as_mut) {
            room.handle_datagram(now, slot, input);
        }
        self.after(ri);
    }

    /// Finds the owner: by learned address, else by the ufrag of a STUN binding request.
    fn route(&mut self, source: SocketAddr, datagram: &[u8]) -> Option<(usize, usize)> {
        if let Some(&(ri, slot, generation)) = self.addrs.get(&source) {
            if self
                .room(ri)
                .is_some_and(|r| r.peer_matches(slot, generation))
            {
                return Some((ri, slot));
            }
            self.addrs.remove(&source);
        }
        let ufrag = stun_local_ufrag(datagram)?;
        let (ri, slot, generation) = parse_ufrag(ufrag)?;
        let room = self.room(ri)?;
        if !room.peer_matches(slot, generation) || room.peer_ufrag(slot) != Some(ufrag) {
            return None;
        }
        // The Rtc checks MESSAGE-INTEGRITY; a forged request only maps its own address.
        self.addrs.insert(source, (ri, slot, generation));
        Some((ri, slot))
    }

    /// Feeds every peer whose deadline passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        for _ in 0..MAX_TIMERS_PER_WAKE {
            match self.timers.peek() {
                Some(Reverse((t, _, _))) if *t <= now => {}
                _ => return,
            }
            let Some(Reverse((t, ri, slot))) = self.timers.pop() else {
                return;
            };
            let Some(room) = self.rooms.get_mut(ri).and_then(Option::as_mut) else {
                continue;
            };
            // Stale entries (the deadline moved since) are skipped.
            if room.deadline(slot) != Some(t) {
                continue;
            }
            room.handle_timeout(now, slot);
            self.after(ri);
        }
    }

    /// A signalling command for `handle`.
    pub fn handle_command(
        &mut self,
        now: Instant,
        handle: HandleId,
        cmd: Command,
    ) -> Result<Reply, RoomError> {
        match cmd {
            Command::Create {
                room,
                description,
                max_publishers,
            } => self.create(room, description, max_publishers, false, None),
            Command::Destroy { room } => self.destroy(now, &room),
            Command::Exists { room } => Ok(Reply::Exists {
                exists: self.room_by_id.contains_key(&room.key()),
                room,
            }),
            Command::List => Ok(Reply::List(self.list())),
            Command::ListParticipants { room } => {
                let ri = self.room_index(&room)?;
                let participants = self.room(ri).map(Room::participants).unwrap_or_default();
                Ok(Reply::Participants { room, participants })
            }
            Command::JoinPublisher {
                room,
                feed,
                display,
                grant,
            } => {
                let feed = self.admit(&room, grant.as_ref(), Some(feed))?;
                let ri = self.join_room(handle, &room, grant.as_ref())?;
                self.run(now, ri, handle, |room, now| {
                    room.handle_command(
                        now,
                        handle,
                        Command::JoinPublisher {
                            room: room.id().clone(),
                            feed,
                            display,
                            grant: None,
                        },
                    )
                })
            }
            Command::JoinSubscriber {
                room,
                feeds,
                grant,
                quality,
            } => {
                self.admit(&room, grant.as_ref(), None)?;
                let ri = self.join_room(handle, &room, grant.as_ref())?;
                self.run(now, ri, handle, |room, now| {
                    room.handle_command(
                        now,
                        handle,
                        Command::JoinSubscriber {
                            room: room.id().clone(),
                            feeds,
                            grant: None,
                            quality,
                        },
                    )
                })
            }
            cmd => {
                let ri = *self.handles.get(&handle).ok_or(RoomError::JoinFirst)?;
                let leaving = matches!(cmd, Command::Leave);
                let reply = self.run(now, ri, handle, |room, now| {
                    room.handle_command(now, handle, cmd)
                });
                if leaving {
                    self.handles.remove(&handle);
                    self.drop_if_unused(ri);
                }
                reply
            }
        }
    }

    /// Runs `f` on room `ri`; a join that fails leaves no trace of the handle.
    fn run(
        &mut self,
        now: Instant,
        ri: usize,
        handle: HandleId,
        f: impl FnOnce(&mut Room, Instant) -> Result<Reply, RoomError>,
    ) -> Result<Reply, RoomError> {
        let Some(room) = self.rooms.get_mut(ri).and_then(Option::as_mut) else {
            return Err(RoomError::Internal("room vanished".into()));
        };
        let reply = f(room, now);
        let joined = room.handles().any(|h| h == handle);
        if !joined {
            self.handles.remove(&handle);
        }
        self.after(ri);
        self.drop_if_unused(ri);
        reply
    }

    /// Checks a join against the grant (when grants are required). For a publisher join,
    /// returns the feed id to use: the grant's user id.
    fn admit(
        &self,
        room: &RoomId,
        grant: Option<&Grant>,
        publisher: Option<Option<FeedId>>,
    ) -> Result<Option<FeedId>, RoomError> {
        let requested = publisher.flatten();
        if !self.config.require_grant {
            return Ok(requested);
        }
        let g = grant.ok_or(RoomError::Unauthorized("a join grant is required"))?;
        if g.room != room.key() {
            return Err(RoomError::Unauthorized("the grant is for another room"));
        }
        if publisher.is_none() {
            return Ok(None);
        }
        if g.role != GrantRole::Publisher {
            return Err(RoomError::Unauthorized(
                "the grant does not allow publishing",
            ));
        }
        match requested {
            Some(f) if f.0 != g.user => Err(RoomError::Unauthorized(
                "the grant is for another publisher id",
            )),
            _ => Ok(Some(FeedId(g.user))),
        }
    }

    /// The room a join goes to, created on first join (the QuickBlox client never sends
    /// `create`). Registers the handle there.
    fn join_room(
        &mut self,
        handle: HandleId,
        room: &RoomId,
        grant: Option<&Grant>,
    ) -> Result<usize, RoomError> {
        if self.handles.contains_key(&handle) {
            return Err(RoomError::AlreadyJoined);
        }
        let ri = match self.room_by_id.get(&room.key()) {
            Some(&ri) => ri,
            None => {
                self.create(Some(room.clone()), None, None, true, grant.map(|g| g.app))?;
                self.room_index(room)?
            }
        };
        if let (Some(g), Some(r)) = (grant, self.rooms.get_mut(ri).and_then(Option::as_mut)) {
            match r.settings().app {
                Some(app) if app != g.app => {
                    return Err(RoomError::Unauthorized(
                        "the room belongs to another application",
                    ))
                }
                Some(_) => {}
                None => r.settings_mut().app = Some(g.app),
            }
        }
        self.handles.insert(handle, ri);
        Ok(ri)
    }

    fn create(
        &mut self,
        room: Option<RoomId>,
        description: Option<String>,
        max_publishers: Option<usize>,
        auto_created: bool,
        app: Option<i64>,
    ) -> Result<Reply, RoomError> {
        let id = match room {
            Some(r) if self.room_by_id.contains_key(&r.key()) => {
                return Err(RoomError::RoomExists(r.key()))
            }
            Some(r) => r,
            None => loop {
                let r = RoomId::Num(rand::random::<u64>() & ((1 << 53) - 1));
                if !self.room_by_id.contains_key(&r.key()) {
                    break r;
                }
            },
        };
        let ri = self.free_rooms.pop().unwrap_or_else(|| {
            self.rooms.push(None);
            self.rooms.len() - 1
        });
        let settings = RoomSettings {
            description: description.unwrap_or_else(|| format!("Room {id}")),
            max_publishers: max_publishers.unwrap_or(self.config.max_publishers),
            auto_created,
            app,
        };
        tracing::debug!(room = %id, auto_created, "room created");
        self.rooms[ri] = Some(Room::new(id.clone(), ri, settings, self.config.candidate));
        self.room_by_id.insert(id.key(), ri);
        Ok(Reply::Created { room: id })
    }

    fn destroy(&mut self, now: Instant, room: &RoomId) -> Result<Reply, RoomError> {
        let ri = self.room_index(room)?;
        if let Some(r) = self.rooms.get_mut(ri).and_then(Option::as_mut) {
            r.destroy(now);
        }
        self.after(ri);
        self.remove_room(ri);
        Ok(Reply::Destroyed { room: room.clone() })
    }

    /// An auto-created room goes away with its last participant.
    fn drop_if_unused(&mut self, ri: usize) {
        if self
            .room(ri)
            .is_some_and(|r| r.is_empty() && r.settings().auto_created)
        {
            self.remove_room(ri);
        }
    }

    fn remove_room(&mut self, ri: usize) {
        let Some(mut room) = self.rooms.get_mut(ri).and_then(Option::take) else {
            return;
        };
        while let Some(o) = room.poll_output() {
            self.out.push_back(o);
        }
        self.room_by_id.remove(&room.id().key());
        self.handles.retain(|_, r| *r != ri);
        self.addrs.retain(|_, k| k.0 != ri);
        self.free_rooms.push(ri);
        tracing::debug!(room = %room.id(), "room removed");
    }

    fn list(&self) -> Vec<RoomInfo> {
        self.rooms.iter().flatten().map(Room::info).collect()
    }

    fn room(&self, ri: usize) -> Option<&Room> {
        self.rooms.get(ri)?.as_ref()
    }

    fn room_index(&self, room: &RoomId) -> Result<usize, RoomError> {
        self.room_by_id
            .get(&room.key())
            .copied()
            .ok_or_else(|| RoomError::NoSuchRoom(room.key()))
    }

    /// Bookkeeping after a room ran: new deadlines into the heap, gone peers out of the
    /// address map, counters into the shard's, and the room onto the output list.
    fn after(&mut self, ri: usize) {
        let Some(room) = self.rooms.get_mut(ri).and_then(Option::as_mut) else {
            return;
        };
        room.take_touched(&mut self.touched);
        room.take_gone(&mut self.gone);
        add_stats(&mut self.stats, &room.stats.take());
        for slot in self.touched.drain(..) {
            if let Some(t) = room.deadline(slot) {
                self.timers.push(Reverse((t, ri, slot)));
            }
        }
        for (slot, generation) in self.gone.drain(..) {
            self.addrs.retain(|_, k| *k != (ri, slot, generation));
        }
        if self.pending.last() != Some(&ri) {
            self.pending.push(ri);
        }
    }
}

fn add_stats(into: &mut Stats, s: &Stats) {
    into.packets_in += s.packets_in;
    into.bytes_in += s.bytes_in;
    into.packets_out += s.packets_out;
    into.bytes_out += s.bytes_out;
    into.rtp_in += s.rtp_in;
    into.rtp_forwarded += s.rtp_forwarded;
    into.nacks += s.nacks;
    into.nacks_sent += s.nacks_sent;
    into.retransmissions += s.retransmissions;
    into.keyframe_requests += s.keyframe_requests;
    into.plis_from_subscribers += s.plis_from_subscribers;
    into.layer_switches += s.layer_switches;
    into.temporal_drops += s.temporal_drops;
    into.timer_wakes += s.timer_wakes;
    into.bwe_reprobes += s.bwe_reprobes;
    into.malformed += s.malformed;
    into.unknown_source += s.unknown_source;
}
