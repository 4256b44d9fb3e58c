//! The Janus WebSocket transport at `/janus` (subprotocol `janus-protocol`): sessions, handles,
//! keepalive timeouts, grant tokens, and routing each videoroom request to the worker that owns
//! its room. Wire shapes live in `janus/`; room logic in the workers' shards.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::worker::{EventSink, Workers};
use crate::core::api::{Command, HandleId, Reply, RoomError, RoomEvent, RoomId};
use crate::grant::{Grant, GrantKey};
use crate::janus::{self, codes, vr_codes, EventJson, Ptype, VrError, PLUGIN};
use crate::metrics::{ErrorLabel, Metrics};

/// Unix seconds now; injected so tests can move the wall clock.
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

pub fn system_clock() -> WallClock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

/// What every Janus connection shares.
pub struct JanusState {
    pub workers: Workers,
    pub grants: GrantKey,
    pub require_grant: bool,
    pub session_timeout: Duration,
    pub clock: WallClock,
    pub metrics: Metrics,
}

/// `GET /janus` (WebSocket upgrade); an app may put the grant in `?token=`.
pub fn router(state: Arc<JanusState>) -> Router {
    Router::new()
        .route("/janus", get(upgrade))
        .with_state(state)
}

async fn upgrade(
    ws: WebSocketUpgrade,
    Query(query): Query<HashMap<String, String>>,
    State(state): State<Arc<JanusState>>,
) -> Response {
    let token = query.get("token").cloned();
    ws.protocols(["janus-protocol"])
        .on_upgrade(move |socket| async move {
            let (tx, rx) = mpsc::unbounded_channel();
            let mut conn = Conn {
                state,
                url_token: token,
                sessions: HashMap::new(),
                handles: HashMap::new(),
                events: tx,
            };
            conn.run(socket, rx).await;
        })
}

struct Session {
    token: Option<String>,
    last_seen: Instant,
}

#[derive(Default)]
struct Handle {
    session: u64,
    worker: Option<usize>,
    room: Option<RoomId>,
    ptype: Option<Ptype>,
}

struct Conn {
    state: Arc<JanusState>,
    url_token: Option<String>,
    sessions: HashMap<u64, Session>,
    handles: HashMap<u64, Handle>,
    events: EventSink,
}

/// A Janus id: random, nonzero, below 2^53 so JavaScript reads it exactly.
fn janus_id() -> u64 {
    loop {
        let id = rand::random::<u64>() & ((1 << 53) - 1);
        if id != 0 {
            return id;
        }
    }
}

fn error(transaction: &Value, session: Option<u64>, code: u16, reason: &str) -> Value {
    let mut v = json!({"janus": "error", "transaction": transaction, "error": {"code": code, "reason": reason}});
    if let Some(s) = session {
        v["session_id"] = json!(s);
    }
    v
}

impl Conn {
    async fn run(
        &mut self,
        mut socket: WebSocket,
        mut events: mpsc::UnboundedReceiver<(HandleId, RoomEvent)>,
    ) {
        loop {
            let expiry = self
                .sessions
                .values()
                .map(|s| s.last_seen + self.state.session_timeout)
                .min()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            let outgoing: Vec<Value> = tokio::select! {
                msg = socket.recv() => match msg {
                    Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
                    Some(Ok(Message::Binary(bytes))) => match std::str::from_utf8(&bytes) {
                        Ok(text) => self.on_text(text).await,
                        Err(_) => vec![error(&Value::Null, None, codes::INVALID_JSON, "not UTF-8")],
                    },
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => break,
                },
                Some((h, e)) = events.recv() => self.on_event(h, e).into_iter().collect(),
                _ = tokio::time::sleep_until(expiry) => self.expire_sessions().await,
            };
            for v in outgoing {
                if let Some(code) = v["error"]["code"]
                    .as_u64()
                    .or(v["plugindata"]["data"]["error_code"].as_u64())
                {
                    self.state
                        .metrics
                        .janus_errors
                        .get_or_create(&ErrorLabel {
                            code: code.to_string(),
                        })
                        .inc();
                }
                if socket
                    .send(Message::Text(v.to_string().into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
        let sessions: Vec<u64> = self.sessions.keys().copied().collect();
        for s in sessions {
            self.destroy_session(s).await;
        }
    }

    async fn expire_sessions(&mut self) -> Vec<Value> {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| now >= s.last_seen + self.state.session_timeout)
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::new();
        for s in expired {
            tracing::debug!(session = s, "Janus session timed out");
            self.destroy_session(s).await;
            out.push(json!({"janus": "timeout", "session_id": s}));
        }
        out
    }

    async fn destroy_session(&mut self, session: u64) {
        if self.sessions.remove(&session).is_some() {
            self.state.metrics.sessions.dec();
        }
        let handles: Vec<u64> = self
            .handles
            .iter()
            .filter(|(_, h)| h.session == session)
            .map(|(id, _)| *id)
            .collect();
        for h in handles {
            self.detach(h).await;
        }
    }

    /// Leaves the room (if joined) and forgets the handle.
    async fn detach(&mut self, id: u64) {
        let Some(h) = self.handles.remove(&id) else {
            return;
        };
        if let Some(w) = h.worker {
            let _ = self
                .state
                .workers
                .command(w, HandleId(id), Command::Leave, &self.events)
                .await;
            self.state.workers.forget(w, HandleId(id));
        }
    }

    async fn on_text(&mut self, text: &str) -> Vec<Value> {
        let Ok(msg) = serde_json::from_str::<Value>(text) else {
            return vec![error(&Value::Null, None, codes::INVALID_JSON, "JSON error")];
        };
        if !msg.is_object() {
            return vec![error(
                &Value::Null,
                None,
                codes::INVALID_JSON_OBJECT,
                "not an object",
            )];
        }
        let tx = msg.get("transaction").cloned().unwrap_or(Value::Null);
        let Some(request) = msg.get("janus").and_then(Value::as_str) else {
            return vec![error(&tx, None, codes::MISSING_REQUEST, "Missing request")];
        };
        if !tx.is_string() {
            return vec![error(
                &tx,
                None,
                codes::MISSING_MANDATORY_ELEMENT,
                "Missing mandatory element (transaction)",
            )];
        }
        let request = request.to_owned();
        match request.as_str() {
            "create" => {
                let id = janus_id();
                self.sessions.insert(
                    id,
                    Session {
                        token: msg.get("token").and_then(Value::as_str).map(str::to_owned),
                        last_seen: Instant::now(),
                    },
                );
                self.state.metrics.sessions.inc();
                return vec![json!({"janus": "success", "transaction": tx, "data": {"id": id}})];
            }
            "info" => {
                return vec![json!({
                    "janus": "server_info", "transaction": tx, "name": "Switchboard",
                    "version": 1, "version_string": env!("CARGO_PKG_VERSION"),
                    "plugins": {PLUGIN: {"name": "Switchboard VideoRoom"}},
                })]
            }
            _ => {}
        }
        let Some(session) = msg.get("session_id").and_then(Value::as_u64) else {
            return vec![error(
                &tx,
                None,
                codes::SESSION_NOT_FOUND,
                "Invalid session",
            )];
        };
        let Some(s) = self.sessions.get_mut(&session) else {
            return vec![error(
                &tx,
                Some(session),
                codes::SESSION_NOT_FOUND,
                "No such session",
            )];
        };
        s.last_seen = Instant::now();
        match request.as_str() {
            "keepalive" => vec![json!({"janus": "ack", "session_id": session, "transaction": tx})],
            "attach" => {
                if msg.get("plugin").and_then(Value::as_str) != Some(PLUGIN) {
                    return vec![error(
                        &tx,
                        Some(session),
                        codes::PLUGIN_NOT_FOUND,
                        "No such plugin",
                    )];
                }
                let id = janus_id();
                self.handles.insert(
                    id,
                    Handle {
                        session,
                        ..Default::default()
                    },
                );
                vec![
                    json!({"janus": "success", "session_id": session, "transaction": tx, "data": {"id": id}}),
                ]
            }
            "destroy" => {
                self.destroy_session(session).await;
                vec![json!({"janus": "success", "session_id": session, "transaction": tx})]
            }
            "claim" => vec![error(
                &tx,
                Some(session),
                codes::UNKNOWN,
                "claim is not supported",
            )],
            "message" | "trickle" | "hangup" | "detach" => {
                let Some(handle) = msg.get("handle_id").and_then(Value::as_u64) else {
                    return vec![error(
                        &tx,
                        Some(session),
                        codes::HANDLE_NOT_FOUND,
                        "Invalid handle",
                    )];
                };
                if self
                    .handles
                    .get(&handle)
                    .is_none_or(|h| h.session != session)
                {
                    return vec![error(
                        &tx,
                        Some(session),
                        codes::HANDLE_NOT_FOUND,
                        "No such handle",
                    )];
                }
                match request.as_str() {
                    "message" => self.on_message(session, handle, &tx, &msg).await,
                    "trickle" => self.on_trickle(session, handle, &tx, &msg).await,
                    "hangup" => {
                        self.to_handle(handle, Command::Hangup).await.ok();
                        vec![json!({"janus": "success", "session_id": session, "transaction": tx})]
                    }
                    _ => {
                        self.detach(handle).await;
                        vec![
                            json!({"janus": "success", "session_id": session, "transaction": tx}),
                            json!({"janus": "detached", "session_id": session, "sender": handle}),
                        ]
                    }
                }
            }
            _ => vec![error(
                &tx,
                Some(session),
                codes::UNKNOWN_REQUEST,
                "Unknown request",
            )],
        }
    }

    /// Sends a command to the worker of the handle's room.
    async fn to_handle(&self, handle: u64, cmd: Command) -> Result<Reply, RoomError> {
        let w = self
            .handles
            .get(&handle)
            .and_then(|h| h.worker)
            .ok_or(RoomError::JoinFirst)?;
        self.state
            .workers
            .command(w, HandleId(handle), cmd, &self.events)
            .await
    }

    async fn on_trickle(
        &mut self,
        session: u64,
        handle: u64,
        tx: &Value,
        msg: &Value,
    ) -> Vec<Value> {
        let mut candidates = Vec::new();
        if let Some(c) = msg.get("candidate") {
            candidates.push(c.clone());
        }
        if let Some(list) = msg.get("candidates").and_then(Value::as_array) {
            candidates.extend(list.iter().cloned());
        }
        if candidates.is_empty() {
            return vec![error(
                tx,
                Some(session),
                codes::MISSING_MANDATORY_ELEMENT,
                "Missing mandatory element (candidate)",
            )];
        }
        for c in candidates {
            let line = if c.get("completed").and_then(Value::as_bool) == Some(true) {
                None
            } else {
                match c.get("candidate").and_then(Value::as_str) {
                    Some(s) => Some(s.to_owned()),
                    None => {
                        return vec![error(
                            tx,
                            Some(session),
                            codes::INVALID_ELEMENT_TYPE,
                            "Invalid element type (candidate)",
                        )]
                    }
                }
            };
            // Trickle before join is harmless to drop: ICE-lite learns addresses from STUN.
            let _ = self
                .to_handle(handle, Command::Trickle { candidate: line })
                .await;
        }
        vec![json!({"janus": "ack", "session_id": session, "transaction": tx})]
    }

    async fn on_message(
        &mut self,
        session: u64,
        handle: u64,
        tx: &Value,
        msg: &Value,
    ) -> Vec<Value> {
        let Some(body) = msg.get("body") else {
            return vec![error(
                tx,
                Some(session),
                codes::MISSING_MANDATORY_ELEMENT,
                "Missing mandatory element (body)",
            )];
        };
        let ptype = self.handles.get(&handle).and_then(|h| h.ptype);
        let parsed = janus::parse_message(body, msg.get("jsep"), ptype);
        let plugin_reply = |sync: bool, data: Value, jsep: Option<Value>| -> Vec<Value> {
            let mut v = json!({
                "janus": if sync { "success" } else { "event" },
                "session_id": session, "sender": handle, "transaction": tx,
                "plugindata": {"plugin": PLUGIN, "data": data},
            });
            if let Some(j) = jsep {
                v["jsep"] = j;
            }
            if sync {
                vec![v]
            } else {
                vec![
                    json!({"janus": "ack", "session_id": session, "transaction": tx}),
                    v,
                ]
            }
        };
        let p = match parsed {
            Ok(p) => p,
            Err(e) => {
                let sync = body
                    .get("request")
                    .and_then(Value::as_str)
                    .is_some_and(|r| {
                        matches!(
                            r,
                            "create" | "destroy" | "exists" | "list" | "listparticipants"
                        )
                    });
                return plugin_reply(sync, janus::error_json(&e), None);
            }
        };
        let sync = p.sync;
        match self.dispatch(session, handle, p).await {
            Ok((reply, room)) => {
                let ptype = self.handles.get(&handle).and_then(|h| h.ptype);
                let (data, jsep) = janus::reply_json(&reply, room.as_ref(), ptype);
                if matches!(reply, Reply::Left) {
                    if let Some(h) = self.handles.get_mut(&handle) {
                        if let Some(w) = h.worker.take() {
                            self.state.workers.forget(w, HandleId(handle));
                        }
                        h.room = None;
                        h.ptype = None;
                    }
                }
                plugin_reply(sync, data, jsep)
            }
            Err(e) => plugin_reply(sync, janus::error_json(&e), None),
        }
    }

    /// Runs a parsed request on the right worker(s). Returns the reply and the handle's room.
    async fn dispatch(
        &mut self,
        session: u64,
        handle: u64,
        p: janus::Parsed,
    ) -> Result<(Reply, Option<RoomId>), VrError> {
        let workers = self.state.workers.clone();
        let hid = HandleId(handle);
        match p.cmd {
            Command::List => {
                let mut all = Vec::new();
                for w in 0..workers.len() {
                    if let Ok(Reply::List(rooms)) =
                        workers.command(w, hid, Command::List, &self.events).await
                    {
                        all.extend(rooms);
                    }
                }
                return Ok((Reply::List(all), None));
            }
            Command::Create {
                room,
                description,
                max_publishers,
            } => {
                if self.state.require_grant {
                    // Rooms are created by the first (granted) join; open creation would let
                    // anyone squat room ids.
                    return Err(VrError(
                        vr_codes::UNAUTHORIZED,
                        "Unauthorized (rooms are created on join)".into(),
                    ));
                }
                let room = room.unwrap_or_else(|| RoomId::Num(janus_id()));
                let w = workers.for_room(&room);
                let cmd = Command::Create {
                    room: Some(room),
                    description,
                    max_publishers,
                };
                return Ok((workers.command(w, hid, cmd, &self.events).await?, None));
            }
            Command::Destroy { ref room } if self.state.require_grant => {
                let _ = room;
                return Err(VrError(vr_codes::UNAUTHORIZED, "Unauthorized".into()));
            }
            Command::Destroy { ref room }
            | Command::Exists { ref room }
            | Command::ListParticipants { ref room } => {
                let w = workers.for_room(room);
                return Ok((workers.command(w, hid, p.cmd, &self.events).await?, None));
            }
            _ => {}
        }
        let joining = matches!(
            p.cmd,
            Command::JoinPublisher { .. } | Command::JoinSubscriber { .. }
        );
        if !joining {
            let room = self.handles.get(&handle).and_then(|h| h.room.clone());
            return Ok((self.to_handle(handle, p.cmd).await?, room));
        }
        if self
            .handles
            .get(&handle)
            .is_some_and(|h| h.worker.is_some())
        {
            return Err(RoomError::AlreadyJoined.into());
        }
        let room = p
            .room
            .clone()
            .ok_or_else(|| VrError(vr_codes::MISSING_ELEMENT, "Missing element (room)".into()))?;
        let grant = self.grant(session, p.token.as_deref())?;
        let (cmd, ptype) = match p.cmd {
            Command::JoinPublisher {
                room,
                feed,
                display,
                ..
            } => (
                Command::JoinPublisher {
                    room,
                    feed,
                    display,
                    grant,
                },
                Ptype::Publisher,
            ),
            Command::JoinSubscriber {
                room,
                feeds,
                quality,
                ..
            } => (
                Command::JoinSubscriber {
                    room,
                    feeds,
                    grant,
                    quality,
                },
                Ptype::Subscriber,
            ),
            // `joining` matched one of the two.
            _ => return Err(RoomError::Internal("not a join".into()).into()),
        };
        let w = workers.for_room(&room);
        let reply = workers.command(w, hid, cmd, &self.events).await?;
        if let Some(h) = self.handles.get_mut(&handle) {
            h.worker = Some(w);
            h.room = Some(room.clone());
            h.ptype = Some(ptype);
        }
        Ok((reply, Some(room)))
    }

    /// The grant for a join: the body's token, else the session's (`create`), else the URL's.
    fn grant(&self, session: u64, body_token: Option<&str>) -> Result<Option<Grant>, VrError> {
        let token = body_token
            .or_else(|| self.sessions.get(&session).and_then(|s| s.token.as_deref()))
            .or(self.url_token.as_deref());
        let Some(token) = token else {
            return if self.state.require_grant {
                Err(VrError(
                    vr_codes::UNAUTHORIZED,
                    "Unauthorized (no grant)".into(),
                ))
            } else {
                Ok(None)
            };
        };
        self.state
            .grants
            .verify(token, (self.state.clock)())
            .map(Some)
            .map_err(|e| VrError(vr_codes::UNAUTHORIZED, format!("Unauthorized ({e})")))
    }

    fn on_event(&mut self, handle: HandleId, event: RoomEvent) -> Option<Value> {
        let h = self.handles.get(&handle.0)?;
        let session = h.session;
        if let RoomEvent::RoomDestroyed { .. } = event {
            if let Some(h) = self.handles.get_mut(&handle.0) {
                h.worker = None;
                h.room = None;
                h.ptype = None;
            }
        }
        Some(match janus::event_json(&event) {
            EventJson::Plugin(data) => json!({
                "janus": "event", "session_id": session, "sender": handle.0,
                "plugindata": {"plugin": PLUGIN, "data": data},
            }),
            EventJson::Core(kind, extra) => {
                let mut v = json!({"janus": kind, "session_id": session, "sender": handle.0});
                if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                    o.extend(e.clone());
                }
                v
            }
        })
    }
}
