//! The Janus videoroom API on the wire: parsing requests into core [`Command`]s and turning
//! replies and events into Janus JSON, with Janus's error codes. No IO; the WebSocket driver
//! (`driver/ws.rs`) owns sessions and handles and calls into this.

use serde_json::{json, Map, Value};

use crate::core::api::{
    Command, FeedId, PublisherInfo, Quality, QualityChange, Reply, RoomError, RoomEvent, RoomId,
    StreamInfo,
};

pub const PLUGIN: &str = "janus.plugin.videoroom";

/// Janus core error codes (`janus.h`).
pub mod codes {
    pub const UNAUTHORIZED: u16 = 403;
    pub const UNKNOWN: u16 = 490;
    pub const MISSING_REQUEST: u16 = 452;
    pub const UNKNOWN_REQUEST: u16 = 453;
    pub const INVALID_JSON: u16 = 454;
    pub const INVALID_JSON_OBJECT: u16 = 455;
    pub const MISSING_MANDATORY_ELEMENT: u16 = 456;
    pub const SESSION_NOT_FOUND: u16 = 458;
    pub const HANDLE_NOT_FOUND: u16 = 459;
    pub const PLUGIN_NOT_FOUND: u16 = 460;
    pub const INVALID_ELEMENT_TYPE: u16 = 467;
}

/// Videoroom plugin error codes (`janus_videoroom.c`).
pub mod vr_codes {
    pub const UNKNOWN_ERROR: u16 = 499;
    pub const INVALID_JSON: u16 = 422;
    pub const INVALID_REQUEST: u16 = 423;
    pub const JOIN_FIRST: u16 = 424;
    pub const ALREADY_JOINED: u16 = 425;
    pub const NO_SUCH_ROOM: u16 = 426;
    pub const ROOM_EXISTS: u16 = 427;
    pub const NO_SUCH_FEED: u16 = 428;
    pub const MISSING_ELEMENT: u16 = 429;
    pub const INVALID_ELEMENT: u16 = 430;
    pub const PUBLISHERS_FULL: u16 = 432;
    pub const UNAUTHORIZED: u16 = 433;
    pub const ALREADY_PUBLISHED: u16 = 434;
    pub const NOT_PUBLISHED: u16 = 435;
    pub const ID_EXISTS: u16 = 436;
    pub const INVALID_SDP: u16 = 437;
}

/// A plugin-level error: code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrError(pub u16, pub String);

impl From<RoomError> for VrError {
    fn from(e: RoomError) -> Self {
        use vr_codes::*;
        let code = match &e {
            RoomError::NoSuchRoom(_) => NO_SUCH_ROOM,
            RoomError::RoomExists(_) => ROOM_EXISTS,
            RoomError::NoSuchFeed(_) => NO_SUCH_FEED,
            RoomError::RoomFull(_) => PUBLISHERS_FULL,
            RoomError::Unauthorized(_) => UNAUTHORIZED,
            RoomError::AlreadyJoined => ALREADY_JOINED,
            RoomError::JoinFirst => JOIN_FIRST,
            RoomError::AlreadyPublished => ALREADY_PUBLISHED,
            RoomError::NotPublished => NOT_PUBLISHED,
            RoomError::IdExists(_) => ID_EXISTS,
            RoomError::InvalidSdp(_) => INVALID_SDP,
            RoomError::InvalidRequest(_) => INVALID_REQUEST,
            RoomError::Internal(_) => UNKNOWN_ERROR,
        };
        VrError(code, e.to_string())
    }
}

/// The role a handle took by joining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ptype {
    Publisher,
    Subscriber,
}

/// A parsed videoroom `message` body.
#[derive(Debug)]
pub struct Parsed {
    pub cmd: Command,
    /// The room the request names, if any (joins, sync requests).
    pub room: Option<RoomId>,
    /// Answered with `success` + plugindata rather than `ack` + event.
    pub sync: bool,
    /// A grant token carried in the body (`join`).
    pub token: Option<String>,
}

fn room_of(body: &Map<String, Value>) -> Result<Option<RoomId>, VrError> {
    match body.get("room") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value::<RoomId>(v.clone())
            .ok()
            .filter(|r| !matches!(r, RoomId::Str(s) if s.is_empty()))
            .map(Some)
            .ok_or_else(|| VrError(vr_codes::INVALID_ELEMENT, "Invalid element (room)".into())),
    }
}

fn need_room(body: &Map<String, Value>) -> Result<RoomId, VrError> {
    room_of(body)?
        .ok_or_else(|| VrError(vr_codes::MISSING_ELEMENT, "Missing element (room)".into()))
}

fn feed_of(v: &Value) -> Option<FeedId> {
    match v {
        Value::Number(n) => n.as_u64().map(FeedId),
        Value::String(s) => s.parse().ok().map(FeedId),
        _ => None,
    }
}

fn opt_bool(body: &Map<String, Value>, key: &str) -> Option<bool> {
    body.get(key).and_then(Value::as_bool)
}

fn opt_str(body: &Map<String, Value>, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Janus `substream`/`temporal`, each clamped to the top layer (2).
fn quality_of(body: &Map<String, Value>) -> QualityChange {
    let layer = |key| {
        body.get(key)
            .and_then(Value::as_u64)
            .map(|l| l.min(2) as u8)
    };
    QualityChange {
        substream: layer("substream"),
        temporal: layer("temporal"),
    }
}

/// Feeds a subscriber join/switch names: legacy `feed`, or multistream `streams: [{feed}]`.
fn feeds_of(body: &Map<String, Value>) -> Result<Vec<FeedId>, VrError> {
    if let Some(f) = body.get("feed") {
        return feed_of(f)
            .map(|f| vec![f])
            .ok_or_else(|| VrError(vr_codes::INVALID_ELEMENT, "Invalid element (feed)".into()));
    }
    let Some(streams) = body.get("streams").and_then(Value::as_array) else {
        return Err(VrError(
            vr_codes::MISSING_ELEMENT,
            "Missing element (feed)".into(),
        ));
    };
    let mut feeds = Vec::new();
    for s in streams {
        let f = s.get("feed").and_then(feed_of).ok_or_else(|| {
            VrError(
                vr_codes::INVALID_ELEMENT,
                "Invalid element (streams)".into(),
            )
        })?;
        if !feeds.contains(&f) {
            feeds.push(f);
        }
    }
    if feeds.is_empty() {
        return Err(VrError(
            vr_codes::MISSING_ELEMENT,
            "Missing element (streams)".into(),
        ));
    }
    Ok(feeds)
}

/// Parses a videoroom `message` body (and its jsep) for a handle that joined as `ptype`.
pub fn parse_message(
    body: &Value,
    jsep: Option<&Value>,
    ptype: Option<Ptype>,
) -> Result<Parsed, VrError> {
    let body = body
        .as_object()
        .ok_or_else(|| VrError(vr_codes::INVALID_JSON, "body is not an object".into()))?;
    let request = body.get("request").and_then(Value::as_str).ok_or_else(|| {
        VrError(
            vr_codes::MISSING_ELEMENT,
            "Missing element (request)".into(),
        )
    })?;
    let sdp = |want: &str| -> Result<Option<String>, VrError> {
        let Some(j) = jsep else { return Ok(None) };
        let kind = j.get("type").and_then(Value::as_str).unwrap_or_default();
        if kind != want {
            return Err(VrError(431, format!("Unsupported SDP type '{kind}'")));
        }
        j.get("sdp")
            .and_then(Value::as_str)
            .map(|s| Some(s.to_owned()))
            .ok_or_else(|| VrError(vr_codes::INVALID_SDP, "Missing SDP".into()))
    };
    let room = room_of(body)?;
    let parsed = |cmd, sync| Parsed {
        cmd,
        room: room.clone(),
        sync,
        token: None,
    };
    Ok(match request {
        "create" => parsed(
            Command::Create {
                room: room.clone(),
                description: opt_str(body, "description"),
                max_publishers: body
                    .get("publishers")
                    .and_then(Value::as_u64)
                    .map(|n| n as usize),
            },
            true,
        ),
        "destroy" => parsed(
            Command::Destroy {
                room: need_room(body)?,
            },
            true,
        ),
        "exists" => parsed(
            Command::Exists {
                room: need_room(body)?,
            },
            true,
        ),
        "list" => parsed(Command::List, true),
        "listparticipants" => parsed(
            Command::ListParticipants {
                room: need_room(body)?,
            },
            true,
        ),
        "join" | "joinandconfigure" => {
            let room = need_room(body)?;
            let token = opt_str(body, "token");
            let ptype = body.get("ptype").and_then(Value::as_str).ok_or_else(|| {
                VrError(vr_codes::MISSING_ELEMENT, "Missing element (ptype)".into())
            })?;
            let cmd = match ptype {
                "publisher" => Command::JoinPublisher {
                    room: room.clone(),
                    feed: match body.get("id") {
                        None | Some(Value::Null) => None,
                        Some(v) => Some(feed_of(v).ok_or_else(|| {
                            VrError(vr_codes::INVALID_ELEMENT, "Invalid element (id)".into())
                        })?),
                    },
                    display: opt_str(body, "display"),
                    grant: None,
                },
                "subscriber" | "listener" => Command::JoinSubscriber {
                    room: room.clone(),
                    feeds: feeds_of(body)?,
                    grant: None,
                    quality: {
                        let mut q = Quality::default();
                        quality_of(body).apply_to(&mut q);
                        q
                    },
                },
                _ => {
                    return Err(VrError(
                        vr_codes::INVALID_ELEMENT,
                        "Invalid element (ptype)".into(),
                    ))
                }
            };
            Parsed {
                cmd,
                room: Some(room),
                sync: false,
                token,
            }
        }
        "configure" | "publish" if ptype == Some(Ptype::Publisher) => parsed(
            Command::Configure {
                offer: sdp("offer")?,
                audio: opt_bool(body, "audio"),
                video: opt_bool(body, "video"),
                display: opt_str(body, "display"),
            },
            false,
        ),
        "configure" if ptype == Some(Ptype::Subscriber) => parsed(
            Command::ConfigureSubscriber {
                quality: quality_of(body),
                audio: opt_bool(body, "audio"),
                video: opt_bool(body, "video"),
            },
            false,
        ),
        "unpublish" => parsed(Command::Unpublish, false),
        "start" => parsed(
            Command::Start {
                answer: sdp("answer")?,
            },
            false,
        ),
        "pause" => parsed(Command::Pause, false),
        "switch" => parsed(
            Command::Switch {
                feeds: feeds_of(body)?,
            },
            false,
        ),
        "leave" => parsed(Command::Leave, false),
        "configure" | "publish" => {
            return Err(VrError(vr_codes::JOIN_FIRST, "Join the room first".into()))
        }
        other => {
            return Err(VrError(
                vr_codes::INVALID_REQUEST,
                format!("Unknown request '{other}'"),
            ))
        }
    })
}

fn streams_json(streams: &[StreamInfo]) -> Value {
    Value::Array(
        streams
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut o = json!({"type": s.kind.as_str(), "mindex": i, "mid": s.mid});
                if let Some(c) = &s.codec {
                    o["codec"] = json!(c);
                }
                if s.simulcast {
                    o["simulcast"] = json!(true);
                }
                o
            })
            .collect(),
    )
}

fn publisher_json(p: &PublisherInfo) -> Value {
    let mut o = json!({
        "id": p.feed.0,
        "streams": streams_json(&p.streams),
        "talking": p.talking,
    });
    if let Some(d) = &p.display {
        o["display"] = json!(d);
    }
    for s in &p.streams {
        let key = format!("{}_codec", s.kind.as_str());
        if let (Some(c), None) = (&s.codec, o.get(&key)) {
            o[key] = json!(c);
        }
    }
    o
}

/// Plugin data and optional jsep for a successful reply.
pub fn reply_json(
    reply: &Reply,
    room: Option<&RoomId>,
    ptype: Option<Ptype>,
) -> (Value, Option<Value>) {
    let room = room.map(|r| json!(r)).unwrap_or(Value::Null);
    match reply {
        Reply::Created { room } => (
            json!({"videoroom": "created", "room": room, "permanent": false}),
            None,
        ),
        Reply::Destroyed { room } => (json!({"videoroom": "destroyed", "room": room}), None),
        Reply::Exists { room, exists } => (
            json!({"videoroom": "success", "room": room, "exists": exists}),
            None,
        ),
        Reply::List(rooms) => (
            json!({"videoroom": "success", "list": rooms.iter().map(|r| json!({
                "room": r.room,
                "description": r.description,
                "num_participants": r.participants,
                "max_publishers": r.max_publishers,
                "pin_required": false,
            })).collect::<Vec<_>>()}),
            None,
        ),
        Reply::Participants { room, participants } => (
            json!({"videoroom": "participants", "room": room, "participants": participants.iter().map(|p| {
                let mut o = json!({"id": p.feed.0, "publisher": p.publisher, "talking": p.talking});
                if let Some(d) = &p.display { o["display"] = json!(d); }
                o
            }).collect::<Vec<_>>()}),
            None,
        ),
        Reply::Joined {
            room,
            description,
            feed,
            private_id,
            publishers,
        } => (
            json!({
                "videoroom": "joined",
                "room": room,
                "description": description,
                "id": feed.0,
                "private_id": private_id,
                "publishers": publishers.iter().map(publisher_json).collect::<Vec<_>>(),
                "attendees": [],
            }),
            None,
        ),
        Reply::Configured { answer } => (
            json!({"videoroom": "event", "room": room, "configured": "ok"}),
            answer
                .as_ref()
                .map(|sdp| json!({"type": "answer", "sdp": sdp})),
        ),
        Reply::Unpublished => (
            json!({"videoroom": "event", "room": room, "unpublished": "ok"}),
            None,
        ),
        Reply::Attached {
            room,
            feed,
            display,
            offer,
        } => {
            let mut o = json!({"videoroom": "attached", "room": room, "id": feed.0});
            if let Some(d) = display {
                o["display"] = json!(d);
            }
            (o, Some(json!({"type": "offer", "sdp": offer})))
        }
        Reply::Started => (
            json!({"videoroom": "event", "room": room, "started": "ok"}),
            None,
        ),
        Reply::Paused => (
            json!({"videoroom": "event", "room": room, "paused": "ok"}),
            None,
        ),
        Reply::Switched { feed } => (
            json!({"videoroom": "event", "room": room, "switched": "ok", "id": feed.0}),
            None,
        ),
        Reply::Left => {
            let what = if ptype == Some(Ptype::Subscriber) {
                "left"
            } else {
                "leaving"
            };
            (
                json!({"videoroom": "event", "room": room, what: "ok"}),
                None,
            )
        }
        Reply::Ok => (json!({"videoroom": "event", "room": room}), None),
    }
}

/// Plugin data of a videoroom error.
pub fn error_json(e: &VrError) -> Value {
    json!({"videoroom": "event", "error_code": e.0, "error": e.1})
}

/// How an event reaches the client: inside plugindata, or as a top-level Janus message.
pub enum EventJson {
    Plugin(Value),
    /// `(janus, extra fields)` e.g. `("webrtcup", {})`.
    Core(&'static str, Value),
}

pub fn event_json(event: &RoomEvent) -> EventJson {
    match event {
        RoomEvent::Publishers { room, publishers } => EventJson::Plugin(json!({
            "videoroom": "event",
            "room": room,
            "publishers": publishers.iter().map(publisher_json).collect::<Vec<_>>(),
        })),
        RoomEvent::Unpublished { room, feed } => {
            EventJson::Plugin(json!({"videoroom": "event", "room": room, "unpublished": feed.0}))
        }
        RoomEvent::Leaving { room, feed } => {
            EventJson::Plugin(json!({"videoroom": "event", "room": room, "leaving": feed.0}))
        }
        RoomEvent::Talking {
            room,
            feed,
            talking,
            audio_level,
        } => EventJson::Plugin(json!({
            "videoroom": if *talking { "talking" } else { "stopped-talking" },
            "room": room,
            "id": feed.0,
            "audio-level-dBov-avg": audio_level,
        })),
        RoomEvent::RoomDestroyed { room } => {
            EventJson::Plugin(json!({"videoroom": "destroyed", "room": room}))
        }
        RoomEvent::WebrtcUp => EventJson::Core("webrtcup", json!({})),
        RoomEvent::Media {
            kind,
            mid,
            receiving,
        } => EventJson::Core(
            "media",
            json!({"type": kind.as_str(), "mid": mid, "receiving": receiving}),
        ),
        RoomEvent::Hangup { reason } => EventJson::Core("hangup", json!({"reason": reason})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quickblox_publisher_join_parses() {
        let p = parse_message(
            &json!({"request":"join","room":"5f1c0a","ptype":"publisher","id":42,"display":"Alice"}),
            None,
            None,
        )
        .unwrap();
        assert_eq!(p.room, Some(RoomId::Str("5f1c0a".into())));
        assert!(matches!(
            p.cmd,
            Command::JoinPublisher {
                feed: Some(FeedId(42)),
                ..
            }
        ));
    }

    #[test]
    fn subscriber_join_accepts_feed_or_streams() {
        let a = parse_message(
            &json!({"request":"join","room":1,"ptype":"subscriber","feed":7}),
            None,
            None,
        )
        .unwrap();
        let b = parse_message(
            &json!({"request":"join","room":1,"ptype":"subscriber","streams":[{"feed":7},{"feed":"8"}]}),
            None,
            None,
        )
        .unwrap();
        assert!(
            matches!(a.cmd, Command::JoinSubscriber { ref feeds, .. } if feeds == &[FeedId(7)])
        );
        assert!(
            matches!(b.cmd, Command::JoinSubscriber { ref feeds, .. } if feeds == &[FeedId(7), FeedId(8)])
        );
    }

    #[test]
    fn bad_bodies_get_videoroom_codes() {
        let code = |body: Value, ptype| parse_message(&body, None, ptype).unwrap_err().0;
        assert_eq!(code(json!("x"), None), vr_codes::INVALID_JSON);
        assert_eq!(code(json!({}), None), vr_codes::MISSING_ELEMENT);
        assert_eq!(
            code(json!({"request":"fly"}), None),
            vr_codes::INVALID_REQUEST
        );
        assert_eq!(
            code(json!({"request":"join","ptype":"publisher"}), None),
            vr_codes::MISSING_ELEMENT
        );
        assert_eq!(
            code(
                json!({"request":"join","room":[1],"ptype":"publisher"}),
                None
            ),
            vr_codes::INVALID_ELEMENT
        );
        assert_eq!(
            code(json!({"request":"join","room":1,"ptype":"boss"}), None),
            vr_codes::INVALID_ELEMENT
        );
        assert_eq!(
            code(json!({"request":"configure"}), None),
            vr_codes::JOIN_FIRST
        );
        let wrong_sdp = parse_message(
            &json!({"request":"configure"}),
            Some(&json!({"type":"answer","sdp":"v=0"})),
            Some(Ptype::Publisher),
        );
        assert_eq!(wrong_sdp.unwrap_err().0, 431);
    }

    #[test]
    fn subscriber_configure_changes_only_the_quality_fields_it_names() {
        let quality = |body: Value| match parse_message(&body, None, Some(Ptype::Subscriber))
            .unwrap()
            .cmd
        {
            Command::ConfigureSubscriber { quality, .. } => quality,
            other => panic!("{other:?}"),
        };
        let temporal_only = quality(json!({"request":"configure","temporal":0}));
        assert_eq!(
            temporal_only,
            QualityChange {
                substream: None,
                temporal: Some(0)
            }
        );
        let mut q = Quality {
            substream: 1,
            temporal: 2,
        };
        temporal_only.apply_to(&mut q);
        assert_eq!((q.substream, q.temporal), (1, 0), "substream kept");
        let clamped = quality(json!({"request":"configure","substream":9,"temporal":7}));
        assert_eq!((clamped.substream, clamped.temporal), (Some(2), Some(2)));
    }

    #[test]
    fn room_errors_map_to_janus_codes() {
        assert_eq!(VrError::from(RoomError::RoomFull(12)).0, 432);
        assert_eq!(VrError::from(RoomError::Unauthorized("x")).0, 433);
        assert_eq!(VrError::from(RoomError::NoSuchFeed(3)).0, 428);
    }
}
