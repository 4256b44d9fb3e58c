//! Push notifications: `/subscriptions.json` (the caller's devices) and `/events.json`
//! (pushes to users by id or tag, delivered on creation).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::domain::model::UserId;
use crate::domain::push::{NewEvent, NewSubscription, PushEvent, Recipients, Subscription};
use crate::domain::sessions::Caller;
use crate::domain::DomainError;
use crate::http::error::ApiResult;
use crate::http::extract::QbParams;
use crate::http::state::AppState;
use crate::http::wire::iso;
use crate::http::wire_chat::{ChatBody, Fields};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/subscriptions", get(list_subscriptions).post(subscribe))
        .route("/subscriptions/{id}", delete(unsubscribe))
        .route("/events", get(list_events).post(create_event))
        .route("/events/{id}", get(show_event).delete(delete_event))
        .route(
            "/chat/Dialog/{id}/notifications",
            get(dialog_notifications).put(set_dialog_notifications),
        )
}

/// `GET /chat/Dialog/{id}/notifications.json`: whether the caller gets offline-message pushes
/// for this dialog.
async fn dialog_notifications(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = caller.require_user()?;
    let enabled = state
        .control
        .dialog_notifications(caller.app_id(), user, &id)
        .await?;
    Ok(Json(
        json!({"notifications": {"enabled": i64::from(enabled)}}),
    ))
}

/// `PUT /chat/Dialog/{id}/notifications.json` with `enabled=0|1`.
async fn set_dialog_notifications(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ChatBody(body): ChatBody,
) -> ApiResult<Json<Value>> {
    let user = caller.require_user()?;
    let enabled = match Fields(&body).text("enabled").as_deref().map(str::trim) {
        Some("1" | "true") => true,
        Some("0" | "false") => false,
        _ => return Err(DomainError::invalid("enabled", "must be 0 or 1").into()),
    };
    state
        .control
        .set_dialog_notifications(caller.app_id(), user, &id, enabled)
        .await?;
    Ok(Json(
        json!({"notifications": {"enabled": i64::from(enabled)}}),
    ))
}

async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<Response> {
    let user = caller.require_user()?;
    let text = |key: &str| params.get(key).unwrap_or_default().to_string();
    let new = NewSubscription {
        channel: text("notification_channel"),
        platform: text("device[platform]"),
        udid: text("device[udid]"),
        token: text("push_token[client_identification_sequence]"),
        environment: text("push_token[environment]"),
        bundle_id: params
            .value("push_token[bundle_identifier]")
            .map(str::to_string),
    };
    let created = state
        .control
        .create_subscription(caller.app_id(), user, new)
        .await?;
    Ok((StatusCode::CREATED, Json(json!([subscription(&created)]))).into_response())
}

async fn list_subscriptions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let user = caller.require_user()?;
    let list = state
        .control
        .list_subscriptions(caller.app_id(), user)
        .await?;
    Ok(Json(Value::Array(list.iter().map(subscription).collect())))
}

async fn unsubscribe(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let user = caller.require_user()?;
    let id = id.parse().map_err(|_| DomainError::NotFound)?;
    state
        .control
        .delete_subscription(caller.app_id(), user, id)
        .await?;
    Ok(StatusCode::OK)
}

async fn create_event(
    State(state): State<AppState>,
    caller: Caller,
    ChatBody(body): ChatBody,
) -> ApiResult<Response> {
    let user = caller.require_user()?;
    let object = |parent: &Map<String, Value>, key: &str| -> Map<String, Value> {
        parent
            .get(key)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let event = object(&body, "event");
    let fields = Fields(&event);
    let recipients_of = object(&event, "user");
    let tags = object(&recipients_of, "tags");
    let new = NewEvent {
        notification_type: fields.text("notification_type").unwrap_or_default(),
        event_type: fields.text("event_type").unwrap_or_default(),
        name: fields.text("name"),
        date: fields.integer("date")?,
        period: fields.integer("period")?,
        end_date: fields.integer("end_date")?,
        environment: fields.text("environment").unwrap_or_default(),
        push_type: fields.text("push_type"),
        message: fields.text("message").unwrap_or_default(),
        recipients: Recipients {
            ids: Fields(&recipients_of).user_ids("ids")?,
            tags_any: list(tags.get("any")),
            tags_all: list(tags.get("all")),
            tags_exclude: list(tags.get("exclude")),
        },
    };
    let created = state
        .control
        .create_event(caller.app_id(), user, new)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "event": event_json(&created) })),
    )
        .into_response())
}

async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<Json<Value>> {
    let user = caller.require_user()?;
    let page = params.positive("page", 1)?;
    let per_page = params.positive("per_page", 10)?.min(100);
    let (events, total) = state
        .control
        .list_events(caller.app_id(), user, page, per_page)
        .await?;
    Ok(Json(json!({
        "current_page": page,
        "per_page": per_page,
        "total_entries": total,
        "items": events.iter().map(|e| json!({"event": event_json(e)})).collect::<Vec<_>>(),
    })))
}

async fn show_event(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = caller.require_user()?;
    let id = id.parse().map_err(|_| DomainError::NotFound)?;
    let event = state.control.push_event(caller.app_id(), user, id).await?;
    Ok(Json(json!({ "event": event_json(&event) })))
}

async fn delete_event(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let user = caller.require_user()?;
    let id = id.parse().map_err(|_| DomainError::NotFound)?;
    state
        .control
        .delete_event(caller.app_id(), user, id)
        .await?;
    Ok(StatusCode::OK)
}

fn list(value: Option<&Value>) -> Vec<String> {
    let raw: Vec<String> = match value {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect(),
        Some(Value::String(s)) => s.split(',').map(str::to_string).collect(),
        _ => Vec::new(),
    };
    raw.into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The SDKs' subscription shape (.NET SDK models).
fn subscription(s: &Subscription) -> Value {
    json!({"subscription": {
        "id": s.id,
        "notification_channel": {"name": s.channel.name()},
        "device": {"udid": s.udid, "platform": {"name": s.platform}},
        "environment": s.environment,
        "created_at": iso(s.created_at),
    }})
}

fn event_json(e: &PushEvent) -> Value {
    let ids: Vec<UserId> = e.recipients.ids.clone();
    json!({
        "id": e.id,
        "event_type": e.event_type,
        "notification_type": "push",
        "environment": e.environment,
        "message": e.message,
        "notification_channel": {"name": e.push_type.map_or("universal", |p| p.name())},
        "active": e.schedule.is_active(),
        "name": e.name,
        "date": e.schedule.next_at.map(|t| t.unix_timestamp()),
        "period": e.schedule.period,
        "end_date": e.schedule.end_at.map(|t| t.unix_timestamp()),
        "occured_count": e.schedule.occurrences,
        "application_id": e.app_id,
        "user_id": e.user_id,
        "user_ids": ids,
        "sent": e.sent,
        "failed": e.failed,
        "created_at": iso(e.created_at),
        "updated_at": iso(e.updated_at),
    })
}
