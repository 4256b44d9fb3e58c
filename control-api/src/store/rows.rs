//! Row decoding: stored integers and millisecond timestamps back into domain types.

use sqlx::any::AnyRow;
use sqlx::Row;
use time::OffsetDateTime;

use crate::domain::model::{App, AppId, Session, User, UserId, UserProfile};

pub(crate) const USER_COLUMNS: &str = "id, app_id, login, email, full_name, phone, website, \
     external_user_id, facebook_id, twitter_id, blob_id, custom_data, tags, created_at, \
     updated_at, last_request_at";

pub(crate) const SESSION_COLUMNS: &str =
    "id, oid, token, app_id, user_id, nonce, ts, created_at, updated_at, expires_at";

pub(crate) const APP_COLUMNS: &str =
    "id, name, auth_key, auth_secret, account_key, api_key, is_default, created_at";

pub(crate) fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn app(row: &AnyRow) -> sqlx::Result<App> {
    Ok(App {
        id: AppId(row.try_get("id")?),
        name: row.try_get("name")?,
        auth_key: row.try_get("auth_key")?,
        auth_secret: row.try_get("auth_secret")?,
        account_key: row.try_get("account_key")?,
        api_key: row.try_get("api_key")?,
        is_default: row.try_get::<i64, _>("is_default")? != 0,
        created_at: from_millis(row.try_get("created_at")?),
    })
}

pub(crate) fn session(row: &AnyRow) -> sqlx::Result<Session> {
    Ok(Session {
        id: row.try_get("id")?,
        oid: row.try_get("oid")?,
        token: row.try_get("token")?,
        app_id: AppId(row.try_get("app_id")?),
        user_id: row.try_get::<Option<i64>, _>("user_id")?.map(UserId),
        nonce: row.try_get("nonce")?,
        ts: row.try_get("ts")?,
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
        expires_at: from_millis(row.try_get("expires_at")?),
    })
}

pub(crate) fn user(row: &AnyRow) -> sqlx::Result<User> {
    let tags: String = row.try_get("tags")?;
    Ok(User {
        id: UserId(row.try_get("id")?),
        app_id: AppId(row.try_get("app_id")?),
        profile: UserProfile {
            login: row.try_get("login")?,
            email: row.try_get("email")?,
            full_name: row.try_get("full_name")?,
            phone: row.try_get("phone")?,
            website: row.try_get("website")?,
            external_user_id: row.try_get("external_user_id")?,
            facebook_id: row.try_get("facebook_id")?,
            twitter_id: row.try_get("twitter_id")?,
            blob_id: row.try_get("blob_id")?,
            custom_data: row.try_get("custom_data")?,
            tags: tags
                .split(',')
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect(),
        },
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
        last_request_at: row
            .try_get::<Option<i64>, _>("last_request_at")?
            .map(from_millis),
    })
}
