//! Content: the blob upload flow the SDKs follow, downloads and their access rules, and
//! every error path.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use base64::Engine;
use common::{encode, Response, TestApi};
use control_api::config::ContentConfig;
use control_api::domain::content::BlobStorage;
use control_api::domain::model::App;
use control_api::storage::{open_blob_storage, LocalBlobStorage, ObjectBlobStorage};
use control_api::{http, open_store, ControlConfig, ControlPlane};
use md5::{Digest, Md5};
use prometheus_client::registry::Registry;
use serde_json::Value;

const BOUNDARY: &str = "----switchboard-test-boundary";

struct ContentApi {
    api: TestApi,
    blobs: PathBuf,
    _dir: tempfile::TempDir,
}

/// The test API over its own store, with blobs in a temporary directory.
async fn content_api(content: ContentConfig) -> ContentApi {
    content_api_on(content, None).await
}

/// As [`content_api`], with `storage` instead of local files when given.
async fn content_api_on(
    content: ContentConfig,
    storage: Option<Arc<dyn BlobStorage>>,
) -> ContentApi {
    let mut api = TestApi::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open_store("sqlite", dir.path()).await.expect("store"));
    let config = ControlConfig {
        content,
        ..api.control.config().clone()
    };
    let blobs = dir.path().join("blobs");
    api.control = ControlPlane::new(store, api.clock.clone(), config)
        .with_blob_storage(storage.unwrap_or_else(|| Arc::new(LocalBlobStorage::new(&blobs))));
    api.app = api.control.ensure_default_app().await.expect("app").0;
    api.router = http::app(api.control.clone(), Registry::default());
    ContentApi {
        api,
        blobs,
        _dir: dir,
    }
}

impl ContentApi {
    async fn form(&self, method: Method, path: &str, token: &str, body: &str) -> Response {
        self.api.form(method, path, Some(token), body).await
    }
}

async fn default_api() -> ContentApi {
    content_api(ContentConfig::default()).await
}

async fn user(api: &TestApi, login: &str) -> String {
    let app_token = api.app_token().await;
    api.sign_up(&app_token, login, "").await;
    api.user_token(login, &format!("{login}-password")).await
}

async fn create(api: &TestApi, token: &str, extra: &str) -> Value {
    let body = format!("blob[content_type]=text%2Fplain&blob[name]=hello.txt{extra}");
    let r = api
        .form(Method::POST, "/blobs.json", Some(token), &body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["blob"].clone()
}

/// The upload URL and its form fields, as the SDK takes them from `params`.
fn upload_target(blob: &Value) -> (String, Vec<(String, String)>) {
    let params = blob["blob_object_access"]["params"]
        .as_str()
        .expect("params");
    let (url, query) = params.split_once('?').expect("query");
    let fields = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    (url.to_string(), fields)
}

fn multipart(fields: &[(String, String)], file: &[u8], trailing_name: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"hello.txt\"\r\n\
             Content-Type: text/plain\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(b"\r\n");
    if trailing_name {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nhello.txt\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn post_upload(api: &TestApi, fields: &[(String, String)], file: &[u8]) -> Response {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    api.request_bytes(
        Method::POST,
        "/blobs/upload",
        &[("content-type", content_type.as_str())],
        multipart(fields, file, true),
    )
    .await
}

/// Create, upload and complete: the SDK's `createAndUpload`.
async fn uploaded(api: &TestApi, token: &str, extra: &str, bytes: &[u8]) -> Value {
    let blob = create(api, token, extra).await;
    let (_, fields) = upload_target(&blob);
    let r = post_upload(api, &fields, bytes).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = blob["id"].as_i64().unwrap();
    let r = api
        .form(
            Method::PUT,
            &format!("/blobs/{id}/complete.json"),
            Some(token),
            &format!("size={}", bytes.len()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    blob
}

async fn get(api: &TestApi, path: &str, token: Option<&str>) -> Response {
    let mut headers = vec![];
    if let Some(token) = token {
        headers.push(("qb-token", token));
    }
    api.request_raw(Method::GET, path, &headers).await
}

#[tokio::test]
async fn create_answers_the_blob_and_a_write_grant_on_the_public_api_url() {
    let c = default_api().await;
    let token = user(&c.api, "alice").await;
    let blob = create(&c.api, &token, "&blob[public]=true&blob[tag_list]=a,b").await;
    assert_eq!(blob["name"], "hello.txt");
    assert_eq!(blob["content_type"], "text/plain");
    assert_eq!(blob["public"], true);
    assert_eq!(blob["size"], Value::Null);
    assert_eq!(blob["blob_status"], Value::Null);
    assert_eq!(blob["tag_list"], "a,b");
    let uid = blob["uid"].as_str().unwrap();
    assert_eq!(uid.len(), 32);
    assert!(uid.bytes().all(|b| b.is_ascii_hexdigit()));
    let access = &blob["blob_object_access"];
    assert_eq!(access["object_access_type"], "Write");
    assert_eq!(access["blob_id"], blob["id"]);
    let (url, fields) = upload_target(&blob);
    assert_eq!(url, "https://127.0.0.1:8443/blobs/upload");
    let field = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(field("key").as_deref(), Some(uid));
    assert_eq!(field("Content-Type").as_deref(), Some("text/plain"));
    assert_eq!(field("success_action_status").as_deref(), Some("201"));
    assert!(field("policy").is_some_and(|p| p.len() >= 32));
}

#[tokio::test]
async fn the_upload_flow_stores_the_bytes_and_download_streams_them_back() {
    let c = default_api().await;
    let token = user(&c.api, "alice").await;
    let blob = uploaded(&c.api, &token, "&blob[public]=true", b"hello world").await;
    let (id, uid) = (blob["id"].as_i64().unwrap(), blob["uid"].as_str().unwrap());

    let info = c
        .form(Method::GET, &format!("/blobs/{id}.json"), &token, "")
        .await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.text);
    assert_eq!(info.body["blob"]["size"], 11);
    assert_eq!(info.body["blob"]["blob_status"], "complete");
    assert!(info.body["blob"]["set_completed_at"].is_string());
    assert!(info.body["blob"].get("blob_object_access").is_none());
    // The SDK's getFile(uid) asks for JSON by uid.
    let by_uid = c
        .form(Method::GET, &format!("/blobs/{uid}.json"), &token, "")
        .await;
    assert_eq!(by_uid.body["blob"]["id"], id);

    // Public: no token needed; content type and checksum kept.
    let file = get(&c.api, &format!("/blobs/{uid}"), None).await;
    assert_eq!(file.status, StatusCode::OK, "{}", file.text);
    assert_eq!(file.text, "hello world");
    assert_eq!(file.headers["content-type"], "text/plain");
    assert_eq!(file.headers["content-length"], "11");
    let md5 = hex::encode(Md5::digest(b"hello world"));
    assert_eq!(file.headers["etag"], format!("\"{md5}\""));
    assert_eq!(file.headers["x-content-type-options"], "nosniff");
    let again = get(&c.api, &format!("/blobs/{uid}/download.json"), None).await;
    assert_eq!(again.text, "hello world");
    assert!(c.blobs.join(format!("{}/{uid}", c.api.app.id)).exists());
}

#[tokio::test]
async fn private_blobs_need_a_session_of_their_application() {
    let c = default_api().await;
    let token = user(&c.api, "alice").await;
    let blob = uploaded(&c.api, &token, "", b"secret").await;
    let uid = blob["uid"].as_str().unwrap();
    assert_eq!(blob["public"], false);

    let anonymous = get(&c.api, &format!("/blobs/{uid}"), None).await;
    assert_eq!(
        anonymous.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        anonymous.text
    );
    assert_ne!(anonymous.text, "secret");

    let bad = get(&c.api, &format!("/blobs/{uid}?token=nope"), None).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);

    // Any session of the same application: the SDK's privateUrl puts it in the query.
    let app_token = c.api.app_token().await;
    let own_app = get(&c.api, &format!("/blobs/{uid}?token={app_token}"), None).await;
    assert_eq!(own_app.status, StatusCode::OK, "{}", own_app.text);
    assert_eq!(own_app.text, "secret");
    assert_eq!(own_app.headers["cache-control"], "private, no-store");
    let header = get(&c.api, &format!("/blobs/{uid}"), Some(&token)).await;
    assert_eq!(header.text, "secret");

    // Another application's session is refused, and so is its metadata request.
    let other: App = c.api.control.create_app("other").await.expect("app");
    let other_token = c.api.app_token_for(&other).await;
    let foreign = get(&c.api, &format!("/blobs/{uid}?token={other_token}"), None).await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN, "{}", foreign.text);
    assert_ne!(foreign.text, "secret");
    let info = c
        .form(Method::GET, &format!("/blobs/{uid}.json"), &other_token, "")
        .await;
    assert_eq!(info.status, StatusCode::NOT_FOUND);
    let info = c
        .form(
            Method::GET,
            &format!("/blobs/{}.json", blob["id"]),
            &other_token,
            "",
        )
        .await;
    assert_eq!(info.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn incomplete_and_unknown_blobs_cannot_be_downloaded() {
    let c = default_api().await;
    let token = user(&c.api, "alice").await;
    let blob = create(&c.api, &token, "&blob[public]=true").await;
    let uid = blob["uid"].as_str().unwrap();
    assert_eq!(
        get(&c.api, &format!("/blobs/{uid}"), None).await.status,
        StatusCode::NOT_FOUND
    );
    let (_, fields) = upload_target(&blob);
    assert_eq!(
        post_upload(&c.api, &fields, b"x").await.status,
        StatusCode::CREATED
    );
    // Uploaded but not marked complete: still not served.
    assert_eq!(
        get(&c.api, &format!("/blobs/{uid}"), None).await.status,
        StatusCode::NOT_FOUND
    );
    let unknown = get(&c.api, "/blobs/0123456789abcdef0123456789abcdef", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.body["errors"].is_object());
}

#[tokio::test]
async fn uploads_need_the_grant_and_refuse_reuse_and_expiry() {
    let c = default_api().await;
    let token = user(&c.api, "alice").await;
    let blob = create(&c.api, &token, "").await;
    let (_, fields) = upload_target(&blob);

    let mut forged = fields.clone();
    for (k, v) in forged.iter_mut() {
        if k == "policy" {
            *v = "forged".into();
        }
    }
    assert_eq!(
        post_upload(&c.api, &forged, b"x").await.status,
        StatusCode::FORBIDDEN
    );
    let without_key: Vec<_> = fields.iter().filter(|(k, _)| k != "key").cloned().collect();
    let r = post_upload(&c.api, &without_key, b"x").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.body["errors"]["key"].is_array(), "{}", r.text);
    let r = c
        .api
        .request(
            Method::POST,
            "/blobs/upload",
            &[("content-type", "text/plain")],
            "x",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);

    // Once complete, the grant is spent.
    let done = uploaded(&c.api, &token, "", b"first").await;
    let (_, spent) = upload_target(&done);
    assert_eq!(
        post_upload(&c.api, &spent, b"second").await.status,
        StatusCode::FORBIDDEN
    );

    // An unused grant expires with the upload window.
    c.api.clock.advance(Duration::from_secs(3601));
    let token = c.api.user_token("alice", "alice-password").await;
    assert_eq!(
        post_upload(&c.api, &fields, b"late").await.status,
        StatusCode::FORBIDDEN
    );
    let _ = token;
}

#[tokio::test]
async fn the_size_limit_and_checksums_are_enforced() {
    let c = content_api(ContentConfig {
        max_blob_bytes: 16,
        ..ContentConfig::default()
    })
    .await;
    let token = user(&c.api, "alice").await;
    let blob = create(&c.api, &token, "").await;
    let id = blob["id"].as_i64().unwrap();
    let (_, fields) = upload_target(&blob);

    let r = post_upload(&c.api, &fields, &[b'x'; 17]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    let r = c
        .form(
            Method::PUT,
            &format!("/blobs/{id}/complete.json"),
            &token,
            "size=17",
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "nothing was stored: {}",
        r.text
    );
    let leftovers: Vec<_> = walk(&c.blobs);
    assert!(leftovers.is_empty(), "aborted upload left {leftovers:?}");

    let mut with_md5 = fields.clone();
    let wrong = base64::engine::general_purpose::STANDARD.encode(Md5::digest(b"other"));
    with_md5.push(("Content-MD5".into(), wrong));
    let r = post_upload(&c.api, &with_md5, b"exactly16bytes!!").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.body["errors"]["Content-MD5"].is_array());

    let mut with_md5 = fields.clone();
    let right = base64::engine::general_purpose::STANDARD.encode(Md5::digest(b"exactly16bytes!!"));
    with_md5.push(("Content-MD5".into(), right));
    let r = post_upload(&c.api, &with_md5, b"exactly16bytes!!").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(r.text.contains("<PostResponse>"));

    let r = c
        .form(
            Method::PUT,
            &format!("/blobs/{id}/complete.json"),
            &token,
            "size=15",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.body["errors"]["size"].is_array());
    let r = c
        .form(
            Method::PUT,
            &format!("/blobs/{id}/complete.json"),
            &token,
            "size=16",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn owners_list_update_and_delete_their_blobs() {
    let c = default_api().await;
    let alice = user(&c.api, "alice").await;
    let bob = user(&c.api, "bob").await;
    let first = uploaded(&c.api, &alice, "", b"one").await;
    let second = uploaded(&c.api, &alice, "", b"two").await;
    uploaded(&c.api, &bob, "", b"bob's").await;

    let page = c
        .form(Method::GET, "/blobs.json?page=1&per_page=1", &alice, "")
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.body["total_entries"], 2);
    assert_eq!(page.body["per_page"], 1);
    assert_eq!(page.body["items"][0]["blob"]["id"], second["id"]);
    let page2 = c
        .form(Method::GET, "/blobs.json?page=2&per_page=1", &alice, "")
        .await;
    assert_eq!(page2.body["items"][0]["blob"]["id"], first["id"]);

    // The SDK's content.update is a GET with blob[name].
    let id = first["id"].as_i64().unwrap();
    let r = c
        .form(
            Method::GET,
            &format!("/blobs/{id}.json?blob[name]=renamed.txt"),
            &alice,
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["blob"]["name"], "renamed.txt");
    let r = c
        .form(
            Method::PUT,
            &format!("/blobs/{id}.json"),
            &alice,
            "blob[public]=1",
        )
        .await;
    assert_eq!(r.body["blob"]["public"], true, "{}", r.text);
    assert_eq!(r.body["blob"]["name"], "renamed.txt");

    // Bob may read the metadata, not change or delete it.
    let r = c
        .form(Method::GET, &format!("/blobs/{id}.json"), &bob, "")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = c
        .form(
            Method::GET,
            &format!("/blobs/{id}.json?blob[name]=mine"),
            &bob,
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = c
        .form(Method::DELETE, &format!("/blobs/{id}.json"), &bob, "")
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = c
        .form(
            Method::PUT,
            &format!("/blobs/{id}/complete.json"),
            &bob,
            "size=3",
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let uid = first["uid"].as_str().unwrap();
    let path = c.blobs.join(format!("{}/{uid}", c.api.app.id));
    assert!(path.exists());
    let r = c
        .form(Method::DELETE, &format!("/blobs/{id}.json"), &alice, "")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(!path.exists(), "delete removes the stored bytes");
    assert_eq!(
        get(&c.api, &format!("/blobs/{uid}?token={alice}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = c
        .form(Method::GET, &format!("/blobs/{id}.json"), &alice, "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = c
        .form(Method::DELETE, &format!("/blobs/{id}.json"), &alice, "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn blob_requests_need_a_user_session_and_valid_fields() {
    let c = default_api().await;
    let r = c
        .api
        .form(Method::POST, "/blobs.json", None, "blob[name]=a")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let app_token = c.api.app_token().await;
    let r = c
        .form(Method::POST, "/blobs.json", &app_token, "blob[name]=a")
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = c.form(Method::GET, "/blobs.json", &app_token, "").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let token = user(&c.api, "alice").await;
    let r = c
        .form(
            Method::POST,
            "/blobs.json",
            &token,
            "blob[content_type]=text%2Fplain",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body["errors"]["name"].is_array(), "{}", r.text);
    let body = encode(&[
        ("blob[name]".into(), "a".into()),
        ("blob[content_type]".into(), "not a type".into()),
    ]);
    let r = c.form(Method::POST, "/blobs.json", &token, &body).await;
    assert!(r.body["errors"]["content_type"].is_array(), "{}", r.text);
    let r = c
        .form(
            Method::POST,
            "/blobs.json",
            &token,
            "blob[name]=a&blob[public]=maybe",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Without a content type the bytes are served as octets.
    let r = c
        .form(Method::POST, "/blobs.json", &token, "blob[name]=a")
        .await;
    assert_eq!(r.body["blob"]["content_type"], "application/octet-stream");
    let r = c
        .form(Method::PUT, "/blobs/abc/complete.json", &token, "size=1")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = c
        .form(Method::PUT, "/blobs/1/complete.json", &token, "size=-1")
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn content_metrics_count_transfers_and_stored_bytes() {
    let c = default_api().await;
    let token = user(&c.api, "alice").await;
    let blob = uploaded(&c.api, &token, "&blob[public]=true", b"12345").await;
    get(
        &c.api,
        &format!("/blobs/{}", blob["uid"].as_str().unwrap()),
        None,
    )
    .await;
    let metrics = get(&c.api, "/metrics", None).await.text;
    for line in [
        "switchboard_content_uploads_total{result=\"ok\"} 1",
        "switchboard_content_upload_bytes_total 5",
        "switchboard_content_downloads_total{result=\"ok\"} 1",
        "switchboard_content_download_bytes_total 5",
        "switchboard_content_blobs 1",
        "switchboard_content_stored_bytes 5",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}

#[tokio::test]
async fn an_object_store_serves_the_same_flow() {
    let memory = Arc::new(object_store::memory::InMemory::new());
    let storage = ObjectBlobStorage::new(memory.clone(), "prefix/", "memory".into());
    let c = content_api_on(ContentConfig::default(), Some(Arc::new(storage))).await;
    let token = user(&c.api, "alice").await;
    let blob = uploaded(&c.api, &token, "&blob[public]=true", b"in the object store").await;
    let uid = blob["uid"].as_str().unwrap();
    let key = object_store::path::Path::from(format!("prefix/{}/{uid}", c.api.app.id));
    use object_store::ObjectStore;
    let stored = memory.get(&key).await.expect("stored object");
    assert_eq!(
        stored.bytes().await.unwrap().as_ref(),
        b"in the object store"
    );

    let file = get(&c.api, &format!("/blobs/{uid}"), None).await;
    assert_eq!(file.text, "in the object store");
    assert_eq!(file.headers["content-length"], "19");

    // A refused upload leaves no object behind.
    let small = create(&c.api, &token, "").await;
    let (_, mut fields) = upload_target(&small);
    fields.push(("Content-MD5".into(), "bm9wZQ==".into()));
    assert_eq!(
        post_upload(&c.api, &fields, b"x").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let other = object_store::path::Path::from(format!(
        "prefix/{}/{}",
        c.api.app.id,
        small["uid"].as_str().unwrap()
    ));
    assert!(memory.head(&other).await.is_err());

    let id = blob["id"].as_i64().unwrap();
    let r = c
        .form(Method::DELETE, &format!("/blobs/{id}.json"), &token, "")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        memory.head(&key).await.is_err(),
        "delete removes the object"
    );
}

#[test]
fn blob_storage_specs_are_parsed() {
    let dir = std::path::Path::new("/tmp/data");
    assert_eq!(
        open_blob_storage("local", dir).unwrap().describe(),
        "/tmp/data/blobs"
    );
    assert_eq!(
        open_blob_storage("local:/srv/blobs", dir)
            .unwrap()
            .describe(),
        "/srv/blobs"
    );
    let s3 = open_blob_storage("s3://bucket/some/prefix", dir).unwrap();
    assert_eq!(s3.describe(), "s3://bucket/some/prefix");
    assert!(open_blob_storage("s3://", dir).is_err());
    assert!(open_blob_storage("ftp://x", dir).is_err());
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
