//! The synthetic media of `conference`, with no IO: payload sizes from bitrates and frame
//! rates, VP8 payloads a server's keyframe detection reads as real ones, the trailer that
//! carries the send time for one-way latency, and the frame clock.
//!
//! Every payload ends in a [`Stamp`] (the last [`TRAILER`] bytes): servers rewrite the VP8
//! payload descriptor at the front (picture id, TL0PICIDX), never the end.

use std::time::{Duration, Instant};

/// Bytes of the [`Stamp`] at the end of every payload.
pub const TRAILER: usize = 25;
/// Largest RTP payload written: a browser's packetiser keeps packets under ~1,200 bytes so
/// SRTP, headers and a TURN wrapper fit a 1,280-byte path MTU.
pub const MAX_PAYLOAD: usize = 1100;
/// Smallest audio payload: a TOC byte and the stamp.
pub const MIN_AUDIO: usize = TRAILER + 1;
/// `Stamp::stream` of audio; video layer `k` (0 = low) is `1 + k`.
pub const AUDIO_STREAM: u8 = 0;
/// Opus frames are 20 ms (what browsers send).
pub const AUDIO_PERIOD: Duration = Duration::from_millis(20);
/// Opus RTP clock ticks per 20 ms frame (48 kHz).
pub const AUDIO_TICKS: u32 = 960;
/// A keyframe is this many times the size of a delta frame of the same layer (browsers'
/// VP8 keyframes at conference bitrates are 3–10 delta frames).
pub const KEYFRAME_FACTOR: usize = 4;
/// Resolutions written into keyframe headers per layer (`l`, `m`, `h`).
pub const LAYER_SIZE: [(u16, u16); 3] = [(320, 180), (640, 360), (1280, 720)];
/// Bytes of the VP8 payload descriptor written (X, I with a 15-bit picture id, L, T).
const VP8_DESCRIPTOR: usize = 6;
/// Bytes of a keyframe's VP8 payload header (frame tag, start code, width, height).
const VP8_KEY_HEADER: usize = 10;

/// What a packet carries so the receiver can check and time it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The run's tag: packets of other runs are not counted.
    pub tag: u32,
    /// The publisher's feed (participant) id.
    pub feed: u64,
    /// [`AUDIO_STREAM`], or 1 + the video layer.
    pub stream: u8,
    /// Frame number within the stream.
    pub frame: u32,
    /// µs since the run's epoch when the packet was written.
    pub sent_us: u64,
}

impl Stamp {
    /// Writes the stamp into the last [`TRAILER`] bytes; false if the payload is too short.
    pub fn write(&self, payload: &mut [u8]) -> bool {
        let Some(at) = payload.len().checked_sub(TRAILER) else {
            return false;
        };
        let t = &mut payload[at..];
        t[0..4].copy_from_slice(&self.tag.to_be_bytes());
        t[4..12].copy_from_slice(&self.feed.to_be_bytes());
        t[12] = self.stream;
        t[13..17].copy_from_slice(&self.frame.to_be_bytes());
        t[17..25].copy_from_slice(&self.sent_us.to_be_bytes());
        true
    }

    /// The stamp at the end of `payload`, if it is one of this run's (`tag`).
    pub fn read(payload: &[u8], tag: u32) -> Option<Self> {
        let at = payload.len().checked_sub(TRAILER)?;
        let t = &payload[at..];
        let be4 = |i: usize| [t[i], t[i + 1], t[i + 2], t[i + 3]];
        let be8 = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&t[i..i + 8]);
            b
        };
        if u32::from_be_bytes(be4(0)) != tag {
            return None;
        }
        Some(Self {
            tag,
            feed: u64::from_be_bytes(be8(4)),
            stream: t[12],
            frame: u32::from_be_bytes(be4(13)),
            sent_us: u64::from_be_bytes(be8(17)),
        })
    }
}

/// Payload sizes of one participant's media.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaSpec {
    pub audio_bytes: usize,
    pub fps: u32,
    /// Bytes of one delta frame of each layer.
    pub frame_bytes: [usize; 3],
}

impl MediaSpec {
    /// From bitrates (kbit/s of payload) and a frame rate.
    pub fn new(audio_kbps: u32, video_kbps: [u32; 3], fps: u32) -> anyhow::Result<Self> {
        anyhow::ensure!((1..=60).contains(&fps), "--fps must be 1..=60");
        anyhow::ensure!(
            (8..=510).contains(&audio_kbps),
            "--audio-kbps must be 8..=510 (Opus)"
        );
        anyhow::ensure!(
            video_kbps.iter().all(|k| (10..=20_000).contains(k)),
            "--video-kbps layers must be 10..=20000"
        );
        let per_frame = |kbps: u32, per_s: u32| (kbps as usize * 1000 / 8) / per_s as usize;
        let audio_frames = (Duration::from_secs(1).as_micros() / AUDIO_PERIOD.as_micros()) as u32;
        Ok(Self {
            audio_bytes: per_frame(audio_kbps, audio_frames).clamp(MIN_AUDIO, MAX_PAYLOAD),
            fps,
            frame_bytes: video_kbps
                .map(|k| per_frame(k, fps).max(VP8_DESCRIPTOR + VP8_KEY_HEADER + TRAILER)),
        })
    }

    pub fn frame_period(&self) -> Duration {
        Duration::from_secs(1) / self.fps
    }

    /// RTP ticks (90 kHz) per video frame.
    pub fn video_ticks(&self) -> u32 {
        90_000 / self.fps
    }

    /// Bytes of a frame of `layer` (keyframes are [`KEYFRAME_FACTOR`] times larger).
    pub fn frame_size(&self, layer: usize, keyframe: bool) -> usize {
        let b = self.frame_bytes[layer];
        if keyframe {
            b * KEYFRAME_FACTOR
        } else {
            b
        }
    }

    /// Packets a second one publisher sends: audio plus every layer's delta frames.
    pub fn packets_per_s(&self) -> f64 {
        let audio = 1.0 / AUDIO_PERIOD.as_secs_f64();
        let video: usize = (0..3)
            .map(|l| packet_count(self.frame_size(l, false)))
            .sum();
        audio + (video as u32 * self.fps) as f64
    }
}

/// Packets a frame of `bytes` takes at [`MAX_PAYLOAD`] per packet.
pub fn packet_count(bytes: usize) -> usize {
    bytes.div_ceil(MAX_PAYLOAD).max(1)
}

/// Sizes of the packets of a `bytes` frame, as even as possible (a browser's packetiser
/// balances them too), each at most [`MAX_PAYLOAD`].
pub fn split(bytes: usize) -> impl Iterator<Item = usize> {
    let n = packet_count(bytes);
    let (base, extra) = (bytes / n, bytes % n);
    (0..n).map(move |i| base + usize::from(i < extra))
}

/// Per-layer VP8 picture state: a 15-bit picture id and TL0PICIDX, one frame at a time
/// (one temporal layer, so every frame is a TL0 frame).
#[derive(Debug, Default, Clone, Copy)]
pub struct Vp8State {
    pub picture_id: u16,
    pub tl0: u8,
}

impl Vp8State {
    pub fn next_frame(&mut self) {
        self.picture_id = (self.picture_id + 1) & 0x7fff;
        self.tl0 = self.tl0.wrapping_add(1);
    }
}

/// Fills `buf` (of the packet's full size, trailer included) as packet `index` of a VP8
/// frame: an RFC 7741 descriptor (S on the first packet, picture id, TL0PICIDX, TID 0 with
/// Y) and, on the first packet, the VP8 frame tag — with the start code and dimensions on a
/// keyframe, which is what Janus and str0m check before calling it one.
pub fn vp8_packet(buf: &mut [u8], index: usize, keyframe: bool, layer: usize, s: Vp8State) {
    buf.fill(0);
    let first = index == 0;
    if buf.len() < VP8_DESCRIPTOR + VP8_KEY_HEADER {
        return;
    }
    buf[0] = 0x80 | if first { 0x10 } else { 0x00 };
    buf[1] = 0x80 | 0x40 | 0x20;
    buf[2] = 0x80 | (s.picture_id >> 8) as u8;
    buf[3] = s.picture_id as u8;
    buf[4] = s.tl0;
    buf[5] = 0x20;
    if !first {
        return;
    }
    let h = &mut buf[VP8_DESCRIPTOR..];
    // Frame tag: P (0 = key frame), version 0, show_frame 1, first partition size.
    h[0] = 0x10 | u8::from(!keyframe);
    h[1] = 0x02;
    if keyframe {
        let (w, ht) = LAYER_SIZE[layer.min(2)];
        h[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        h[6..8].copy_from_slice(&w.to_le_bytes());
        h[8..10].copy_from_slice(&ht.to_le_bytes());
    }
}

/// A fixed-period clock for one stream: when its next frame is due. A clock that falls
/// more than a second behind skips the backlog rather than bursting it (as an encoder
/// that was starved of CPU drops frames).
#[derive(Debug, Clone)]
pub struct FrameClock {
    period: Duration,
    start: Instant,
    frames: u32,
}

impl FrameClock {
    pub fn new(period: Duration, start: Instant) -> Self {
        Self {
            period,
            start,
            frames: 0,
        }
    }

    /// When the next frame is due.
    pub fn due(&self) -> Instant {
        self.start + self.period * self.frames
    }

    /// Takes the frame due at `now`, if any: its number (counting skipped ones).
    pub fn take(&mut self, now: Instant) -> Option<u32> {
        let due = self.due();
        if now < due {
            return None;
        }
        if now - due > Duration::from_secs(1) {
            let behind = ((now - self.start).as_nanos() / self.period.as_nanos()) as u32;
            self.frames = behind;
        }
        let n = self.frames;
        self.frames += 1;
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_at_the_end_and_foreign_tags_are_refused() {
        let mut p = vec![0xAAu8; 200];
        let s = Stamp {
            tag: 0xDEAD_BEEF,
            feed: 100_042,
            stream: 3,
            frame: 77,
            sent_us: 123_456_789,
        };
        assert!(s.write(&mut p));
        assert_eq!(Stamp::read(&p, 0xDEAD_BEEF), Some(s));
        assert_eq!(Stamp::read(&p, 1), None);
        assert!(
            p[..200 - TRAILER].iter().all(|b| *b == 0xAA),
            "front untouched"
        );
        // A server rewriting the VP8 descriptor at the front leaves the stamp intact.
        p[2] = 0x81;
        p[4] = 9;
        assert_eq!(Stamp::read(&p, 0xDEAD_BEEF), Some(s));
        assert!(!s.write(&mut [0u8; TRAILER - 1]));
        assert_eq!(Stamp::read(&[0u8; TRAILER - 1], 0), None);
    }

    #[test]
    fn sizes_follow_bitrates() {
        let m = MediaSpec::new(40, [150, 500, 1500], 30).unwrap();
        // 40 kbit/s in 50 frames/s: 100 bytes; 1.5 Mbit/s at 30 fps: 6,250 bytes.
        assert_eq!(m.audio_bytes, 100);
        assert_eq!(m.frame_bytes, [625, 2083, 6250]);
        assert_eq!(m.frame_size(2, true), 25_000);
        assert_eq!(m.video_ticks(), 3000);
        assert_eq!(m.frame_period(), Duration::from_nanos(33_333_333));
        // 50 audio + 30 × (1 + 2 + 6) video packets a second.
        assert_eq!(m.packets_per_s(), 320.0);
        assert!(MediaSpec::new(40, [150, 500, 1500], 0).is_err());
        assert!(MediaSpec::new(1, [150, 500, 1500], 30).is_err());
    }

    #[test]
    fn frames_split_evenly_under_the_mtu() {
        assert_eq!(split(625).collect::<Vec<_>>(), [625]);
        assert_eq!(split(1100).collect::<Vec<_>>(), [1100]);
        assert_eq!(split(1101).collect::<Vec<_>>(), [551, 550]);
        let sizes: Vec<usize> = split(6250).collect();
        assert_eq!(sizes, [1042, 1042, 1042, 1042, 1041, 1041]);
        assert_eq!(sizes.iter().sum::<usize>(), 6250);
        assert!(split(25_000).all(|s| s <= MAX_PAYLOAD));
    }

    #[test]
    fn vp8_keyframes_are_what_detectors_look_for() {
        let s = Vp8State {
            picture_id: 0x1234,
            tl0: 7,
        };
        let mut key = vec![0u8; 600];
        vp8_packet(&mut key, 0, true, 2, s);
        assert!(str0m::format::detect_vp8_keyframe(&key));
        // Janus reads the start code 3 bytes into the VP8 payload, then the dimensions.
        assert_eq!(&key[9..12], &[0x9d, 0x01, 0x2a]);
        assert_eq!(u16::from_le_bytes([key[12], key[13]]), 1280);
        assert_eq!(u16::from_le_bytes([key[14], key[15]]), 720);
        assert_eq!((key[2] & 0x7f, key[3], key[4]), (0x12, 0x34, 7));
        let mut delta = vec![0u8; 600];
        vp8_packet(&mut delta, 0, false, 2, s);
        assert!(!str0m::format::detect_vp8_keyframe(&delta));
        let mut rest = vec![0u8; 600];
        vp8_packet(&mut rest, 1, true, 2, s);
        assert!(
            !str0m::format::detect_vp8_keyframe(&rest),
            "only the first packet starts one"
        );
        assert_eq!(rest[0] & 0x10, 0);
        let mut st = Vp8State {
            picture_id: 0x7fff,
            tl0: 255,
        };
        st.next_frame();
        assert_eq!((st.picture_id, st.tl0), (0, 0));
    }

    #[test]
    fn frame_clock_paces_and_skips_a_long_backlog() {
        let t0 = Instant::now();
        let mut c = FrameClock::new(AUDIO_PERIOD, t0);
        assert_eq!(c.take(t0), Some(0));
        assert_eq!(c.take(t0), None, "not due yet");
        assert_eq!(c.due(), t0 + AUDIO_PERIOD);
        // 100 ms late: the frames catch up one per call (a short stall is made up).
        let late = t0 + Duration::from_millis(120);
        let taken: Vec<u32> = std::iter::from_fn(|| c.take(late)).collect();
        assert_eq!(taken, [1, 2, 3, 4, 5, 6]);
        // Over a second behind: skip to now.
        let stalled = t0 + Duration::from_secs(3);
        assert_eq!(c.take(stalled), Some(150));
        assert_eq!(c.take(stalled), None);
        // 50 frames a second.
        let mut c = FrameClock::new(AUDIO_PERIOD, t0);
        let second = t0 + Duration::from_secs(1) - Duration::from_nanos(1);
        assert_eq!(std::iter::from_fn(|| c.take(second)).count(), 50);
    }
}
