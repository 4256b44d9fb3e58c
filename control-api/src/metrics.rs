//! Prometheus metrics of the control plane, registered into the process-wide registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// Labels of one HTTP request; `route` is the route template, never a raw path.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpRequestLabels {
    pub method: String,
    pub route: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpRouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone)]
pub struct ControlMetrics {
    pub http_requests: Family<HttpRequestLabels, Counter>,
    pub http_request_duration: Family<HttpRouteLabels, Histogram>,
    pub sessions_active: Gauge,
    pub users: Gauge,
}

impl ControlMetrics {
    /// Registers under `switchboard_` in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        // 0.5 ms .. ~4 s: from a cached token lookup to a slow argon2 login under load.
        let durations = Family::<HttpRouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        let metrics = Self {
            http_requests: Family::default(),
            http_request_duration: durations,
            sessions_active: Gauge::default(),
            users: Gauge::default(),
        };
        let registry = registry.sub_registry_with_prefix("switchboard");
        registry.register(
            "http_requests",
            "HTTP requests answered by the REST API, by route template and status",
            metrics.http_requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request",
            Unit::Seconds,
            metrics.http_request_duration.clone(),
        );
        registry.register(
            "sessions_active",
            "Sessions (application and user) that have not expired",
            metrics.sessions_active.clone(),
        );
        registry.register(
            "users",
            "Users across all applications",
            metrics.users.clone(),
        );
        metrics
    }
}
