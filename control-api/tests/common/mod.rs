//! Test harness: the REST API over a fresh store, driven through HTTP requests in process,
//! with a manual clock so expiry is tested by stepping time.
#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use control_api::domain::model::App;
use control_api::domain::signature;
use control_api::http;
use control_api::{open_store, ControlConfig, ControlPlane, ManualClock};
use http_body_util::BodyExt;
use prometheus_client::registry::Registry;
use serde_json::Value;
use time::OffsetDateTime;
use tower::ServiceExt;

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The parsed JSON body; `Null` when the body is empty.
    pub body: Value,
    pub text: String,
}

pub struct TestApi {
    pub router: Router,
    pub control: ControlPlane,
    pub clock: Arc<ManualClock>,
    pub app: App,
    _dir: tempfile::TempDir,
}

/// A fixed start keeps timestamps in assertions predictable.
pub fn start_time() -> OffsetDateTime {
    time::macros::datetime!(2026-11-25 12:00:00 UTC)
}

impl TestApi {
    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    /// A server whose control-plane settings `configure` adjusts.
    pub async fn with_config(configure: impl FnOnce(&mut ControlConfig)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store("sqlite", dir.path())
            .await
            .expect("open sqlite store");
        let store = Arc::new(store);
        let clock = Arc::new(ManualClock::new(start_time()));
        let mut config = ControlConfig {
            public_api_url: "https://127.0.0.1:8443".into(),
            chat_endpoint: "localhost".into(),
            ..ControlConfig::default()
        };
        configure(&mut config);
        let control = ControlPlane::new(store, clock.clone(), config);
        let (app, _) = control.ensure_default_app().await.expect("default app");
        Self {
            router: http::app(control.clone(), Registry::default()),
            control,
            clock,
            app,
            _dir: dir,
        }
    }

    /// A request whose answer must be JSON (or empty).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        let response = self
            .request_bytes(method, path, headers, body.as_bytes().to_vec())
            .await;
        if !response.text.is_empty() {
            if let Err(e) = serde_json::from_str::<Value>(&response.text) {
                panic!("response is not JSON ({e}): {}", response.text);
            }
        }
        response
    }

    /// A request with a byte body whose answer may be anything (files, XML): `body` is
    /// the parsed JSON when the answer is JSON, `Null` otherwise.
    pub async fn request_bytes(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Response {
        let mut builder = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Body::from(body)).expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible router");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Response {
            status,
            headers,
            body,
            text,
        }
    }

    /// A bodiless request whose answer may be anything (see [`TestApi::request_bytes`]).
    pub async fn request_raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        self.request_bytes(method, path, headers, Vec::new()).await
    }

    /// A form request as the SDK sends it (form content type, even on GET).
    pub async fn form(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> Response {
        let mut headers = vec![(
            "content-type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )];
        if let Some(token) = token {
            headers.push(("qb-token", token));
        }
        self.request(method, path, &headers, body).await
    }

    /// `POST /login.json` on `token`'s session with the form `body` (`login=…&password=…`).
    pub async fn log_in(&self, token: &str, body: &str) -> Response {
        self.form(Method::POST, "/login.json", Some(token), body)
            .await
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Response {
        let mut headers = vec![("content-type", "application/json; charset=utf-8")];
        if let Some(token) = token {
            headers.push(("qb-token", token));
        }
        self.request(method, path, &headers, &body.to_string())
            .await
    }

    /// The body of a signed `POST /session.json` for `app`, with extra parameters.
    pub fn signed_session_body(&self, app: &App, extra: &[(&str, &str)]) -> String {
        let mut params: Vec<(String, String)> = vec![
            ("application_id".into(), app.id.to_string()),
            ("auth_key".into(), app.auth_key.clone()),
            ("nonce".into(), "4711".into()),
            (
                "timestamp".into(),
                self.clock_now().unix_timestamp().to_string(),
            ),
        ];
        params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let signed = signature::signed_string(&params);
        params.push((
            "signature".into(),
            signature::sign_sha1(&app.auth_secret, &signed),
        ));
        encode(&params)
    }

    pub fn clock_now(&self) -> OffsetDateTime {
        use control_api::Clock;
        self.clock.now()
    }

    pub async fn session_for(&self, app: &App, extra: &[(&str, &str)]) -> Response {
        let body = self.signed_session_body(app, extra);
        self.form(Method::POST, "/session.json", None, &body).await
    }

    /// A fresh application session token for the default app.
    pub async fn app_token(&self) -> String {
        let app = self.app.clone();
        self.app_token_for(&app).await
    }

    pub async fn app_token_for(&self, app: &App) -> String {
        let response = self.session_for(app, &[]).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
        token_of(&response)
    }

    pub async fn user_token(&self, login: &str, password: &str) -> String {
        let app = self.app.clone();
        let response = self
            .session_for(
                &app,
                &[("user[login]", login), ("user[password]", password)],
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
        token_of(&response)
    }

    /// Signs a user up through the API and returns the user object.
    pub async fn sign_up(&self, token: &str, login: &str, tags: &str) -> Value {
        let body = encode(&[
            ("user[login]".into(), login.into()),
            ("user[password]".into(), format!("{login}-password")),
            ("user[email]".into(), format!("{login}@example.com")),
            ("user[full_name]".into(), format!("{login} Example")),
            ("user[tag_list]".into(), tags.into()),
        ]);
        let response = self
            .form(Method::POST, "/users.json", Some(token), &body)
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
        response.body["user"].clone()
    }
}

pub fn token_of(response: &Response) -> String {
    response.body["session"]["token"]
        .as_str()
        .expect("token")
        .to_string()
}

pub fn encode(params: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish()
}

/// A fresh PostgreSQL database next to the one `SWITCHBOARD_TEST_PG_URL` names, for a
/// store suite; `None` (test skipped) when the variable is unset outside CI.
pub struct PgDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl PgDatabase {
    pub async fn create(prefix: &str) -> Option<Self> {
        use sqlx::{Connection, Executor};
        let Ok(admin_url) = std::env::var("SWITCHBOARD_TEST_PG_URL") else {
            assert!(
                std::env::var("CI").is_err(),
                "CI must set SWITCHBOARD_TEST_PG_URL"
            );
            eprintln!("SWITCHBOARD_TEST_PG_URL unset: PostgreSQL suite {prefix} skipped");
            return None;
        };
        let name = format!("switchboard_{prefix}_test_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to PostgreSQL");
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name} TEMPLATE template0"),
        ] {
            admin.execute(sql.as_str()).await.expect("create database");
        }
        let url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("SWITCHBOARD_TEST_PG_URL must name a database"),
        };
        Some(Self {
            url,
            admin_url,
            name,
        })
    }

    pub async fn drop(self) {
        use sqlx::{Connection, Executor};
        let mut admin = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to PostgreSQL");
        // FORCE: a pool connection that saw a failed transaction may still be closing.
        let sql = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        admin.execute(sql.as_str()).await.expect("drop database");
    }
}
