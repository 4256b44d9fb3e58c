//! The control plane's entities.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// An application: the tenant every user, session and dialog belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AppId(pub i64);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

impl std::fmt::Display for AppId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    pub id: AppId,
    pub name: String,
    pub auth_key: String,
    pub auth_secret: String,
    pub account_key: String,
    /// The owner's key for the server API (`Authorization: ApiKey <key>`): class
    /// management. `None` only if setting it failed right after creation (`app rotate-key`
    /// gives one).
    pub api_key: Option<String>,
    pub is_default: bool,
    pub created_at: OffsetDateTime,
}

/// A session: an application session (`user_id` none) or a user session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: i64,
    /// The `_id` field of the wire object.
    pub oid: String,
    pub token: String,
    pub app_id: AppId,
    pub user_id: Option<UserId>,
    pub nonce: i64,
    pub ts: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// The profile fields of a user, as written on sign-up and update.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserProfile {
    pub login: Option<String>,
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub phone: Option<String>,
    pub website: Option<String>,
    pub external_user_id: Option<i64>,
    pub facebook_id: Option<String>,
    pub twitter_id: Option<String>,
    pub blob_id: Option<i64>,
    pub custom_data: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub app_id: AppId,
    pub profile: UserProfile,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub last_request_at: Option<OffsetDateTime>,
}
