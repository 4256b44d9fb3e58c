//! Conference admission: the control plane mints a join grant (a JWT, HS256) for a
//! logged-in occupant of a dialog; the SFU verifies it with the shared secret and never
//! reads this database. The claims are the SFU's (`sfu::grant`): `iss` "switchboard",
//! `app`, `sub` (user id as text), `room` (the dialog id), `role`, `iat`, `exp` — the
//! binary's tests check that a grant minted here verifies there.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use time::OffsetDateTime;

use super::error::DomainError;
use super::sessions::Caller;
use super::ControlPlane;

/// Where conferences are and how grants are signed.
#[derive(Clone)]
pub struct ConferenceConfig {
    pub grant_secret: Vec<u8>,
    /// How long a grant admits its holder; joining takes seconds, so minutes suffice.
    pub grant_ttl: Duration,
    /// The Janus WebSocket endpoint clients connect to (`wss://host:port/janus`).
    pub janus_url: String,
}

impl std::fmt::Debug for ConferenceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConferenceConfig")
            .field("grant_ttl", &self.grant_ttl)
            .field("janus_url", &self.janus_url)
            .finish_non_exhaustive()
    }
}

/// What a grant lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConferenceRole {
    /// Publish and subscribe.
    Publisher,
    /// Subscribe only.
    Subscriber,
}

impl ConferenceRole {
    pub fn parse(raw: Option<&str>) -> Result<Self, DomainError> {
        match raw.map(str::trim) {
            None | Some("") | Some("publisher") => Ok(Self::Publisher),
            Some("subscriber") => Ok(Self::Subscriber),
            Some(_) => Err(DomainError::invalid(
                "role",
                "must be publisher or subscriber",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publisher => "publisher",
            Self::Subscriber => "subscriber",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ConferenceGrant {
    pub token: String,
    pub room: String,
    pub role: ConferenceRole,
    pub expires_at: OffsetDateTime,
    pub janus_url: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'static str,
    app: i64,
    sub: String,
    room: &'a str,
    role: ConferenceRole,
    iat: i64,
    exp: i64,
}

/// Signs a grant; pure, so the binary can check it against the SFU's verifier.
pub fn mint_grant(
    secret: &[u8],
    app: i64,
    user: i64,
    room: &str,
    role: ConferenceRole,
    now: OffsetDateTime,
    ttl: Duration,
) -> String {
    let iat = now.unix_timestamp();
    let claims = Claims {
        iss: "switchboard",
        app,
        sub: user.to_string(),
        room,
        role,
        iat,
        exp: iat + ttl.as_secs() as i64,
    };
    // HS256 over plain strings and integers cannot fail.
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 encoding of plain claims")
}

impl ControlPlane {
    /// `POST /calls/conference/token.json`: a grant for the caller in the room of a dialog
    /// they may see (occupants; anyone of the app for public dialogs).
    pub async fn conference_grant(
        &self,
        caller: &Caller,
        room: &str,
        role: ConferenceRole,
    ) -> Result<ConferenceGrant, DomainError> {
        let user = caller.require_user()?;
        let config = self
            .config
            .conference
            .as_ref()
            .ok_or(DomainError::Unavailable)?;
        self.dialog_for_user(caller.app_id(), user, room).await?;
        let now = self.now();
        let token = mint_grant(
            &config.grant_secret,
            caller.app_id().0,
            user.0,
            room,
            role,
            now,
            config.grant_ttl,
        );
        Ok(ConferenceGrant {
            token,
            room: room.to_string(),
            role,
            expires_at: now + config.grant_ttl,
            janus_url: config.janus_url.clone(),
        })
    }
}
