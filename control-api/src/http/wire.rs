//! QuickBlox JSON shapes, kept apart from the domain types.

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::domain::model::{Session, User};

/// `2024-01-01T00:00:00Z`, the timestamp shape of QuickBlox objects.
pub fn iso(t: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

pub fn session(s: &Session) -> Value {
    json!({
        "_id": s.oid,
        "application_id": s.app_id,
        "created_at": iso(s.created_at),
        "device_id": 0,
        "id": s.id,
        "nonce": s.nonce,
        "token": s.token,
        "ts": s.ts,
        "updated_at": iso(s.updated_at),
        "user_id": s.user_id.map_or(0, |u| u.0),
    })
}

pub fn user(u: &User) -> Value {
    let p = &u.profile;
    json!({
        "id": u.id,
        "full_name": p.full_name,
        "email": p.email,
        "login": p.login,
        "phone": p.phone,
        "website": p.website,
        "created_at": iso(u.created_at),
        "updated_at": iso(u.updated_at),
        "last_request_at": u.last_request_at.map(iso),
        "external_user_id": p.external_user_id,
        "external_id": p.external_user_id,
        "facebook_id": p.facebook_id,
        "twitter_id": p.twitter_id,
        "blob_id": p.blob_id,
        "custom_data": p.custom_data,
        "user_tags": (!p.tags.is_empty()).then(|| p.tags.join(",")),
    })
}

pub fn wrapped_user(u: &User) -> Value {
    json!({ "user": user(u) })
}

/// QuickBlox's paged list: `{"current_page","per_page","total_entries","items":[{"user":..}]}`.
pub fn user_page(users: &[User], page: i64, per_page: i64, total: i64) -> Value {
    json!({
        "current_page": page,
        "per_page": per_page,
        "total_entries": total,
        "items": users.iter().map(wrapped_user).collect::<Vec<_>>(),
    })
}
