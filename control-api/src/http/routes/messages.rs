//! `/chat/Message.json`: history by dialog, create (optionally pushed over XMPP), receipts
//! and edits, delete (for me, or for everyone), unread counts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::domain::chat::messages::MAX_IDS;
use crate::domain::chat::query::{ChatSort, MessageField};
use crate::domain::chat::{Attachment, MessageQuery, MessageUpdate, NewChatMessage};
use crate::domain::model::UserId;
use crate::domain::sessions::Caller;
use crate::domain::DomainError;
use crate::http::error::ApiResult;
use crate::http::extract::QbParams;
use crate::http::state::AppState;
use crate::http::wire_chat::{self, path_ids, ChatBody, Fields};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/chat/Message", get(list).post(create))
        .route("/chat/Message/unread", get(unread))
        .route("/chat/Message/{ids}", put(update).delete(delete))
}

/// Oldest first, as a conversation reads.
const DEFAULT_SORT: ChatSort<MessageField> = ChatSort {
    field: MessageField::DateSent,
    descending: false,
};

/// Parameters of `POST /chat/Message.json` that are not custom parameters.
const STANDARD_KEYS: [&str; 8] = [
    "chat_dialog_id",
    "message",
    "send_to_chat",
    "markable",
    "attachments",
    "recipient_id",
    "save_to_history",
    "date_sent",
];

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<Json<Value>> {
    let user = caller.require_user()?;
    let dialog = params
        .value("chat_dialog_id")
        .ok_or_else(|| DomainError::invalid("chat_dialog_id", "is required"))?
        .trim()
        .to_string();
    let query = MessageQuery::parse(&params.0, DEFAULT_SORT)?;
    if params.get("count").is_some_and(|c| c.trim() == "1") {
        let total = state
            .control
            .count_messages(caller.app_id(), user, &dialog, &query)
            .await?;
        return Ok(Json(json!({ "items_count": total })));
    }
    let mark_as_read = !params
        .get("mark_as_read")
        .is_some_and(|m| matches!(m.trim(), "0" | "false"));
    let messages = state
        .control
        .list_messages(caller.app_id(), user, &dialog, &query, mark_as_read)
        .await?;
    let items: Vec<Value> = messages
        .iter()
        .map(|m| wire_chat::message(m, user))
        .collect();
    Ok(Json(json!({
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
    let custom: Map<String, Value> = body
        .iter()
        .filter(|(k, _)| !STANDARD_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let new = NewChatMessage {
        id: None,
        dialog_id: fields
            .text("chat_dialog_id")
            .filter(|d| !d.trim().is_empty()),
        recipient_id: fields.integer("recipient_id")?.map(UserId),
        body: fields.text("message").unwrap_or_default(),
        attachments: attachments(body.get("attachments"))?,
        custom,
        markable: fields.flag("markable")?.unwrap_or(false),
        save_to_history: true,
        date_sent: fields.integer("date_sent")?,
    };
    let send_to_chat = fields.flag("send_to_chat")?.unwrap_or(false);
    let (message, dialog) = state
        .control
        .post_chat_message(caller.app_id(), user, new)
        .await?;
    if send_to_chat {
        state.control.notify_message_posted(&message, &dialog);
    }
    Ok((
        StatusCode::CREATED,
        Json(wire_chat::message(&message, user)),
    ))
}

/// Attachments as a JSON array of objects, or the form's `attachments[0][type]=..` nesting.
fn attachments(value: Option<&Value>) -> Result<Vec<Attachment>, DomainError> {
    let items: Vec<&Value> = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Object(members)) => {
            let mut indexed: Vec<(&String, &Value)> = members.iter().collect();
            indexed.sort_by_key(|(k, _)| k.parse::<u64>().unwrap_or(u64::MAX));
            indexed.into_iter().map(|(_, v)| v).collect()
        }
        Some(_) => {
            return Err(DomainError::invalid(
                "attachments",
                "must be a list of objects",
            ))
        }
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::Object(fields) => Ok(Attachment {
                fields: fields.clone(),
            }),
            _ => Err(DomainError::invalid(
                "attachments",
                "must be a list of objects",
            )),
        })
        .collect()
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(ids): Path<String>,
    ChatBody(body): ChatBody,
) -> ApiResult<StatusCode> {
    let user = caller.require_user()?;
    let fields = Fields(&body);
    let update = MessageUpdate {
        read: fields.flag("read")?.unwrap_or(false),
        delivered: fields.flag("delivered")?.unwrap_or(false),
        body: fields.text("message"),
    };
    let dialog = fields
        .text("chat_dialog_id")
        .filter(|d| !d.trim().is_empty());
    state
        .control
        .update_messages(
            caller.app_id(),
            user,
            &path_ids(&ids),
            dialog.as_deref(),
            update,
        )
        .await?;
    Ok(StatusCode::OK)
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
        .delete_messages(caller.app_id(), user, &path_ids(&ids), force)
        .await?;
    Ok(Json(wire_chat::delete_outcome(&outcome)))
}

/// `{"total":N,"<dialog id>":n,...}`: every asked dialog gets a key (0 when it has no
/// unread messages for the caller or is not theirs to see).
async fn unread(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<Json<Value>> {
    let user = caller.require_user()?;
    let asked = params.value("chat_dialog_ids").map(path_ids);
    if asked.as_ref().is_some_and(|ids| ids.len() > MAX_IDS) {
        return Err(
            DomainError::invalid("chat_dialog_ids", format!("at most {MAX_IDS} at once")).into(),
        );
    }
    let counts = state
        .control
        .unread_counts(caller.app_id(), user, asked.as_deref())
        .await?;
    let mut body = Map::new();
    body.insert(
        "total".into(),
        json!(counts.iter().map(|(_, n)| n).sum::<i64>()),
    );
    for id in asked.unwrap_or_default() {
        let n = counts.iter().find(|(d, _)| *d == id).map_or(0, |(_, n)| *n);
        body.insert(id, json!(n));
    }
    Ok(Json(Value::Object(body)))
}
