//! `switchboard_xmpp_*` metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabel {
    pub transport: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabel {
    pub condition: String,
}

impl From<&str> for KindLabel {
    fn from(kind: &str) -> Self {
        Self {
            kind: kind.to_string(),
        }
    }
}

impl From<&str> for ConditionLabel {
    fn from(condition: &str) -> Self {
        Self {
            condition: condition.to_string(),
        }
    }
}

#[derive(Clone)]
pub struct XmppMetrics {
    pub connections: Family<TransportLabel, Gauge>,
    pub authentications: Family<ResultLabel, Counter>,
    /// Inbound stanzas by element name (message, presence, iq).
    pub stanzas: Family<KindLabel, Counter>,
    /// Messages routed, by outcome (delivered to a resource, or nobody online).
    pub routed_messages: Family<ResultLabel, Counter>,
    pub stream_errors: Family<ConditionLabel, Counter>,
    pub offline_queued: Counter,
    /// From reading a message to handing it to every recipient connection (history
    /// write included): the server's share of delivery latency.
    pub routing_duration: Histogram,
    /// The per-stanza counters, looked up once: no label built or family locked per stanza.
    hot: HotCounters,
}

#[derive(Clone)]
struct HotCounters {
    message: Counter,
    presence: Counter,
    iq: Counter,
    /// Any other top-level name (refused): one label, so a client cannot grow the set.
    other: Counter,
    delivered: Counter,
    offline: Counter,
}

impl Default for XmppMetrics {
    fn default() -> Self {
        let stanzas: Family<KindLabel, Counter> = Family::default();
        let routed_messages: Family<ResultLabel, Counter> = Family::default();
        let kind = |k: &str| stanzas.get_or_create(&k.into()).clone();
        let outcome = |r: &str| {
            routed_messages
                .get_or_create(&ResultLabel { result: r.into() })
                .clone()
        };
        let hot = HotCounters {
            message: kind("message"),
            presence: kind("presence"),
            iq: kind("iq"),
            other: kind("other"),
            delivered: outcome("delivered"),
            offline: outcome("offline"),
        };
        Self {
            connections: Family::default(),
            authentications: Family::default(),
            stanzas,
            routed_messages,
            stream_errors: Family::default(),
            offline_queued: Counter::default(),
            // 50 µs .. ~0.8 s: an in-memory route up to a slow history write.
            routing_duration: Histogram::new(exponential_buckets(0.000_05, 2.0, 15)),
            hot,
        }
    }
}

impl XmppMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let registry = registry.sub_registry_with_prefix("switchboard_xmpp");
        registry.register(
            "connections",
            "Open client connections",
            metrics.connections.clone(),
        );
        registry.register(
            "authentications",
            "SASL attempts by result",
            metrics.authentications.clone(),
        );
        registry.register(
            "stanzas",
            "Inbound stanzas by kind",
            metrics.stanzas.clone(),
        );
        registry.register(
            "routed_messages",
            "Messages routed, by outcome",
            metrics.routed_messages.clone(),
        );
        registry.register(
            "stream_errors",
            "Streams closed with an error, by condition",
            metrics.stream_errors.clone(),
        );
        registry.register(
            "offline_queued",
            "Messages stored for offline users",
            metrics.offline_queued.clone(),
        );
        registry.register_with_unit(
            "routing_duration",
            "Time from reading a message to queueing it for its recipients",
            Unit::Seconds,
            metrics.routing_duration.clone(),
        );
        metrics
    }

    pub fn auth(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.authentications
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }

    /// A message routed: to at least one connection, or to nobody online.
    pub fn routed(&self, delivered: bool) {
        if delivered {
            self.hot.delivered.inc();
        } else {
            self.hot.offline.inc();
        }
    }

    /// An inbound stanza by its element name.
    pub fn stanza(&self, name: &str) {
        match name {
            "message" => &self.hot.message,
            "presence" => &self.hot.presence,
            "iq" => &self.hot.iq,
            _ => &self.hot.other,
        }
        .inc();
    }

    pub fn connection(&self, transport: &str) -> Gauge {
        self.connections
            .get_or_create(&TransportLabel {
                transport: transport.into(),
            })
            .clone()
    }
}
