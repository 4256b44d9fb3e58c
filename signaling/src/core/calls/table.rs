//! The live call table: a sans-IO state machine over call signals and time.
//!
//! Inputs are [`CallTable::handle_signal`] (one routed signal), [`CallTable::handle_offline`]
//! (a user's last resource went away) and [`CallTable::handle_timeout`] (time passed);
//! each appends [`CallEvent`]s to the caller's buffer. Wall-clock time is an input, never
//! read here. The table is bounded: beyond `max_calls` live calls a new `call` is refused,
//! and a finished call leaves the table at once (its summary travels in the event).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use control_api::domain::calls::{CallOutcome, CallRecord, CallType};
use control_api::domain::model::{AppId, UserId};
use time::OffsetDateTime;

use super::signal::{Signal, SignalType};

/// Limits of call tracking; defaults say what they assume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallLimits {
    /// Opponents one caller may ring in a mesh call (QuickBlox: caller + 3; each peer
    /// uploads its media once per other peer, so a mesh does not grow further).
    pub max_opponents: usize,
    /// Live calls tracked at once; beyond it a new `call` is refused (arbitrary: far more
    /// than one node's users can hold as meshes, a few MiB at most).
    pub max_calls: usize,
    /// An unanswered call ends as missed after this. The SDK rings for 60 s
    /// (`answerTimeInterval`); the rest is slack for the caller's last re-sent `call`.
    pub ring_timeout: Duration,
    /// An answered call with participants still online ends after this anyway (a leak
    /// guard for peers that vanish without `hangUp`; arbitrary, longer than any meeting).
    pub max_duration: Duration,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            max_opponents: 3,
            max_calls: 10_000,
            ring_timeout: Duration::from_secs(75),
            max_duration: Duration::from_secs(12 * 3600),
        }
    }
}

/// Why a signal was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("mesh calls are limited to the caller and {max} opponents; use a conference for more")]
    TooManyOpponents { max: usize },
    #[error("too many calls in progress on this server; try again later")]
    TableFull,
}

/// What happened to the tracked calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEvent {
    Started,
    Answered,
    Finished(CallRecord),
}

/// Finished sessions remembered so a late re-sent `call` does not start them again
/// (the SDK re-sends `call` every 5 s until it hears back).
const RECENTLY_FINISHED: usize = 4096;
const REMEMBER_FINISHED: Duration = Duration::from_secs(120);
/// `handle_timeout` scans at most this often (the table is bounded, the scan linear).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CallKey {
    app: AppId,
    session: String,
}

#[derive(Debug)]
struct LiveCall {
    caller: UserId,
    opponents: Vec<UserId>,
    call_type: CallType,
    started_at: OffsetDateTime,
    answered_at: Option<OffsetDateTime>,
    accepted: HashSet<UserId>,
    rejected: HashSet<UserId>,
    left: HashSet<UserId>,
    /// Opponents already announced by VoIP push (once per call, whatever the re-sends).
    pushed: HashSet<UserId>,
}

impl LiveCall {
    fn is_participant(&self, user: UserId) -> bool {
        user == self.caller || self.opponents.contains(&user)
    }

    /// The outcome if the call is over now.
    fn outcome(&self) -> Option<CallOutcome> {
        match self.answered_at {
            None => {
                if self.left.contains(&self.caller) {
                    return Some(CallOutcome::Missed);
                }
                let all_gone = self
                    .opponents
                    .iter()
                    .all(|o| self.rejected.contains(o) || self.left.contains(o));
                if !all_gone {
                    return None;
                }
                Some(if self.rejected.is_empty() {
                    CallOutcome::Missed
                } else {
                    CallOutcome::Rejected
                })
            }
            Some(_) => {
                let connected = std::iter::once(&self.caller)
                    .chain(self.accepted.iter())
                    .filter(|u| !self.left.contains(u))
                    .count();
                (connected < 2).then_some(CallOutcome::Ended)
            }
        }
    }
}

#[derive(Default, Debug)]
pub struct CallTable {
    limits: CallLimits,
    live: HashMap<CallKey, LiveCall>,
    finished: HashSet<CallKey>,
    finished_order: VecDeque<(CallKey, OffsetDateTime)>,
    next_sweep: Option<OffsetDateTime>,
}

impl CallTable {
    pub fn new(limits: CallLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    pub fn limits(&self) -> &CallLimits {
        &self.limits
    }

    /// Live calls.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Checks and applies one signal `sender` sent in `app`. An error means: refuse it,
    /// do not route it.
    pub fn handle_signal(
        &mut self,
        now: OffsetDateTime,
        app: AppId,
        sender: UserId,
        signal: &Signal,
        out: &mut Vec<CallEvent>,
    ) -> Result<(), CallError> {
        let key = CallKey {
            app,
            session: signal.session_id.clone(),
        };
        if signal.kind == SignalType::Call {
            if signal.opponents.len() > self.limits.max_opponents {
                return Err(CallError::TooManyOpponents {
                    max: self.limits.max_opponents,
                });
            }
            if !self.live.contains_key(&key)
                && !self.finished.contains(&key)
                && sender == signal.caller
            {
                if self.live.len() >= self.limits.max_calls {
                    return Err(CallError::TableFull);
                }
                self.live.insert(key.clone(), new_call(now, signal));
                out.push(CallEvent::Started);
            }
            return Ok(());
        }
        let Some(call) = self.live.get_mut(&key) else {
            // Not tracked (over already, or never seen): still routed.
            return Ok(());
        };
        if !call.is_participant(sender) {
            return Ok(());
        }
        match signal.kind {
            SignalType::Accept if sender != call.caller => {
                call.accepted.insert(sender);
                if call.answered_at.is_none() {
                    call.answered_at = Some(now);
                    out.push(CallEvent::Answered);
                }
            }
            SignalType::Reject if sender != call.caller => {
                call.rejected.insert(sender);
            }
            SignalType::HangUp => {
                call.left.insert(sender);
            }
            _ => return Ok(()),
        }
        self.finish_if_over(now, &key, out);
        Ok(())
    }

    /// `user` has no online resource left: they left every call they were in.
    pub fn handle_offline(
        &mut self,
        now: OffsetDateTime,
        app: AppId,
        user: UserId,
        out: &mut Vec<CallEvent>,
    ) {
        let keys: Vec<CallKey> = self
            .live
            .iter_mut()
            .filter(|(k, c)| k.app == app && c.is_participant(user))
            .map(|(k, c)| {
                c.left.insert(user);
                k.clone()
            })
            .collect();
        for key in keys {
            self.finish_if_over(now, &key, out);
        }
    }

    /// Ends unanswered calls past the ring timeout and answered ones past the maximum
    /// duration; forgets old finished sessions.
    pub fn handle_timeout(&mut self, now: OffsetDateTime, out: &mut Vec<CallEvent>) {
        if self.next_sweep.is_some_and(|at| now < at) {
            return;
        }
        self.next_sweep = Some(now + SWEEP_EVERY);
        let limits = &self.limits;
        let expired: Vec<(CallKey, CallOutcome)> = self
            .live
            .iter()
            .filter_map(|(k, c)| match c.answered_at {
                None if now - c.started_at >= limits.ring_timeout => {
                    Some((k.clone(), CallOutcome::Missed))
                }
                Some(at) if now - at >= limits.max_duration => {
                    Some((k.clone(), CallOutcome::Ended))
                }
                _ => None,
            })
            .collect();
        for (key, outcome) in expired {
            self.finish(now, &key, outcome, out);
        }
        while let Some((key, at)) = self.finished_order.front() {
            if now - *at < REMEMBER_FINISHED && self.finished_order.len() <= RECENTLY_FINISHED {
                break;
            }
            self.finished.remove(key);
            self.finished_order.pop_front();
        }
    }

    /// True once per (call, callee): whether to send a VoIP push for this `call`.
    pub fn should_push(&mut self, app: AppId, session: &str, callee: UserId) -> bool {
        let key = CallKey {
            app,
            session: session.to_string(),
        };
        match self.live.get_mut(&key) {
            Some(call) if call.opponents.contains(&callee) => call.pushed.insert(callee),
            _ => false,
        }
    }

    fn finish_if_over(&mut self, now: OffsetDateTime, key: &CallKey, out: &mut Vec<CallEvent>) {
        if let Some(outcome) = self.live.get(key).and_then(LiveCall::outcome) {
            self.finish(now, key, outcome, out);
        }
    }

    fn finish(
        &mut self,
        now: OffsetDateTime,
        key: &CallKey,
        outcome: CallOutcome,
        out: &mut Vec<CallEvent>,
    ) {
        let Some(call) = self.live.remove(key) else {
            return;
        };
        self.finished.insert(key.clone());
        self.finished_order.push_back((key.clone(), now));
        out.push(CallEvent::Finished(CallRecord {
            app: key.app,
            session_id: key.session.clone(),
            caller: call.caller,
            opponents: call.opponents,
            call_type: call.call_type,
            outcome,
            started_at: call.started_at,
            answered_at: call.answered_at,
            ended_at: now,
        }));
    }
}

fn new_call(now: OffsetDateTime, signal: &Signal) -> LiveCall {
    LiveCall {
        caller: signal.caller,
        opponents: signal.opponents.clone(),
        call_type: signal.call_type,
        started_at: now,
        answered_at: None,
        accepted: HashSet::new(),
        rejected: HashSet::new(),
        left: HashSet::new(),
        pushed: HashSet::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: AppId = AppId(1);
    const A: UserId = UserId(1);
    const B: UserId = UserId(2);
    const C: UserId = UserId(3);

    fn t0() -> OffsetDateTime {
        time::macros::datetime!(2026-11-25 12:00:00 UTC)
    }

    fn signal(kind: SignalType, opponents: &[UserId]) -> Signal {
        Signal {
            kind,
            session_id: "s1".into(),
            call_type: CallType::Video,
            caller: A,
            opponents: opponents.to_vec(),
        }
    }

    fn apply(
        table: &mut CallTable,
        at: i64,
        sender: UserId,
        kind: SignalType,
        opponents: &[UserId],
    ) -> Vec<CallEvent> {
        let mut out = Vec::new();
        let now = t0() + time::Duration::seconds(at);
        table
            .handle_signal(now, APP, sender, &signal(kind, opponents), &mut out)
            .unwrap();
        out
    }

    fn finished(events: &[CallEvent]) -> &CallRecord {
        events
            .iter()
            .find_map(|e| match e {
                CallEvent::Finished(r) => Some(r),
                _ => None,
            })
            .expect("call finished")
    }

    #[test]
    fn answered_call_ends_with_its_talk_time() {
        let mut table = CallTable::new(CallLimits::default());
        assert_eq!(
            apply(&mut table, 0, A, SignalType::Call, &[B]),
            vec![CallEvent::Started]
        );
        // Re-sent calls and candidates change nothing.
        assert!(apply(&mut table, 5, A, SignalType::Call, &[B]).is_empty());
        assert!(apply(&mut table, 6, A, SignalType::IceCandidates, &[B]).is_empty());
        assert_eq!(
            apply(&mut table, 8, B, SignalType::Accept, &[B]),
            vec![CallEvent::Answered]
        );
        let events = apply(&mut table, 68, A, SignalType::HangUp, &[B]);
        let record = finished(&events);
        assert_eq!(record.outcome, CallOutcome::Ended);
        assert_eq!(record.duration_secs(), 60);
        assert!(table.is_empty());
        // A late re-sent call does not start it again.
        assert!(apply(&mut table, 69, A, SignalType::Call, &[B]).is_empty());
        assert!(table.is_empty());
    }

    #[test]
    fn rejected_missed_and_timed_out_calls() {
        let mut table = CallTable::new(CallLimits::default());
        apply(&mut table, 0, A, SignalType::Call, &[B, C]);
        assert!(apply(&mut table, 1, B, SignalType::Reject, &[B, C]).is_empty());
        let events = apply(&mut table, 2, C, SignalType::Reject, &[B, C]);
        assert_eq!(finished(&events).outcome, CallOutcome::Rejected);

        let mut table = CallTable::new(CallLimits::default());
        apply(&mut table, 0, A, SignalType::Call, &[B]);
        let events = apply(&mut table, 3, A, SignalType::HangUp, &[B]);
        assert_eq!(finished(&events).outcome, CallOutcome::Missed);

        let mut table = CallTable::new(CallLimits::default());
        apply(&mut table, 0, A, SignalType::Call, &[B]);
        let mut out = Vec::new();
        table.handle_timeout(t0() + time::Duration::seconds(74), &mut out);
        assert!(out.is_empty());
        table.handle_timeout(t0() + time::Duration::seconds(76), &mut out);
        assert_eq!(finished(&out).outcome, CallOutcome::Missed);
    }

    #[test]
    fn mesh_calls_end_when_one_participant_is_left() {
        let mut table = CallTable::new(CallLimits::default());
        apply(&mut table, 0, A, SignalType::Call, &[B, C]);
        apply(&mut table, 1, B, SignalType::Accept, &[B, C]);
        // B rings C under A's session: no new call.
        assert!(apply(&mut table, 2, B, SignalType::Call, &[B, C]).is_empty());
        apply(&mut table, 3, C, SignalType::Accept, &[B, C]);
        assert!(apply(&mut table, 10, A, SignalType::HangUp, &[B, C]).is_empty());
        let mut out = Vec::new();
        table.handle_offline(t0() + time::Duration::seconds(20), APP, C, &mut out);
        let record = finished(&out);
        assert_eq!(record.outcome, CallOutcome::Ended);
        assert_eq!(record.duration_secs(), 19);
    }

    #[test]
    fn the_mesh_limit_and_the_table_bound_refuse_calls() {
        let mut table = CallTable::new(CallLimits {
            max_calls: 1,
            ..CallLimits::default()
        });
        let mut out = Vec::new();
        let big = signal(SignalType::Call, &[B, C, UserId(4), UserId(5)]);
        assert_eq!(
            table.handle_signal(t0(), APP, A, &big, &mut out),
            Err(CallError::TooManyOpponents { max: 3 })
        );
        apply(&mut table, 0, A, SignalType::Call, &[B, C, UserId(4)]);
        let mut other = signal(SignalType::Call, &[B]);
        other.session_id = "s2".into();
        assert_eq!(
            table.handle_signal(t0(), APP, A, &other, &mut out),
            Err(CallError::TableFull)
        );
    }

    #[test]
    fn outsiders_cannot_change_a_call_and_pushes_happen_once() {
        let mut table = CallTable::new(CallLimits::default());
        apply(&mut table, 0, A, SignalType::Call, &[B]);
        assert!(apply(&mut table, 1, C, SignalType::HangUp, &[B]).is_empty());
        assert_eq!(table.len(), 1);
        assert!(table.should_push(APP, "s1", B));
        assert!(!table.should_push(APP, "s1", B));
        assert!(!table.should_push(APP, "s1", C));
        // A signal for a session nobody started is routed, not tracked.
        let mut stray = signal(SignalType::Accept, &[B]);
        stray.session_id = "unknown".into();
        let mut out = Vec::new();
        table.handle_signal(t0(), APP, B, &stray, &mut out).unwrap();
        assert!(out.is_empty());
    }
}
