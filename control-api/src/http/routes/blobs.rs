//! `/blobs.json`: content. Create (with a write grant), upload (`POST /blobs/upload`, the
//! URL the grant names, multipart like an S3 POST), complete, info, update, list, delete,
//! and download by uid (`GET /blobs/{uid}`, no `.json`).

use axum::body::Body;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde_json::Value;
use tokio_util::io::ReaderStream;

use crate::domain::content::{BlobKey, BlobUpdate, BlobUpload, NewBlob, DEFAULT_PER_PAGE};
use crate::domain::sessions::Caller;
use crate::domain::DomainError;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{QbParams, TOKEN_HEADER};
use crate::http::router::JsonSuffix;
use crate::http::state::AppState;
use crate::http::wire_content;
use crate::metrics::ResultLabels;

/// Form fields other than the file are small (S3 caps a whole POST policy at 20 KiB).
const MAX_FIELD_BYTES: usize = 8 * 1024;
/// Form fields per upload; S3's POST form has about a dozen.
const MAX_FIELDS: usize = 64;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/blobs", get(list).post(create))
        // The upload enforces the configured blob limit itself, as the bytes stream in.
        .route(
            "/blobs/upload",
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/blobs/{key}", get(show).put(update).delete(delete))
        .route("/blobs/{key}/complete", put(complete).post(complete))
        .route("/blobs/{key}/download", get(download_by_uid))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<Response> {
    let user = caller.require_user()?;
    let fields = params.object("blob");
    let new = NewBlob {
        name: fields.get("name").cloned().unwrap_or_default(),
        content_type: fields.get("content_type").cloned().unwrap_or_default(),
        is_public: flag(fields.get("public").map(String::as_str), "public")?.unwrap_or(false),
        tags: tag_list(fields.get("tag_list").map(String::as_str)),
    };
    let blob = state
        .control
        .create_blob(caller.app_id(), user, new)
        .await?;
    let body = wire_content::created(&blob, &state.control.config().public_api_url);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<Json<Value>> {
    let user = caller.require_user()?;
    let page = params.positive("page", 1)?;
    let per_page = params
        .positive("per_page", DEFAULT_PER_PAGE)?
        .min(crate::domain::content::MAX_PER_PAGE);
    let blobs = state
        .control
        .list_blobs(caller.app_id(), user, page, per_page)
        .await?;
    Ok(Json(wire_content::page(&blobs, page, per_page)))
}

/// `GET /blobs/{key}.json`: metadata by id or uid, or (the SDK's `content.update`) an
/// update when `blob[...]` parameters come along. Without `.json`: the file by uid.
async fn show(
    State(state): State<AppState>,
    json: Option<Extension<JsonSuffix>>,
    caller: Result<Caller, ApiError>,
    Path(key): Path<String>,
    headers: HeaderMap,
    params: QbParams,
) -> ApiResult<Response> {
    if json.is_none() {
        return Ok(download(&state, &key, &headers, &params).await);
    }
    let caller = caller?;
    let fields = params.object("blob");
    if !fields.is_empty() {
        return update_with(&state, &caller, &key, &params).await;
    }
    let blob = state
        .control
        .blob_info(caller.app_id(), BlobKey::parse(&key))
        .await?;
    Ok(Json(wire_content::wrapped(&blob)).into_response())
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    params: QbParams,
) -> ApiResult<Response> {
    update_with(&state, &caller, &key, &params).await
}

async fn update_with(
    state: &AppState,
    caller: &Caller,
    key: &str,
    params: &QbParams,
) -> ApiResult<Response> {
    let user = caller.require_user()?;
    let fields = params.object("blob");
    let update = BlobUpdate {
        name: fields.get("name").cloned(),
        content_type: fields.get("content_type").cloned(),
        is_public: flag(fields.get("public").map(String::as_str), "public")?,
        tags: fields.get("tag_list").map(|t| tag_list(Some(t))),
    };
    let blob = state
        .control
        .update_blob(caller.app_id(), user, blob_id(key)?, update)
        .await?;
    Ok(Json(wire_content::wrapped(&blob)).into_response())
}

async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    params: QbParams,
) -> ApiResult<StatusCode> {
    let user = caller.require_user()?;
    let raw = params.value("size").or_else(|| params.value("blob[size]"));
    let size = match raw {
        None => None,
        Some(raw) => Some(
            raw.trim()
                .parse::<i64>()
                .ok()
                .filter(|s| *s >= 0)
                .ok_or_else(|| DomainError::invalid("size", "must be a number of bytes"))?,
        ),
    };
    state
        .control
        .complete_blob(caller.app_id(), user, blob_id(&key)?, size)
        .await?;
    Ok(StatusCode::OK)
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    let user = caller.require_user()?;
    state
        .control
        .delete_blob(caller.app_id(), user, blob_id(&key)?)
        .await?;
    Ok(StatusCode::OK)
}

async fn download_by_uid(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    params: QbParams,
) -> Response {
    download(&state, &uid, &headers, &params).await
}

/// Streams a complete blob. Public ones need no session; private ones a session of their
/// application, as `?token=` (the SDK's `privateUrl`) or `QB-Token`.
async fn download(state: &AppState, uid: &str, headers: &HeaderMap, params: &QbParams) -> Response {
    let metrics = &state.metrics;
    let caller_app = match session_token(headers, params) {
        None => None,
        Some(token) => match state.control.authenticate(token).await {
            Ok(caller) => Some(caller.app_id()),
            Err(e) => {
                metrics
                    .content_downloads
                    .get_or_create(&ResultLabels::of("refused"))
                    .inc();
                return ApiError::from(e).into_response();
            }
        },
    };
    let (blob, reader) = match state.control.open_download(uid, caller_app).await {
        Ok(found) => found,
        Err(e) => {
            let result = match e {
                DomainError::NotFound => "not_found",
                DomainError::TokenRequired | DomainError::Forbidden(_) => "refused",
                _ => "failed",
            };
            metrics
                .content_downloads
                .get_or_create(&ResultLabels::of(result))
                .inc();
            return ApiError::from(e).into_response();
        }
    };
    metrics
        .content_downloads
        .get_or_create(&ResultLabels::of("ok"))
        .inc();
    metrics.content_download_bytes.inc_by(reader.len);
    let mut response = Response::new(Body::from_stream(ReaderStream::new(reader.body)));
    let out = response.headers_mut();
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(reader.len));
    if let Ok(value) = HeaderValue::from_str(&blob.content_type) {
        out.insert(header::CONTENT_TYPE, value);
    }
    if let Some(sum) = &blob.checksum {
        if let Ok(value) = HeaderValue::from_str(&format!("\"{sum}\"")) {
            out.insert(header::ETAG, value);
        }
    }
    if let Ok(value) =
        HeaderValue::from_str(&format!("inline; filename=\"{}\"", header_safe(&blob.name)))
    {
        out.insert(header::CONTENT_DISPOSITION, value);
    }
    // Uploaded content is served from the API's origin: never let a browser run it.
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    let cache = if blob.is_public {
        "public, max-age=3600"
    } else {
        "private, no-store"
    };
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// `POST /blobs/upload`: the multipart form of an S3 POST. `key` and `policy` (form fields
/// before the file, or the query) name the blob and carry its write grant; an optional
/// `Content-MD5` (field or header) is verified; the `file` part streams to storage.
async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let params = QbParams(
        query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default(),
    );
    let result = receive(&state, &headers, &params, multipart).await;
    let label = match &result {
        Ok(_) => "ok",
        Err(ApiError::Domain(DomainError::TooLarge(_))) => "too_large",
        Err(ApiError::Domain(DomainError::Validation(_))) => "bad_checksum",
        Err(ApiError::Domain(DomainError::Unavailable | DomainError::Store(_))) => "failed",
        Err(_) => "refused",
    };
    state
        .metrics
        .content_uploads
        .get_or_create(&ResultLabels::of(label))
        .inc();
    match result {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn receive(
    state: &AppState,
    headers: &HeaderMap,
    params: &QbParams,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let mut multipart = multipart.map_err(|e| ApiError::Malformed(e.body_text()))?;
    let mut fields: Vec<(String, String)> = params.0.clone();
    let mut stored = None;
    let mut count = 0;
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        count += 1;
        if count > MAX_FIELDS {
            return Err(ApiError::Malformed("too many form fields".into()));
        }
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" && stored.is_none() {
            let get = |key: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.as_str())
            };
            let uid = get("key")
                .ok_or_else(|| DomainError::invalid("key", "is required before the file"))?;
            let policy = get("policy")
                .ok_or_else(|| DomainError::invalid("policy", "is required before the file"))?;
            let md5 = get("Content-MD5").map(str::to_string).or_else(|| {
                headers
                    .get("content-md5")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            });
            let upload = state.control.begin_upload(uid, policy).await?;
            stored = Some(store_file(state, upload, field, md5.as_deref()).await?);
        } else {
            fields.push((name, small_text(field).await?));
        }
    }
    let blob = stored.ok_or_else(|| DomainError::invalid("file", "is required"))?;
    let location = format!(
        "{}/blobs/{}",
        state.control.config().public_api_url.trim_end_matches('/'),
        blob.uid
    );
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/xml")],
        wire_content::post_response(&blob, &location),
    )
        .into_response())
}

async fn store_file(
    state: &AppState,
    mut upload: BlobUpload,
    mut field: Field<'_>,
    md5: Option<&str>,
) -> ApiResult<crate::domain::content::Blob> {
    loop {
        let chunk = match field.chunk().await {
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
        state
            .metrics
            .content_upload_bytes
            .inc_by(chunk.len() as u64);
    }
    Ok(upload.finish(md5).await?)
}

async fn small_text(mut field: Field<'_>) -> ApiResult<String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(malformed)? {
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

fn session_token<'a>(headers: &'a HeaderMap, params: &'a QbParams) -> Option<&'a str> {
    params
        .value("token")
        .or_else(|| headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn blob_id(key: &str) -> Result<i64, DomainError> {
    key.parse().map_err(|_| DomainError::NotFound)
}

fn flag(raw: Option<&str>, field: &str) -> Result<Option<bool>, DomainError> {
    match raw.map(str::trim) {
        None => Ok(None),
        Some("1" | "true") => Ok(Some(true)),
        Some("0" | "false" | "") => Ok(Some(false)),
        Some(_) => Err(DomainError::invalid(field, "must be true or false")),
    }
}

fn tag_list(raw: Option<&str>) -> Vec<String> {
    raw.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// A file name fit for a quoted header parameter: ASCII without quotes or controls.
fn header_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
