//! One participant's PeerConnection: a str0m `Rtc` in RTP mode plus what the room keeps about
//! it (a publisher's incoming tracks and layers, a subscriber's outgoing tracks and their
//! forwarding state).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::format::Codec;
use str0m::media::{MediaKind as StrKind, Mid, Pt, Rid};
use str0m::{Candidate, IceCreds, Rtc};

use super::api::{FeedId, HandleId, MediaKind, Quality, StreamInfo};
use super::forward::{LayerSwitch, RateMeter, Rewriter, MAX_LAYERS};
use super::keyframe::KeyframeLimiter;
use super::speaker::SpeakerDetector;
use super::vp8::Vp8Rewrite;

/// Where a subscriber's bandwidth estimate starts before TWCC feedback refines it: enough for
/// the medium layer of a few video tracks, so a fresh subscriber sees video at once.
pub const INITIAL_ESTIMATE_BPS: u64 = 2_000_000;
/// Most an audio track is charged against a subscriber's estimate (Opus peaks ~64 kbit/s;
/// a burst above that is not worth taking from video).
pub const AUDIO_RESERVE_BPS: u64 = 64_000;
/// How often a subscriber's layer allocation is recomputed even without a new estimate (layers
/// come and go at the publisher).
pub const REALLOCATE_EVERY: Duration = Duration::from_secs(1);
/// How often str0m reports per-stream counters, from which NACKs and retransmissions are
/// counted (cumulative, so a coarse interval loses nothing).
pub const STATS_INTERVAL: Duration = Duration::from_secs(2);

/// Builds the server side of one PeerConnection: ICE-lite, RTP mode, one host candidate.
/// `bwe` runs TWCC bandwidth estimation and str0m's pacer (subscriber connections).
pub fn new_rtc(now: Instant, creds: IceCreds, candidate: SocketAddr, bwe: bool) -> Rtc {
    let mut config = Rtc::builder()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .set_local_ice_credentials(creds)
        .set_stats_interval(Some(STATS_INTERVAL));
    if bwe {
        config = config.enable_bwe(Some(Bitrate::from(INITIAL_ESTIMATE_BPS)));
    }
    let mut rtc = config.build(now);
    match Candidate::host(candidate, "udp") {
        Ok(c) => {
            rtc.add_local_candidate(c);
        }
        // Configuration is validated at startup; an invalid candidate IP cannot reach here.
        Err(e) => tracing::error!(error = %e, "invalid local candidate {candidate}"),
    }
    rtc
}

pub fn kind_of(k: StrKind) -> MediaKind {
    if k.is_audio() {
        MediaKind::Audio
    } else {
        MediaKind::Video
    }
}

pub fn str_kind(k: MediaKind) -> StrKind {
    match k {
        MediaKind::Audio => StrKind::Audio,
        MediaKind::Video => StrKind::Video,
    }
}

/// Orders simulcast rids low to high. Known conventions first (janus.js `h m l`, LiveKit
/// `q h f`, mediasoup `r0 r1 r2`, numeric), then the order the SDP listed them.
pub fn layer_order(rids: &[Rid]) -> Vec<Rid> {
    const CONVENTIONS: &[&[&str]] = &[
        &["l", "m", "h"],
        &["q", "h", "f"],
        &["r0", "r1", "r2"],
        &["0", "1", "2"],
        &["low", "mid", "high"],
    ];
    for conv in CONVENTIONS {
        if rids.iter().all(|r| conv.contains(&&**r)) {
            let mut out: Vec<Rid> = rids.to_vec();
            out.sort_by_key(|r| conv.iter().position(|c| *c == &**r));
            return out;
        }
    }
    rids.to_vec()
}

/// One simulcast layer (or the only encoding) of a publisher track.
#[derive(Debug, Default)]
pub struct Layer {
    pub rid: Option<Rid>,
    pub meter: RateMeter,
    /// NACKs we sent for this layer so far (str0m's cumulative counter).
    pub nacks_sent: u64,
}

/// A track a publisher sends us.
#[derive(Debug)]
pub struct InTrack {
    pub mid: Mid,
    pub kind: MediaKind,
    /// Low to high; one entry without rid when not simulcast.
    pub layers: Vec<Layer>,
    pub codec: Option<Codec>,
    pub receiving: bool,
    pub keyframes: KeyframeLimiter,
    /// Subscribers of this track: (peer slot, index into its `tracks`).
    pub subscribers: Vec<(usize, usize)>,
}

impl InTrack {
    pub fn new(mid: Mid, kind: MediaKind, rids: &[Rid]) -> Self {
        let layers = if rids.is_empty() {
            vec![Layer::default()]
        } else {
            layer_order(rids)
                .into_iter()
                .take(MAX_LAYERS)
                .map(|rid| Layer {
                    rid: Some(rid),
                    ..Layer::default()
                })
                .collect()
        };
        Self {
            mid,
            kind,
            layers,
            codec: None,
            receiving: false,
            keyframes: KeyframeLimiter::default(),
            subscribers: Vec::new(),
        }
    }

    pub fn layer_of(&self, rid: Option<Rid>) -> Option<u8> {
        self.layers
            .iter()
            .position(|l| l.rid == rid)
            .map(|i| i as u8)
    }

    pub fn is_simulcast(&self) -> bool {
        self.layers.len() > 1
    }

    pub fn info(&self) -> StreamInfo {
        StreamInfo {
            kind: self.kind,
            mid: self.mid.to_string(),
            codec: self.codec.map(|c| c.to_string().to_lowercase()),
            simulcast: self.is_simulcast(),
        }
    }
}

#[derive(Debug)]
pub struct Publisher {
    pub feed: FeedId,
    pub display: Option<String>,
    pub tracks: Vec<InTrack>,
    /// An offer was accepted: other participants have been told.
    pub published: bool,
    pub speaker: SpeakerDetector,
}

/// A track a subscriber receives: one publisher track, rewritten onto one local mid.
#[derive(Debug)]
pub struct OutTrack {
    /// Publisher peer slot and the track's mid there.
    pub source: usize,
    pub source_mid: Mid,
    pub kind: MediaKind,
    pub local_mid: Mid,
    /// Publisher payload type to ours, learned on first use.
    pub pt_map: Vec<(Pt, Option<Pt>)>,
    pub layer: LayerSwitch,
    pub rewriter: Rewriter,
    pub vp8: Vp8Rewrite,
    pub enabled: bool,
    pub sending: bool,
    /// Packets written to the stream, and str0m's cumulative (packets sent including
    /// retransmissions, NACKs received) at the last stats event: the difference counts
    /// retransmissions.
    pub written: u64,
    pub egress_seen: (u64, u64, u64),
}

#[derive(Debug)]
pub struct Subscriber {
    pub feed: FeedId,
    pub tracks: Vec<OutTrack>,
    pub pending: Option<str0m::change::SdpPendingOffer>,
    pub started: bool,
    pub paused: bool,
    pub quality: Quality,
    pub estimate_bps: u64,
    pub next_allocation: Option<Instant>,
    pub reprobe: super::forward::Reprobe,
}

#[derive(Debug)]
pub enum PeerKind {
    Publisher(Publisher),
    Subscriber(Subscriber),
}

/// A handle in a room and its PeerConnection, if one exists yet.
#[derive(Debug)]
pub struct Peer {
    pub handle: HandleId,
    /// Bumped each time this slot gets a new `Rtc`; part of the ICE ufrag, so a datagram for
    /// an old connection cannot reach a new one in the same slot.
    pub generation: u32,
    pub rtc: Option<Rtc>,
    pub ufrag: Option<String>,
    pub connected: bool,
    pub deadline: Option<Instant>,
    pub kind: PeerKind,
}

impl Peer {
    pub fn publisher(&self) -> Option<&Publisher> {
        match &self.kind {
            PeerKind::Publisher(p) => Some(p),
            PeerKind::Subscriber(_) => None,
        }
    }

    pub fn publisher_mut(&mut self) -> Option<&mut Publisher> {
        match &mut self.kind {
            PeerKind::Publisher(p) => Some(p),
            PeerKind::Subscriber(_) => None,
        }
    }

    pub fn subscriber_mut(&mut self) -> Option<&mut Subscriber> {
        match &mut self.kind {
            PeerKind::Subscriber(s) => Some(s),
            PeerKind::Publisher(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rids_order_low_to_high() {
        let r = |v: &[&str]| -> Vec<String> {
            let rids: Vec<Rid> = v.iter().map(|s| Rid::from(*s)).collect();
            layer_order(&rids).iter().map(|r| r.to_string()).collect()
        };
        assert_eq!(r(&["h", "m", "l"]), ["l", "m", "h"]);
        assert_eq!(r(&["f", "h", "q"]), ["q", "h", "f"]);
        assert_eq!(r(&["h", "l"]), ["l", "h"]);
        assert_eq!(r(&["x", "y"]), ["x", "y"]);
    }
}
