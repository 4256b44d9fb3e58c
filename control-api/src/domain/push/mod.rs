//! Push notifications: device subscriptions and push events.
//!
//! A user subscribes their device (`apns`, `apns_voip` or `gcm` channel, a provider token,
//! `development` or `production`). A push event names recipients by user id and by tags;
//! creating it resolves them to their subscriptions in the event's environment (and channel,
//! when `push_type` is given), builds one provider-neutral [`PushMessage`] per device and
//! hands it to the [`PushSender`] with retries ([`sender::send_with_retries`]). A token the
//! provider reports dead removes its subscription. Delivery happens while the event is
//! created (one-shot events only); the event keeps the counts.
//!
//! Out of scope for now: scheduled events (`fixed_date`, `period_date`), and the hook that
//! turns a chat message to an offline user into a push (see CONTENT_NOTES.md).

pub mod model;
pub mod sender;
pub mod store;

use base64::Engine;
use serde_json::{Map, Value};

pub use model::{Channel, PushEvent, PushMessage, PushOutcome, Recipients, Subscription};
pub use sender::{NoPushSender, PushSender};
pub use store::PushStore;

use super::error::DomainError;
use super::model::{AppId, UserId};
use super::ControlPlane;

/// Devices one event may reach (arbitrary: a large group's members, each with a few
/// devices; broadcasts to a whole application are a provider topic's job).
pub const MAX_DEVICES_PER_EVENT: usize = 10_000;

/// A subscription request (`POST /subscriptions.json`).
#[derive(Clone, Debug, Default)]
pub struct NewSubscription {
    pub channel: String,
    pub platform: String,
    pub udid: String,
    pub token: String,
    pub environment: String,
    pub bundle_id: Option<String>,
}

/// An event request (`POST /events.json`).
#[derive(Clone, Debug, Default)]
pub struct NewEvent {
    pub notification_type: String,
    pub event_type: String,
    pub environment: String,
    pub push_type: Option<String>,
    pub message: String,
    pub recipients: Recipients,
}

/// What delivering an event did, per device: for the metrics.
#[derive(Clone, Debug, Default)]
pub struct DeliveryReport {
    /// (provider, result) per device: `delivered`, `unregistered`, `retries_exhausted`,
    /// `failed`.
    pub outcomes: Vec<(&'static str, &'static str)>,
    pub retries: u32,
}

impl ControlPlane {
    /// Installs the provider clients; without, pushes fail (and are counted).
    pub fn with_push_sender(mut self, sender: std::sync::Arc<dyn PushSender>) -> Self {
        self.push_sender = sender;
        self
    }

    pub async fn create_subscription(
        &self,
        app: AppId,
        user: UserId,
        new: NewSubscription,
    ) -> Result<Subscription, DomainError> {
        let channel = Channel::parse(new.channel.trim()).ok_or_else(|| {
            DomainError::invalid("notification_channel", "must be apns, apns_voip or gcm")
        })?;
        let mut errors = Vec::new();
        for (field, value) in [
            ("device[platform]", &new.platform),
            ("device[udid]", &new.udid),
            ("push_token[client_identification_sequence]", &new.token),
        ] {
            if value.trim().is_empty() {
                errors.push((field.to_string(), "can't be blank".to_string()));
            }
        }
        let environment = checked_environment(&new.environment)
            .map_err(|e| errors.push(("push_token[environment]".into(), e)))
            .ok();
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        let subscription = Subscription {
            id: 0,
            app_id: app,
            user_id: user,
            channel,
            platform: new.platform.trim().to_string(),
            udid: new.udid.trim().to_string(),
            token: new.token.trim().to_string(),
            environment: environment.unwrap_or_default(),
            bundle_id: new.bundle_id.filter(|b| !b.trim().is_empty()),
            created_at: self.now(),
        };
        Ok(self.push.upsert_subscription(&subscription).await?)
    }

    pub async fn list_subscriptions(
        &self,
        app: AppId,
        user: UserId,
    ) -> Result<Vec<Subscription>, DomainError> {
        Ok(self.push.subscriptions_of(app, &[user]).await?)
    }

    pub async fn delete_subscription(
        &self,
        app: AppId,
        user: UserId,
        id: i64,
    ) -> Result<(), DomainError> {
        match self.push.delete_subscription(app, user, id).await? {
            true => Ok(()),
            false => Err(DomainError::NotFound),
        }
    }

    /// Creates a one-shot event and delivers it to every subscribed device of its
    /// recipients.
    pub async fn create_event(
        &self,
        app: AppId,
        user: UserId,
        new: NewEvent,
    ) -> Result<(PushEvent, DeliveryReport), DomainError> {
        let mut errors = Vec::new();
        if !matches!(new.notification_type.as_str(), "" | "push") {
            errors.push(("notification_type".into(), "only push is supported".into()));
        }
        let event_type = if new.event_type.is_empty() {
            "one_shot"
        } else {
            new.event_type.as_str()
        };
        if event_type != "one_shot" {
            errors.push((
                "event_type".into(),
                "only one_shot events are supported".into(),
            ));
        }
        let environment = checked_environment(&new.environment)
            .map_err(|e| errors.push(("environment".into(), e)))
            .ok();
        let push_type = match new
            .push_type
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            None => None,
            Some(p) => match Channel::parse(p) {
                Some(channel) => Some(channel),
                None => {
                    errors.push(("push_type".into(), "must be apns, apns_voip or gcm".into()));
                    None
                }
            },
        };
        let payload = decode_message(&new.message)
            .map_err(|e| errors.push(("message".into(), e)))
            .ok();
        let r = &new.recipients;
        if r.ids.is_empty() && r.tags_any.is_empty() && r.tags_all.is_empty() {
            errors.push(("user".into(), "needs ids or tags".into()));
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        let now = self.now();
        let mut event = self
            .push
            .insert_event(&PushEvent {
                id: 0,
                app_id: app,
                user_id: user,
                event_type: event_type.into(),
                environment: environment.unwrap_or_default(),
                push_type,
                message: new.message.clone(),
                recipients: new.recipients.clone(),
                sent: 0,
                failed: 0,
                created_at: now,
                updated_at: now,
            })
            .await?;
        let report = self
            .deliver(&mut event, payload.unwrap_or_default())
            .await?;
        Ok((event, report))
    }

    pub async fn push_event(
        &self,
        app: AppId,
        user: UserId,
        id: i64,
    ) -> Result<PushEvent, DomainError> {
        self.push
            .event(app, id)
            .await?
            .filter(|e| e.user_id == user)
            .ok_or(DomainError::NotFound)
    }

    pub async fn list_events(
        &self,
        app: AppId,
        user: UserId,
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<PushEvent>, i64), DomainError> {
        let per_page = per_page.clamp(1, 100);
        let offset = (page.max(1) - 1).saturating_mul(per_page);
        Ok(self.push.list_events(app, user, per_page, offset).await?)
    }

    pub async fn delete_event(&self, app: AppId, user: UserId, id: i64) -> Result<(), DomainError> {
        match self.push.delete_event(app, user, id).await? {
            true => Ok(()),
            false => Err(DomainError::NotFound),
        }
    }

    pub async fn count_subscriptions(&self) -> Result<i64, DomainError> {
        Ok(self.push.count_subscriptions().await?)
    }

    async fn deliver(
        &self,
        event: &mut PushEvent,
        payload: (String, Map<String, Value>),
    ) -> Result<DeliveryReport, DomainError> {
        let app = event.app_id;
        let r = &event.recipients;
        let mut users: Vec<UserId> = self.chat.existing_users(app, &r.ids).await?;
        if !r.tags_any.is_empty() || !r.tags_all.is_empty() {
            users.extend(
                self.push
                    .users_by_tags(app, &r.tags_any, &r.tags_all, &r.tags_exclude)
                    .await?,
            );
        }
        users.sort();
        users.dedup();
        let devices: Vec<Subscription> = self
            .push
            .subscriptions_of(app, &users)
            .await?
            .into_iter()
            .filter(|s| s.environment == event.environment)
            .filter(|s| event.push_type.is_none_or(|p| p == s.channel))
            .take(MAX_DEVICES_PER_EVENT)
            .collect();
        let (alert, data) = payload;
        let mut report = DeliveryReport::default();
        for device in devices {
            let message = PushMessage {
                channel: device.channel,
                token: device.token.clone(),
                environment: device.environment.clone(),
                bundle_id: device.bundle_id.clone(),
                alert: alert.clone(),
                data: data.clone(),
            };
            let (outcome, attempts) =
                sender::send_with_retries(self.push_sender.as_ref(), &message).await;
            report.retries += attempts - 1;
            let result = match outcome {
                PushOutcome::Delivered => "delivered",
                PushOutcome::Unregistered => {
                    self.push.delete_subscription_by_id(app, device.id).await?;
                    "unregistered"
                }
                PushOutcome::Retry(_) => "retries_exhausted",
                PushOutcome::Failed(why) => {
                    tracing::debug!(provider = device.channel.provider(), %why, "push refused");
                    "failed"
                }
            };
            if result == "delivered" {
                event.sent += 1;
            } else {
                event.failed += 1;
            }
            report.outcomes.push((device.channel.provider(), result));
        }
        event.updated_at = self.now();
        self.push.update_event_counts(event).await?;
        Ok(report)
    }
}

fn checked_environment(raw: &str) -> Result<String, String> {
    match raw.trim() {
        "development" | "production" => Ok(raw.trim().to_string()),
        _ => Err("must be development or production".into()),
    }
}

/// The event's `message`: base64 of the alert text, or of a JSON object whose `message`
/// is the alert and whose other keys are payload data.
pub fn decode_message(raw: &str) -> Result<(String, Map<String, Value>), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .map_err(|_| "must be base64".to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| "must be base64 of UTF-8 text".to_string())?;
    if let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(&text) {
        let alert = match object.remove("message") {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        return Ok((alert, object));
    }
    Ok((text, Map::new()))
}
