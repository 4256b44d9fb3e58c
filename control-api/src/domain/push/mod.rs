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
//! Events with `event_type` `fixed_date` (once, at `date`) and `period_date` (every `period`
//! from `date` until `end_date`) wait in the store for the scheduler
//! ([`ControlPlane::deliver_due_events`]); [`delivery`] also carries the pushes the XMPP
//! server asks for: chat messages to offline users and incoming calls.

pub mod delivery;
pub mod model;
pub mod sender;
pub mod store;

use base64::Engine;
use serde_json::{Map, Value};
use time::OffsetDateTime;

pub use delivery::{OfflineChatPush, SCHEDULER_TICK};
pub use model::{Channel, PushEvent, PushMessage, PushOutcome, Recipients, Schedule, Subscription};
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
    pub name: Option<String>,
    /// Unix seconds of the (first) delivery: `fixed_date` and `period_date` events.
    pub date: Option<i64>,
    /// Seconds between deliveries of a `period_date` event.
    pub period: Option<i64>,
    /// Unix seconds after which a `period_date` event stops.
    pub end_date: Option<i64>,
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

impl DeliveryReport {
    /// Devices the providers accepted the push for.
    pub fn delivered(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|(_, r)| *r == "delivered")
            .count()
    }
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
    ) -> Result<PushEvent, DomainError> {
        let mut errors = Vec::new();
        if !matches!(new.notification_type.as_str(), "" | "push") {
            errors.push(("notification_type".into(), "only push is supported".into()));
        }
        let now = self.now();
        let event_type = if new.event_type.is_empty() {
            "one_shot"
        } else {
            new.event_type.as_str()
        };
        let schedule = checked_schedule(event_type, &new, now, &mut errors);
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
                name: new.name.filter(|n| !n.trim().is_empty()),
                schedule,
            })
            .await?;
        self.push_counters.events.inc();
        if event.event_type == "one_shot" {
            self.count_trigger("event");
            self.deliver_event(&mut event, payload.unwrap_or_default())
                .await?;
        }
        Ok(event)
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

    /// Whether `user` gets offline-message pushes for the dialog (on unless switched off).
    pub async fn dialog_notifications(
        &self,
        app: AppId,
        user: UserId,
        dialog: &str,
    ) -> Result<bool, DomainError> {
        match self.push.dialog_muted(app, dialog, user).await? {
            Some(muted) => Ok(!muted),
            None => Err(DomainError::NotFound),
        }
    }

    /// Switches offline-message pushes for the dialog on or off for one occupant.
    pub async fn set_dialog_notifications(
        &self,
        app: AppId,
        user: UserId,
        dialog: &str,
        enabled: bool,
    ) -> Result<(), DomainError> {
        match self
            .push
            .set_dialog_muted(app, dialog, user, !enabled)
            .await?
        {
            true => Ok(()),
            false => Err(DomainError::NotFound),
        }
    }

    pub async fn count_subscriptions(&self) -> Result<i64, DomainError> {
        Ok(self.push.count_subscriptions().await?)
    }
}

/// Periods QuickBlox offers for `period_date` events: day, week, month, year.
pub const PERIODS: [i64; 4] = [86_400, 604_800, 2_592_000, 31_557_600];

/// The schedule of a new event, or the reasons it has none.
fn checked_schedule(
    event_type: &str,
    new: &NewEvent,
    now: OffsetDateTime,
    errors: &mut Vec<(String, String)>,
) -> Schedule {
    let at = |field: &str, secs: Option<i64>, errors: &mut Vec<(String, String)>| {
        let secs = secs?;
        match OffsetDateTime::from_unix_timestamp(secs) {
            Ok(t) => Some(t),
            Err(_) => {
                errors.push((field.into(), "is not a unix timestamp".into()));
                None
            }
        }
    };
    let date = at("date", new.date, errors);
    let end = at("end_date", new.end_date, errors);
    match event_type {
        "one_shot" => Schedule {
            occurrences: 1,
            ..Schedule::default()
        },
        "fixed_date" | "period_date" => {
            let periodic = event_type == "period_date";
            match date {
                None if new.date.is_none() => {
                    errors.push(("date".into(), "is required for scheduled events".into()))
                }
                // A second of slack for a client that computed "now" itself.
                Some(d) if d < now - time::Duration::seconds(1) => {
                    errors.push(("date".into(), "must not be in the past".into()))
                }
                _ => {}
            }
            if periodic && !new.period.is_some_and(|p| PERIODS.contains(&p)) {
                errors.push((
                    "period".into(),
                    "must be 86400, 604800, 2592000 or 31557600".into(),
                ));
            }
            if let (Some(d), Some(e)) = (date, end) {
                if e <= d {
                    errors.push(("end_date".into(), "must be after date".into()));
                }
            }
            Schedule {
                next_at: date,
                period: new.period.filter(|_| periodic),
                end_at: end.filter(|_| periodic),
                occurrences: 0,
            }
        }
        _ => {
            errors.push((
                "event_type".into(),
                "must be one_shot, fixed_date or period_date".into(),
            ));
            Schedule::default()
        }
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
