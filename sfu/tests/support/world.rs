//! The in-process world of the SFU's str0m tests (and the forward-path benchmark in
//! bench/benches): str0m client peers (the browser's part) talk to a [`Shard`] over a simulated
//! network, with synthetic time. No sockets, no sleeps, deterministic.
//!
//! Time advances to the earliest deadline of any party (as str0m's own tests do), never by a
//! fixed tick: str0m's pacer sends one packet per timeout, so a coarse tick would cap every
//! peer's send rate and its bandwidth probes would measure the harness instead of the link.
#![allow(dead_code)] // each user (tests, the benchmark) takes a different part

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sfu::core::api::{Command, FeedId, HandleId, Quality, Reply, RoomId};
use sfu::core::room::RoomOutput;
use sfu::core::shard::{Shard, ShardConfig};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite, Vp8Descriptor};
use str0m::{Candidate, Event, Input, Output, Rtc};

pub const SERVER: &str = "127.0.0.1:10000";
pub const RIDS: [&str; 3] = ["l", "m", "h"];
/// VP8 payload bytes per frame of each layer (one packet per frame): at 30 frames/s the
/// layers are ~40, ~100 and ~240 kbit/s.
pub const LAYER_BYTES: [usize; 3] = [150, 400, 1000];
/// Smallest step of synthetic time: bounds the loop while leaving the pacer thousands of
/// sends per second (TWCC timestamps have 250 µs resolution anyway).
pub const MIN_STEP: Duration = Duration::from_micros(100);
/// Largest step, so media and timers interleave finely.
pub const MAX_STEP: Duration = Duration::from_millis(5);

/// A bottleneck on the server-to-client path: a serialising queue at `rate_bps` that drops
/// what would wait longer than `buffer` (a drop-tail router queue).
pub struct Link {
    pub rate_bps: u64,
    pub buffer: Duration,
    /// (delivery time, datagram), in order.
    pub queue: VecDeque<(Instant, Vec<u8>)>,
    pub free_at: Option<Instant>,
    pub dropped: u64,
    /// Longest queueing delay seen.
    pub max_delay: Duration,
}

impl Link {
    pub fn new(rate_bps: u64, buffer: Duration) -> Self {
        Self {
            rate_bps,
            buffer,
            queue: VecDeque::new(),
            free_at: None,
            dropped: 0,
            max_delay: Duration::ZERO,
        }
    }

    pub fn push(&mut self, now: Instant, d: Vec<u8>) {
        let start = self.free_at.map_or(now, |f| f.max(now));
        let busy = Duration::from_micros(d.len() as u64 * 8 * 1_000_000 / self.rate_bps);
        let done = start + busy;
        let delay = done.duration_since(now);
        if delay > self.buffer {
            self.dropped += 1;
            return;
        }
        self.max_delay = self.max_delay.max(delay);
        self.free_at = Some(done);
        self.queue.push_back((done, d));
    }

    pub fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.queue.front().is_some_and(|(t, _)| *t <= now) {
            return self.queue.pop_front().map(|(_, d)| d);
        }
        None
    }

    pub fn next_delivery(&self) -> Option<Instant> {
        self.queue.front().map(|(t, _)| *t)
    }
}

pub struct Client {
    pub addr: SocketAddr,
    pub rtc: Rtc,
    /// Datagrams on their way to this client.
    pub inbox: VecDeque<Vec<u8>>,
    pub received: Vec<Received>,
    pub connected: bool,
    /// Simulcast layers the SFU asked a keyframe of (PLI), as a publisher's encoder would
    /// answer them on its next frame.
    pub keyframe_wanted: Vec<Rid>,
    /// The client's next deadline.
    pub next: Instant,
    /// A bottleneck in front of this client, if any.
    pub link: Option<Link>,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub seq: u64,
    pub payload: Vec<u8>,
    pub video: bool,
}

impl Client {
    /// The payload type this client negotiated for `codec`.
    pub fn pt_of(&self, codec: Codec) -> Pt {
        self.rtc
            .codec_config()
            .find(|p| p.spec().codec == codec)
            .expect("codec negotiated")
            .pt()
    }

    pub fn new(now: Instant, port: u16) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut rtc = Rtc::builder().set_rtp_mode(true).build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        Self {
            addr,
            rtc,
            inbox: VecDeque::new(),
            received: Vec::new(),
            connected: false,
            keyframe_wanted: Vec::new(),
            next: now,
            link: None,
        }
    }

    /// Drains the client: transmits go to the server's inbox.
    pub fn drain(&mut self, to_server: &mut VecDeque<(SocketAddr, Vec<u8>)>) {
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(t) => {
                    self.next = t;
                    return;
                }
                Output::Transmit(t) => to_server.push_back((self.addr, t.contents.to_vec())),
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::KeyframeRequest(r)) => {
                    self.keyframe_wanted.extend(r.rid);
                }
                Output::Event(Event::RtpPacket(p)) => {
                    let mid = self
                        .rtc
                        .direct_api()
                        .stream_rx(&p.header.ssrc)
                        .map(|s| s.mid());
                    let video = mid
                        .and_then(|m| self.rtc.media(m).map(|m| m.kind() == MediaKind::Video))
                        .unwrap_or(false);
                    self.received.push(Received {
                        seq: *p.seq_no,
                        payload: p.payload.to_vec(),
                        video,
                    });
                }
                Output::Event(_) => {}
            }
        }
    }
}

pub struct World {
    pub now: Instant,
    pub shard: Shard,
    pub clients: Vec<Client>,
    pub to_server: VecDeque<(SocketAddr, Vec<u8>)>,
    pub events: Vec<(HandleId, sfu::core::api::RoomEvent)>,
    /// Wall time spent inside the shard's datagram, timer and output calls (the server's
    /// share of the work, for the benchmark; the clients' is left out).
    pub shard_time: Duration,
}

/// Runs `f`, adding its wall time to `acc`.
fn timed<T>(acc: &mut Duration, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let r = f();
    *acc += start.elapsed();
    r
}

impl World {
    pub fn new(n: usize) -> Self {
        sfu::init_crypto();
        let now = Instant::now();
        let shard = Shard::new(ShardConfig {
            candidate: SERVER.parse().unwrap(),
            max_publishers: 12,
            require_grant: false,
        });
        Self {
            now,
            shard,
            clients: (0..n)
                .map(|i| Client::new(now, 20_000 + i as u16))
                .collect(),
            to_server: VecDeque::new(),
            events: Vec::new(),
            shard_time: Duration::ZERO,
        }
    }

    pub fn command(&mut self, handle: u64, cmd: Command) -> Reply {
        let r = self
            .shard
            .handle_command(self.now, HandleId(handle), cmd)
            .expect("command");
        self.pump();
        r
    }

    /// Moves every queued datagram and drains everyone, without advancing time.
    pub fn pump(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(o) = timed(&mut self.shard_time, || self.shard.poll_output()) {
                match o {
                    RoomOutput::Transmit(t) => {
                        if let Some(c) = self.clients.iter_mut().find(|c| c.addr == t.destination) {
                            match &mut c.link {
                                Some(link) => link.push(self.now, t.contents.to_vec()),
                                None => c.inbox.push_back(t.contents.to_vec()),
                            }
                        }
                    }
                    RoomOutput::Event(h, e) => self.events.push((h, e)),
                }
                moved = true;
            }
            let server: SocketAddr = SERVER.parse().unwrap();
            for c in &mut self.clients {
                while let Some(d) = c.link.as_mut().and_then(|l| l.pop_due(self.now)) {
                    c.inbox.push_back(d);
                }
                while let Some(d) = c.inbox.pop_front() {
                    let r = Receive::new(Protocol::Udp, server, c.addr, &d).unwrap();
                    c.rtc.handle_input(Input::Receive(self.now, r)).unwrap();
                    c.drain(&mut self.to_server);
                    moved = true;
                }
                c.drain(&mut self.to_server);
            }
            while let Some((from, d)) = self.to_server.pop_front() {
                let now = self.now;
                timed(&mut self.shard_time, || {
                    self.shard.handle_datagram(now, from, &d)
                });
                moved = true;
            }
            if !moved {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// Advances synthetic time by `d`, to the earliest deadline of the shard, the clients and
    /// the links each step (clamped to `MIN_STEP..=MAX_STEP`, so the loop is bounded by `d`
    /// whatever the peers ask for).
    pub fn run_for(&mut self, d: Duration, mut each_tick: impl FnMut(&mut World)) {
        let end = self.now + d;
        while self.now < end {
            let mut next = self.now + MAX_STEP;
            let deadlines = self
                .clients
                .iter()
                .flat_map(|c| [Some(c.next), c.link.as_ref().and_then(Link::next_delivery)])
                .chain([self.shard.poll_timeout()]);
            for t in deadlines.flatten() {
                next = next.min(t);
            }
            self.now = next.max(self.now + MIN_STEP);
            let now = self.now;
            timed(&mut self.shard_time, || self.shard.handle_timeout(now));
            for c in &mut self.clients {
                c.rtc.handle_input(Input::Timeout(self.now)).unwrap();
                c.drain(&mut self.to_server);
            }
            self.pump();
            each_tick(self);
            self.pump();
        }
    }
}

/// A publisher's send state.
pub struct Sender {
    pub client: usize,
    pub audio: Mid,
    pub video: Mid,
    pub seq: u64,
    pub frame: u32,
    /// Per layer: TL0PICIDX, the count of temporal-layer-0 frames so far.
    tl0: [u8; 3],
}

pub fn publish(w: &mut World, client: usize, feed: u64, room: &RoomId) -> Sender {
    w.command(
        feed,
        Command::JoinPublisher {
            room: room.clone(),
            feed: Some(FeedId(feed)),
            display: Some(format!("user{feed}")),
            grant: None,
        },
    );
    let c = &mut w.clients[client];
    let mut sdp = c.rtc.sdp_api();
    let audio = sdp.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let simulcast = Simulcast {
        send: RIDS
            .iter()
            .map(|r| SimulcastLayer {
                rid: Rid::from(*r),
                attributes: None,
            })
            .collect(),
        recv: vec![],
    };
    let video = sdp.add_media(
        MediaKind::Video,
        Direction::SendOnly,
        None,
        None,
        Some(simulcast),
    );
    let (offer, pending) = sdp.apply().unwrap();
    let reply = w.command(
        feed,
        Command::Configure {
            offer: Some(offer.to_sdp_string()),
            audio: Some(true),
            video: Some(true),
            display: None,
        },
    );
    let Reply::Configured {
        answer: Some(answer),
    } = reply
    else {
        panic!("no answer: {reply:?}");
    };
    let answer = SdpAnswer::from_sdp_string(&answer).unwrap();
    w.clients[client]
        .rtc
        .sdp_api()
        .accept_answer(pending, answer)
        .unwrap();
    w.pump();
    Sender {
        client,
        audio,
        video,
        seq: 1,
        frame: 0,
        tl0: [0, 70, 140],
    }
}

pub fn subscribe(w: &mut World, client: usize, handle: u64, room: &RoomId, feed: u64) {
    let reply = w.command(
        handle,
        Command::JoinSubscriber {
            room: room.clone(),
            feeds: vec![FeedId(feed)],
            grant: None,
            quality: Quality::default(),
        },
    );
    let Reply::Attached { offer, .. } = reply else {
        panic!("not attached: {reply:?}");
    };
    let offer = SdpOffer::from_sdp_string(&offer).unwrap();
    let answer = w.clients[client].rtc.sdp_api().accept_offer(offer).unwrap();
    w.command(
        handle,
        Command::Start {
            answer: Some(answer.to_sdp_string()),
        },
    );
}

/// Payload tag: publisher feed, layer (9 = audio), frame number.
pub fn tag(feed: u64, layer: u8, frame: u32) -> [u8; 6] {
    let f = frame.to_be_bytes();
    [feed as u8, layer, f[0], f[1], f[2], f[3]]
}

/// Layout of the synthetic VP8 payload: a six-octet payload descriptor (15-bit PictureID,
/// TL0PICIDX, TID), the VP8 header octet (bit 0 clear on a keyframe), then the tag.
pub const VP8_DESCRIPTOR: usize = 6;
pub const VP8_HEADER: usize = VP8_DESCRIPTOR;
pub const VIDEO_FEED: usize = VP8_HEADER + 1;
pub const VIDEO_LAYER: usize = VP8_HEADER + 2;

/// Temporal layer of each frame in a cycle of four (the L1T3 pattern browsers use).
pub const TEMPORAL_PATTERN: [u8; 4] = [0, 2, 1, 2];

/// Each layer numbers its pictures from its own origin, as separate encoders do.
pub fn picture_id(layer: usize, frame: u32) -> u16 {
    ((layer as u32 * 10_000 + frame) & 0x7fff) as u16
}

pub fn vp8_payload(picture_id: u16, tl0: u8, tid: u8, keyframe: bool) -> Vec<u8> {
    vec![
        0x90,
        0xe0,
        0x80 | (picture_id >> 8) as u8,
        picture_id as u8,
        tl0,
        tid << 6,
        if keyframe { 0x00 } else { 0x01 },
    ]
}

pub fn layer_of(r: &Received) -> u8 {
    r.payload[VIDEO_LAYER]
}

pub fn is_keyframe(r: &Received) -> bool {
    r.payload[VP8_HEADER] & 0x01 == 0
}

/// (PictureID, TL0PICIDX, TID) as the receiver's decoder reads them.
pub fn vp8_ids(r: &Received) -> (u16, u8, u8) {
    let d = Vp8Descriptor::parse(&r.payload).unwrap();
    (
        d.picture_id().unwrap(),
        d.tl0_pic_idx().unwrap(),
        r.payload[5] >> 6,
    )
}

/// Consecutive frames as one encoder would number them: PictureID +1 (when every temporal
/// layer is forwarded), TL0PICIDX +1 exactly at temporal-layer-0 frames.
pub fn assert_vp8_continuous(video: &[&Received], every_layer: bool) {
    for pair in video.windows(2) {
        let (p0, t0, _) = vp8_ids(pair[0]);
        let (p1, t1, tid1) = vp8_ids(pair[1]);
        if every_layer {
            assert_eq!(
                p1,
                (p0 + 1) & 0x7fff,
                "continuous PictureID across {pair:?}"
            );
        }
        let step = if tid1 == 0 { 1 } else { 0 };
        assert_eq!(
            t1,
            t0.wrapping_add(step),
            "continuous TL0PICIDX across {pair:?}"
        );
    }
}

/// Writes one audio packet and one VP8 packet per layer (a keyframe every 30 frames, and on
/// the frame after a PLI for that layer).
pub fn send_frame(w: &mut World, s: &mut Sender, feed: u64) {
    let now = w.now;
    let c = &mut w.clients[s.client];
    let opus = c.pt_of(Codec::Opus);
    let vp8 = c.pt_of(Codec::Vp8);
    let periodic = s.frame % 30 == 0;
    let wanted = std::mem::take(&mut c.keyframe_wanted);
    {
        let mut api = c.rtc.direct_api();
        let tx = api.stream_tx_by_mid(s.audio, None).unwrap();
        let mut payload = vec![0xfc];
        payload.extend_from_slice(&tag(feed, 9, s.frame));
        tx.write_rtp(
            RtpWrite::new(opus, s.seq.into(), s.frame * 960, now, payload)
                .marker(true)
                .ext_vals(ExtensionValues {
                    audio_level: Some(-20),
                    voice_activity: Some(true),
                    ..Default::default()
                }),
        );
    }
    c.drain(&mut w.to_server);
    for (layer, rid) in RIDS.iter().enumerate() {
        let keyframe = periodic || wanted.iter().any(|w| &**w == *rid);
        let tid = if keyframe {
            0
        } else {
            TEMPORAL_PATTERN[s.frame as usize % 4]
        };
        if tid == 0 {
            s.tl0[layer] = s.tl0[layer].wrapping_add(1);
        }
        let mut payload = vp8_payload(picture_id(layer, s.frame), s.tl0[layer], tid, keyframe);
        payload.extend_from_slice(&tag(feed, layer as u8, s.frame));
        payload.extend(std::iter::repeat_n(0u8, LAYER_BYTES[layer] - payload.len()));
        let mut api = c.rtc.direct_api();
        let tx = api
            .stream_tx_by_mid(s.video, Some(Rid::from(*rid)))
            .unwrap();
        tx.write_rtp(
            RtpWrite::new(vp8, s.seq.into(), s.frame * 3000, now, payload)
                .marker(true)
                .nackable(true),
        );
        c.drain(&mut w.to_server);
    }
    s.seq += 1;
    s.frame += 1;
}

/// Sends 30 frames/s from every sender for `d`.
pub fn run_media(w: &mut World, senders: &mut [Sender], next_frame: &mut Instant, d: Duration) {
    w.run_for(d, |w| {
        if w.now >= *next_frame {
            *next_frame += Duration::from_millis(33);
            for (i, s) in senders.iter_mut().enumerate() {
                send_frame(w, s, i as u64 + 1);
            }
        }
    });
}
