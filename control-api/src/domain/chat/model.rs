//! Chat entities: dialogs, messages and what the XMPP server hands in to post one.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::domain::model::{AppId, UserId};

/// QuickBlox dialog types, with their wire numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DialogType {
    /// Anyone in the application may read, post and join; occupants are not enforced.
    Public = 1,
    /// Only occupants may read and post.
    Group = 2,
    /// Exactly two occupants, one dialog per pair.
    Private = 3,
}

impl DialogType {
    pub fn from_number(n: i64) -> Option<Self> {
        Some(match n {
            1 => Self::Public,
            2 => Self::Group,
            3 => Self::Private,
            _ => return None,
        })
    }

    pub fn number(self) -> i64 {
        self as i64
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dialog {
    /// 24 hex characters, shaped like a BSON ObjectId.
    pub id: String,
    pub app_id: AppId,
    pub kind: DialogType,
    pub name: Option<String>,
    pub photo: Option<String>,
    /// The creator.
    pub user_id: UserId,
    /// In the order they were added; the creator first.
    pub occupants: Vec<UserId>,
    /// Custom data (`data[class_name]=..&data[field]=..`), kept as sent.
    pub data: Option<Value>,
    pub is_join_required: Option<bool>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub last_message: Option<String>,
    /// Unix seconds.
    pub last_message_date_sent: Option<i64>,
    pub last_message_user_id: Option<UserId>,
    pub last_message_id: Option<String>,
}

impl Dialog {
    pub fn is_occupant(&self, user: UserId) -> bool {
        self.occupants.contains(&user)
    }

    /// Whether `user` may see the dialog, read its history and post to it.
    pub fn is_visible_to(&self, user: UserId) -> bool {
        self.kind == DialogType::Public || self.is_occupant(user)
    }

    /// The XMPP room JID of a group or public dialog (`{app}_{dialog}@muc.{chat}`); private
    /// dialogs have none.
    pub fn xmpp_room_jid(&self, chat_endpoint: &str) -> Option<String> {
        (self.kind != DialogType::Private)
            .then(|| format!("{}_{}@muc.{chat_endpoint}", self.app_id, self.id))
    }

    /// The other occupant of a private dialog.
    pub fn peer_of(&self, user: UserId) -> Option<UserId> {
        if self.kind != DialogType::Private {
            return None;
        }
        self.occupants.iter().copied().find(|o| *o != user)
    }
}

/// One attachment, kept as sent: `type`, `id`, `url`, `name`, `size`, `content-type`, ...
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attachment {
    pub fields: Map<String, Value>,
}

/// A message as the XMPP server (or the REST layer) hands it in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewChatMessage {
    /// The client-chosen 24-hex id from XMPP; generated when `None`.
    pub id: Option<String>,
    pub dialog_id: Option<String>,
    /// 1:1 without a dialog id: the private dialog of the pair is found or created.
    pub recipient_id: Option<UserId>,
    pub body: String,
    pub attachments: Vec<Attachment>,
    /// Custom parameters, kept as sent.
    pub custom: Map<String, Value>,
    pub markable: bool,
    pub save_to_history: bool,
    /// Unix seconds; the server assigns it when `None`.
    pub date_sent: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChatMessage {
    pub id: String,
    pub dialog_id: String,
    pub sender_id: UserId,
    pub recipient_id: Option<UserId>,
    pub body: String,
    pub attachments: Vec<Attachment>,
    pub custom: Map<String, Value>,
    pub markable: bool,
    /// Unix seconds.
    pub date_sent: i64,
    /// Who read it, the sender included.
    pub read_ids: Vec<UserId>,
    /// Who received it, the sender included.
    pub delivered_ids: Vec<UserId>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}
