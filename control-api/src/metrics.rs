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

/// The outcome of a content transfer or custom-object request, from a fixed set of words.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

impl ResultLabels {
    pub fn of(result: &'static str) -> Self {
        Self { result }
    }
}

/// A custom-object request: `operation` (list, show, create, update, delete) and `result`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DataLabels {
    pub operation: &'static str,
    pub result: &'static str,
}

/// One push delivery: `provider` (apns, fcm) and `result` (delivered, unregistered,
/// retries_exhausted, failed).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PushLabels {
    pub provider: &'static str,
    pub result: &'static str,
}

/// What made a push go out: `event` (created over REST), `scheduled` (a fixed_date or
/// period_date event falling due), `chat` (a message to an offline user), `call` (an
/// incoming call for an offline user).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PushSourceLabels {
    pub source: &'static str,
}

/// Push counters. The control plane counts into them wherever a push starts (REST, the
/// scheduler, chat, calls); the REST face registers them.
#[derive(Clone, Debug, Default)]
pub struct PushCounters {
    pub sent: Family<PushLabels, Counter>,
    /// Retried provider requests (5xx, 429).
    pub retries: Counter,
    pub events: Counter,
    /// Deliveries started (one per event occurrence, chat message or call), by source.
    pub triggers: Family<PushSourceLabels, Counter>,
}

#[derive(Clone)]
pub struct ControlMetrics {
    pub http_requests: Family<HttpRequestLabels, Counter>,
    pub http_request_duration: Family<HttpRouteLabels, Histogram>,
    pub sessions_active: Gauge,
    pub users: Gauge,
    /// Uploads by result: `ok`, `too_large`, `bad_checksum`, `refused`, `failed`.
    pub content_uploads: Family<ResultLabels, Counter>,
    pub content_upload_bytes: Counter,
    /// Downloads by result: `ok`, `refused`, `not_found`, `failed`.
    pub content_downloads: Family<ResultLabels, Counter>,
    pub content_download_bytes: Counter,
    /// Uploaded blobs and their bytes, refreshed at scrape time.
    pub content_blobs: Gauge,
    pub content_stored_bytes: Gauge,
    pub data_requests: Family<DataLabels, Counter>,
    /// Custom-object records across all applications, refreshed at scrape time.
    pub data_records: Gauge,
    pub push: PushCounters,
    /// Subscribed devices across all applications, refreshed at scrape time.
    pub push_subscriptions: Gauge,
}

impl ControlMetrics {
    /// Registers under `switchboard_` in `registry`, with the control plane's push counters.
    pub fn register(registry: &mut Registry, push: PushCounters) -> Self {
        // 0.5 ms .. ~4 s: from a cached token lookup to a slow argon2 login under load.
        let durations = Family::<HttpRouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        let metrics = Self {
            http_requests: Family::default(),
            http_request_duration: durations,
            sessions_active: Gauge::default(),
            users: Gauge::default(),
            content_uploads: Family::default(),
            content_upload_bytes: Counter::default(),
            content_downloads: Family::default(),
            content_download_bytes: Counter::default(),
            content_blobs: Gauge::default(),
            content_stored_bytes: Gauge::default(),
            data_requests: Family::default(),
            data_records: Gauge::default(),
            push,
            push_subscriptions: Gauge::default(),
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
        registry.register(
            "content_uploads",
            "Blob uploads, by result",
            metrics.content_uploads.clone(),
        );
        registry.register_with_unit(
            "content_upload",
            "Bytes received by blob uploads",
            Unit::Bytes,
            metrics.content_upload_bytes.clone(),
        );
        registry.register(
            "content_downloads",
            "Blob downloads, by result",
            metrics.content_downloads.clone(),
        );
        registry.register_with_unit(
            "content_download",
            "Bytes served by blob downloads",
            Unit::Bytes,
            metrics.content_download_bytes.clone(),
        );
        registry.register(
            "content_blobs",
            "Uploaded blobs across all applications",
            metrics.content_blobs.clone(),
        );
        registry.register_with_unit(
            "content_stored",
            "Bytes of uploaded blobs across all applications",
            Unit::Bytes,
            metrics.content_stored_bytes.clone(),
        );
        registry.register(
            "data_requests",
            "Custom-object requests, by operation and result",
            metrics.data_requests.clone(),
        );
        registry.register(
            "data_records",
            "Custom-object records across all applications",
            metrics.data_records.clone(),
        );
        registry.register(
            "push_sent",
            "Push deliveries to devices, by provider and result",
            metrics.push.sent.clone(),
        );
        registry.register(
            "push_retries",
            "Provider requests retried after a 5xx or 429",
            metrics.push.retries.clone(),
        );
        registry.register(
            "push_events",
            "Push events created",
            metrics.push.events.clone(),
        );
        registry.register(
            "push_triggers",
            "Push deliveries started, by source (event, scheduled, chat, call)",
            metrics.push.triggers.clone(),
        );
        registry.register(
            "push_subscriptions",
            "Devices subscribed to pushes across all applications",
            metrics.push_subscriptions.clone(),
        );
        metrics
    }
}
