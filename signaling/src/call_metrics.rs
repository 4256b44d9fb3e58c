//! `switchboard_calls_*`: mesh call signaling (QuickBlox WebRTC over XMPP), apart from
//! the chat metrics in [`crate::metrics`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalLabel {
    pub signal_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone)]
pub struct CallMetrics {
    pub started: Counter,
    pub answered: Counter,
    pub rejected: Counter,
    pub missed: Counter,
    pub ended: Counter,
    /// Talk time of answered calls, first accept to last hang-up.
    pub duration: Histogram,
    pub active: Gauge,
    /// Routed signals by `signalType`.
    pub signals: Family<SignalLabel, Counter>,
    /// Signals refused with an error stanza, by reason.
    pub refused: Family<ReasonLabel, Counter>,
    /// Incoming calls for offline opponents handed to the VoIP pusher.
    pub voip_push_intents: Counter,
}

impl Default for CallMetrics {
    fn default() -> Self {
        // Seconds: from a short check-in to a two-hour meeting.
        let buckets = [
            5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
        ];
        Self {
            started: Counter::default(),
            answered: Counter::default(),
            rejected: Counter::default(),
            missed: Counter::default(),
            ended: Counter::default(),
            duration: Histogram::new(buckets),
            active: Gauge::default(),
            signals: Family::default(),
            refused: Family::default(),
            voip_push_intents: Counter::default(),
        }
    }
}

impl CallMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let registry = registry.sub_registry_with_prefix("switchboard_calls");
        registry.register(
            "started",
            "Calls started (first `call` signal of a session)",
            metrics.started.clone(),
        );
        registry.register(
            "answered",
            "Calls answered (first `accept`)",
            metrics.answered.clone(),
        );
        registry.register(
            "rejected",
            "Calls every opponent rejected",
            metrics.rejected.clone(),
        );
        registry.register(
            "missed",
            "Calls nobody answered (cancelled or timed out)",
            metrics.missed.clone(),
        );
        registry.register("ended", "Answered calls that ended", metrics.ended.clone());
        registry.register_with_unit(
            "duration",
            "Talk time of answered calls",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        registry.register(
            "active",
            "Calls in progress (ringing or answered)",
            metrics.active.clone(),
        );
        registry.register(
            "signals",
            "Call signals routed, by signalType",
            metrics.signals.clone(),
        );
        registry.register(
            "refused_signals",
            "Call signals refused, by reason",
            metrics.refused.clone(),
        );
        registry.register(
            "voip_push_intents",
            "Incoming calls for offline opponents handed to the VoIP pusher",
            metrics.voip_push_intents.clone(),
        );
        metrics
    }

    pub fn signal(&self, signal_type: &str) {
        self.signals
            .get_or_create(&SignalLabel {
                signal_type: signal_type.into(),
            })
            .inc();
    }

    pub fn refuse(&self, reason: &str) {
        self.refused
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }
}
