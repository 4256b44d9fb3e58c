//! `switchboard_sfu_*` metrics. Workers keep plain counters in their shard (`core::api::Stats`)
//! and move them here after each batch, so the per-packet path touches no atomics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::core::api::Stats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct WorkerLabel {
    pub worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ErrorLabel {
    pub code: String,
}

#[derive(Clone, Debug)]
pub struct Metrics {
    pub rooms: Family<WorkerLabel, Gauge>,
    pub participants: Family<WorkerLabel, Gauge>,
    pub tracks: Family<WorkerLabel, Gauge>,
    pub sessions: Gauge,
    pub packets_in: Counter,
    pub bytes_in: Counter,
    pub packets_out: Counter,
    pub bytes_out: Counter,
    pub rtp_forwarded: Counter,
    pub nacks: Counter,
    pub nacks_sent: Counter,
    pub retransmissions: Counter,
    pub keyframe_requests: Counter,
    pub plis_from_subscribers: Counter,
    pub layer_switches: Counter,
    pub temporal_drops: Counter,
    pub timer_wakes: Counter,
    pub bwe_reprobes: Counter,
    pub malformed: Counter,
    pub unknown_source: Counter,
    pub send_dropped: Counter,
    pub janus_errors: Family<ErrorLabel, Counter>,
    pub forward_latency: Histogram,
    pub estimate: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            rooms: Family::default(),
            participants: Family::default(),
            tracks: Family::default(),
            sessions: Gauge::default(),
            packets_in: Counter::default(),
            bytes_in: Counter::default(),
            packets_out: Counter::default(),
            bytes_out: Counter::default(),
            rtp_forwarded: Counter::default(),
            nacks: Counter::default(),
            nacks_sent: Counter::default(),
            retransmissions: Counter::default(),
            keyframe_requests: Counter::default(),
            plis_from_subscribers: Counter::default(),
            layer_switches: Counter::default(),
            temporal_drops: Counter::default(),
            timer_wakes: Counter::default(),
            bwe_reprobes: Counter::default(),
            malformed: Counter::default(),
            unknown_source: Counter::default(),
            send_dropped: Counter::default(),
            janus_errors: Family::default(),
            // 10 µs .. ~80 ms.
            forward_latency: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.000_01, 2.0, 14),
            ),
            // 50 kbit/s .. ~50 Mbit/s.
            estimate: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                50_000.0, 2.0, 11,
            )),
        }
    }
}

impl Metrics {
    /// Creates the metrics and registers them under `switchboard_sfu_`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("switchboard_sfu");
        r.register("rooms", "Rooms open, per worker", m.rooms.clone());
        r.register(
            "participants",
            "PeerConnections (publishers and subscribers), per worker",
            m.participants.clone(),
        );
        r.register("tracks", "Published tracks, per worker", m.tracks.clone());
        r.register("janus_sessions", "Janus sessions open", m.sessions.clone());
        r.register("packets_in", "UDP datagrams received", m.packets_in.clone());
        r.register_with_unit(
            "received",
            "UDP payload received",
            Unit::Bytes,
            m.bytes_in.clone(),
        );
        r.register("packets_out", "UDP datagrams sent", m.packets_out.clone());
        r.register_with_unit("sent", "UDP payload sent", Unit::Bytes, m.bytes_out.clone());
        r.register(
            "rtp_forwarded",
            "RTP packets forwarded to subscribers",
            m.rtp_forwarded.clone(),
        );
        r.register("nacks", "NACKs received from subscribers", m.nacks.clone());
        r.register(
            "nacks_sent",
            "NACKs sent to publishers",
            m.nacks_sent.clone(),
        );
        r.register(
            "retransmissions",
            "Packets resent to subscribers (RTX) after their NACKs",
            m.retransmissions.clone(),
        );
        r.register(
            "keyframe_requests",
            "PLIs sent to publishers (after rate limiting)",
            m.keyframe_requests.clone(),
        );
        r.register(
            "subscriber_keyframe_requests",
            "PLIs/FIRs received from subscribers",
            m.plis_from_subscribers.clone(),
        );
        r.register(
            "layer_switches",
            "Simulcast layer switches done for subscribers",
            m.layer_switches.clone(),
        );
        r.register(
            "temporal_drops",
            "VP8 packets of temporal layers above a subscriber's requested one, not sent",
            m.temporal_drops.clone(),
        );
        r.register(
            "peer_timer_wakes",
            "Peer connections woken by their own timer (str0m's pacing, RTCP, ICE), beside the packets they send",
            m.timer_wakes.clone(),
        );
        r.register(
            "bwe_reprobes",
            "Bandwidth probing re-runs for subscribers held below their wanted layers",
            m.bwe_reprobes.clone(),
        );
        r.register(
            "malformed_datagrams",
            "Datagrams a peer connection refused",
            m.malformed.clone(),
        );
        r.register(
            "unknown_source_datagrams",
            "Datagrams from no known peer (dropped)",
            m.unknown_source.clone(),
        );
        r.register(
            "send_dropped_datagrams",
            "Datagrams dropped at send (full socket buffer or a send error)",
            m.send_dropped.clone(),
        );
        r.register(
            "janus_errors",
            "Janus requests answered with an error, by code",
            m.janus_errors.clone(),
        );
        r.register_with_unit(
            "forward_latency",
            "Receive-to-send time of a worker batch that forwarded packets",
            Unit::Seconds,
            m.forward_latency.clone(),
        );
        r.register(
            "subscriber_estimate_bits_per_second",
            "Bandwidth estimates of connected subscribers (TWCC), sampled each second",
            m.estimate.clone(),
        );
        m
    }

    /// Adds a worker's counters.
    pub fn absorb(&self, s: &Stats) {
        self.packets_in.inc_by(s.packets_in);
        self.bytes_in.inc_by(s.bytes_in);
        self.packets_out.inc_by(s.packets_out);
        self.bytes_out.inc_by(s.bytes_out);
        self.rtp_forwarded.inc_by(s.rtp_forwarded);
        self.nacks.inc_by(s.nacks);
        self.nacks_sent.inc_by(s.nacks_sent);
        self.retransmissions.inc_by(s.retransmissions);
        self.keyframe_requests.inc_by(s.keyframe_requests);
        self.plis_from_subscribers.inc_by(s.plis_from_subscribers);
        self.layer_switches.inc_by(s.layer_switches);
        self.temporal_drops.inc_by(s.temporal_drops);
        self.timer_wakes.inc_by(s.timer_wakes);
        self.bwe_reprobes.inc_by(s.bwe_reprobes);
        self.malformed.inc_by(s.malformed);
        self.unknown_source.inc_by(s.unknown_source);
    }
}
