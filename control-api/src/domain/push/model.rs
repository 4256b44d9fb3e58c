//! Push subscriptions, events and the messages handed to a provider.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::domain::model::{AppId, UserId};

/// `notification_channel`: which provider delivers to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Apns,
    ApnsVoip,
    Gcm,
}

impl Channel {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "apns" => Channel::Apns,
            "apns_voip" => Channel::ApnsVoip,
            "gcm" => Channel::Gcm,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Channel::Apns => "apns",
            Channel::ApnsVoip => "apns_voip",
            Channel::Gcm => "gcm",
        }
    }

    /// The provider label of metrics: `apns` or `fcm`.
    pub fn provider(self) -> &'static str {
        match self {
            Channel::Apns | Channel::ApnsVoip => "apns",
            Channel::Gcm => "fcm",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub id: i64,
    pub app_id: AppId,
    pub user_id: UserId,
    pub channel: Channel,
    pub platform: String,
    pub udid: String,
    pub token: String,
    /// `development` or `production`.
    pub environment: String,
    pub bundle_id: Option<String>,
    pub created_at: OffsetDateTime,
}

/// Who an event is for: user ids, and users by tags.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipients {
    pub ids: Vec<UserId>,
    pub tags_any: Vec<String>,
    pub tags_all: Vec<String>,
    pub tags_exclude: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushEvent {
    pub id: i64,
    pub app_id: AppId,
    pub user_id: UserId,
    pub event_type: String,
    pub environment: String,
    /// `None`: universal (every channel).
    pub push_type: Option<Channel>,
    /// As sent: base64 of the text or of a JSON object.
    pub message: String,
    pub recipients: Recipients,
    /// Deliveries accepted and refused by the providers.
    pub sent: i64,
    pub failed: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub name: Option<String>,
    pub schedule: Schedule,
}

/// When an event is delivered: at once (`one_shot`), once at a date (`fixed_date`) or every
/// `period` from a date until an optional end (`period_date`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    /// The next delivery; `None` once nothing is pending.
    pub next_at: Option<OffsetDateTime>,
    /// Seconds between deliveries (`period_date` only).
    pub period: Option<i64>,
    /// No delivery after this instant (`period_date` only).
    pub end_at: Option<OffsetDateTime>,
    /// Deliveries made so far (each reaches every recipient device once).
    pub occurrences: i64,
}

impl Schedule {
    /// Still has a delivery to make.
    pub fn is_active(&self) -> bool {
        self.next_at.is_some()
    }
}

/// One notification to one device, provider-neutral.
#[derive(Clone, Debug, PartialEq)]
pub struct PushMessage {
    pub channel: Channel,
    pub token: String,
    pub environment: String,
    pub bundle_id: Option<String>,
    /// The alert text (`message` of the payload).
    pub alert: String,
    /// Other payload keys (`ios_badge`, `ios_sound`, custom keys...).
    pub data: Map<String, Value>,
}

/// What a provider answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    Delivered,
    /// The token is dead (APNs 410, FCM `UNREGISTERED`): drop the subscription.
    Unregistered,
    /// Worth retrying (5xx, 429), after the provider's `Retry-After` if it gave one.
    Retry(Option<std::time::Duration>),
    /// Refused for good (bad request, bad credentials, no provider configured).
    Failed(String),
}
