//! The persistence boundary: the domain asks, an implementation in `crate::store` answers.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::model::{App, AppId, Session, User, UserId, UserProfile};
use super::user_query::{UserLookup, UserQuery};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique field (`login`, `email`, ...) is already taken in this application.
    #[error("{field} has already been taken")]
    Conflict { field: &'static str },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported store URL {0:?} (expected sqlite://PATH or postgres://...)")]
    UnsupportedUrl(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// New application credentials to persist.
#[derive(Clone, Debug)]
pub struct NewApp {
    pub name: String,
    pub auth_key: String,
    pub auth_secret: String,
    pub account_key: String,
    pub is_default: bool,
    pub created_at: OffsetDateTime,
}

#[derive(Clone, Debug)]
pub struct NewSession {
    pub oid: String,
    pub token: String,
    pub app_id: AppId,
    pub user_id: Option<UserId>,
    pub nonce: i64,
    pub ts: i64,
    pub now: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Applications.
    async fn insert_app(&self, app: NewApp) -> StoreResult<App>;
    async fn app(&self, id: AppId) -> StoreResult<Option<App>>;
    async fn app_by_account_key(&self, account_key: &str) -> StoreResult<Option<App>>;
    async fn app_by_api_key(&self, api_key: &str) -> StoreResult<Option<App>>;
    /// Sets the owner's API key; false if there is no such application.
    async fn set_app_api_key(&self, id: AppId, api_key: &str) -> StoreResult<bool>;
    async fn default_app(&self) -> StoreResult<Option<App>>;
    async fn list_apps(&self) -> StoreResult<Vec<App>>;
    /// Deletes the application and everything it owns; false if it did not exist.
    async fn delete_app(&self, id: AppId) -> StoreResult<bool>;

    // Sessions.
    async fn insert_session(&self, session: NewSession) -> StoreResult<Session>;
    async fn session_by_token(&self, token: &str) -> StoreResult<Option<Session>>;
    async fn set_session_user(
        &self,
        token: &str,
        user_id: Option<UserId>,
        now: OffsetDateTime,
    ) -> StoreResult<()>;
    async fn extend_session(
        &self,
        token: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()>;
    async fn delete_session(&self, token: &str) -> StoreResult<bool>;
    async fn delete_expired_sessions(&self, now: OffsetDateTime) -> StoreResult<u64>;
    async fn count_active_sessions(&self, now: OffsetDateTime) -> StoreResult<i64>;

    // Users.
    async fn insert_user(
        &self,
        app: AppId,
        profile: &UserProfile,
        password_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<User>;
    async fn update_user(
        &self,
        app: AppId,
        id: UserId,
        profile: &UserProfile,
        password_hash: Option<&str>,
        now: OffsetDateTime,
    ) -> StoreResult<Option<User>>;
    async fn user(&self, app: AppId, lookup: &UserLookup) -> StoreResult<Option<User>>;
    /// The user and their password hash, for credential checks.
    async fn user_credentials(
        &self,
        app: AppId,
        lookup: &UserLookup,
    ) -> StoreResult<Option<(User, String)>>;
    async fn delete_user(&self, app: AppId, id: UserId) -> StoreResult<bool>;
    /// One page of matching users and the total number of matches.
    async fn list_users(&self, app: AppId, query: &UserQuery) -> StoreResult<(Vec<User>, i64)>;
    async fn touch_user(&self, app: AppId, id: UserId, now: OffsetDateTime) -> StoreResult<()>;
    async fn count_users(&self) -> StoreResult<i64>;

    /// Closes every connection cleanly (SQLite then folds its WAL into the database file).
    async fn close(&self);
}
