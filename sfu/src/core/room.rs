//! A conference room: its participants' PeerConnections and the forwarding between them.
//!
//! # Contract
//!
//! Sans-IO, like str0m's `Rtc` it drives. Inputs are [`Room::handle_command`] (signalling),
//! [`Room::handle_datagram`] (a UDP datagram the shard routed to one peer) and
//! [`Room::handle_timeout`] (a peer's deadline passed); after every input drain
//! [`Room::poll_output`] until it returns `None`. Peers whose deadline changed are listed by
//! [`Room::take_touched`], peers that went away by [`Room::take_gone`]. Time is only ever the
//! `now` passed in.
//!
//! Each peer's `Rtc` is drained to its timeout after every mutation (str0m's single-mutation
//! invariant). A publisher's drain yields RTP packets, each forwarded to the subscribers of its
//! track by `write_rtp` on their `Rtc`s, each of which is drained in turn. Keyframe requests
//! that subscribers cause are queued and sent to publishers at the end of the input.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::{self, Codec, PayloadParams};
use str0m::media::{Direction, KeyframeRequestKind, MediaAdded, Mid, Rid, Rids};
use str0m::net::Transmit;
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output};

use super::api::{
    Command, FeedId, HandleId, MediaKind, ParticipantInfo, PublisherInfo, Quality, QualityChange,
    Reply, RoomError, RoomEvent, RoomId, RoomInfo, Stats,
};
use super::forward::{allocate, Demand, LayerSwitch, Rewriter, Verdict, MAX_LAYERS};
use super::participant::{
    kind_of, new_rtc, str_kind, InTrack, OutTrack, Peer, PeerKind, Publisher, Subscriber,
    AUDIO_RESERVE_BPS, REALLOCATE_EVERY,
};
use super::speaker::{SpeakerChange, SpeakerDetector};
use super::vp8::{Vp8Info, Vp8Rewrite};

/// Per-room settings (Janus `create` parameters and the configured defaults).
#[derive(Debug, Clone)]
pub struct RoomSettings {
    pub description: String,
    pub max_publishers: usize,
    /// Created by a first `join` rather than `create`: removed when the last handle leaves.
    pub auto_created: bool,
    /// The application whose grants admitted the first participant; others are refused.
    pub app: Option<i64>,
}

/// What a room asks its driver to do.
#[derive(Debug)]
pub enum RoomOutput {
    Transmit(Transmit),
    Event(HandleId, RoomEvent),
}

/// Multiple of a subscriber's full demand given to str0m as its desired bitrate. str0m probes
/// at up to twice the desired bitrate and takes a probe's result as the new estimate; its
/// probe clusters are short (15 ms), so with sparse large media packets in them a probe
/// measures well below its target. Aiming above the need lets the estimate climb back past
/// the top layers once a constraint goes.
const PROBE_HEADROOM: u64 = 2;

/// A keyframe someone needs: publisher slot, track index, layer.
type KeyframeNeed = (usize, usize, u8);

pub struct Room {
    id: RoomId,
    slot: usize,
    settings: RoomSettings,
    /// The ICE host candidate every peer announces (the worker's public address).
    candidate: SocketAddr,
    peers: Vec<Option<Peer>>,
    free: Vec<usize>,
    by_handle: HashMap<HandleId, usize>,
    feeds: HashMap<FeedId, usize>,
    out: VecDeque<RoomOutput>,
    touched: Vec<usize>,
    gone: Vec<(usize, u32)>,
    keyframes: Vec<KeyframeNeed>,
    /// Reused per forwarded packet (no allocation on the hot path once warm).
    scratch_subs: Vec<(usize, usize)>,
    pub stats: Stats,
}

impl Room {
    pub fn new(id: RoomId, slot: usize, settings: RoomSettings, candidate: SocketAddr) -> Self {
        Self {
            id,
            slot,
            settings,
            candidate,
            peers: Vec::new(),
            free: Vec::new(),
            by_handle: HashMap::new(),
            feeds: HashMap::new(),
            out: VecDeque::new(),
            touched: Vec::new(),
            gone: Vec::new(),
            keyframes: Vec::new(),
            scratch_subs: Vec::new(),
            stats: Stats::default(),
        }
    }

    // ----- getters -----

    pub fn id(&self) -> &RoomId {
        &self.id
    }

    pub fn settings(&self) -> &RoomSettings {
        &self.settings
    }

    pub fn settings_mut(&mut self) -> &mut RoomSettings {
        &mut self.settings
    }

    pub fn is_empty(&self) -> bool {
        self.by_handle.is_empty()
    }

    pub fn handles(&self) -> impl Iterator<Item = HandleId> + '_ {
        self.by_handle.keys().copied()
    }

    pub fn info(&self) -> RoomInfo {
        RoomInfo {
            room: self.id.clone(),
            description: self.settings.description.clone(),
            max_publishers: self.settings.max_publishers,
            participants: self.publisher_count(),
        }
    }

    pub fn participants(&self) -> Vec<ParticipantInfo> {
        self.peers
            .iter()
            .flatten()
            .filter_map(|p| p.publisher())
            .map(|p| ParticipantInfo {
                feed: p.feed,
                display: p.display.clone(),
                publisher: p.published,
                talking: p.speaker.talking(),
            })
            .collect()
    }

    /// Counts of (peers, published tracks) for the gauges.
    pub fn counts(&self) -> (usize, usize) {
        let peers = self.peers.iter().flatten().count();
        let tracks = self
            .peers
            .iter()
            .flatten()
            .filter_map(|p| p.publisher())
            .map(|p| p.tracks.len())
            .sum();
        (peers, tracks)
    }

    /// The peer in `slot` if its generation matches and it has an `Rtc` (demultiplexing).
    pub fn peer_matches(&self, slot: usize, generation: u32) -> bool {
        self.peer(slot)
            .is_some_and(|p| p.generation == generation && p.rtc.is_some())
    }

    /// The ICE ufrag of the peer in `slot`, to check a STUN USERNAME against.
    pub fn peer_ufrag(&self, slot: usize) -> Option<&str> {
        self.peer(slot)?.ufrag.as_deref()
    }

    pub fn deadline(&self, slot: usize) -> Option<Instant> {
        self.peer(slot)?.deadline
    }

    fn peer(&self, slot: usize) -> Option<&Peer> {
        self.peers.get(slot)?.as_ref()
    }

    fn publisher_count(&self) -> usize {
        self.peers
            .iter()
            .flatten()
            .filter(|p| p.publisher().is_some())
            .count()
    }

    // ----- outputs -----

    pub fn poll_output(&mut self) -> Option<RoomOutput> {
        self.out.pop_front()
    }

    /// Peers drained since the last call (their deadline may have moved).
    pub fn take_touched(&mut self, into: &mut Vec<usize>) {
        into.append(&mut self.touched);
    }

    /// Peers (slot, generation) whose `Rtc` went away since the last call.
    pub fn take_gone(&mut self, into: &mut Vec<(usize, u32)>) {
        into.append(&mut self.gone);
    }

    // ----- inputs -----

    /// A datagram for the peer in `slot` (already matched by the shard).
    pub fn handle_datagram(&mut self, now: Instant, slot: usize, input: Input<'_>) {
        let Some(rtc) = peer_in(&mut self.peers, slot).and_then(|p| p.rtc.as_mut()) else {
            return;
        };
        if let Err(e) = rtc.handle_input(input) {
            tracing::debug!(error = %e, "bad datagram for a peer");
            self.stats.malformed += 1;
        }
        self.drain(now, slot);
        self.flush_keyframes(now);
    }

    /// The deadline of the peer in `slot` passed.
    pub fn handle_timeout(&mut self, now: Instant, slot: usize) {
        let Some(peer) = peer_in(&mut self.peers, slot) else {
            return;
        };
        // The timer entry that woke us is consumed: the drain below must schedule anew.
        peer.deadline = None;
        let Some(rtc) = peer.rtc.as_mut() else {
            return;
        };
        self.stats.timer_wakes += 1;
        if let Err(e) = rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(error = %e, "timeout input failed");
        }
        self.drain(now, slot);
        self.on_peer_timer(now, slot);
        self.flush_keyframes(now);
    }

    /// One signalling command from `handle`. Admission (grants, room existence) was checked
    /// by the shard.
    pub fn handle_command(
        &mut self,
        now: Instant,
        handle: HandleId,
        cmd: Command,
    ) -> Result<Reply, RoomError> {
        let reply = match cmd {
            Command::JoinPublisher { feed, display, .. } => {
                self.join_publisher(handle, feed, display)
            }
            Command::Configure {
                offer,
                display,
                audio: _,
                video: _,
            } => self.configure_publisher(now, handle, offer, display),
            Command::Unpublish => self.unpublish(now, handle).map(|_| Reply::Unpublished),
            Command::JoinSubscriber { feeds, quality, .. } => {
                self.join_subscriber(now, handle, &feeds, quality)
            }
            Command::Start { answer } => self.start(now, handle, answer),
            Command::ConfigureSubscriber {
                quality,
                audio,
                video,
            } => self.configure_subscriber(handle, quality, audio, video),
            Command::Pause => self.set_paused(handle, true).map(|_| Reply::Paused),
            Command::Resume => self.set_paused(handle, false).map(|_| Reply::Started),
            Command::Switch { feeds } => self.switch(handle, &feeds),
            Command::Trickle { candidate } => self.trickle(now, handle, candidate),
            Command::Hangup => self.hangup(now, handle),
            Command::Leave => self.leave(now, handle).map(|_| Reply::Left),
            Command::Create { .. }
            | Command::Destroy { .. }
            | Command::Exists { .. }
            | Command::List
            | Command::ListParticipants { .. } => {
                Err(RoomError::InvalidRequest("not a room command"))
            }
        };
        self.flush_keyframes(now);
        reply
    }

    /// Removes everyone (the room is being destroyed): each handle is told.
    pub fn destroy(&mut self, now: Instant) {
        let handles: Vec<HandleId> = self.by_handle.keys().copied().collect();
        for h in handles {
            self.out.push_back(RoomOutput::Event(
                h,
                RoomEvent::RoomDestroyed {
                    room: self.id.clone(),
                },
            ));
            let _ = self.leave(now, h);
        }
    }

    // ----- publishers -----

    fn join_publisher(
        &mut self,
        handle: HandleId,
        feed: Option<FeedId>,
        display: Option<String>,
    ) -> Result<Reply, RoomError> {
        if self.by_handle.contains_key(&handle) {
            return Err(RoomError::AlreadyJoined);
        }
        if self.publisher_count() >= self.settings.max_publishers {
            return Err(RoomError::RoomFull(self.settings.max_publishers));
        }
        let feed = match feed {
            Some(f) if self.feeds.contains_key(&f) => return Err(RoomError::IdExists(f.0)),
            Some(f) => f,
            None => self.fresh_feed(),
        };
        let publishers = self.published_list(None);
        let slot = self.insert(Peer {
            handle,
            generation: 0,
            rtc: None,
            ufrag: None,
            connected: false,
            deadline: None,
            kind: PeerKind::Publisher(Publisher {
                feed,
                display,
                tracks: Vec::new(),
                published: false,
                speaker: SpeakerDetector::default(),
            }),
        });
        self.feeds.insert(feed, slot);
        Ok(Reply::Joined {
            room: self.id.clone(),
            description: self.settings.description.clone(),
            feed,
            private_id: rand::random(),
            publishers,
        })
    }

    fn fresh_feed(&self) -> FeedId {
        loop {
            // Janus ids stay below 2^53 so JavaScript clients read them exactly.
            let f = FeedId(rand::random::<u64>() & ((1 << 53) - 1));
            if f.0 != 0 && !self.feeds.contains_key(&f) {
                return f;
            }
        }
    }

    fn configure_publisher(
        &mut self,
        now: Instant,
        handle: HandleId,
        offer: Option<String>,
        display: Option<String>,
    ) -> Result<Reply, RoomError> {
        let slot = self.slot_of(handle)?;
        let peer = peer_in(&mut self.peers, slot).ok_or(RoomError::JoinFirst)?;
        let publisher = peer.publisher_mut().ok_or(RoomError::JoinFirst)?;
        if let Some(d) = display {
            publisher.display = Some(d);
        }
        let Some(sdp) = offer else {
            return Ok(Reply::Configured { answer: None });
        };
        let offer =
            SdpOffer::from_sdp_string(&sdp).map_err(|e| RoomError::InvalidSdp(e.to_string()))?;
        let fresh = peer.rtc.is_none();
        if fresh {
            self.new_peer_rtc(now, slot, false);
        }
        let peer = peer_in(&mut self.peers, slot).ok_or(RoomError::JoinFirst)?;
        let rtc = peer.rtc.as_mut().ok_or(RoomError::JoinFirst)?;
        let answer = match rtc.sdp_api().accept_offer(offer) {
            Ok(a) => a,
            Err(e) => {
                if fresh {
                    self.drop_rtc(slot);
                }
                return Err(RoomError::InvalidSdp(e.to_string()));
            }
        };
        let answer = answer.to_sdp_string();
        self.learn_tracks(slot, &answer);
        self.drain(now, slot);
        let first = {
            let peer = peer_in(&mut self.peers, slot).ok_or(RoomError::JoinFirst)?;
            let publisher = peer.publisher_mut().ok_or(RoomError::JoinFirst)?;
            let first = !publisher.published;
            publisher.published = true;
            first
        };
        if first {
            let info = self.publisher_info(slot);
            self.tell_publishers(
                Some(slot),
                RoomEvent::Publishers {
                    room: self.id.clone(),
                    publishers: info.into_iter().collect(),
                },
            );
        }
        Ok(Reply::Configured {
            answer: Some(answer),
        })
    }

    /// Records a publisher's tracks from the negotiated m-lines. str0m's `MediaAdded` only
    /// comes once DTLS is up; subscribers need the tracks as soon as the answer is out.
    fn learn_tracks(&mut self, slot: usize, answer: &str) {
        let Some(peer) = peer_in(&mut self.peers, slot) else {
            return;
        };
        let Some(rtc) = peer.rtc.as_ref() else {
            return;
        };
        let mut found = Vec::new();
        for line in answer.lines() {
            let Some(mid) = line.trim().strip_prefix("a=mid:") else {
                continue;
            };
            let Some(media) = rtc.media(Mid::from(mid)) else {
                continue;
            };
            if media.disabled() || !media.direction().is_receiving() {
                continue;
            }
            let rids = match media.rids_rx() {
                Rids::Specific(r) => r.clone(),
                _ => Vec::new(),
            };
            found.push(InTrack::new(media.mid(), kind_of(media.kind()), &rids));
        }
        let Some(p) = peer.publisher_mut() else {
            return;
        };
        for t in found {
            if !p.tracks.iter().any(|x| x.mid == t.mid) {
                p.tracks.push(t);
            }
        }
    }

    fn unpublish(&mut self, now: Instant, handle: HandleId) -> Result<(), RoomError> {
        let slot = self.slot_of(handle)?;
        let publisher = self
            .peer(slot)
            .and_then(|p| p.publisher())
            .ok_or(RoomError::JoinFirst)?;
        if !publisher.published {
            return Err(RoomError::NotPublished);
        }
        let feed = publisher.feed;
        self.close_publisher_media(now, slot);
        self.tell_publishers(
            Some(slot),
            RoomEvent::Unpublished {
                room: self.id.clone(),
                feed,
            },
        );
        Ok(())
    }

    /// Closes a publisher's PeerConnection and every subscription to it.
    fn close_publisher_media(&mut self, _now: Instant, slot: usize) {
        let Some(publisher) = peer_in(&mut self.peers, slot).and_then(|p| p.publisher_mut()) else {
            return;
        };
        publisher.published = false;
        let tracks = std::mem::take(&mut publisher.tracks);
        for track in &tracks {
            for &(sub, ti) in &track.subscribers {
                self.orphan_track(sub, ti);
            }
        }
        self.drop_rtc(slot);
    }

    /// A subscriber's track lost its source; a subscriber left with no source is hung up.
    fn orphan_track(&mut self, sub: usize, ti: usize) {
        let Some(peer) = peer_in(&mut self.peers, sub) else {
            return;
        };
        let handle = peer.handle;
        let Some(s) = peer.subscriber_mut() else {
            return;
        };
        if let Some(t) = s.tracks.get_mut(ti) {
            t.source = usize::MAX;
        }
        if s.tracks.iter().all(|t| t.source == usize::MAX) {
            self.drop_rtc(sub);
            self.out.push_back(RoomOutput::Event(
                handle,
                RoomEvent::Hangup {
                    reason: "Publisher gone".into(),
                },
            ));
        }
    }

    fn publisher_info(&self, slot: usize) -> Option<PublisherInfo> {
        let p = self.peer(slot)?.publisher()?;
        Some(PublisherInfo {
            feed: p.feed,
            display: p.display.clone(),
            streams: p.tracks.iter().map(InTrack::info).collect(),
            talking: p.speaker.talking(),
        })
    }

    fn published_list(&self, except: Option<usize>) -> Vec<PublisherInfo> {
        (0..self.peers.len())
            .filter(|s| Some(*s) != except)
            .filter(|s| {
                self.peer(*s)
                    .and_then(|p| p.publisher())
                    .is_some_and(|p| p.published)
            })
            .filter_map(|s| self.publisher_info(s))
            .collect()
    }

    /// Sends `event` to every publisher handle but `except`.
    fn tell_publishers(&mut self, except: Option<usize>, event: RoomEvent) {
        for (slot, peer) in self.peers.iter().enumerate() {
            let Some(peer) = peer else { continue };
            if Some(slot) == except || peer.publisher().is_none() {
                continue;
            }
            self.out
                .push_back(RoomOutput::Event(peer.handle, event.clone()));
        }
    }

    // ----- subscribers -----

    fn join_subscriber(
        &mut self,
        now: Instant,
        handle: HandleId,
        feeds: &[FeedId],
        quality: Quality,
    ) -> Result<Reply, RoomError> {
        if self.by_handle.contains_key(&handle) {
            return Err(RoomError::AlreadyJoined);
        }
        let first = *feeds
            .first()
            .ok_or(RoomError::InvalidRequest("no feed to subscribe to"))?;
        // (publisher slot, track index, mid, kind) of every source track.
        let mut sources = Vec::new();
        for feed in feeds {
            let slot = *self.feeds.get(feed).ok_or(RoomError::NoSuchFeed(feed.0))?;
            let p = self
                .peer(slot)
                .and_then(|p| p.publisher())
                .filter(|p| p.published)
                .ok_or(RoomError::NoSuchFeed(feed.0))?;
            for (ti, t) in p.tracks.iter().enumerate() {
                sources.push((slot, ti, t.mid, t.kind, p.feed));
            }
        }
        let display = self
            .peer(self.feeds[&first])
            .and_then(|p| p.publisher())
            .and_then(|p| p.display.clone());
        let slot = self.insert(Peer {
            handle,
            generation: 0,
            rtc: None,
            ufrag: None,
            connected: false,
            deadline: None,
            kind: PeerKind::Subscriber(Subscriber {
                feed: first,
                tracks: Vec::new(),
                pending: None,
                started: false,
                paused: false,
                quality,
                estimate_bps: super::participant::INITIAL_ESTIMATE_BPS,
                next_allocation: None,
                reprobe: Default::default(),
            }),
        });
        // Subscribers run TWCC bandwidth estimation: its estimate drives their layers.
        self.new_peer_rtc(now, slot, true);
        let peer = peer_in(&mut self.peers, slot).ok_or(RoomError::JoinFirst)?;
        let rtc = peer.rtc.as_mut().ok_or(RoomError::JoinFirst)?;
        let mut sdp = rtc.sdp_api();
        let mut tracks = Vec::new();
        for (src, _, mid, kind, feed) in &sources {
            let stream = format!("janus{feed}");
            let track = format!("{feed}-{mid}");
            let local = sdp.add_media(
                str_kind(*kind),
                Direction::SendOnly,
                Some(stream),
                Some(track),
                None,
            );
            tracks.push(OutTrack {
                source: *src,
                source_mid: *mid,
                kind: *kind,
                local_mid: local,
                pt_map: Vec::new(),
                layer: LayerSwitch::default(),
                rewriter: Rewriter::default(),
                vp8: Vp8Rewrite::default(),
                enabled: true,
                sending: false,
                written: 0,
                egress_seen: (0, 0, 0),
            });
        }
        let Some((offer, pending)) = sdp.apply() else {
            self.remove(slot);
            return Err(RoomError::InvalidRequest("publisher has no media"));
        };
        if let Some(s) = peer.subscriber_mut() {
            s.tracks = tracks;
            s.pending = Some(pending);
        }
        for (ti, (src, src_ti, ..)) in sources.iter().enumerate() {
            if let Some(t) = peer_in(&mut self.peers, *src)
                .and_then(|p| p.publisher_mut())
                .and_then(|p| p.tracks.get_mut(*src_ti))
            {
                t.subscribers.push((slot, ti));
            }
        }
        self.drain(now, slot);
        Ok(Reply::Attached {
            room: self.id.clone(),
            feed: first,
            display,
            offer: offer.to_sdp_string(),
        })
    }

    fn start(
        &mut self,
        now: Instant,
        handle: HandleId,
        answer: Option<String>,
    ) -> Result<Reply, RoomError> {
        let slot = self.slot_of(handle)?;
        let peer = peer_in(&mut self.peers, slot).ok_or(RoomError::JoinFirst)?;
        let s = peer.subscriber_mut().ok_or(RoomError::JoinFirst)?;
        s.paused = false;
        let Some(answer) = answer else {
            // `start` without jsep resumes a paused subscription.
            return Ok(Reply::Started);
        };
        let pending = s
            .pending
            .take()
            .ok_or(RoomError::InvalidRequest("no offer pending"))?;
        let answer = SdpAnswer::from_sdp_string(&answer)
            .map_err(|e| RoomError::InvalidSdp(e.to_string()))?;
        let rtc = peer.rtc.as_mut().ok_or(RoomError::JoinFirst)?;
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| RoomError::InvalidSdp(e.to_string()))?;
        if let Some(s) = peer.subscriber_mut() {
            s.started = true;
        }
        self.drain(now, slot);
        Ok(Reply::Started)
    }

    fn configure_subscriber(
        &mut self,
        handle: HandleId,
        quality: QualityChange,
        audio: Option<bool>,
        video: Option<bool>,
    ) -> Result<Reply, RoomError> {
        let slot = self.slot_of(handle)?;
        let s = peer_in(&mut self.peers, slot)
            .and_then(|p| p.subscriber_mut())
            .ok_or(RoomError::JoinFirst)?;
        quality.apply_to(&mut s.quality);
        for t in &mut s.tracks {
            let on = match t.kind {
                MediaKind::Audio => audio,
                MediaKind::Video => video,
            };
            if let Some(on) = on {
                t.enabled = on;
            }
        }
        // Reallocate at the next packet.
        s.next_allocation = None;
        Ok(Reply::Configured { answer: None })
    }

    fn set_paused(&mut self, handle: HandleId, paused: bool) -> Result<(), RoomError> {
        let slot = self.slot_of(handle)?;
        let s = peer_in(&mut self.peers, slot)
            .and_then(|p| p.subscriber_mut())
            .ok_or(RoomError::JoinFirst)?;
        s.paused = paused;
        s.next_allocation = None;
        Ok(())
    }

    /// Points a subscriber's tracks at other feeds, kind by kind, without renegotiating: the
    /// rewriter makes the new source continue the old stream.
    fn switch(&mut self, handle: HandleId, feeds: &[FeedId]) -> Result<Reply, RoomError> {
        let slot = self.slot_of(handle)?;
        let first = *feeds
            .first()
            .ok_or(RoomError::InvalidRequest("no feed to switch to"))?;
        let mut sources = Vec::new();
        for feed in feeds {
            let src = *self.feeds.get(feed).ok_or(RoomError::NoSuchFeed(feed.0))?;
            let p = self
                .peer(src)
                .and_then(|p| p.publisher())
                .filter(|p| p.published)
                .ok_or(RoomError::NoSuchFeed(feed.0))?;
            sources.extend(
                p.tracks
                    .iter()
                    .enumerate()
                    .map(|(ti, t)| (src, ti, t.mid, t.kind)),
            );
        }
        let old: Vec<(usize, Mid)> = {
            let s = self
                .peer(slot)
                .and_then(|p| match &p.kind {
                    PeerKind::Subscriber(s) => Some(s),
                    PeerKind::Publisher(_) => None,
                })
                .ok_or(RoomError::JoinFirst)?;
            s.tracks.iter().map(|t| (t.source, t.source_mid)).collect()
        };
        // Unhook from the old sources.
        for (ti, (src, mid)) in old.iter().enumerate() {
            if let Some(t) = peer_in(&mut self.peers, *src)
                .and_then(|p| p.publisher_mut())
                .and_then(|p| p.tracks.iter_mut().find(|t| t.mid == *mid))
            {
                t.subscribers.retain(|&(s, i)| (s, i) != (slot, ti));
            }
        }
        let mut hooks = Vec::new();
        if let Some(s) = peer_in(&mut self.peers, slot).and_then(|p| p.subscriber_mut()) {
            let mut used = vec![false; sources.len()];
            for (ti, t) in s.tracks.iter_mut().enumerate() {
                let found = sources
                    .iter()
                    .enumerate()
                    .find(|(i, src)| !used[*i] && src.3 == t.kind);
                match found {
                    Some((i, &(src, src_ti, mid, _))) => {
                        used[i] = true;
                        t.source = src;
                        t.source_mid = mid;
                        t.pt_map.clear();
                        t.layer = LayerSwitch::default();
                        hooks.push((src, src_ti, ti));
                    }
                    None => t.source = usize::MAX,
                }
            }
            s.feed = first;
            s.next_allocation = None;
        }
        for (src, src_ti, ti) in hooks {
            if let Some(t) = peer_in(&mut self.peers, src)
                .and_then(|p| p.publisher_mut())
                .and_then(|p| p.tracks.get_mut(src_ti))
            {
                t.subscribers.push((slot, ti));
            }
        }
        Ok(Reply::Switched { feed: first })
    }

    // ----- both -----

    fn trickle(
        &mut self,
        now: Instant,
        handle: HandleId,
        candidate: Option<String>,
    ) -> Result<Reply, RoomError> {
        let slot = self.slot_of(handle)?;
        let Some(c) = candidate else {
            return Ok(Reply::Ok);
        };
        let Some(rtc) = peer_in(&mut self.peers, slot).and_then(|p| p.rtc.as_mut()) else {
            return Ok(Reply::Ok);
        };
        // ICE-lite learns the browser's address from its binding requests; a candidate we
        // cannot parse (mDNS names, TCP) is harmless to ignore.
        let line = c.strip_prefix("a=").unwrap_or(&c);
        if let Ok(c) = Candidate::from_sdp_string(line) {
            rtc.add_remote_candidate(c);
            self.drain(now, slot);
        }
        Ok(Reply::Ok)
    }

    fn hangup(&mut self, now: Instant, handle: HandleId) -> Result<Reply, RoomError> {
        let slot = self.slot_of(handle)?;
        let is_publisher = self.peer(slot).and_then(|p| p.publisher()).is_some();
        if is_publisher {
            if self
                .peer(slot)
                .and_then(|p| p.publisher())
                .is_some_and(|p| p.published)
            {
                self.unpublish(now, handle)?;
            }
        } else {
            self.leave(now, handle)?;
        }
        Ok(Reply::Ok)
    }

    fn leave(&mut self, now: Instant, handle: HandleId) -> Result<(), RoomError> {
        let slot = self.slot_of(handle)?;
        let feed = self.peer(slot).and_then(|p| p.publisher()).map(|p| p.feed);
        if let Some(feed) = feed {
            self.close_publisher_media(now, slot);
            self.feeds.remove(&feed);
            self.remove(slot);
            self.tell_publishers(
                None,
                RoomEvent::Leaving {
                    room: self.id.clone(),
                    feed,
                },
            );
        } else {
            self.unhook_subscriber(slot);
            self.remove(slot);
        }
        Ok(())
    }

    fn unhook_subscriber(&mut self, slot: usize) {
        let hooks: Vec<(usize, Mid, usize)> = match self.peer(slot).map(|p| &p.kind) {
            Some(PeerKind::Subscriber(s)) => s
                .tracks
                .iter()
                .enumerate()
                .map(|(ti, t)| (t.source, t.source_mid, ti))
                .collect(),
            _ => return,
        };
        for (src, mid, ti) in hooks {
            if let Some(t) = peer_in(&mut self.peers, src)
                .and_then(|p| p.publisher_mut())
                .and_then(|p| p.tracks.iter_mut().find(|t| t.mid == mid))
            {
                t.subscribers.retain(|&(s, i)| (s, i) != (slot, ti));
            }
        }
    }

    // ----- slots -----

    fn slot_of(&self, handle: HandleId) -> Result<usize, RoomError> {
        self.by_handle
            .get(&handle)
            .copied()
            .ok_or(RoomError::JoinFirst)
    }

    fn insert(&mut self, peer: Peer) -> usize {
        let handle = peer.handle;
        let slot = match self.free.pop() {
            Some(s) => {
                self.peers[s] = Some(peer);
                s
            }
            None => {
                self.peers.push(Some(peer));
                self.peers.len() - 1
            }
        };
        self.by_handle.insert(handle, slot);
        slot
    }

    fn remove(&mut self, slot: usize) {
        self.drop_rtc(slot);
        if let Some(peer) = self.peers.get_mut(slot).and_then(Option::take) {
            self.by_handle.remove(&peer.handle);
            self.free.push(slot);
        }
    }

    /// Gives the peer in `slot` a fresh `Rtc` with ICE credentials that name its slot.
    fn new_peer_rtc(&mut self, now: Instant, slot: usize, bwe: bool) {
        let room_slot = self.slot;
        let candidate = self.candidate;
        let Some(peer) = peer_in(&mut self.peers, slot) else {
            return;
        };
        peer.generation = peer.generation.wrapping_add(1);
        let ufrag = super::demux::make_ufrag(room_slot, slot, peer.generation);
        let pass = format!("{:032x}", rand::random::<u128>());
        peer.rtc = Some(new_rtc(
            now,
            IceCreds {
                ufrag: ufrag.clone(),
                pass,
            },
            candidate,
            bwe,
        ));
        peer.ufrag = Some(ufrag);
        peer.connected = false;
    }

    fn drop_rtc(&mut self, slot: usize) {
        if let Some(peer) = peer_in(&mut self.peers, slot) {
            if let Some(mut rtc) = peer.rtc.take() {
                rtc.disconnect();
                let generation = peer.generation;
                peer.deadline = None;
                peer.connected = false;
                peer.ufrag = None;
                self.gone.push((slot, generation));
            }
        }
    }

    // ----- the run loop: drain a peer's Rtc and react to its events -----

    /// Drains the `Rtc` of the peer in `slot` to its timeout (str0m's contract).
    fn drain(&mut self, now: Instant, slot: usize) {
        loop {
            let Some(rtc) = peer_in(&mut self.peers, slot).and_then(|p| p.rtc.as_mut()) else {
                return;
            };
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    // Only a moved deadline needs a new timer entry; the old one goes stale.
                    if let Some(p) = peer_in(&mut self.peers, slot) {
                        if p.deadline != Some(t) {
                            p.deadline = Some(t);
                            self.touched.push(slot);
                        }
                    }
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    self.stats.packets_out += 1;
                    self.stats.bytes_out += t.contents.len() as u64;
                    self.out.push_back(RoomOutput::Transmit(t));
                }
                Ok(Output::Event(e)) => self.on_event(now, slot, e),
                Err(e) => {
                    tracing::debug!(error = %e, "peer connection failed");
                    self.on_closed(now, slot, "WebRTC error");
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, now: Instant, slot: usize, event: Event) {
        match event {
            Event::RtpPacket(pkt) => self.on_rtp(now, slot, pkt),
            Event::Connected => self.on_connected(slot),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.on_closed(now, slot, "ICE failed");
            }
            Event::MediaAdded(m) => self.on_media_added(slot, m),
            Event::KeyframeRequest(req) => self.on_subscriber_keyframe_request(slot, req.mid),
            Event::EgressBitrateEstimate(BweKind::Twcc(b)) => {
                if let Some(s) = peer_in(&mut self.peers, slot).and_then(|p| p.subscriber_mut()) {
                    s.estimate_bps = b.as_u64();
                    s.next_allocation = None;
                }
            }
            Event::StreamPaused(p) => self.on_stream_paused(slot, p.mid, p.paused),
            Event::MediaEgressStats(e) => self.on_egress_stats(slot, e.mid, e.packets, e.nacks),
            Event::MediaIngressStats(i) => self.on_ingress_stats(slot, i.mid, i.rid, i.nacks),
            Event::Closed => self.on_closed(now, slot, "Closed"),
            _ => {}
        }
    }

    fn on_connected(&mut self, slot: usize) {
        let Some(peer) = peer_in(&mut self.peers, slot) else {
            return;
        };
        peer.connected = true;
        let handle = peer.handle;
        if let Some(s) = peer.subscriber_mut() {
            // The decoder needs a keyframe to start: ask for every video track's target layer.
            s.next_allocation = None;
            for t in &mut s.tracks {
                t.layer = LayerSwitch::default();
            }
        }
        self.out
            .push_back(RoomOutput::Event(handle, RoomEvent::WebrtcUp));
    }

    fn on_closed(&mut self, now: Instant, slot: usize, reason: &str) {
        let Some(peer) = self.peer(slot) else {
            return;
        };
        let handle = peer.handle;
        if peer.rtc.is_none() {
            return;
        }
        if peer.publisher().is_some_and(|p| p.published) {
            let _ = self.unpublish(now, handle);
        } else {
            self.unhook_subscriber(slot);
            self.drop_rtc(slot);
        }
        self.out.push_back(RoomOutput::Event(
            handle,
            RoomEvent::Hangup {
                reason: reason.into(),
            },
        ));
    }

    fn on_media_added(&mut self, slot: usize, m: MediaAdded) {
        let Some(p) = peer_in(&mut self.peers, slot).and_then(|p| p.publisher_mut()) else {
            return;
        };
        if p.tracks.iter().any(|t| t.mid == m.mid) {
            return;
        }
        let rids: Vec<_> = m
            .simulcast
            .map(|s| {
                let layers = if s.recv.is_empty() { s.send } else { s.recv };
                layers.into_iter().map(|l| l.rid).collect()
            })
            .unwrap_or_default();
        p.tracks.push(InTrack::new(m.mid, kind_of(m.kind), &rids));
    }

    fn on_stream_paused(&mut self, slot: usize, mid: Mid, paused: bool) {
        let Some(peer) = peer_in(&mut self.peers, slot) else {
            return;
        };
        let handle = peer.handle;
        let Some(t) = peer
            .publisher_mut()
            .and_then(|p| p.tracks.iter_mut().find(|t| t.mid == mid))
        else {
            return;
        };
        if t.receiving != paused {
            return;
        }
        t.receiving = !paused;
        let kind = t.kind;
        self.out.push_back(RoomOutput::Event(
            handle,
            RoomEvent::Media {
                kind,
                mid: mid.to_string(),
                receiving: !paused,
            },
        ));
    }

    /// A subscriber stream's cumulative counters: NACKs it sent us and retransmissions we
    /// answered with (packets sent beyond those we wrote).
    fn on_egress_stats(&mut self, slot: usize, mid: Mid, packets: u64, nacks: u64) {
        let Some(t) = peer_in(&mut self.peers, slot)
            .and_then(|p| p.subscriber_mut())
            .and_then(|s| s.tracks.iter_mut().find(|t| t.local_mid == mid))
        else {
            return;
        };
        let (seen_packets, seen_nacks, seen_written) = t.egress_seen;
        let sent = packets.saturating_sub(seen_packets);
        let written = t.written.saturating_sub(seen_written);
        self.stats.nacks += nacks.saturating_sub(seen_nacks);
        self.stats.retransmissions += sent.saturating_sub(written);
        t.egress_seen = (packets, nacks, t.written);
    }

    /// A publisher layer's cumulative count of NACKs str0m sent for it.
    fn on_ingress_stats(&mut self, slot: usize, mid: Mid, rid: Option<Rid>, nacks: u64) {
        let Some(layer) = peer_in(&mut self.peers, slot)
            .and_then(|p| p.publisher_mut())
            .and_then(|p| p.tracks.iter_mut().find(|t| t.mid == mid))
            .and_then(|t| t.layers.iter_mut().find(|l| l.rid == rid))
        else {
            return;
        };
        self.stats.nacks_sent += nacks.saturating_sub(layer.nacks_sent);
        layer.nacks_sent = nacks;
    }

    /// Calls `f` with the current bandwidth estimate of every connected subscriber.
    pub fn subscriber_estimates(&self, mut f: impl FnMut(u64)) {
        for peer in self.peers.iter().flatten() {
            if let PeerKind::Subscriber(s) = &peer.kind {
                if peer.connected {
                    f(s.estimate_bps);
                }
            }
        }
    }

    fn on_subscriber_keyframe_request(&mut self, slot: usize, mid: Mid) {
        let Some(s) = peer_in(&mut self.peers, slot).and_then(|p| p.subscriber_mut()) else {
            return;
        };
        let Some(t) = s.tracks.iter().find(|t| t.local_mid == mid) else {
            return;
        };
        let (src, src_mid) = (t.source, t.source_mid);
        let layer = t.layer.current().or(t.layer.target()).unwrap_or(0);
        self.stats.plis_from_subscribers += 1;
        if let Some(ti) = self
            .peer(src)
            .and_then(|p| p.publisher())
            .and_then(|p| p.tracks.iter().position(|t| t.mid == src_mid))
        {
            self.keyframes.push((src, ti, layer));
        }
    }

    /// Timers of the room's own logic that ride on the peer's deadline: postponed keyframe
    /// requests and the speaker window of a publisher.
    fn on_peer_timer(&mut self, now: Instant, slot: usize) {
        let Some(peer) = peer_in(&mut self.peers, slot) else {
            return;
        };
        let handle = peer.handle;
        let Some(p) = peer.publisher_mut() else {
            return;
        };
        for (ti, t) in p.tracks.iter_mut().enumerate() {
            for layer in t.keyframes.poll_due(now) {
                self.keyframes.push((slot, ti, layer + MAX_LAYERS as u8));
            }
        }
        let feed = p.feed;
        if let Some(change) = p.speaker.handle_timeout(now) {
            self.on_speaker(handle, feed, change);
        }
    }

    fn on_speaker(&mut self, _handle: HandleId, feed: FeedId, change: SpeakerChange) {
        let (talking, level) = match change {
            SpeakerChange::Talking(l) => (true, l),
            SpeakerChange::Stopped(l) => (false, l),
        };
        self.tell_publishers(
            None,
            RoomEvent::Talking {
                room: self.id.clone(),
                feed,
                talking,
                audio_level: level,
            },
        );
    }

    /// Sends the queued keyframe requests (rate-limited per publisher layer) and drains the
    /// publishers they went to. A layer above `MAX_LAYERS` marks a postponed request that the
    /// limiter already let through.
    fn flush_keyframes(&mut self, now: Instant) {
        while let Some((src, ti, layer)) = self.keyframes.pop() {
            let Some(peer) = peer_in(&mut self.peers, src) else {
                continue;
            };
            let Some(PeerKind::Publisher(p)) = Some(&mut peer.kind) else {
                continue;
            };
            let Some(t) = p.tracks.get_mut(ti) else {
                continue;
            };
            let (layer, allowed) = if layer >= MAX_LAYERS as u8 {
                (layer - MAX_LAYERS as u8, true)
            } else {
                (layer, t.keyframes.request(layer, now))
            };
            if !allowed || t.kind == MediaKind::Audio {
                continue;
            }
            let rid = t.layers.get(layer as usize).and_then(|l| l.rid);
            let mid = t.mid;
            let Some(rtc) = peer.rtc.as_mut() else {
                continue;
            };
            if let Some(rx) = rtc.direct_api().stream_rx_by_mid(mid, rid) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
                self.stats.keyframe_requests += 1;
            }
            self.drain(now, src);
        }
    }

    // ----- forwarding -----

    fn on_rtp(&mut self, now: Instant, slot: usize, pkt: RtpPacket) {
        self.stats.rtp_in += 1;
        let Some(info) = self.classify(now, slot, &pkt) else {
            return;
        };
        let mut subs = std::mem::take(&mut self.scratch_subs);
        subs.clear();
        if let Some(t) = self
            .peer(slot)
            .and_then(|p| p.publisher())
            .and_then(|p| p.tracks.get(info.track))
        {
            subs.extend_from_slice(&t.subscribers);
        }
        for &(sub, ti) in &subs {
            if self
                .peer(sub)
                .and_then(|p| match &p.kind {
                    PeerKind::Subscriber(s) => Some(s),
                    PeerKind::Publisher(_) => None,
                })
                .is_some_and(|s| s.next_allocation.is_none_or(|t| now >= t))
            {
                self.reallocate(now, sub);
            }
            self.forward_to(now, slot, &pkt, &info, sub, ti);
        }
        self.scratch_subs = subs;
    }

    /// Finds the packet's track and layer, measures it, detects keyframes and speech.
    fn classify(&mut self, now: Instant, slot: usize, pkt: &RtpPacket) -> Option<PacketInfo> {
        let peer = peer_in(&mut self.peers, slot)?;
        let handle = peer.handle;
        let rtc = peer.rtc.as_mut()?;
        let (mid, rid) = {
            let mut api = rtc.direct_api();
            let rx = api.stream_rx(&pkt.header.ssrc)?;
            (rx.mid(), rx.rid())
        };
        let pt = pkt.header.payload_type;
        // Looked up once per received packet; every subscriber's forward uses it.
        let params = rtc.codec_config().find(|p| p.pt() == pt).copied();
        let codec = params.map(|p| p.spec().codec);
        let PeerKind::Publisher(p) = &mut peer.kind else {
            return None;
        };
        let track = p.tracks.iter().position(|t| t.mid == mid)?;
        let t = &mut p.tracks[track];
        let layer = t.layer_of(rid)?;
        t.layers[layer as usize]
            .meter
            .on_packet(now, pkt.payload.len());
        if codec.is_some() {
            t.codec = codec;
        }
        let keyframe = t.kind == MediaKind::Video && starts_keyframe(t.codec, &pkt.payload);
        let vp8 = match t.codec {
            Some(Codec::Vp8) => Vp8Info::parse(&pkt.payload),
            _ => None,
        };
        if keyframe {
            t.keyframes.on_keyframe(layer);
        }
        let kind = t.kind;
        let first = !t.receiving;
        t.receiving = true;
        let mut speaker = None;
        if kind == MediaKind::Audio {
            if let Some(level) = pkt.header.ext_vals.audio_level {
                let dbov = (level as i16).unsigned_abs().min(127) as u8;
                speaker = p.speaker.on_level(now, dbov);
            }
        }
        let feed = p.feed;
        if first {
            self.out.push_back(RoomOutput::Event(
                handle,
                RoomEvent::Media {
                    kind,
                    mid: mid.to_string(),
                    receiving: true,
                },
            ));
        }
        if let Some(change) = speaker {
            self.on_speaker(handle, feed, change);
        }
        Some(PacketInfo {
            track,
            layer,
            keyframe,
            kind,
            clock_rate: pkt.time.frequency().get(),
            vp8,
            params,
        })
    }

    fn forward_to(
        &mut self,
        now: Instant,
        src: usize,
        pkt: &RtpPacket,
        info: &PacketInfo,
        sub: usize,
        ti: usize,
    ) {
        let Some(src_params) = info.params else {
            return;
        };
        let Some(peer) = peer_in(&mut self.peers, sub) else {
            return;
        };
        if !peer.connected {
            return;
        }
        let Some(rtc) = peer.rtc.as_mut() else {
            return;
        };
        let PeerKind::Subscriber(s) = &mut peer.kind else {
            return;
        };
        let paused = s.paused;
        let max_temporal = s.quality.temporal;
        let Some(t) = s.tracks.get_mut(ti) else {
            return;
        };
        if t.source != src || !t.enabled || paused {
            return;
        }
        let verdict = match info.kind {
            MediaKind::Audio => Verdict::Forward,
            MediaKind::Video => t.layer.on_packet(info.layer, info.keyframe),
        };
        let switched = match verdict {
            Verdict::Drop => {
                if t.layer.needs_keyframe() && t.layer.target() == Some(info.layer) {
                    self.keyframes.push((src, info.track, info.layer));
                }
                return;
            }
            Verdict::Forward => false,
            Verdict::SwitchTo(_) => {
                self.stats.layer_switches += 1;
                true
            }
        };
        // A switch starts at a keyframe, which is always temporal layer 0.
        if let Some(v) = info.vp8.as_ref().filter(|_| !switched) {
            if t.vp8.drops(v, max_temporal) {
                t.rewriter.skip(*pkt.seq_no);
                self.stats.temporal_drops += 1;
                return;
            }
        }
        // Our payload type for the publisher's codec (only for what is forwarded), matched
        // once per payload type.
        let local_pt = match t.pt_map.iter().find(|(p, _)| *p == src_params.pt()) {
            Some((_, local)) => *local,
            None => {
                let local = rtc.codec_config().match_params(src_params).map(|p| p.pt());
                t.pt_map.push((src_params.pt(), local));
                local
            }
        };
        let Some(local_pt) = local_pt else {
            return;
        };
        let Some(out) = t.rewriter.rewrite(
            switched,
            *pkt.seq_no,
            pkt.header.timestamp,
            now,
            info.clock_rate,
        ) else {
            return;
        };
        let ext = ExtensionValues {
            audio_level: pkt.header.ext_vals.audio_level,
            voice_activity: pkt.header.ext_vals.voice_activity,
            video_orientation: pkt.header.ext_vals.video_orientation,
            ..Default::default()
        };
        let video = info.kind == MediaKind::Video;
        let patch = info.vp8.as_ref().and_then(|v| t.vp8.patch(v, switched));
        let mut write = RtpWrite::new(local_pt, out.seq.into(), out.ts, now, pkt.payload.clone())
            .marker(pkt.header.marker)
            .ext_vals(ext)
            .nackable(video);
        if let Some(patch) = patch {
            write = write.vp8_patch(patch);
        }
        let mut api = rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(t.local_mid, None) else {
            return;
        };
        // str0m paces video at 1.1x its estimate and holds what exceeds it for up to two
        // seconds; a subscriber whose estimate dips below its layer then sees video ~1.2 s
        // late. The layer allocator is this SFU's rate control (it follows the estimate), so
        // forwarded video leaves at once, as in Janus and mediasoup. Set on every write (a
        // flag store): a stream str0m recreates on renegotiation starts paced again.
        tx.set_unpaced(true);
        tx.write_rtp(write);
        t.written += 1;
        // str0m stamps a queued packet, and its pacer sees it, only when time is fed in; the
        // Rtc's clock may lag (its last input), and a send stamped late reads as queueing
        // delay to the TWCC estimator, which then collapses. Feed `now` so the packet leaves
        // at once with its true send time.
        if let Err(e) = rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(error = %e, "timeout input failed");
        }
        self.stats.rtp_forwarded += 1;
        self.drain(now, sub);
    }

    /// Recomputes which layer of each video track the subscriber in `slot` gets, from its
    /// estimate, its requests, and what the publishers send now.
    fn reallocate(&mut self, now: Instant, slot: usize) {
        let Some(PeerKind::Subscriber(s)) = self.peer(slot).map(|p| &p.kind) else {
            return;
        };
        // Audio goes first, at the rate its publishers send it.
        let audio: u64 = s
            .tracks
            .iter()
            .filter(|t| t.kind == MediaKind::Audio && t.enabled && !s.paused)
            .map(|t| {
                self.peer(t.source)
                    .and_then(|p| p.publisher())
                    .and_then(|p| p.tracks.iter().find(|x| x.mid == t.source_mid))
                    .and_then(|x| x.layers.first())
                    .map_or(0, |l| {
                        l.meter.bitrate(now).map_or(0, |b| b.min(AUDIO_RESERVE_BPS))
                    })
            })
            .sum();
        let budget = s.estimate_bps.saturating_sub(audio);
        let mut video = Vec::new();
        let mut demands = Vec::new();
        // Whether every wanted video track's top layer has a measured rate.
        let mut settled = true;
        for (ti, t) in s.tracks.iter().enumerate() {
            if t.kind != MediaKind::Video {
                continue;
            }
            let mut d = Demand {
                layers: [None; MAX_LAYERS],
                max_layer: s.quality.substream,
                paused: s.paused || !t.enabled,
                // Hysteresis is about the layer chosen: a pending downgrade is not undone by
                // an estimate that recovers only partly while it waits for its keyframe.
                current: t.layer.target().or(t.layer.current()),
            };
            let src = self
                .peer(t.source)
                .and_then(|p| p.publisher())
                .and_then(|p| {
                    p.tracks
                        .iter()
                        .position(|x| x.mid == t.source_mid)
                        .map(|i| (p, i))
                });
            if let Some((p, i)) = src {
                for (l, layer) in p.tracks[i].layers.iter().enumerate() {
                    d.layers[l] = layer.meter.bitrate(now);
                }
                if !d.paused {
                    let top = p.tracks[i]
                        .layers
                        .iter()
                        .rev()
                        .find(|l| l.meter.bitrate(now).is_some());
                    settled &= top.is_none_or(|l| l.meter.settled(now));
                }
                video.push((ti, t.source, i));
                demands.push(d);
            }
        }
        let targets = allocate(budget, &demands);
        // The estimate holds some wanted layer back.
        let limited = demands
            .iter()
            .zip(&targets)
            .any(|(d, t)| d.top_layer().is_some_and(|top| t.is_none_or(|t| t < top)));
        // What this subscriber would take with room to spare, times the headroom str0m's
        // probes need to see past it (see `PROBE_HEADROOM`).
        let desired =
            (demands.iter().filter_map(Demand::top_rate).sum::<u64>() + audio) * PROBE_HEADROOM;
        let Some(peer) = peer_in(&mut self.peers, slot) else {
            return;
        };
        let Some(s) = peer.subscriber_mut() else {
            return;
        };
        s.next_allocation = Some(now + REALLOCATE_EVERY);
        for ((ti, src, src_ti), target) in video.into_iter().zip(targets) {
            let Some(t) = s.tracks.get_mut(ti) else {
                continue;
            };
            if t.layer.target() != target && t.layer.set_target(target) {
                if let Some(layer) = target {
                    self.keyframes.push((src, src_ti, layer));
                }
            }
        }
        // The desired bitrate caps str0m's probes (at twice it) and a probe's result becomes
        // the estimate, so a guess from young meters would pull the estimate down to it; until
        // the rates are measured the estimator keeps its initial value and does not probe.
        let reprobe = s.reprobe.on_allocation(now, limited && settled);
        let estimate = s.estimate_bps;
        if let Some(rtc) = peer.rtc.as_mut() {
            if desired > 0 && settled {
                rtc.bwe().set_desired_bitrate(Bitrate::from(desired));
            }
            if reprobe {
                // str0m's later probes are short and take sparse media packets into their
                // measurement, so after a congestion episode they can keep the estimate near
                // the reduced send rate long after the link recovered. A reset from the
                // current estimate replays its startup probing (at 3× and 6×, capped by the
                // desired bitrate), whose result measures the path: no blind upgrade.
                rtc.bwe().reset(Bitrate::from(estimate));
                self.stats.bwe_reprobes += 1;
            }
        }
        // Changing the desired bitrate is a mutation: drain before the next one.
        self.drain(now, slot);
    }
}

/// What `classify` learned of a packet.
struct PacketInfo {
    track: usize,
    layer: u8,
    keyframe: bool,
    kind: MediaKind,
    clock_rate: u32,
    /// The VP8 payload descriptor, for temporal dropping and PictureID continuity.
    vp8: Option<Vp8Info>,
    /// The publisher's codec parameters for the packet's payload type.
    params: Option<PayloadParams>,
}

fn starts_keyframe(codec: Option<Codec>, payload: &[u8]) -> bool {
    match codec {
        Some(Codec::Vp8) => format::detect_vp8_keyframe(payload),
        Some(Codec::Vp9) => format::detect_vp9_keyframe(payload),
        Some(Codec::H264) => format::detect_h264_keyframe(payload),
        Some(Codec::H265) => format::detect_h265_keyframe(payload),
        Some(Codec::Av1) => format::detect_av1_keyframe(payload),
        _ => false,
    }
}

/// The peer in `slot`, borrowing only the slab (so other fields stay usable).
fn peer_in(peers: &mut [Option<Peer>], slot: usize) -> Option<&mut Peer> {
    peers.get_mut(slot)?.as_mut()
}
