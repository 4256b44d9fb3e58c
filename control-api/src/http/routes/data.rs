//! `/data/{Class}.json`: custom-object records. Create, list (query operators, sort,
//! `limit`/`skip`, `count`), show, update (one, or `by_criteria`), delete (one, `a,b`, or
//! `by_criteria`); and the file of a record's file field at
//! `/data/{Class}/{id}/file.json` (upload, download, delete).

use axum::body::Body;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio_util::io::ReaderStream;

use crate::domain::data::{DataClass, DataQuery, Record, RecordDeletion, RecordFileUpload, Viewer};
use crate::domain::sessions::Caller;
use crate::domain::DomainError;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{QbParams, TOKEN_HEADER};
use crate::http::state::AppState;
use crate::http::wire_chat::{path_ids, ChatBody};
use crate::metrics::DataLabels;

/// The path word that turns an id route into a criteria route.
const BY_CRITERIA: &str = "by_criteria";
/// The upload form's text fields are short (`field_name`); a few spare ones are skipped.
const MAX_FIELD_BYTES: usize = 1024;
const MAX_FIELDS: usize = 16;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/data/{class}", get(list).post(create))
        .route("/data/{class}/{id}", get(show).put(update).delete(delete))
        // The upload enforces the configured size limit itself, as the bytes stream in;
        // the layer covers only the methods before it (GET and DELETE keep the limit).
        .route(
            "/data/{class}/{id}/file",
            post(upload_file)
                .layer(DefaultBodyLimit::disable())
                .get(download_file)
                .delete(delete_file),
        )
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

/// `POST /data/{Class}/{id}/file.json`, multipart `field_name` and `file` (the SDK's
/// `uploadFile` sends them in that order, so the field is checked before any byte is
/// stored; a `field_name` after the file is checked once the bytes are in). Answers the
/// File model.
async fn upload_file(
    State(state): State<AppState>,
    caller: Caller,
    Path((class, id)): Path<(String, String)>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<Value>> {
    let result = async {
        caller.require_user()?;
        let (class, viewer) = context(&state, &caller, &class).await?;
        let mut multipart = multipart.map_err(|e| ApiError::Malformed(e.body_text()))?;
        let mut field_name: Option<String> = None;
        let mut received: Option<Received> = None;
        let mut count = 0;
        let outcome = async {
            while let Some(part) = multipart.next_field().await.map_err(malformed)? {
                count += 1;
                if count > MAX_FIELDS {
                    return Err(ApiError::Malformed("too many form fields".into()));
                }
                match part.name() {
                    Some("file") if received.is_none() => {
                        let upload = state
                            .control
                            .begin_record_file(&class, &viewer, &id, field_name.as_deref())
                            .await?;
                        received = Some(receive_file(upload, part).await?);
                    }
                    Some("field_name") => {
                        field_name = Some(small_text(part).await?.trim().to_string());
                    }
                    _ => {
                        small_text(part).await?;
                    }
                }
            }
            Ok(())
        }
        .await;
        let Some(received) = received else {
            outcome?;
            return Err(DomainError::invalid("file", "is required").into());
        };
        if let Err(e) = outcome {
            received.upload.abort().await;
            return Err(e);
        }
        let Some(field_name) = field_name else {
            received.upload.abort().await;
            return Err(DomainError::invalid("field_name", "is required").into());
        };
        let file = received
            .upload
            .finish(
                &field_name,
                received.name.as_deref(),
                received.content_type.as_deref(),
            )
            .await?;
        Ok(json!(file))
    }
    .await;
    observe(&state, "file_upload", &result);
    result.map(Json)
}

/// A file part stored, waiting for [`RecordFileUpload::finish`].
struct Received {
    upload: RecordFileUpload,
    name: Option<String>,
    content_type: Option<String>,
}

/// Streams the file part into storage (aborting on a bad body or the size limit).
async fn receive_file(mut upload: RecordFileUpload, mut part: Field<'_>) -> ApiResult<Received> {
    let name = part.file_name().map(str::to_string);
    let content_type = part.content_type().map(str::to_string);
    loop {
        let chunk = match part.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                upload.abort().await;
                return Err(malformed(e));
            }
        };
        if let Err(e) = upload.write(&chunk).await {
            upload.abort().await;
            return Err(e.into());
        }
    }
    Ok(Received {
        upload,
        name,
        content_type,
    })
}

async fn small_text(mut part: Field<'_>) -> ApiResult<String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = part.chunk().await.map_err(malformed)? {
        if bytes.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err(ApiError::Malformed("a form field is too large".into()));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| ApiError::Malformed("a form field is not UTF-8".into()))
}

fn malformed(e: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::Malformed(format!("invalid multipart body: {}", e.body_text()))
}

/// `GET /data/{Class}/{id}/file.json?field_name=..`: the bytes, for a session (`?token=`,
/// as the SDK's `fileUrl`, or `QB-Token`) that may read the record.
async fn download_file(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((class, id)): Path<(String, String)>,
    params: QbParams,
) -> Response {
    let result = async {
        let token = params
            .value("token")
            .or_else(|| headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(DomainError::TokenRequired)?;
        let caller = state.control.authenticate(token).await?;
        let (class, viewer) = context(&state, &caller, &class).await?;
        let field = params.get("field_name").unwrap_or_default().trim();
        Ok(state
            .control
            .open_record_file(&class, &viewer, &id, field)
            .await?)
    }
    .await;
    observe(&state, "file_download", &result);
    let (file, reader) = match result {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let mut response = Response::new(Body::from_stream(ReaderStream::new(reader.body)));
    let out = response.headers_mut();
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(reader.len));
    if let Ok(value) = HeaderValue::from_str(&file.content_type) {
        out.insert(header::CONTENT_TYPE, value);
    }
    let ascii: String = file
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(value) = HeaderValue::from_str(&format!("inline; filename=\"{ascii}\"")) {
        out.insert(header::CONTENT_DISPOSITION, value);
    }
    // User content served from the API's origin: never let a browser run it.
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    response
}

/// `DELETE /data/{Class}/{id}/file.json` with `field_name` (form body, or query).
async fn delete_file(
    State(state): State<AppState>,
    caller: Caller,
    Path((class, id)): Path<(String, String)>,
    params: QbParams,
) -> ApiResult<StatusCode> {
    let result = async {
        caller.require_user()?;
        let (class, viewer) = context(&state, &caller, &class).await?;
        let field = params.get("field_name").unwrap_or_default().trim();
        state
            .control
            .delete_record_file(&class, &viewer, &id, field)
            .await?;
        Ok(())
    }
    .await;
    observe(&state, "file_delete", &result);
    result.map(|()| StatusCode::OK)
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

pub(super) fn observe<T>(state: &AppState, operation: &'static str, result: &Result<T, ApiError>) {
    let result = match result {
        Ok(_) => "ok",
        Err(ApiError::Domain(DomainError::Validation(_))) => "invalid",
        Err(ApiError::Domain(DomainError::NotFound)) => "not_found",
        Err(ApiError::Domain(DomainError::Forbidden(_))) => "forbidden",
        Err(ApiError::Domain(
            DomainError::Unauthorized | DomainError::TokenRequired | DomainError::SessionNotFound,
        ))
        | Err(ApiError::ApiKeyRequired) => "unauthorized",
        Err(ApiError::Domain(DomainError::TooLarge(_))) => "too_large",
        Err(_) => "error",
    };
    state
        .metrics
        .data_requests
        .get_or_create(&DataLabels { operation, result })
        .inc();
}
