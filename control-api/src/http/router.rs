//! Assembles the routes and the layers around them.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower::ServiceBuilder;
use tower_http::cors::{Any, CorsLayer};
use tower_http::trace::TraceLayer;

use super::error::ApiError;
use super::extract::resolve_session;
use super::routes;
use super::state::AppState;
use crate::metrics::{HttpRequestLabels, HttpRouteLabels};

/// How long browsers may cache a CORS preflight answer.
const CORS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The REST API with its session and metrics layers, plus `/health` and `/metrics`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(routes::session::routes())
        .merge(routes::account::routes())
        .merge(routes::users::routes())
        .merge(routes::calls::routes())
        .merge(routes::conference::routes())
        .merge(routes::call_history::routes())
        .merge(routes::dialogs::routes())
        .merge(routes::messages::routes())
        .merge(routes::blobs::routes())
        .merge(routes::data::routes())
        .merge(routes::classes::routes())
        .merge(routes::push::routes())
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            resolve_session,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), track_metrics))
        .merge(routes::ops::routes())
        .with_state(state)
}

/// Wraps a router with what must run before routing: QuickBlox's `.json` suffix is
/// stripped (so `/users/12.json` routes as `/users/12`) and CORS preflights are answered.
pub fn service(router: Router) -> Router {
    let layers = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .layer(cors())
        .map_request(strip_json_suffix);
    Router::new().fallback_service(layers.service(router))
}

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            HeaderName::from_static("qb-token"),
            HeaderName::from_static("qb-os"),
            HeaderName::from_static("qb-sdk"),
            HeaderName::from_static("qb-account-key"),
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
        ])
        .expose_headers([HeaderName::from_static("qb-token-expirationdate")])
        .max_age(CORS_MAX_AGE)
}

/// Marks a request whose path ended in `.json` before [`service`] stripped it: the one
/// place the suffix matters is `/blobs/{uid}`, where `.json` asks for metadata and its
/// absence for the file itself.
#[derive(Clone, Copy, Debug)]
pub struct JsonSuffix;

fn strip_json_suffix(mut req: Request) -> Request {
    let Some(path) = req.uri().path().strip_suffix(".json") else {
        return req;
    };
    let rewritten = match req.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    req.extensions_mut().insert(JsonSuffix);
    if let Ok(uri) = rewritten.parse::<Uri>() {
        *req.uri_mut() = uri;
    }
    req
}

async fn track_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let method = known_method(req.method()).to_string();
    let response = next.run(req).await;
    let labels = HttpRouteLabels { method, route };
    state
        .metrics
        .http_request_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .http_requests
        .get_or_create(&HttpRequestLabels {
            method: labels.method,
            route: labels.route,
            status: response.status().as_str().to_string(),
        })
        .inc();
    response
}

/// Keeps the method label bounded: arbitrary extension methods share one value.
fn known_method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}
