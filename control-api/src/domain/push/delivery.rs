//! Delivery: from recipients to devices to provider outcomes, for every source of pushes
//! (events created over REST, scheduled events falling due, chat messages to offline users,
//! incoming calls for offline users). Outcomes are counted here, once, whatever the source.

use std::future::Future;
use std::time::Duration;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::model::{Channel, PushEvent, PushMessage, PushOutcome, Subscription};
use super::{decode_message, sender, DeliveryReport, MAX_DEVICES_PER_EVENT};
use crate::domain::calls::VoipIntent;
use crate::domain::error::DomainError;
use crate::domain::model::{AppId, UserId};
use crate::domain::user_query::UserLookup;
use crate::domain::ControlPlane;
use crate::metrics::{PushLabels, PushSourceLabels};

/// How often the scheduler looks for due events; a scheduled push leaves at most this late.
pub const SCHEDULER_TICK: Duration = Duration::from_secs(1);
/// Due events taken per look (the rest wait for the next tick).
const DUE_BATCH: i64 = 100;
/// Longest alert text of a chat push; APNs refuses payloads over 4 KiB.
const CHAT_ALERT_CHARS: usize = 200;

/// A chat message that reached none of some recipients' devices over XMPP.
#[derive(Clone, Debug)]
pub struct OfflineChatPush {
    pub app: AppId,
    pub dialog_id: String,
    pub message_id: String,
    pub sender: UserId,
    /// Occupants with no online resource.
    pub recipients: Vec<UserId>,
    pub text: String,
}

impl ControlPlane {
    pub(super) fn count_trigger(&self, source: &'static str) {
        self.push_counters
            .triggers
            .get_or_create(&PushSourceLabels { source })
            .inc();
    }

    /// Delivers one occurrence of `event` to every subscribed device of its recipients in
    /// its environment (and channel, when `push_type` is set) and stores the counts.
    pub(super) async fn deliver_event(
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
        let report = self.deliver_to(app, devices, &alert, &data).await?;
        event.sent += report.delivered() as i64;
        event.failed += (report.outcomes.len() - report.delivered()) as i64;
        event.updated_at = self.now();
        self.push.update_event_counts(event).await?;
        Ok(report)
    }

    /// Sends one message per device, with retries; removes subscriptions whose token the
    /// provider reports dead; counts every outcome.
    async fn deliver_to(
        &self,
        app: AppId,
        devices: Vec<Subscription>,
        alert: &str,
        data: &Map<String, Value>,
    ) -> Result<DeliveryReport, DomainError> {
        let mut report = DeliveryReport::default();
        for device in devices {
            let message = PushMessage {
                channel: device.channel,
                token: device.token.clone(),
                environment: device.environment.clone(),
                bundle_id: device.bundle_id.clone(),
                alert: alert.to_string(),
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
            let provider = device.channel.provider();
            self.push_counters
                .sent
                .get_or_create(&PushLabels { provider, result })
                .inc();
            report.outcomes.push((provider, result));
        }
        self.push_counters.retries.inc_by(u64::from(report.retries));
        Ok(report)
    }

    /// Delivers the scheduled events due by now (one batch), each occurrence once even when
    /// several nodes poll the same database. Returns the occurrences delivered.
    pub async fn deliver_due_events(&self) -> Result<usize, DomainError> {
        let now = self.now();
        let mut delivered = 0;
        for mut event in self.push.due_events(now, DUE_BATCH).await? {
            let Some(due) = event.schedule.next_at else {
                continue;
            };
            let next = next_after(&event, due, now);
            if !self
                .push
                .claim_delivery(event.app_id, event.id, due, next)
                .await?
            {
                continue;
            }
            event.schedule.next_at = next;
            event.schedule.occurrences += 1;
            // The message was checked when the event was created; a row edited since by hand
            // is delivered as empty rather than stalling the queue.
            let payload = decode_message(&event.message).unwrap_or_default();
            self.count_trigger("scheduled");
            self.deliver_event(&mut event, payload).await?;
            delivered += 1;
        }
        Ok(delivered)
    }

    /// Delivers scheduled events every [`SCHEDULER_TICK`] until `shutdown` completes.
    pub async fn run_push_scheduler(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(SCHEDULER_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.deliver_due_events().await {
                tracing::warn!(error = %e, "delivering scheduled push events failed");
            }
        }
    }

    /// Pushes a chat message to its offline recipients' devices (alert channels only), except
    /// to those who switched the dialog's notifications off.
    pub async fn push_offline_message(
        &self,
        push: OfflineChatPush,
    ) -> Result<DeliveryReport, DomainError> {
        let muted = self
            .push
            .muted_among(push.app, &push.dialog_id, &push.recipients)
            .await?;
        let users: Vec<UserId> = push
            .recipients
            .iter()
            .copied()
            .filter(|u| !muted.contains(u) && *u != push.sender)
            .collect();
        if users.is_empty() {
            return Ok(DeliveryReport::default());
        }
        let devices: Vec<Subscription> = self
            .push
            .subscriptions_of(push.app, &users)
            .await?
            .into_iter()
            .filter(|s| matches!(s.channel, Channel::Apns | Channel::Gcm))
            .collect();
        if devices.is_empty() {
            return Ok(DeliveryReport::default());
        }
        let name = self.display_name(push.app, push.sender).await?;
        let text: String = push.text.chars().take(CHAT_ALERT_CHARS).collect();
        let mut data = Map::new();
        data.insert("dialog_id".into(), push.dialog_id.into());
        data.insert("message_id".into(), push.message_id.into());
        data.insert("user_id".into(), push.sender.0.to_string().into());
        self.count_trigger("chat");
        self.deliver_to(push.app, devices, &format!("{name}: {text}"), &data)
            .await
    }

    /// Pushes an incoming call to the callee's VoIP devices (APNs VoIP, FCM).
    pub async fn push_incoming_call(
        &self,
        intent: VoipIntent,
    ) -> Result<DeliveryReport, DomainError> {
        let devices: Vec<Subscription> = self
            .push
            .subscriptions_of(intent.app, &[intent.callee])
            .await?
            .into_iter()
            .filter(|s| matches!(s.channel, Channel::ApnsVoip | Channel::Gcm))
            .collect();
        if devices.is_empty() {
            return Ok(DeliveryReport::default());
        }
        let name = self.display_name(intent.app, intent.caller).await?;
        let mut data = Map::new();
        data.insert("ios_voip".into(), "1".into());
        data.insert("VOIPCall".into(), "1".into());
        data.insert("sessionID".into(), intent.session_id.clone().into());
        data.insert("callerID".into(), intent.caller.0.to_string().into());
        data.insert("callerName".into(), name.clone().into());
        data.insert(
            "conferenceType".into(),
            intent.call_type.code().to_string().into(),
        );
        self.count_trigger("call");
        self.deliver_to(
            intent.app,
            devices,
            &format!("Incoming call from {name}"),
            &data,
        )
        .await
    }

    /// Full name, else login, else the id: what a push shows as the sender.
    async fn display_name(&self, app: AppId, user: UserId) -> Result<String, DomainError> {
        let found = self.store.user(app, &UserLookup::Id(user)).await?;
        Ok(found
            .and_then(|u| {
                u.profile
                    .full_name
                    .filter(|n| !n.trim().is_empty())
                    .or(u.profile.login.filter(|l| !l.trim().is_empty()))
            })
            .unwrap_or_else(|| user.0.to_string()))
    }
}

/// The delivery after the one due at `due`, skipping occurrences a stopped scheduler missed
/// (a week-long outage sends one push, not seven).
fn next_after(
    event: &PushEvent,
    due: OffsetDateTime,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    let period = event.schedule.period.filter(|p| *p > 0)?;
    let behind = (now - due).whole_seconds().max(0);
    let steps = behind / period + 1;
    let next = due + time::Duration::seconds(period.saturating_mul(steps));
    match event.schedule.end_at {
        Some(end) if next > end => None,
        _ => Some(next),
    }
}
