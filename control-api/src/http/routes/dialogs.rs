//! `/chat/Dialog.json`: create, list, show, update, delete (for me, or for everyone).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::domain::chat::dialogs::MAX_OCCUPANTS;
use crate::domain::chat::query::{ChatSort, DialogField};
use crate::domain::chat::{DialogQuery, DialogType, DialogUpdate, NewDialog};
use crate::domain::sessions::Caller;
use crate::domain::DomainError;
use crate::http::error::ApiResult;
use crate::http::extract::QbParams;
use crate::http::state::AppState;
use crate::http::wire_chat::{self, path_ids, ChatBody, Fields};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/chat/Dialog", get(list).post(create))
        .route("/chat/Dialog/{id}", get(show).put(update).delete(delete))
}

/// Most recent conversation first; dialogs without messages after, newest first.
const DEFAULT_SORT: ChatSort<DialogField> = ChatSort {
    field: DialogField::LastMessageDateSent,
    descending: true,
};

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<Json<Value>> {
    let user = caller.require_user()?;
    let query = DialogQuery::parse(&params.0, DEFAULT_SORT)?;
    let page = state
        .control
        .list_dialogs(caller.app_id(), user, &query)
        .await?;
    if params.get("count").is_some_and(|c| c.trim() == "1") {
        return Ok(Json(json!({ "items_count": page.total })));
    }
    let endpoint = &state.control.config().chat_endpoint;
    let items: Vec<Value> = page
        .dialogs
        .iter()
        .map(|d| wire_chat::dialog(d, page.unread_of(&d.id), endpoint))
        .collect();
    Ok(Json(json!({
        "total_entries": page.total,
        "skip": query.skip,
        "limit": query.limit,
        "items": items,
    })))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ChatBody(body): ChatBody,
) -> ApiResult<impl IntoResponse> {
    let user = caller.require_user()?;
    let fields = Fields(&body);
    let kind = fields
        .integer("type")?
        .ok_or_else(|| DomainError::invalid("type", "is required"))?;
    let kind = DialogType::from_number(kind)
        .ok_or_else(|| DomainError::invalid("type", "must be 1, 2 or 3"))?;
    let new = NewDialog {
        kind,
        occupants: occupant_list(&fields, "occupants_ids")?,
        name: fields.text("name"),
        photo: fields.text("photo"),
        data: body.get("data").filter(|d| !d.is_null()).cloned(),
        is_join_required: fields.flag("is_join_required")?,
    };
    let (dialog, created) = state
        .control
        .create_dialog(caller.app_id(), user, new)
        .await?;
    let unread = unread_of(&state, &caller, &dialog.id).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let endpoint = &state.control.config().chat_endpoint;
    Ok((status, Json(wire_chat::dialog(&dialog, unread, endpoint))))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = caller.require_user()?;
    let dialog = state
        .control
        .dialog_for_user(caller.app_id(), user, &id)
        .await?;
    let unread = unread_of(&state, &caller, &dialog.id).await?;
    let endpoint = &state.control.config().chat_endpoint;
    Ok(Json(wire_chat::dialog(&dialog, unread, endpoint)))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ChatBody(body): ChatBody,
) -> ApiResult<Json<Value>> {
    let user = caller.require_user()?;
    let fields = Fields(&body);
    let occupants_of = |op: &str| match Fields(&body).object(op) {
        Some(inner) => occupant_list(&Fields(inner), "occupants_ids"),
        None => Ok(Vec::new()),
    };
    let update = DialogUpdate {
        push_occupants: occupants_of("push_all")?,
        pull_occupants: occupants_of("pull_all")?,
        name: fields.text("name"),
        photo: fields.text("photo"),
        data: body.get("data").filter(|d| !d.is_null()).cloned(),
        is_join_required: fields.flag("is_join_required")?,
    };
    let dialog = state
        .control
        .update_dialog(caller.app_id(), user, &id, update)
        .await?;
    let unread = unread_of(&state, &caller, &dialog.id).await?;
    let endpoint = &state.control.config().chat_endpoint;
    Ok(Json(wire_chat::dialog(&dialog, unread, endpoint)))
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(ids): Path<String>,
    params: QbParams,
) -> ApiResult<Json<Value>> {
    let user = caller.require_user()?;
    let force = params.get("force").is_some_and(|f| f.trim() == "1");
    let outcome = state
        .control
        .delete_dialogs(caller.app_id(), user, &path_ids(&ids), force)
        .await?;
    Ok(Json(wire_chat::delete_outcome(&outcome)))
}

fn occupant_list(
    fields: &Fields<'_>,
    key: &str,
) -> Result<Vec<crate::domain::model::UserId>, DomainError> {
    let ids = fields.user_ids(key)?;
    if ids.len() > MAX_OCCUPANTS {
        return Err(DomainError::invalid(
            key,
            format!("too many occupants (maximum is {MAX_OCCUPANTS})"),
        ));
    }
    Ok(ids)
}

async fn unread_of(state: &AppState, caller: &Caller, dialog: &str) -> Result<i64, DomainError> {
    let user = caller.require_user()?;
    let ids = [dialog.to_string()];
    let counts = state
        .control
        .unread_counts(caller.app_id(), user, Some(&ids))
        .await?;
    Ok(counts.first().map_or(0, |(_, n)| *n))
}
