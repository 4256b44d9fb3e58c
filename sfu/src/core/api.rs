//! What goes into and comes out of the core: ids, commands, replies, events, errors, counters.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::grant::Grant;

/// A Janus handle: one attached videoroom plugin instance (a publisher, or a subscriber).
/// Chosen by the signalling layer, unique in the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandleId(pub u64);

/// A publisher's id in its room (the QuickBlox client uses the QuickBlox user id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FeedId(pub u64);

impl fmt::Display for FeedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A room id as Janus clients send it: a number, or a string (`string_ids`, which is what the
/// QuickBlox client uses: the chat dialog's `_id`). `1234` and `"1234"` are the same room.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RoomId {
    Num(u64),
    Str(String),
}

impl RoomId {
    /// The canonical text form, used for equality with grants and for placement.
    pub fn key(&self) -> String {
        match self {
            RoomId::Num(n) => n.to_string(),
            RoomId::Str(s) => s.clone(),
        }
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomId::Num(n) => n.fmt(f),
            RoomId::Str(s) => s.fmt(f),
        }
    }
}

/// Per-subscription quality request (Janus `configure` on a subscriber handle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quality {
    /// Highest simulcast layer wanted: 0 low, 1 medium, 2 high (Janus `substream`).
    pub substream: u8,
    /// Highest temporal layer wanted (Janus `temporal`): VP8 frames of higher layers are
    /// dropped. Other codecs forward every temporal layer.
    pub temporal: u8,
}

/// The fields of a `configure` that change the quality; absent ones keep their value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QualityChange {
    pub substream: Option<u8>,
    pub temporal: Option<u8>,
}

impl QualityChange {
    pub fn apply_to(self, q: &mut Quality) {
        if let Some(s) = self.substream {
            q.substream = s;
        }
        if let Some(t) = self.temporal {
            q.temporal = t;
        }
    }
}

impl Default for Quality {
    fn default() -> Self {
        Self {
            substream: 2,
            temporal: 2,
        }
    }
}

/// A command for one handle, from the signalling layer.
#[derive(Debug)]
pub enum Command {
    /// Create a room (Janus `create`); `None` picks a fresh numeric id.
    Create {
        room: Option<RoomId>,
        description: Option<String>,
        max_publishers: Option<usize>,
    },
    Destroy {
        room: RoomId,
    },
    Exists {
        room: RoomId,
    },
    List,
    ListParticipants {
        room: RoomId,
    },
    JoinPublisher {
        room: RoomId,
        feed: Option<FeedId>,
        display: Option<String>,
        grant: Option<Grant>,
    },
    /// Publisher `configure`/`publish`, optionally with an SDP offer.
    Configure {
        offer: Option<String>,
        audio: Option<bool>,
        video: Option<bool>,
        display: Option<String>,
    },
    Unpublish,
    JoinSubscriber {
        room: RoomId,
        feeds: Vec<FeedId>,
        grant: Option<Grant>,
        quality: Quality,
    },
    /// Subscriber `start` with the SDP answer.
    Start {
        answer: Option<String>,
    },
    /// Subscriber `configure`: quality and on/off per kind.
    ConfigureSubscriber {
        quality: QualityChange,
        audio: Option<bool>,
        video: Option<bool>,
    },
    Pause,
    Resume,
    /// Subscriber `switch` to other feeds, media kinds matched in order, no renegotiation.
    Switch {
        feeds: Vec<FeedId>,
    },
    /// A remote ICE candidate (`trickle`); `None` is end-of-candidates.
    Trickle {
        candidate: Option<String>,
    },
    /// Janus `hangup`: close the PeerConnection, stay in the room.
    Hangup,
    /// `leave`, `detach`, or the session went away.
    Leave,
}

/// A publisher as other participants learn of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherInfo {
    pub feed: FeedId,
    pub display: Option<String>,
    pub streams: Vec<StreamInfo>,
    pub talking: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub kind: MediaKind,
    pub mid: String,
    pub codec: Option<String>,
    pub simulcast: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    pub room: RoomId,
    pub description: String,
    pub max_publishers: usize,
    pub participants: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantInfo {
    pub feed: FeedId,
    pub display: Option<String>,
    pub publisher: bool,
    pub talking: bool,
}

/// The direct answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Created {
        room: RoomId,
    },
    Destroyed {
        room: RoomId,
    },
    Exists {
        room: RoomId,
        exists: bool,
    },
    List(Vec<RoomInfo>),
    Participants {
        room: RoomId,
        participants: Vec<ParticipantInfo>,
    },
    Joined {
        room: RoomId,
        description: String,
        feed: FeedId,
        private_id: u32,
        publishers: Vec<PublisherInfo>,
    },
    Configured {
        answer: Option<String>,
    },
    Unpublished,
    Attached {
        room: RoomId,
        feed: FeedId,
        display: Option<String>,
        offer: String,
    },
    Started,
    Paused,
    Switched {
        feed: FeedId,
    },
    /// The command needs no data back (trickle, hangup, leave).
    Ok,
    Left,
}

/// Something that happened to a handle without it asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// New publishers in the room (to every other publisher handle).
    Publishers {
        room: RoomId,
        publishers: Vec<PublisherInfo>,
    },
    Unpublished {
        room: RoomId,
        feed: FeedId,
    },
    Leaving {
        room: RoomId,
        feed: FeedId,
    },
    Talking {
        room: RoomId,
        feed: FeedId,
        talking: bool,
        audio_level: u8,
    },
    /// ICE and DTLS are up on this handle's PeerConnection.
    WebrtcUp,
    /// Media of a kind started or stopped arriving (publisher) / being sent (subscriber).
    Media {
        kind: MediaKind,
        mid: String,
        receiving: bool,
    },
    /// The PeerConnection closed.
    Hangup {
        reason: String,
    },
    /// The room was destroyed under this handle.
    RoomDestroyed {
        room: RoomId,
    },
}

/// Why a command failed; the signalling layer maps each to its Janus code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    #[error("no such room {0}")]
    NoSuchRoom(String),
    #[error("room {0} already exists")]
    RoomExists(String),
    #[error("no such feed {0}")]
    NoSuchFeed(u64),
    #[error("maximum number of publishers ({0}) reached")]
    RoomFull(usize),
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("already joined")]
    AlreadyJoined,
    #[error("join the room first")]
    JoinFirst,
    #[error("already published")]
    AlreadyPublished,
    #[error("not published")]
    NotPublished,
    #[error("a publisher with id {0} is already in the room")]
    IdExists(u64),
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Counters the core keeps in plain integers; the driver moves them into Prometheus after each
/// batch (see `metrics.rs`), so the core touches no atomics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub rtp_in: u64,
    pub rtp_forwarded: u64,
    /// NACKs received from subscribers.
    pub nacks: u64,
    /// NACKs sent to publishers.
    pub nacks_sent: u64,
    /// Packets resent to subscribers (RTX) in answer to their NACKs.
    pub retransmissions: u64,
    pub keyframe_requests: u64,
    pub plis_from_subscribers: u64,
    pub layer_switches: u64,
    /// VP8 packets of temporal layers above a subscriber's request, left out.
    pub temporal_drops: u64,
    /// Peer connections fed a timeout because their deadline passed (each one a full pass of
    /// str0m's timers, beside the pass after every forwarded packet).
    pub timer_wakes: u64,
    /// Bandwidth probing re-run for subscribers held back by their estimate.
    pub bwe_reprobes: u64,
    pub malformed: u64,
    pub unknown_source: u64,
}

impl Stats {
    /// Returns the counts so far and resets them.
    pub fn take(&mut self) -> Stats {
        std::mem::take(self)
    }
}
