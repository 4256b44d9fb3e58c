//! Sessions: signed creation, token resolution with sliding expiry, login and logout.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::error::DomainError;
use super::ids;
use super::model::{AppId, Session, User, UserId};
use super::password;
use super::signature;
use super::store::NewSession;
use super::user_query::UserLookup;
use super::ControlPlane;

/// Sliding expiry is written back at most this often per session, so a busy client costs
/// one write a minute rather than one per request (expiry stays exact to within it).
const EXTEND_GRANULARITY: Duration = Duration::from_secs(60);

/// The decoded parameters of `POST /session.json`, in request order.
#[derive(Clone, Debug, Default)]
pub struct SessionRequest {
    pub params: Vec<(String, String)>,
}

impl SessionRequest {
    fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, key: &str) -> Result<&str, DomainError> {
        self.get(key)
            .ok_or_else(|| DomainError::invalid(key, "is required"))
    }

    fn number(&self, key: &str) -> Result<i64, DomainError> {
        self.required(key)?
            .parse()
            .map_err(|_| DomainError::invalid(key, "is not a number"))
    }
}

/// Who is calling: the session a valid `QB-Token` resolved to (shared with the session
/// cache, so handing it to a handler copies no strings).
#[derive(Clone, Debug)]
pub struct Caller {
    pub session: Arc<Session>,
}

impl Caller {
    pub fn app_id(&self) -> AppId {
        self.session.app_id
    }

    pub fn user_id(&self) -> Option<UserId> {
        self.session.user_id
    }

    /// Writes need a user session; an application session may only read and sign up.
    pub fn require_user(&self) -> Result<UserId, DomainError> {
        self.session
            .user_id
            .ok_or(DomainError::Forbidden("Forbidden. Need user."))
    }
}

impl ControlPlane {
    /// `POST /session.json`: verifies the signature, then opens an application session, or
    /// a user session when credentials are included.
    pub async fn create_session(
        &self,
        req: &SessionRequest,
    ) -> Result<(Session, Option<User>), DomainError> {
        let app_id = AppId(req.number("application_id")?);
        let auth_key = req.required("auth_key")?;
        let nonce = req.number("nonce")?;
        let timestamp = req.number("timestamp")?;
        let signature = req.required("signature")?;

        let app = self
            .cached_app(app_id)
            .await?
            .ok_or(DomainError::BadSignature)?;
        let signed = signature::signed_string(&req.params);
        if app.auth_key != auth_key || !signature::verify(&app.auth_secret, &signed, signature) {
            return Err(DomainError::BadSignature);
        }
        let now = self.now();
        let skew = (now.unix_timestamp() - timestamp).unsigned_abs();
        if skew > self.config.signature_max_skew.as_secs() {
            return Err(DomainError::invalid(
                "timestamp",
                "is too far from the server's clock (it must be the current unix time in seconds)",
            ));
        }

        let user = match user_credentials(req) {
            Some((lookup, password)) => Some(self.check_password(app.id, &lookup, password).await?),
            None if req.get("provider").is_some() => {
                return Err(DomainError::invalid(
                    "provider",
                    "social login providers are not supported",
                ))
            }
            None => None,
        };
        let session = self
            .store
            .insert_session(NewSession {
                oid: ids::object_id(now),
                token: ids::session_token(),
                app_id: app.id,
                user_id: user.as_ref().map(|u| u.id),
                nonce,
                ts: timestamp,
                now,
                expires_at: now + self.config.session_ttl,
            })
            .await?;
        let user = match user {
            Some(mut user) => {
                self.store.touch_user(app.id, user.id, now).await?;
                user.last_request_at = Some(now);
                Some(user)
            }
            None => None,
        };
        Ok((session, user))
    }

    /// Resolves a `QB-Token`, sliding its expiry forward.
    ///
    /// A session read less than `session_cache_ttl` ago is answered from the session
    /// cache, unless it has expired or its expiry is due to slide: those go to the store,
    /// so expiry and its extension are exactly what they are without the cache.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, DomainError> {
        let now = self.now();
        if let Some(session) = self.sessions.get(token, now) {
            if session.expires_at > now && !self.extension_due(&session, now) {
                return Ok(Caller { session });
            }
        }
        let epoch = self.sessions.epoch();
        let mut session = self
            .store
            .session_by_token(token)
            .await?
            .ok_or(DomainError::SessionNotFound)?;
        let now = self.now();
        if session.expires_at <= now {
            self.store.delete_session(token).await?;
            self.sessions.forget(token);
            return Err(DomainError::SessionNotFound);
        }
        if self.extension_due(&session, now) {
            let expires_at = now + self.config.session_ttl;
            self.store.extend_session(token, now, expires_at).await?;
            if let Some(user) = session.user_id {
                self.store.touch_user(session.app_id, user, now).await?;
            }
            session.expires_at = expires_at;
            session.updated_at = now;
        }
        let session = Arc::new(session);
        self.sessions
            .fill(epoch, session.token.clone(), &session, now);
        Ok(Caller { session })
    }

    /// Whether sliding the expiry to `now + session_ttl` moves it by the granularity.
    fn extension_due(&self, session: &Session, now: OffsetDateTime) -> bool {
        now + self.config.session_ttl - session.expires_at >= EXTEND_GRANULARITY
    }

    /// `POST /login.json`: upgrades the caller's session to a user session.
    pub async fn login(
        &self,
        caller: &Caller,
        login: Option<&str>,
        email: Option<&str>,
        password: &str,
    ) -> Result<User, DomainError> {
        let lookup = match (login, email) {
            (Some(login), _) => UserLookup::Login(login.to_string()),
            (None, Some(email)) => UserLookup::Email(email.to_lowercase()),
            (None, None) => return Err(DomainError::invalid("login", "or email is required")),
        };
        let mut user = self
            .check_password(caller.app_id(), &lookup, password.to_string())
            .await?;
        let now = self.now();
        self.store
            .set_session_user(&caller.session.token, Some(user.id), now)
            .await?;
        self.sessions.forget(&caller.session.token);
        self.store.touch_user(user.app_id, user.id, now).await?;
        user.last_request_at = Some(now);
        Ok(user)
    }

    /// `DELETE /login.json`: back to an application session.
    pub async fn logout(&self, caller: &Caller) -> Result<(), DomainError> {
        caller.require_user()?;
        self.store
            .set_session_user(&caller.session.token, None, self.now())
            .await?;
        self.sessions.forget(&caller.session.token);
        Ok(())
    }

    pub async fn destroy_session(&self, caller: &Caller) -> Result<(), DomainError> {
        self.store.delete_session(&caller.session.token).await?;
        self.sessions.forget(&caller.session.token);
        Ok(())
    }

    /// Deletes expired sessions, and drops cached sessions and applications that are no
    /// longer fresh.
    pub async fn purge_expired_sessions(&self) -> Result<u64, DomainError> {
        let now = self.now();
        self.sessions.sweep(now);
        self.apps.sweep(now);
        Ok(self.store.delete_expired_sessions(now).await?)
    }

    pub async fn active_sessions(&self) -> Result<i64, DomainError> {
        Ok(self.store.count_active_sessions(self.now()).await?)
    }

    pub(crate) async fn check_password(
        &self,
        app: AppId,
        lookup: &UserLookup,
        password: String,
    ) -> Result<User, DomainError> {
        let Some((user, hash)) = self.store.user_credentials(app, lookup).await? else {
            password::verify_nothing(password).await;
            return Err(DomainError::Unauthorized);
        };
        if password::verify(password, hash).await {
            Ok(user)
        } else {
            Err(DomainError::Unauthorized)
        }
    }
}

fn user_credentials(req: &SessionRequest) -> Option<(UserLookup, String)> {
    let password = req.get("user[password]")?.to_string();
    if let Some(login) = req.get("user[login]") {
        return Some((UserLookup::Login(login.to_string()), password));
    }
    req.get("user[email]")
        .map(|email| (UserLookup::Email(email.to_lowercase()), password))
}

/// The `QB-Token-ExpirationDate` header value: `YYYY-MM-DD HH:MM:SS UTC`, the only shape
/// the SDK's date parsing accepts.
pub fn expiration_header(expires_at: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    expires_at
        .to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}
