//! `switchboard_turn_*` metrics. Labels come from bounded sets (transport, direction,
//! reason); never a username, user id or address.
//!
//! Relayed packet and byte counts are kept in plain per-shard integers on the hot path
//! and added here once per batch ([`crate::core::server::RelayStats`]), so shards do not
//! contend on one atomic per packet.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabels {
    pub transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    /// `to_peer` (client → relay → peer) or `to_client` (peer → relay → client).
    pub direction: &'static str,
}

/// Cheap to clone: every field is an `Arc` inside.
#[derive(Clone, Debug, Default)]
pub struct TurnMetrics {
    pub allocations_active: Gauge,
    pub allocations_created: Family<TransportLabels, Counter>,
    pub allocations_failed: Family<ReasonLabels, Counter>,
    pub relayed_packets: Family<DirectionLabels, Counter>,
    pub relayed_bytes: Family<DirectionLabels, Counter>,
    pub dropped_packets: Family<ReasonLabels, Counter>,
    pub permissions: Gauge,
    pub channels: Gauge,
    pub auth_failures: Family<ReasonLabels, Counter>,
    pub quota_rejections: Counter,
    pub request_errors: Family<ReasonLabels, Counter>,
    pub coalesce_waits: Counter,
}

impl TurnMetrics {
    /// Creates the metrics and registers them (names get the `switchboard_turn_` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("switchboard_turn");
        r.register(
            "allocations_active",
            "Allocations currently held",
            m.allocations_active.clone(),
        );
        r.register(
            "allocations_created",
            "Allocations created, by client transport",
            m.allocations_created.clone(),
        );
        r.register(
            "allocations_failed",
            "Allocate requests refused, by reason",
            m.allocations_failed.clone(),
        );
        r.register(
            "relayed_packets",
            "Packets relayed, by direction",
            m.relayed_packets.clone(),
        );
        r.register_with_unit(
            "relayed",
            "Payload bytes relayed, by direction",
            prometheus_client::registry::Unit::Bytes,
            m.relayed_bytes.clone(),
        );
        r.register(
            "dropped_packets",
            "Packets dropped instead of relayed or answered, by reason",
            m.dropped_packets.clone(),
        );
        r.register(
            "permissions",
            "Permissions currently installed",
            m.permissions.clone(),
        );
        r.register(
            "channels",
            "Channel bindings currently installed",
            m.channels.clone(),
        );
        r.register(
            "auth_failures",
            "Requests refused by authentication, by reason",
            m.auth_failures.clone(),
        );
        r.register(
            "quota_rejections",
            "Allocate requests refused by a user or total quota",
            m.quota_rejections.clone(),
        );
        r.register(
            "request_errors",
            "Error responses sent, by reason",
            m.request_errors.clone(),
        );
        r.register(
            "coalesce_waits",
            "Times a shard waited out its coalescing window before reading its sockets again",
            m.coalesce_waits.clone(),
        );
        m
    }

    pub fn dropped(&self, reason: &'static str) {
        self.dropped_packets
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }
}
