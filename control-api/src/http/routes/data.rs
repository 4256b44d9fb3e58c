//! `/data/{Class}.json`: custom-object records. Create, list (query operators, sort,
//! `limit`/`skip`, `count`), show, update (one, or `by_criteria`), delete (one, `a,b`, or
//! `by_criteria`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::domain::data::{DataClass, DataQuery, Record, RecordDeletion, Viewer};
use crate::domain::sessions::Caller;
use crate::domain::DomainError;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::QbParams;
use crate::http::state::AppState;
use crate::http::wire_chat::{path_ids, ChatBody};
use crate::metrics::DataLabels;

/// The path word that turns an id route into a criteria route.
const BY_CRITERIA: &str = "by_criteria";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/data/{class}", get(list).post(create))
        .route("/data/{class}/{id}", get(show).put(update).delete(delete))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(class): Path<String>,
    params: QbParams,
) -> ApiResult<Json<Value>> {
    let result = async {
        let (class, viewer) = context(&state, &caller, &class).await?;
        let query = DataQuery::parse(&params.0, &class)?;
        let (records, total) = state.control.list_records(&class, &viewer, &query).await?;
        if query.count {
            return Ok(json!({"class_name": class.name, "items_count": total}));
        }
        Ok(json!({
            "class_name": class.name,
            "skip": query.skip,
            "limit": query.limit,
            "items": records.iter().map(record).collect::<Vec<_>>(),
        }))
    }
    .await;
    observe(&state, "list", &result);
    result.map(Json)
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(class): Path<String>,
    ChatBody(body): ChatBody,
) -> ApiResult<Response> {
    let result = async {
        let user = caller.require_user()?;
        let class = state.control.data_class(caller.app_id(), &class).await?;
        let created = state.control.create_record(&class, user, &body).await?;
        Ok(record(&created))
    }
    .await;
    observe(&state, "create", &result);
    Ok((StatusCode::CREATED, Json(result?)).into_response())
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((class, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let result = async {
        let (class, viewer) = context(&state, &caller, &class).await?;
        Ok(record(&state.control.record(&class, &viewer, &id).await?))
    }
    .await;
    observe(&state, "show", &result);
    result.map(Json)
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((class, id)): Path<(String, String)>,
    ChatBody(body): ChatBody,
) -> ApiResult<Json<Value>> {
    let result = async {
        caller.require_user()?;
        let (class, viewer) = context(&state, &caller, &class).await?;
        if id == BY_CRITERIA {
            let mut pairs = Vec::new();
            if let Some(criteria) = body.get("search_criteria") {
                flatten(String::new(), criteria, &mut pairs);
            }
            let query = DataQuery::parse(&pairs, &class)?;
            let mut changes = body.clone();
            changes.remove("search_criteria");
            let updated = state
                .control
                .update_records(&class, &viewer, &query, &changes)
                .await?;
            return Ok(json!({
                "class_name": class.name,
                "items": updated.iter().map(record).collect::<Vec<_>>(),
                "total_found": updated.len(),
            }));
        }
        let updated = state
            .control
            .update_record(&class, &viewer, &id, &body)
            .await?;
        Ok(record(&updated))
    }
    .await;
    observe(&state, "update", &result);
    result.map(Json)
}

/// One id answers an empty 200; several (`a,b`) the outcome per id; `by_criteria` the
/// number deleted. The SDK reads the last two as JSON text.
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((class, id)): Path<(String, String)>,
    params: QbParams,
) -> ApiResult<Response> {
    let result = async {
        caller.require_user()?;
        let (class, viewer) = context(&state, &caller, &class).await?;
        if id == BY_CRITERIA {
            let query = DataQuery::parse(&params.0, &class)?;
            let n = state
                .control
                .delete_records_by(&class, &viewer, &query)
                .await?;
            return Ok(Some(json!({ "total_deleted": n })));
        }
        let ids = path_ids(&id);
        let outcome = state.control.delete_records(&class, &viewer, &ids).await?;
        if ids.len() > 1 {
            return Ok(Some(deletion(&outcome)));
        }
        match (
            outcome.deleted.is_empty(),
            outcome.wrong_permissions.is_empty(),
        ) {
            (false, _) => Ok(None),
            (true, false) => {
                Err(DomainError::Forbidden("You have no permission to delete this record").into())
            }
            (true, true) => Err(DomainError::NotFound.into()),
        }
    }
    .await;
    observe(&state, "delete", &result);
    Ok(match result? {
        Some(body) => Json(body).into_response(),
        None => StatusCode::OK.into_response(),
    })
}

async fn context(
    state: &AppState,
    caller: &Caller,
    class: &str,
) -> Result<(DataClass, Viewer), ApiError> {
    let class = state.control.data_class(caller.app_id(), class).await?;
    let viewer = state
        .control
        .data_viewer(caller.app_id(), caller.user_id())
        .await?;
    Ok((class, viewer))
}

/// `{"year":{"gt":2000},"make":"x"}` → `year[gt]=2000`, `make=x`.
fn flatten(prefix: String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(members) => {
            for (key, inner) in members {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}[{key}]")
                };
                flatten(name, inner, out);
            }
        }
        Value::Array(items) => {
            let joined: Vec<String> = items.iter().map(scalar).collect();
            out.push((prefix, joined.join(",")));
        }
        other => out.push((prefix, scalar(other))),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A record on the wire: its fields beside `_id`, `_parent_id`, `user_id` and unix-second
/// timestamps (and its `permissions` when it overrides the class's).
fn record(r: &Record) -> Value {
    let mut object: Map<String, Value> = r.fields.clone();
    object.insert("_id".into(), json!(r.id));
    object.insert("_parent_id".into(), json!(r.parent_id));
    object.insert("user_id".into(), json!(r.user_id));
    object.insert("created_at".into(), json!(r.created_at.unix_timestamp()));
    object.insert("updated_at".into(), json!(r.updated_at.unix_timestamp()));
    if let Some(p) = &r.permissions {
        object.insert("permissions".into(), json!(p));
    }
    Value::Object(object)
}

fn deletion(outcome: &RecordDeletion) -> Value {
    json!({
        "SuccessfullyDeleted": {"ids": outcome.deleted},
        "NotFound": {"ids": outcome.not_found},
        "WrongPermissions": {"ids": outcome.wrong_permissions},
    })
}

fn observe<T>(state: &AppState, operation: &'static str, result: &Result<T, ApiError>) {
    let result = match result {
        Ok(_) => "ok",
        Err(ApiError::Domain(DomainError::Validation(_))) => "invalid",
        Err(ApiError::Domain(DomainError::NotFound)) => "not_found",
        Err(ApiError::Domain(DomainError::Forbidden(_))) => "forbidden",
        Err(_) => "error",
    };
    state
        .metrics
        .data_requests
        .get_or_create(&DataLabels { operation, result })
        .inc();
}
