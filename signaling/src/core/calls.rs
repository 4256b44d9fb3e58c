//! QuickBlox WebRTC mesh call signaling (PROTOCOLS.md §7).
//!
//! Signals are `type="headline"` messages whose `<extraParams/>` carry `moduleIdentifier`
//! `WebRTCVideoChat` and a `signalType` (call, accept, reject, hangUp, iceCandidates,
//! update). The message path (`messages.rs`) routes them like every headline: live, to
//! every online resource of the opponent, never stored, replayed or delayed (the SDK drops
//! a signal carrying `<delay>`, and the caller re-sends `call` every 5 s anyway). This
//! module adds, around that routing:
//!
//! - [`on_signal`] before routing: parses the signal, enforces the mesh size limit and
//!   the table bound (refusals get an error stanza and are not routed), and feeds the
//!   sans-IO [`table::CallTable`] that tracks each call's state;
//! - [`after_route`]: an opponent with no online resource gets a VoIP push intent at
//!   `call` time (once per call), a user who does not exist gets `item-not-found` back;
//! - [`on_offline`] and [`sweep`]: a user's last resource leaving, and time passing, end
//!   calls too; finished calls are counted and stored as history summaries.

pub mod signal;
pub mod table;

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use control_api::domain::calls::{CallOutcome, LoggingVoipPusher, VoipIntent, VoipPusher};
use minidom::Element;

use super::address::UserAddr;
use super::context::XmppContext;
use super::session::Session;
use super::stanza;
use crate::call_metrics::CallMetrics;
use signal::{Parsed, Signal, SignalType};
use table::{CallError, CallEvent, CallLimits, CallTable};

/// The live call table, the VoIP pusher and the call metrics, shared by all connections.
pub struct Calls {
    /// Held only for in-memory updates, never across an await.
    table: Mutex<CallTable>,
    pusher: RwLock<Arc<dyn VoipPusher>>,
    pub metrics: CallMetrics,
}

impl Calls {
    pub fn new(limits: CallLimits, metrics: CallMetrics) -> Self {
        Self {
            table: Mutex::new(CallTable::new(limits)),
            pusher: RwLock::new(Arc::new(LoggingVoipPusher::default())),
            metrics,
        }
    }

    /// Replaces the default (logging) pusher; the push module calls this once wired.
    pub fn set_voip_pusher(&self, pusher: Arc<dyn VoipPusher>) {
        *self.pusher.write().unwrap_or_else(PoisonError::into_inner) = pusher;
    }

    /// Calls ringing or in progress.
    pub fn live(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CallTable> {
        // A panic elsewhere while holding it leaves consistent-enough state: each
        // mutation is a few field writes.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the message path does with a headline.
pub(crate) enum Gate {
    /// Route it; `Some` for a call signal (then call [`after_route`]).
    Route(Option<Signal>),
    /// Refused: an error went back to the sender; do not route.
    Refused,
}

/// Checks a headline before routing and updates the call table.
pub(crate) async fn on_signal(session: &Session, message: &Element) -> Gate {
    let signal = match signal::parse(message) {
        Parsed::NotACall => return Gate::Route(None),
        Parsed::Malformed(why) => {
            refuse(session, message, "malformed", "modify", "bad-request", why);
            return Gate::Refused;
        }
        Parsed::Signal(signal) => signal,
    };
    let ctx = &session.ctx;
    let me = session.me();
    let now = ctx.control.now();
    let mut events = Vec::new();
    let result = {
        let mut table = ctx.calls.lock();
        table.handle_timeout(now, &mut events);
        table.handle_signal(now, me.app, me.user, &signal, &mut events)
    };
    apply(ctx, events).await;
    match result {
        Ok(()) => {
            ctx.calls.metrics.signal(signal.kind.as_str());
            Gate::Route(Some(signal))
        }
        Err(e @ CallError::TooManyOpponents { .. }) => {
            let text = e.to_string();
            refuse(
                session,
                message,
                "mesh_limit",
                "modify",
                "policy-violation",
                &text,
            );
            Gate::Refused
        }
        Err(e @ CallError::TableFull) => {
            let text = e.to_string();
            refuse(
                session,
                message,
                "table_full",
                "wait",
                "resource-constraint",
                &text,
            );
            Gate::Refused
        }
    }
}

/// After routing a signal to `to`: VoIP push for an offline callee, or an error for a
/// user who does not exist.
pub(crate) async fn after_route(
    session: &Session,
    message: &Element,
    to: UserAddr,
    signal: &Signal,
    delivered: usize,
) {
    if delivered > 0 {
        return;
    }
    let ctx = &session.ctx;
    let exists = ctx
        .control
        .chat_user_exists(to.app, to.user)
        .await
        .unwrap_or(false);
    if !exists {
        refuse(
            session,
            message,
            "unknown_user",
            "cancel",
            "item-not-found",
            "no such user",
        );
        return;
    }
    if signal.kind != SignalType::Call || !signal.opponents.contains(&to.user) {
        return;
    }
    let first = ctx
        .calls
        .lock()
        .should_push(to.app, &signal.session_id, to.user);
    if !first {
        return;
    }
    let intent = VoipIntent {
        app: to.app,
        session_id: signal.session_id.clone(),
        caller: signal.caller,
        callee: to.user,
        call_type: signal.call_type,
    };
    let pusher = ctx
        .calls
        .pusher
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    pusher.incoming_call(intent);
    ctx.calls.metrics.voip_push_intents.inc();
}

/// `user` has no online resource left: they are out of every call they were in.
pub(crate) fn on_offline(ctx: &Arc<XmppContext>, user: UserAddr) {
    let mut events = Vec::new();
    ctx.calls
        .lock()
        .handle_offline(ctx.control.now(), user.app, user.user, &mut events);
    if events.is_empty() {
        return;
    }
    let ctx = ctx.clone();
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move { apply(&ctx, events).await });
    }
}

/// Ends calls whose time ran out; the driver calls it periodically.
pub async fn sweep(ctx: &XmppContext) {
    let mut events = Vec::new();
    ctx.calls
        .lock()
        .handle_timeout(ctx.control.now(), &mut events);
    apply(ctx, events).await;
}

/// Counts events and stores finished calls.
async fn apply(ctx: &XmppContext, events: Vec<CallEvent>) {
    let metrics = &ctx.calls.metrics;
    for event in events {
        match event {
            CallEvent::Started => {
                metrics.started.inc();
            }
            CallEvent::Answered => {
                metrics.answered.inc();
            }
            CallEvent::Finished(record) => {
                match record.outcome {
                    CallOutcome::Ended => {
                        metrics.ended.inc();
                        metrics.duration.observe(record.duration_secs() as f64);
                    }
                    CallOutcome::Rejected => {
                        metrics.rejected.inc();
                    }
                    CallOutcome::Missed => {
                        metrics.missed.inc();
                    }
                }
                tracing::debug!(
                    session = %record.session_id,
                    outcome = record.outcome.as_str(),
                    duration = record.duration_secs(),
                    "call finished"
                );
                if let Err(e) = ctx.control.record_call(&record).await {
                    tracing::warn!(error = %e, "storing a call summary failed");
                }
            }
        }
    }
    metrics.active.set(ctx.calls.live() as i64);
}

fn refuse(
    session: &Session,
    message: &Element,
    reason: &str,
    kind: &str,
    condition: &str,
    text: &str,
) {
    session.ctx.calls.metrics.refuse(reason);
    tracing::debug!(reason, "call signal refused");
    session.send(&stanza::stanza_error(message, None, kind, condition, text));
}

/// Opponents a user may ring at once, for documentation and tests.
pub fn max_opponents(ctx: &XmppContext) -> usize {
    ctx.calls.lock().limits().max_opponents
}
