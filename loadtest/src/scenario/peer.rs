//! One str0m PeerConnection (RTP mode) on its own loopback UDP socket, as a browser has one
//! per PeerConnection: a publisher writing synthetic Opus + simulcast VP8, or a subscriber
//! measuring what arrives. Each runs as a task; many share a runtime thread.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;

use super::media::{
    self, FrameClock, MediaSpec, Stamp, Vp8State, AUDIO_PERIOD, AUDIO_STREAM, AUDIO_TICKS,
};
use crate::run::Live;
use crate::stats::{Batch, Flow};

/// Simulcast rids, low to high (janus.js's and the QuickBlox client's names).
pub const RIDS: [&str; 3] = ["l", "m", "h"];
/// How long a subscriber keeps receiving after the run stops, for packets in flight.
const DRAIN: Duration = Duration::from_millis(500);
/// Datagrams read per wake-up before str0m's output is drained (bounds one peer's turn).
const READ_BATCH: usize = 64;
/// Socket buffers asked for (the kernel caps them at rmem_max/wmem_max): keyframe bursts
/// of a dozen feeds must not drop in the tester.
const UDP_BUFFER: usize = 1 << 20;

/// A PeerConnection and its socket, before it runs.
pub struct Peer {
    pub rtc: Rtc,
    sock: UdpSocket,
    local: SocketAddr,
}

impl Peer {
    /// A PeerConnection on a fresh UDP socket at `ip` (see [`media_ip_allowed`]).
    pub fn new(ip: std::net::IpAddr) -> anyhow::Result<Self> {
        let s = socket2::Socket::new(
            socket2::Domain::for_address(SocketAddr::new(ip, 0)),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        let _ = s.set_recv_buffer_size(UDP_BUFFER);
        let _ = s.set_send_buffer_size(UDP_BUFFER);
        s.set_nonblocking(true)?;
        s.bind(&SocketAddr::new(ip, 0).into())
            .map_err(|e| anyhow::anyhow!("binding a media socket on {ip}: {e}"))?;
        let sock = UdpSocket::from_std(s.into())?;
        let local = sock.local_addr()?;
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true)
            .enable_vp8(true)
            .set_rtp_mode(true)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp")?);
        Ok(Self { rtc, sock, local })
    }

    /// A publisher's offer: Opus, and VP8 with three simulcast layers, both send-only.
    pub fn publish_offer(&mut self) -> anyhow::Result<(SdpOffer, SdpPendingOffer, Mid, Mid)> {
        let mut sdp = self.rtc.sdp_api();
        let audio = sdp.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        // Listed high to low, as janus.js does: Janus takes the first rid for the highest
        // layer, Switchboard orders them by name.
        let simulcast = Simulcast {
            send: RIDS
                .iter()
                .rev()
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
        let (offer, pending) = sdp
            .apply()
            .ok_or_else(|| anyhow::anyhow!("str0m made no offer"))?;
        Ok((offer, pending, audio, video))
    }

    pub fn accept_answer(&mut self, pending: SdpPendingOffer, sdp: &str) -> anyhow::Result<()> {
        let answer = SdpAnswer::from_sdp_string(&local_candidates_only(sdp)?)?;
        self.rtc.sdp_api().accept_answer(pending, answer)?;
        Ok(())
    }

    pub fn answer(&mut self, offer: &str) -> anyhow::Result<SdpAnswer> {
        let offer = SdpOffer::from_sdp_string(&local_candidates_only(offer)?)?;
        Ok(self.rtc.sdp_api().accept_offer(offer)?)
    }

    /// Sends what str0m wants sent and hands events to `role`; returns its next deadline.
    fn drain(&mut self, role: &mut impl Role, live: &Live) -> anyhow::Result<Instant> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    if self.sock.try_send_to(&t.contents, t.destination).is_err() {
                        live.add("client_send_drops", 1);
                    }
                }
                Output::Event(e) => role.on_event(e, live)?,
            }
        }
    }

    /// Runs until the run stops (publishers) or its drain ends (subscribers), or the
    /// connection fails.
    /// `halt` ends it like the run's stop (the run is failing and wants its counts).
    pub async fn run(
        mut self,
        mut role: impl Role,
        live: Arc<Live>,
        mut halt: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut buf = vec![0u8; 2048];
        let mut drain_until: Option<Instant> = None;
        let mut failure = None;
        let result = loop {
            if let Some(e) = failure.take() {
                break Err(e);
            }
            let timeout = match self.drain(&mut role, &live) {
                Ok(t) => t,
                Err(e) => break Err(e),
            };
            if role.failed() {
                break Err(anyhow::anyhow!("the media connection failed (ICE)"));
            }
            let mut wake = timeout;
            if let Some(due) = role.next_due().filter(|_| drain_until.is_none()) {
                wake = wake.min(due);
            }
            if let Some(end) = drain_until {
                if Instant::now() >= end {
                    break Ok(());
                }
                wake = wake.min(end);
            }
            tokio::select! {
                r = self.sock.recv_from(&mut buf) => {
                    let now = Instant::now();
                    if let Ok((n, from)) = r {
                        self.receive(now, from, &buf[..n]);
                    }
                    // Whatever else is queued, up to a batch, draining after each (str0m
                    // yields a datagram's events before it takes the next).
                    for _ in 1..READ_BATCH {
                        if let Err(e) = self.drain(&mut role, &live) {
                            failure = Some(e);
                            break;
                        }
                        match self.sock.try_recv_from(&mut buf) {
                            // Each datagram's own arrival time: TWCC feedback carries it, and
                            // a batch-wide stamp reads as delay jitter to the sender's BWE.
                            Ok((n, from)) => self.receive(Instant::now(), from, &buf[..n]),
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                        break Err(e.into());
                    }
                    if drain_until.is_none() {
                        role.on_due(&mut self.rtc, now, &live);
                    }
                }
                _ = stopped(&live, &mut halt), if drain_until.is_none() => {
                    drain_until = Some(Instant::now() + role.drain_time());
                }
            }
        };
        role.finish(&live);
        self.rtc.disconnect();
        result
    }

    fn receive(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if let Ok(r) = Receive::new(Protocol::Udp, from, self.local, data) {
            // A datagram str0m refuses (stray, garbled) is dropped, as a browser would.
            let _ = self.rtc.handle_input(Input::Receive(now, r));
        }
    }
}

/// Where media may go: loopback, or the RFC 2544 benchmarking range 198.18.0.0/15 inside
/// a network namespace the bench made (`bench/peers/janus.sh`: Janus gathers no loopback
/// candidates). Never anywhere else.
pub fn media_ip_allowed(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            v4.is_loopback() || (v4.octets()[0] == 198 && (v4.octets()[1] & 0xfe) == 18)
        }
        std::net::IpAddr::V6(v6) => v6.is_loopback(),
    }
}

/// The SDP without the server's candidates that [`media_ip_allowed`] refuses; an error
/// when none is left (the server offers nothing this tester may send to).
pub fn local_candidates_only(sdp: &str) -> anyhow::Result<String> {
    let mut out = String::with_capacity(sdp.len());
    let (mut kept, mut dropped) = (0, Vec::new());
    for line in sdp.split_inclusive('\n') {
        if let Some(c) = line.trim_end().strip_prefix("a=candidate:") {
            // foundation component transport priority address port typ …
            let addr = c.split_whitespace().nth(4).unwrap_or_default();
            match addr.parse() {
                Ok(ip) if media_ip_allowed(ip) => kept += 1,
                _ => {
                    dropped.push(addr.to_string());
                    continue;
                }
            }
        }
        out.push_str(line);
    }
    if kept == 0 && !dropped.is_empty() {
        return Err(super::janus::Unreachable(format!(
            "the server offers media only on {} (not loopback or 198.18.0.0/15: see bench/peers/janus.sh)",
            dropped.join(", ")
        ))
        .into());
    }
    Ok(out)
}

/// The run stopped, or was halted.
pub async fn stopped(live: &Live, halt: &mut tokio::sync::watch::Receiver<bool>) {
    tokio::select! {
        _ = live.wait_stop() => {}
        _ = halt.wait_for(|h| *h) => {}
    }
}

/// What a PeerConnection does with its events and its media clock.
pub trait Role {
    fn on_event(&mut self, e: Event, live: &Live) -> anyhow::Result<()>;
    /// When it next wants [`Role::on_due`] (media to write).
    fn next_due(&self) -> Option<Instant>;
    fn on_due(&mut self, rtc: &mut Rtc, now: Instant, live: &Live);
    /// ICE gave up: the connection is dead.
    fn failed(&self) -> bool;
    fn drain_time(&self) -> Duration;
    fn finish(&mut self, live: &Live);
}

/// What both roles track about their connection.
struct Conn {
    /// When joining or subscribing started: connect latency is measured from here.
    started: Instant,
    connected: bool,
    failed: bool,
}

impl Conn {
    fn on_state(&mut self, e: &Event, live: &Live, op: &'static str) {
        match e {
            Event::Connected => {
                self.connected = true;
                live.latency(op, self.started.elapsed().as_micros() as u64);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.failed = true;
            }
            _ => {}
        }
    }
}

/// A publisher's PeerConnection: audio every 20 ms, a frame of each simulcast layer every
/// 1/fps, keyframes periodically and on the server's request (PLI/FIR).
pub struct Publisher {
    conn: Conn,
    tag: u32,
    feed: u64,
    spec: MediaSpec,
    audio: Mid,
    video: Mid,
    /// Negotiated payload types of Opus and VP8.
    pts: Option<(Pt, Pt)>,
    audio_clock: Option<FrameClock>,
    video_clock: Option<FrameClock>,
    audio_seq: u64,
    video_seq: [u64; 3],
    vp8: [Vp8State; 3],
    keyframe_every: u32,
    keyframe_wanted: [bool; 3],
    buf: Vec<u8>,
    sent: u64,
    keyframe_requests: u64,
    write_failures: u64,
}

impl Publisher {
    pub fn new(
        tag: u32,
        feed: u64,
        spec: MediaSpec,
        audio: Mid,
        video: Mid,
        keyframe_every: Duration,
        started: Instant,
    ) -> Self {
        let keyframe_every = (keyframe_every.as_secs_f64() * spec.fps as f64).round() as u32;
        Self {
            conn: Conn {
                started,
                connected: false,
                failed: false,
            },
            tag,
            feed,
            spec,
            audio,
            video,
            pts: None,
            audio_clock: None,
            video_clock: None,
            audio_seq: 1,
            video_seq: [1; 3],
            vp8: [Vp8State::default(); 3],
            keyframe_every: keyframe_every.max(1),
            keyframe_wanted: [true; 3],
            buf: vec![0u8; media::MAX_PAYLOAD],
            sent: 0,
            keyframe_requests: 0,
            write_failures: 0,
        }
    }

    fn write_audio(&mut self, rtc: &mut Rtc, frame: u32, now: Instant, now_us: u64) {
        let Some((opus, _)) = self.pts else { return };
        let payload = &mut self.buf[..self.spec.audio_bytes];
        payload.fill(0);
        payload[0] = 0xfc;
        Stamp {
            tag: self.tag,
            feed: self.feed,
            stream: AUDIO_STREAM,
            frame,
            sent_us: now_us,
        }
        .write(payload);
        let mut api = rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(self.audio, None) else {
            self.write_failures += 1;
            return;
        };
        tx.write_rtp(
            RtpWrite::new(
                opus,
                self.audio_seq.into(),
                frame.wrapping_mul(AUDIO_TICKS),
                now,
                &payload[..],
            )
            .marker(true)
            .nackable(false)
            .ext_vals(ExtensionValues {
                audio_level: Some(-30),
                voice_activity: Some(true),
                ..Default::default()
            }),
        );
        self.audio_seq += 1;
        self.sent += 1;
    }

    fn write_frame(&mut self, rtc: &mut Rtc, frame: u32, now: Instant, now_us: u64) {
        let Some((_, pt)) = self.pts else { return };
        let periodic = frame % self.keyframe_every == 0;
        for (layer, rid) in RIDS.iter().enumerate() {
            let keyframe = periodic || std::mem::take(&mut self.keyframe_wanted[layer]);
            let size = self.spec.frame_size(layer, keyframe);
            let state = self.vp8[layer];
            let parts: Vec<usize> = media::split(size).collect();
            let last = parts.len() - 1;
            let mut api = rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(self.video, Some(Rid::from(*rid))) else {
                self.write_failures += 1;
                continue;
            };
            for (i, len) in parts.into_iter().enumerate() {
                let payload = &mut self.buf[..len];
                media::vp8_packet(payload, i, keyframe, layer, state);
                Stamp {
                    tag: self.tag,
                    feed: self.feed,
                    stream: 1 + layer as u8,
                    frame,
                    sent_us: now_us,
                }
                .write(payload);
                tx.write_rtp(
                    RtpWrite::new(
                        pt,
                        self.video_seq[layer].into(),
                        frame.wrapping_mul(self.spec.video_ticks()),
                        now,
                        &payload[..],
                    )
                    .marker(i == last)
                    .nackable(true),
                );
                self.video_seq[layer] += 1;
                self.sent += 1;
            }
            self.vp8[layer].next_frame();
        }
    }
}

impl Role for Publisher {
    fn on_event(&mut self, e: Event, live: &Live) -> anyhow::Result<()> {
        self.conn.on_state(&e, live, "publish");
        match e {
            Event::Connected => {
                live.client_up();
                let now = Instant::now();
                self.audio_clock = Some(FrameClock::new(AUDIO_PERIOD, now));
                self.video_clock = Some(FrameClock::new(self.spec.frame_period(), now));
            }
            Event::KeyframeRequest(r) => {
                self.keyframe_requests += 1;
                match r.rid.and_then(|rid| RIDS.iter().position(|x| *x == &*rid)) {
                    Some(layer) => self.keyframe_wanted[layer] = true,
                    None => self.keyframe_wanted = [true; 3],
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn next_due(&self) -> Option<Instant> {
        let a = self.audio_clock.as_ref()?.due();
        let v = self.video_clock.as_ref()?.due();
        Some(a.min(v))
    }

    fn on_due(&mut self, rtc: &mut Rtc, now: Instant, live: &Live) {
        if self.pts.is_none() {
            let find = |rtc: &mut Rtc, c: Codec| {
                rtc.codec_config()
                    .find(|p| p.spec().codec == c)
                    .map(|p| p.pt())
            };
            if let (Some(a), Some(v)) = (find(rtc, Codec::Opus), find(rtc, Codec::Vp8)) {
                self.pts = Some((a, v));
            }
        }
        let now_us = live.now_us();
        while let Some(frame) = self.audio_clock.as_mut().and_then(|c| c.take(now)) {
            self.write_audio(rtc, frame, now, now_us);
        }
        while let Some(frame) = self.video_clock.as_mut().and_then(|c| c.take(now)) {
            self.write_frame(rtc, frame, now, now_us);
        }
    }

    fn failed(&self) -> bool {
        self.conn.failed
    }

    fn drain_time(&self) -> Duration {
        Duration::ZERO
    }

    fn finish(&mut self, live: &Live) {
        if self.conn.connected {
            live.client_down();
        }
        live.add("packets_sent", self.sent);
        live.add("keyframe_requests", self.keyframe_requests);
        if self.write_failures > 0 {
            live.error("publisher stream not negotiated (write failed)");
        }
    }
}

/// What a subscriber measured of one track.
#[derive(Debug, Default, Clone)]
pub struct TrackStats {
    pub packets: u64,
    pub bytes: u64,
    /// Extended RTP sequence numbers seen: the first and the highest.
    pub first_seq: Option<u64>,
    pub max_seq: u64,
    pub flow: Flow,
    pub first_at: Option<Instant>,
    pub last_at: Option<Instant>,
    /// Video: the layer last received, switches between layers, packets per layer.
    pub layer: Option<u8>,
    pub switches: u64,
    pub per_layer: [u64; 3],
    /// The latest-arriving packet, to tell when in a subscription lateness happens.
    pub worst: Option<Worst>,
}

/// The packet with the highest one-way latency on a track.
#[derive(Debug, Default, Clone, Copy)]
pub struct Worst {
    pub latency_us: u64,
    /// Its sequence number counted from the track's first packet.
    pub seq: u64,
    /// Its arrival after the track's first packet.
    pub after_first: Duration,
}

impl TrackStats {
    /// One packet: its extended sequence number, size, stamp, and arrival.
    pub fn on_packet(&mut self, seq: u64, len: usize, s: &Stamp, now: Instant, now_us: u64) -> u64 {
        self.packets += 1;
        self.bytes += len as u64;
        let first = *self.first_seq.get_or_insert(seq);
        self.max_seq = self.max_seq.max(seq);
        self.first_at.get_or_insert(now);
        self.last_at = Some(now);
        if s.stream != AUDIO_STREAM {
            let layer = s.stream - 1;
            if self.layer.is_some_and(|l| l != layer) {
                self.switches += 1;
            }
            self.layer = Some(layer);
            if let Some(n) = self.per_layer.get_mut(layer as usize) {
                *n += 1;
            }
        }
        // Packets repaired from before the first one seen count as reordered, not lost.
        let latency = self
            .flow
            .on_packet(seq.saturating_sub(first), s.sent_us, now_us);
        if self.worst.is_none_or(|w| latency > w.latency_us) {
            self.worst = Some(Worst {
                latency_us: latency,
                seq: seq.saturating_sub(first),
                after_first: self.first_at.map_or(Duration::ZERO, |f| now - f),
            });
        }
        latency
    }

    /// How many more packets the sender has sent, by sequence numbers, once packet `seq`
    /// arrived (RFC 3550's expected count: the highest extended sequence number grows):
    /// 1 for the first packet, the jump past the highest so far, 0 for a late packet.
    /// Summed over a track it is `max_seq − first_seq + 1`.
    pub fn seq_advance(&self, seq: u64) -> u64 {
        match self.first_seq {
            None => 1,
            Some(_) => seq.saturating_sub(self.max_seq),
        }
    }

    /// Packets missing between the first and the highest sequence number received.
    pub fn lost(&self) -> u64 {
        match self.first_seq {
            Some(first) => (self.max_seq - first + 1).saturating_sub(self.packets),
            None => 0,
        }
    }

    /// Payload bit rate between the first and the last packet, kbit/s.
    pub fn kbps(&self) -> f64 {
        match (self.first_at, self.last_at) {
            (Some(a), Some(b)) if b > a => self.bytes as f64 * 8.0 / (b - a).as_secs_f64() / 1e3,
            _ => 0.0,
        }
    }
}

/// One subscribed feed's tracks, as the tracks report lists them.
#[derive(Debug, Clone)]
pub struct TrackRow {
    pub subscriber: u64,
    pub publisher: u64,
    pub kind: &'static str,
    pub stats: TrackStats,
}

/// A subscriber's PeerConnection to one publisher's feed.
pub struct Subscriber {
    conn: Conn,
    tag: u32,
    me: u64,
    feed: u64,
    audio: TrackStats,
    video: TrackStats,
    audio_lat: Batch,
    video_lat: Batch,
    foreign: u64,
    wrong_feed: u64,
    rows: Arc<std::sync::Mutex<Vec<TrackRow>>>,
}

impl Subscriber {
    pub fn new(
        tag: u32,
        me: u64,
        feed: u64,
        started: Instant,
        rows: Arc<std::sync::Mutex<Vec<TrackRow>>>,
    ) -> Self {
        Self {
            conn: Conn {
                started,
                connected: false,
                failed: false,
            },
            tag,
            me,
            feed,
            audio: TrackStats::default(),
            video: TrackStats::default(),
            audio_lat: Batch::new("audio"),
            video_lat: Batch::new("video"),
            foreign: 0,
            wrong_feed: 0,
            rows,
        }
    }
}

impl Role for Subscriber {
    fn on_event(&mut self, e: Event, live: &Live) -> anyhow::Result<()> {
        self.conn.on_state(&e, live, "subscribe");
        let Event::RtpPacket(p) = e else {
            return Ok(());
        };
        let Some(stamp) = Stamp::read(&p.payload, self.tag) else {
            // Padding probes and anything not ours.
            if p.payload.len() >= media::TRAILER {
                self.foreign += 1;
            }
            return Ok(());
        };
        if stamp.feed != self.feed {
            self.wrong_feed += 1;
            return Ok(());
        }
        let now = Instant::now();
        let now_us = live.now_us();
        let first = self.audio.packets + self.video.packets == 0;
        if first {
            live.latency(
                "first_media",
                self.conn.started.elapsed().as_micros() as u64,
            );
        }
        let seq = *p.seq_no;
        // Per-second loss: what the sequence numbers say was sent, and this packet, by the
        // send time it carries.
        let track = if stamp.stream == AUDIO_STREAM {
            &self.audio
        } else {
            &self.video
        };
        live.expect_at(stamp.sent_us, track.seq_advance(seq));
        live.arrived_at(stamp.sent_us, 1);
        if stamp.stream == AUDIO_STREAM {
            let l = self
                .audio
                .on_packet(seq, p.payload.len(), &stamp, now, now_us);
            self.audio_lat.push(live, l);
        } else {
            let l = self
                .video
                .on_packet(seq, p.payload.len(), &stamp, now, now_us);
            self.video_lat.push(live, l);
        }
        Ok(())
    }

    fn next_due(&self) -> Option<Instant> {
        None
    }

    fn on_due(&mut self, _rtc: &mut Rtc, _now: Instant, _live: &Live) {}

    fn failed(&self) -> bool {
        self.conn.failed
    }

    fn drain_time(&self) -> Duration {
        DRAIN
    }

    fn finish(&mut self, live: &Live) {
        self.audio_lat.flush(live);
        self.video_lat.flush(live);
        if self.foreign > 0 {
            live.add("foreign_packets", self.foreign);
        }
        if self.wrong_feed > 0 {
            live.error("media from a feed not subscribed to");
            live.add("wrong_feed_packets", self.wrong_feed);
        }
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        for (kind, t) in [("audio", &self.audio), ("video", &self.video)] {
            rows.push(TrackRow {
                subscriber: self.me,
                publisher: self.feed,
                kind,
                stats: t.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_candidates_are_kept() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
                   a=candidate:1 1 udp 2015363327 192.0.2.2 20882 typ host\r\n\
                   a=candidate:2 1 udp 2015363583 fd00::2 20690 typ host\r\n\
                   a=candidate:3 1 udp 2015363327 198.18.0.1 20883 typ host\r\n\
                   a=candidate:4 1 udp 2130706175 127.0.0.1 10000 typ host\r\n\
                   a=end-of-candidates\r\n";
        let kept = local_candidates_only(sdp).unwrap();
        assert!(!kept.contains("192.0.2.2") && !kept.contains("fd00::2"));
        assert!(kept.contains("198.18.0.1 20883") && kept.contains("127.0.0.1 10000"));
        assert!(kept.ends_with("a=end-of-candidates\r\n"));
        let public = "m=audio 9 X 1\r\na=candidate:1 1 udp 1 8.8.8.8 1 typ host\r\n";
        let e = local_candidates_only(public).unwrap_err().to_string();
        assert!(e.contains("8.8.8.8"), "{e}");
        assert!(media_ip_allowed("198.19.255.1".parse().unwrap()));
        assert!(!media_ip_allowed("198.20.0.1".parse().unwrap()));
        assert!(!media_ip_allowed("10.0.0.1".parse().unwrap()));
    }
}
