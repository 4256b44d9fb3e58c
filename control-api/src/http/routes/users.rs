//! `/users.json` and friends.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use crate::domain::model::UserId;
use crate::domain::sessions::Caller;
use crate::domain::user_query::{self, UserLookup, UserQuery, DEFAULT_PER_PAGE, MAX_PER_PAGE};
use crate::domain::users::parse_tags;
use crate::domain::DomainError;
use crate::http::error::ApiResult;
use crate::http::extract::QbParams;
use crate::http::state::AppState;
use crate::http::wire;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/by_login", get(by_login))
        .route("/users/by_email", get(by_email))
        .route("/users/by_facebook_id", get(by_facebook_id))
        .route("/users/by_twitter_id", get(by_twitter_id))
        .route("/users/phone", get(by_phone))
        .route("/users/by_full_name", get(by_full_name))
        .route("/users/by_tags", get(by_tags))
        .route(
            "/users/external/{id}",
            get(by_external).delete(delete_external),
        )
        .route("/users/{id}", get(show).put(update).delete(delete))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<impl IntoResponse> {
    let user = state
        .control
        .sign_up(&caller, &params.user_params())
        .await?;
    Ok((StatusCode::CREATED, Json(wire::wrapped_user(&user))))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<Json<Value>> {
    let mut query = UserQuery::default();
    for raw in params.all("filter[]").chain(params.all("filter")) {
        for filter in user_query::split_filters(raw) {
            query.conditions.push(user_query::parse_filter(filter)?);
        }
    }
    if let Some(order) = params.value("order") {
        query.order = user_query::parse_order(order)?;
    }
    paged(&state, &caller, &params, query).await
}

async fn by_tags(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<Json<Value>> {
    let raw = params
        .value("tags")
        .ok_or_else(|| DomainError::invalid("tags", "is required"))?;
    let tags = parse_tags(raw).map_err(|(field, message)| DomainError::invalid(field, message))?;
    let query = UserQuery {
        tags_any: tags,
        ..UserQuery::default()
    };
    paged(&state, &caller, &params, query).await
}

async fn by_full_name(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<Json<Value>> {
    let name = params
        .value("full_name")
        .ok_or_else(|| DomainError::invalid("full_name", "is required"))?;
    let query = UserQuery {
        full_name_contains: Some(name.to_string()),
        ..UserQuery::default()
    };
    paged(&state, &caller, &params, query).await
}

async fn paged(
    state: &AppState,
    caller: &Caller,
    params: &QbParams,
    mut query: UserQuery,
) -> ApiResult<Json<Value>> {
    let page = params.positive("page", 1)?;
    let per_page = params
        .positive("per_page", DEFAULT_PER_PAGE)?
        .min(MAX_PER_PAGE);
    query.limit = per_page;
    query.offset = (page - 1).saturating_mul(per_page);
    let (users, total) = state.control.list_users(caller, &query).await?;
    Ok(Json(wire::user_page(&users, page, per_page, total)))
}

async fn find(state: &AppState, caller: &Caller, lookup: UserLookup) -> ApiResult<Json<Value>> {
    let user = state.control.user(caller, &lookup).await?;
    Ok(Json(wire::wrapped_user(&user)))
}

fn required<'a>(params: &'a QbParams, key: &str) -> Result<&'a str, DomainError> {
    params
        .value(key)
        .ok_or_else(|| DomainError::invalid(key, "is required"))
}

/// A path id that is not a number names no user.
fn user_id(raw: &str) -> Result<UserId, DomainError> {
    raw.parse().map(UserId).map_err(|_| DomainError::NotFound)
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    find(&state, &caller, UserLookup::Id(user_id(&id)?)).await
}

async fn by_login(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<Json<Value>> {
    let login = required(&params, "login")?.to_string();
    find(&state, &caller, UserLookup::Login(login)).await
}

async fn by_email(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<Json<Value>> {
    let email = required(&params, "email")?.to_lowercase();
    find(&state, &caller, UserLookup::Email(email)).await
}

async fn by_facebook_id(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<Json<Value>> {
    let id = required(&params, "facebook_id")?.to_string();
    find(&state, &caller, UserLookup::FacebookId(id)).await
}

async fn by_twitter_id(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<Json<Value>> {
    let id = required(&params, "twitter_id")?.to_string();
    find(&state, &caller, UserLookup::TwitterId(id)).await
}

async fn by_phone(
    State(state): State<AppState>,
    caller: Caller,
    params: QbParams,
) -> ApiResult<Json<Value>> {
    let phone = required(&params, "phone")?.to_string();
    find(&state, &caller, UserLookup::Phone(phone)).await
}

async fn by_external(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = id.parse().map_err(|_| DomainError::NotFound)?;
    find(&state, &caller, UserLookup::ExternalId(id)).await
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params: QbParams,
) -> ApiResult<Json<Value>> {
    let user = state
        .control
        .update_user(&caller, user_id(&id)?, &params.user_params())
        .await?;
    Ok(Json(wire::wrapped_user(&user)))
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .control
        .delete_user(&caller, &UserLookup::Id(user_id(&id)?))
        .await?;
    Ok(StatusCode::OK)
}

async fn delete_external(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = id.parse().map_err(|_| DomainError::NotFound)?;
    state
        .control
        .delete_user(&caller, &UserLookup::ExternalId(id))
        .await?;
    Ok(StatusCode::OK)
}
