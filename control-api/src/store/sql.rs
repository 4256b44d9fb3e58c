//! [`Store`] over an sqlx `AnyPool`.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::query::Query;
use sqlx::{AnyPool, Executor, Row};
use time::OffsetDateTime;

use super::query::{push_user_filter, Bind, Sql};
use super::rows::{self, millis, APP_COLUMNS, SESSION_COLUMNS, USER_COLUMNS};
use crate::domain::model::{App, AppId, Session, User, UserId, UserProfile};
use crate::domain::store::{NewApp, NewSession, Store, StoreError, StoreResult};
use crate::domain::user_query::{UserLookup, UserQuery};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// SQLite serialises writers anyway; a few connections let readers proceed beside one.
const SQLITE_POOL_SIZE: u32 = 8;
/// Sized for one control-plane process on a small PostgreSQL (default max_connections 100).
const POSTGRES_POOL_SIZE: u32 = 16;

#[derive(Clone, Debug)]
pub struct SqlStore {
    pub(super) pool: AnyPool,
    engine: Engine,
    /// Chat's dialog cache and history writer, shared by the clones of this store.
    pub(super) chat: std::sync::Arc<super::chat::ChatState>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl SqlStore {
    pub async fn open_sqlite(path: &Path) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = AnyPoolOptions::new()
            .max_connections(SQLITE_POOL_SIZE)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // NORMAL is durable in WAL mode except for the last commits on power loss.
                    conn.execute("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000")
                        .await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        // WAL lets the CLI and a running server share the file; the mode is persistent.
        pool.execute("PRAGMA journal_mode = WAL").await?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        Ok(Self {
            pool,
            engine: Engine::Sqlite,
            chat: Default::default(),
        })
    }

    pub async fn open_postgres(url: &str) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(POSTGRES_POOL_SIZE)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        POSTGRES_MIGRATIONS.run(&pool).await?;
        Ok(Self {
            pool,
            engine: Engine::Postgres,
            chat: Default::default(),
        })
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    async fn one_user(
        &self,
        app: AppId,
        lookup: &UserLookup,
        columns: &str,
    ) -> StoreResult<Option<AnyRow>> {
        let mut sql = Sql::default();
        sql.push(&format!("SELECT {columns} FROM users WHERE app_id = "))
            .bind(Bind::Int(app.0))
            .push(" AND ");
        let (column, value) = match lookup {
            UserLookup::Id(id) => ("id", Bind::Int(id.0)),
            UserLookup::Login(v) => ("login", Bind::Text(v.clone())),
            UserLookup::Email(v) => ("email", Bind::Text(v.clone())),
            UserLookup::FacebookId(v) => ("facebook_id", Bind::Text(v.clone())),
            UserLookup::TwitterId(v) => ("twitter_id", Bind::Text(v.clone())),
            UserLookup::Phone(v) => ("phone", Bind::Text(v.clone())),
            UserLookup::ExternalId(v) => ("external_user_id", Bind::Int(*v)),
        };
        sql.push(column)
            .push(" = ")
            .bind(value)
            .push(" ORDER BY id LIMIT 1");
        Ok(sql.query().fetch_optional(&self.pool).await?)
    }
}

/// Maps a unique-index violation to the user field it protects.
fn conflict(err: sqlx::Error) -> StoreError {
    if let Some(db) = err.as_database_error() {
        if db.is_unique_violation() {
            let text = format!("{} {}", db.message(), db.constraint().unwrap_or_default());
            for field in ["login", "email", "external_user_id"] {
                if text.contains(field) {
                    return StoreError::Conflict { field };
                }
            }
        }
    }
    StoreError::Database(err)
}

/// Binds the eleven profile columns in the order both user statements list them.
fn bind_profile<'q>(
    query: Query<'q, sqlx::Any, AnyArguments<'q>>,
    p: &UserProfile,
) -> Query<'q, sqlx::Any, AnyArguments<'q>> {
    query
        .bind(p.login.clone())
        .bind(p.email.clone())
        .bind(p.full_name.clone())
        .bind(p.phone.clone())
        .bind(p.website.clone())
        .bind(p.external_user_id)
        .bind(p.facebook_id.clone())
        .bind(p.twitter_id.clone())
        .bind(p.blob_id)
        .bind(p.custom_data.clone())
        .bind(p.tags.join(","))
}

async fn write_tags(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    app: AppId,
    user: i64,
    tags: &[String],
) -> StoreResult<()> {
    sqlx::query("DELETE FROM user_tags WHERE user_id = $1")
        .bind(user)
        .execute(&mut **tx)
        .await?;
    for tag in tags {
        sqlx::query("INSERT INTO user_tags (app_id, user_id, tag) VALUES ($1, $2, $3)")
            .bind(app.0)
            .bind(user)
            .bind(tag.clone())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqlStore {
    async fn insert_app(&self, app: NewApp) -> StoreResult<App> {
        let sql = format!(
            "INSERT INTO apps (name, auth_key, auth_secret, account_key, is_default, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {APP_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(app.name)
            .bind(app.auth_key)
            .bind(app.auth_secret)
            .bind(app.account_key)
            .bind(i64::from(app.is_default))
            .bind(millis(app.created_at))
            .fetch_one(&self.pool)
            .await?;
        Ok(rows::app(&row)?)
    }

    async fn app(&self, id: AppId) -> StoreResult<Option<App>> {
        let sql = format!("SELECT {APP_COLUMNS} FROM apps WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rows::app).transpose()?)
    }

    async fn app_by_account_key(&self, account_key: &str) -> StoreResult<Option<App>> {
        let sql = format!("SELECT {APP_COLUMNS} FROM apps WHERE account_key = $1");
        let row = sqlx::query(&sql)
            .bind(account_key.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rows::app).transpose()?)
    }

    async fn app_by_api_key(&self, api_key: &str) -> StoreResult<Option<App>> {
        let sql = format!("SELECT {APP_COLUMNS} FROM apps WHERE api_key = $1");
        let row = sqlx::query(&sql)
            .bind(api_key.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rows::app).transpose()?)
    }

    async fn set_app_api_key(&self, id: AppId, api_key: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE apps SET api_key = $1 WHERE id = $2")
            .bind(api_key.to_string())
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn default_app(&self) -> StoreResult<Option<App>> {
        let sql =
            format!("SELECT {APP_COLUMNS} FROM apps WHERE is_default = 1 ORDER BY id LIMIT 1");
        let row = sqlx::query(&sql).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(rows::app).transpose()?)
    }

    async fn list_apps(&self) -> StoreResult<Vec<App>> {
        let sql = format!("SELECT {APP_COLUMNS} FROM apps ORDER BY id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(rows::app).collect::<Result<_, _>>()?)
    }

    async fn delete_app(&self, id: AppId) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        for table in ["sessions", "user_tags", "users"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE app_id = $1"))
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
        }
        let deleted = sqlx::query("DELETE FROM apps WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        // Its dialogs went with it (ON DELETE CASCADE).
        self.chat.forget_dialogs();
        Ok(deleted > 0)
    }

    async fn insert_session(&self, s: NewSession) -> StoreResult<Session> {
        let sql = format!(
            "INSERT INTO sessions (oid, token, app_id, user_id, nonce, ts, created_at, updated_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) RETURNING {SESSION_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(s.oid)
            .bind(s.token)
            .bind(s.app_id.0)
            .bind(s.user_id.map(|u| u.0))
            .bind(s.nonce)
            .bind(s.ts)
            .bind(millis(s.now))
            .bind(millis(s.expires_at))
            .fetch_one(&self.pool)
            .await?;
        Ok(rows::session(&row)?)
    }

    async fn session_by_token(&self, token: &str) -> StoreResult<Option<Session>> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE token = $1");
        let row = sqlx::query(&sql)
            .bind(token.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(rows::session).transpose()?)
    }

    async fn set_session_user(
        &self,
        token: &str,
        user_id: Option<UserId>,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET user_id = $1, updated_at = $2 WHERE token = $3")
            .bind(user_id.map(|u| u.0))
            .bind(millis(now))
            .bind(token.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn extend_session(
        &self,
        token: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET updated_at = $1, expires_at = $2 WHERE token = $3")
            .bind(millis(now))
            .bind(millis(expires_at))
            .bind(token.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_session(&self, token: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE token = $1")
            .bind(token.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_expired_sessions(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(millis(now))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn count_active_sessions(&self, now: OffsetDateTime) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE expires_at > $1")
            .bind(millis(now))
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    async fn insert_user(
        &self,
        app: AppId,
        p: &UserProfile,
        password_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<User> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "INSERT INTO users (app_id, login, email, full_name, phone, website, external_user_id, \
             facebook_id, twitter_id, blob_id, custom_data, tags, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) RETURNING {USER_COLUMNS}"
        );
        let row = bind_profile(sqlx::query(&sql).bind(app.0), p)
            .bind(password_hash.to_string())
            .bind(millis(now))
            .fetch_one(&mut *tx)
            .await
            .map_err(conflict)?;
        let user = rows::user(&row)?;
        write_tags(&mut tx, app, user.id.0, &p.tags).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn update_user(
        &self,
        app: AppId,
        id: UserId,
        p: &UserProfile,
        password_hash: Option<&str>,
        now: OffsetDateTime,
    ) -> StoreResult<Option<User>> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "UPDATE users SET login = $1, email = $2, full_name = $3, phone = $4, website = $5, \
             external_user_id = $6, facebook_id = $7, twitter_id = $8, blob_id = $9, custom_data = $10, \
             tags = $11, password_hash = COALESCE($12, password_hash), updated_at = $13 \
             WHERE app_id = $14 AND id = $15 RETURNING {USER_COLUMNS}"
        );
        let row = bind_profile(sqlx::query(&sql), p)
            .bind(password_hash.map(str::to_string))
            .bind(millis(now))
            .bind(app.0)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(conflict)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let user = rows::user(&row)?;
        write_tags(&mut tx, app, id.0, &p.tags).await?;
        tx.commit().await?;
        Ok(Some(user))
    }

    async fn user(&self, app: AppId, lookup: &UserLookup) -> StoreResult<Option<User>> {
        let row = self.one_user(app, lookup, USER_COLUMNS).await?;
        Ok(row.as_ref().map(rows::user).transpose()?)
    }

    async fn user_credentials(
        &self,
        app: AppId,
        lookup: &UserLookup,
    ) -> StoreResult<Option<(User, String)>> {
        let columns = format!("{USER_COLUMNS}, password_hash");
        let Some(row) = self.one_user(app, lookup, &columns).await? else {
            return Ok(None);
        };
        Ok(Some((rows::user(&row)?, row.try_get("password_hash")?)))
    }

    async fn delete_user(&self, app: AppId, id: UserId) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        for table in ["sessions", "user_tags"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
        }
        let deleted = sqlx::query("DELETE FROM users WHERE app_id = $1 AND id = $2")
            .bind(app.0)
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn list_users(&self, app: AppId, query: &UserQuery) -> StoreResult<(Vec<User>, i64)> {
        let mut count = Sql::default();
        count.push("SELECT COUNT(*) AS n FROM users");
        push_user_filter(&mut count, app.0, query);
        let total: i64 = count.query().fetch_one(&self.pool).await?.try_get("n")?;

        let mut page = Sql::default();
        page.push(&format!("SELECT {USER_COLUMNS} FROM users"));
        push_user_filter(&mut page, app.0, query);
        let column = query.order.field.column();
        let direction = if query.order.descending {
            "DESC"
        } else {
            "ASC"
        };
        // Nulls last on both engines (their defaults differ).
        page.push(&format!(
            " ORDER BY {column} IS NULL, {column} {direction}, id ASC LIMIT "
        ))
        .bind(Bind::Int(query.limit))
        .push(" OFFSET ")
        .bind(Bind::Int(query.offset));
        let rows = page.query().fetch_all(&self.pool).await?;
        let users = rows.iter().map(rows::user).collect::<Result<_, _>>()?;
        Ok((users, total))
    }

    async fn touch_user(&self, app: AppId, id: UserId, now: OffsetDateTime) -> StoreResult<()> {
        sqlx::query("UPDATE users SET last_request_at = $1 WHERE app_id = $2 AND id = $3")
            .bind(millis(now))
            .bind(app.0)
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn count_users(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    async fn close(&self) {
        // SQLite checkpoints and removes the WAL when its last connection closes.
        self.pool.close().await;
    }
}
