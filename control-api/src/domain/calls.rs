//! Mesh call history: one summary per finished call (who called whom, how it ended, how
//! long it lasted), written by the XMPP server when a call ends and read back by the
//! participants over REST. Live call state stays in the XMPP server's memory; only the
//! outcome is stored.
//!
//! Also the seam to the push module: [`VoipPusher`] is what the XMPP server calls when an
//! opponent is offline at `call` time.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::error::DomainError;
use super::model::{AppId, UserId};
use super::store::StoreResult;
use super::ControlPlane;

/// QuickBlox `callType`: 1 video, 2 audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallType {
    Video,
    Audio,
}

impl CallType {
    pub fn code(self) -> i64 {
        match self {
            CallType::Video => 1,
            CallType::Audio => 2,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(CallType::Video),
            2 => Some(CallType::Audio),
            _ => None,
        }
    }
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// Someone accepted; the call ran until the last participant hung up.
    Ended,
    /// Every opponent rejected.
    Rejected,
    /// Nobody answered: the caller gave up or the ring timed out.
    Missed,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ended => "ended",
            CallOutcome::Rejected => "rejected",
            CallOutcome::Missed => "missed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ended" => Some(CallOutcome::Ended),
            "rejected" => Some(CallOutcome::Rejected),
            "missed" => Some(CallOutcome::Missed),
            _ => None,
        }
    }
}

/// The stored summary of one finished call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    pub app: AppId,
    /// The SDK's `sessionID` (a UUID v4 the caller picks).
    pub session_id: String,
    pub caller: UserId,
    pub opponents: Vec<UserId>,
    pub call_type: CallType,
    pub outcome: CallOutcome,
    pub started_at: OffsetDateTime,
    /// When the first opponent accepted.
    pub answered_at: Option<OffsetDateTime>,
    pub ended_at: OffsetDateTime,
}

impl CallRecord {
    /// Talk time: from the first accept to the end; zero for unanswered calls.
    pub fn duration_secs(&self) -> i64 {
        self.answered_at
            .map_or(0, |a| (self.ended_at - a).whole_seconds().max(0))
    }
}

/// Largest page of `GET /calls/history.json` (QuickBlox's usual `per_page` cap).
pub const MAX_HISTORY_PAGE: i64 = 100;

#[async_trait]
pub trait CallStore: Send + Sync + 'static {
    /// Stores a finished call; the same `(app, session_id)` again replaces the first.
    async fn insert_call(&self, record: &CallRecord) -> StoreResult<()>;
    /// Calls `user` took part in (as caller or opponent), newest first, and their number.
    async fn list_calls(
        &self,
        app: AppId,
        user: UserId,
        limit: i64,
        skip: i64,
    ) -> StoreResult<(Vec<CallRecord>, i64)>;
}

/// An incoming call for a user with no online resource, handed to the push module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoipIntent {
    pub app: AppId,
    pub session_id: String,
    pub caller: UserId,
    pub callee: UserId,
    pub call_type: CallType,
}

/// Delivers VoIP pushes (APNs VoIP / FCM high priority) for incoming calls. Called from
/// the XMPP server's message path, so implementations must not block: queue or spawn.
pub trait VoipPusher: Send + Sync + 'static {
    fn incoming_call(&self, intent: VoipIntent);
}

/// Logs the intent and counts it: for tests and embedders without the push module.
#[derive(Debug, Default)]
pub struct LoggingVoipPusher {
    intents: std::sync::atomic::AtomicU64,
}

impl LoggingVoipPusher {
    pub fn intents(&self) -> u64 {
        self.intents.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl VoipPusher for LoggingVoipPusher {
    fn incoming_call(&self, intent: VoipIntent) {
        self.intents
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            app = %intent.app,
            session = %intent.session_id,
            caller = %intent.caller,
            callee = %intent.callee,
            "VoIP push intent (no push module configured)"
        );
    }
}

/// The push module's [`VoipPusher`]: a VoIP push (APNs VoIP, FCM) to every such device of
/// the callee, sent from a task of its own so the XMPP message path never waits on a
/// provider.
pub struct PushVoipPusher {
    control: ControlPlane,
}

impl PushVoipPusher {
    pub fn new(control: ControlPlane) -> Self {
        Self { control }
    }
}

impl VoipPusher for PushVoipPusher {
    fn incoming_call(&self, intent: VoipIntent) {
        let control = self.control.clone();
        tokio::spawn(async move {
            let session = intent.session_id.clone();
            match control.push_incoming_call(intent).await {
                Ok(report) => tracing::debug!(
                    %session,
                    devices = report.outcomes.len(),
                    delivered = report.delivered(),
                    "VoIP push for an incoming call"
                ),
                Err(e) => tracing::warn!(%session, error = %e, "VoIP push failed"),
            }
        });
    }
}

impl ControlPlane {
    /// Stores the summary of a finished call.
    pub async fn record_call(&self, record: &CallRecord) -> Result<(), DomainError> {
        Ok(self.calls.insert_call(record).await?)
    }

    /// One page of `user`'s own call history, newest first, and the total.
    pub async fn call_history(
        &self,
        app: AppId,
        user: UserId,
        limit: i64,
        skip: i64,
    ) -> Result<(Vec<CallRecord>, i64), DomainError> {
        if !(1..=MAX_HISTORY_PAGE).contains(&limit) {
            return Err(DomainError::invalid(
                "limit",
                format!("must be between 1 and {MAX_HISTORY_PAGE}"),
            ));
        }
        if skip < 0 {
            return Err(DomainError::invalid("skip", "must not be negative"));
        }
        Ok(self.calls.list_calls(app, user, limit, skip).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_counts_talk_time_only() {
        let t0 = time::macros::datetime!(2026-11-25 12:00:00 UTC);
        let mut record = CallRecord {
            app: AppId(1),
            session_id: "s".into(),
            caller: UserId(1),
            opponents: vec![UserId(2)],
            call_type: CallType::Video,
            outcome: CallOutcome::Missed,
            started_at: t0,
            answered_at: None,
            ended_at: t0 + time::Duration::seconds(30),
        };
        assert_eq!(record.duration_secs(), 0);
        record.answered_at = Some(t0 + time::Duration::seconds(10));
        assert_eq!(record.duration_secs(), 20);
        assert_eq!(CallOutcome::parse("rejected"), Some(CallOutcome::Rejected));
        assert_eq!(CallType::from_code(2), Some(CallType::Audio));
        assert_eq!(CallType::from_code(3), None);
    }
}
