//! Custom objects, file fields: `POST|GET|DELETE /data/{Class}/{id}/file.json` (the SDK's
//! `uploadFile`, `fileUrl`/`downloadFile`, `deleteFile`), their permissions and errors, and
//! deletion cascading through `_parent_id` at any depth with the files' bytes.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use common::{Response, TestApi};
use control_api::config::ContentConfig;
use control_api::domain::data::{Access, FieldDef, FieldType, Permissions};
use control_api::storage::LocalBlobStorage;
use control_api::{http, open_store, ControlConfig, ControlPlane};
use prometheus_client::registry::Registry;
use serde_json::{json, Value};

const BOUNDARY: &str = "----switchboard-data-boundary";
/// The upload limit of these tests: small, so the 413 path needs few bytes.
const LIMIT: u64 = 1024;

struct FilesApi {
    api: TestApi,
    blobs: PathBuf,
    alice: String,
    bob: String,
    _dir: tempfile::TempDir,
}

fn fields(specs: &[&str]) -> Vec<FieldDef> {
    specs
        .iter()
        .map(|s| {
            let (name, kind) = s.split_once(':').unwrap();
            FieldDef {
                name: name.into(),
                kind: FieldType::parse(kind).unwrap(),
            }
        })
        .collect()
}

/// Alice and Bob, blobs in a temporary directory, and a class `Profile` with a file field.
async fn files_api() -> FilesApi {
    files_api_with(LIMIT).await
}

async fn files_api_with(limit: u64) -> FilesApi {
    let mut api = TestApi::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open_store("sqlite", dir.path()).await.expect("store"));
    let config = ControlConfig {
        content: ContentConfig {
            max_blob_bytes: limit,
            ..ContentConfig::default()
        },
        ..api.control.config().clone()
    };
    let blobs = dir.path().join("blobs");
    api.control = ControlPlane::new(store, api.clock.clone(), config)
        .with_blob_storage(Arc::new(LocalBlobStorage::new(&blobs)));
    api.app = api.control.ensure_default_app().await.expect("app").0;
    api.router = http::app(api.control.clone(), Registry::default());
    let app_token = api.app_token().await;
    api.sign_up(&app_token, "alice", "").await;
    api.sign_up(&app_token, "bob", "").await;
    api.control
        .create_class(
            api.app.id,
            "Profile",
            fields(&["name:string", "avatar:file", "cv:file"]),
            None,
        )
        .await
        .expect("class");
    FilesApi {
        alice: api.user_token("alice", "alice-password").await,
        bob: api.user_token("bob", "bob-password").await,
        api,
        blobs,
        _dir: dir,
    }
}

/// A multipart body with `parts` as text fields, then (when given) the file part, then
/// `after` text fields.
fn multipart(
    parts: &[(&str, &str)],
    file: Option<(&str, &str, &[u8])>,
    after: &[(&str, &str)],
) -> Vec<u8> {
    let mut body = Vec::new();
    let text = |body: &mut Vec<u8>, name: &str, value: &str| {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        )
    };
    for (name, value) in parts {
        text(&mut body, name, value);
    }
    if let Some((filename, content_type, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
                 Content-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    for (name, value) in after {
        text(&mut body, name, value);
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

impl FilesApi {
    async fn record(&self, class: &str, token: &str, body: Value) -> String {
        let r = self
            .api
            .json(
                Method::POST,
                &format!("/data/{class}.json"),
                Some(token),
                &body,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["_id"].as_str().unwrap().to_string()
    }

    async fn upload_body(&self, path: &str, token: Option<&str>, body: Vec<u8>) -> Response {
        let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
        let mut headers = vec![("content-type", content_type.as_str())];
        if let Some(token) = token {
            headers.push(("qb-token", token));
        }
        self.api
            .request_bytes(Method::POST, path, &headers, body)
            .await
    }

    /// The SDK's `uploadFile`: `field_name`, then the file.
    async fn upload(
        &self,
        class: &str,
        id: &str,
        token: &str,
        field: &str,
        bytes: &[u8],
    ) -> Response {
        let body = multipart(
            &[("field_name", field)],
            Some(("photo.png", "image/png", bytes)),
            &[],
        );
        self.upload_body(&format!("/data/{class}/{id}/file.json"), Some(token), body)
            .await
    }

    async fn download(
        &self,
        class: &str,
        id: &str,
        query: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        self.api
            .request_raw(
                Method::GET,
                &format!("/data/{class}/{id}/file.json?{query}"),
                headers,
            )
            .await
    }

    async fn delete_file(&self, class: &str, id: &str, token: &str, field: &str) -> Response {
        self.api
            .form(
                Method::DELETE,
                &format!("/data/{class}/{id}/file.json"),
                Some(token),
                &format!("field_name={field}"),
            )
            .await
    }

    fn stored(&self, file_id: &str) -> PathBuf {
        self.blobs
            .join(self.api.app.id.to_string())
            .join("data")
            .join(file_id)
    }

    /// Every file under the blob directory (a `.part` left behind would show here).
    fn files_on_disk(&self) -> Vec<PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.blobs, &mut out);
        out
    }
}

#[tokio::test]
async fn a_file_is_uploaded_downloaded_replaced_and_deleted() {
    let f = files_api().await;
    let id = f
        .record("Profile", &f.alice, json!({"name": "alice"}))
        .await;

    let r = f
        .upload("Profile", &id, &f.alice, "avatar", b"first bytes")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let first = r.body.clone();
    assert_eq!(first["name"], "photo.png");
    assert_eq!(first["content_type"], "image/png");
    assert_eq!(first["size"], 11);
    let first_id = first["file_id"].as_str().unwrap().to_string();
    assert_eq!(first_id.len(), 24, "{first}");
    assert_eq!(std::fs::read(f.stored(&first_id)).unwrap(), b"first bytes");

    let shown = f
        .api
        .form(
            Method::GET,
            &format!("/data/Profile/{id}.json"),
            Some(&f.bob),
            "",
        )
        .await;
    assert_eq!(
        shown.body["avatar"], first,
        "the record holds the File model"
    );

    // The SDK's fileUrl: token in the query.
    let r = f
        .download(
            "Profile",
            &id,
            &format!("field_name=avatar&token={}", f.alice),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.text, "first bytes");
    assert_eq!(r.headers["content-type"], "image/png");
    assert_eq!(r.headers["content-length"], "11");
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    // Or QB-Token, by anyone who may read the record (class default: read open).
    let r = f
        .download(
            "Profile",
            &id,
            "field_name=avatar",
            &[("qb-token", f.bob.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.text, "first bytes");

    let r = f
        .upload("Profile", &id, &f.alice, "avatar", b"second")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let second_id = r.body["file_id"].as_str().unwrap().to_string();
    assert_ne!(second_id, first_id);
    assert!(
        !f.stored(&first_id).exists(),
        "replacing deletes the old bytes"
    );
    let r = f
        .download(
            "Profile",
            &id,
            &format!("field_name=avatar&token={}", f.alice),
            &[],
        )
        .await;
    assert_eq!(r.text, "second");

    let r = f.delete_file("Profile", &id, &f.alice, "avatar").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        !f.stored(&second_id).exists(),
        "deleting the file deletes its bytes"
    );
    let shown = f
        .api
        .form(
            Method::GET,
            &format!("/data/Profile/{id}.json"),
            Some(&f.alice),
            "",
        )
        .await;
    assert!(shown.body.get("avatar").is_none(), "{}", shown.text);
    let r = f
        .download(
            "Profile",
            &id,
            &format!("field_name=avatar&token={}", f.alice),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = f.delete_file("Profile", &id, &f.alice, "avatar").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "nothing left to delete");

    // A field name after the file is accepted too.
    let body = multipart(
        &[],
        Some(("cv.txt", "text/plain", b"cv")),
        &[("field_name", "cv")],
    );
    let r = f
        .upload_body(
            &format!("/data/Profile/{id}/file.json"),
            Some(&f.alice),
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["content_type"], "text/plain");

    let metrics = f.api.request_raw(Method::GET, "/metrics", &[]).await.text;
    for line in [
        "switchboard_data_requests_total{operation=\"file_upload\",result=\"ok\"} 3",
        "switchboard_data_requests_total{operation=\"file_download\",result=\"ok\"} 3",
        "switchboard_data_requests_total{operation=\"file_download\",result=\"not_found\"} 1",
        "switchboard_data_requests_total{operation=\"file_delete\",result=\"ok\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}

#[tokio::test]
async fn uploads_are_refused_with_the_right_error_and_leave_nothing_behind() {
    let f = files_api().await;
    let id = f
        .record("Profile", &f.alice, json!({"name": "alice"}))
        .await;
    let path = format!("/data/Profile/{id}/file.json");
    let app_token = f.api.app_token().await;
    let cases: Vec<(&str, Response, StatusCode)> = vec![
        (
            "no session",
            f.upload_body(
                &path,
                None,
                multipart(
                    &[("field_name", "avatar")],
                    Some(("a", "text/plain", b"x")),
                    &[],
                ),
            )
            .await,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "application session",
            f.upload("Profile", &id, &app_token, "avatar", b"x").await,
            StatusCode::FORBIDDEN,
        ),
        (
            "not the owner (update: owner)",
            f.upload("Profile", &id, &f.bob, "avatar", b"x").await,
            StatusCode::FORBIDDEN,
        ),
        (
            "unknown class",
            f.upload("Nope", &id, &f.alice, "avatar", b"x").await,
            StatusCode::NOT_FOUND,
        ),
        (
            "unknown record",
            f.upload(
                "Profile",
                "0123456789abcdef01234567",
                &f.alice,
                "avatar",
                b"x",
            )
            .await,
            StatusCode::NOT_FOUND,
        ),
        (
            "undeclared field",
            f.upload("Profile", &id, &f.alice, "photo", b"x").await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "not a file field",
            f.upload("Profile", &id, &f.alice, "name", b"x").await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "no field_name",
            f.upload_body(
                &path,
                Some(&f.alice),
                multipart(&[], Some(("a", "text/plain", b"x")), &[]),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "not a file field, named after the file",
            f.upload_body(
                &path,
                Some(&f.alice),
                multipart(
                    &[],
                    Some(("a", "text/plain", b"x")),
                    &[("field_name", "name")],
                ),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "no file",
            f.upload_body(
                &path,
                Some(&f.alice),
                multipart(&[("field_name", "avatar")], None, &[]),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "not multipart",
            f.api
                .form(Method::POST, &path, Some(&f.alice), "field_name=avatar")
                .await,
            StatusCode::BAD_REQUEST,
        ),
        (
            "over the limit",
            f.upload(
                "Profile",
                &id,
                &f.alice,
                "avatar",
                &vec![7u8; LIMIT as usize + 1],
            )
            .await,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (what, r, status) in cases {
        assert_eq!(r.status, status, "{what}: {}", r.text);
        assert!(
            r.body["errors"].is_object() || r.body["errors"].is_array(),
            "{what}: QuickBlox error shape: {}",
            r.text
        );
    }
    assert_eq!(
        f.files_on_disk(),
        Vec::<PathBuf>::new(),
        "refused uploads store nothing"
    );
    let shown = f
        .api
        .form(
            Method::GET,
            &format!("/data/Profile/{id}.json"),
            Some(&f.alice),
            "",
        )
        .await;
    assert!(shown.body.get("avatar").is_none(), "{}", shown.text);

    // Exactly the limit is fine.
    let r = f
        .upload(
            "Profile",
            &id,
            &f.alice,
            "avatar",
            &vec![7u8; LIMIT as usize],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["size"], LIMIT);

    // File fields are not set through record bodies, but a record sent back as read is fine.
    let shown = f
        .api
        .form(
            Method::GET,
            &format!("/data/Profile/{id}.json"),
            Some(&f.alice),
            "",
        )
        .await;
    let r = f
        .api
        .json(
            Method::PUT,
            &format!("/data/Profile/{id}.json"),
            Some(&f.alice),
            &json!({"avatar": "x.png"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.body["errors"]["avatar"].is_array(), "{}", r.text);
    let r = f
        .api
        .json(
            Method::PUT,
            &format!("/data/Profile/{id}.json"),
            Some(&f.alice),
            &json!({"avatar": shown.body["avatar"], "name": "al"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = f
        .api
        .json(Method::POST, "/data/Profile.json", Some(&f.alice), &json!({"avatar": {"file_id": "0123456789abcdef01234567", "name": "a", "size": 1, "content_type": "a/b"}}))
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a file can't be claimed by a body: {}",
        r.text
    );
}

#[tokio::test]
async fn downloads_follow_read_permissions() {
    let f = files_api().await;
    let private = f
        .record(
            "Profile",
            &f.alice,
            json!({"name": "secret", "permissions": {"read": {"access": "owner"}}}),
        )
        .await;
    let r = f
        .upload("Profile", &private, &f.alice, "avatar", b"mine")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let other = f.api.control.create_app("other").await.unwrap();
    let other_token = f.api.app_token_for(&other).await;
    let cases = [
        (
            "no token",
            f.download("Profile", &private, "field_name=avatar", &[])
                .await,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "unknown token",
            f.download("Profile", &private, "field_name=avatar&token=nope", &[])
                .await,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "not allowed to read",
            f.download(
                "Profile",
                &private,
                &format!("field_name=avatar&token={}", f.bob),
                &[],
            )
            .await,
            StatusCode::NOT_FOUND,
        ),
        (
            "another application",
            f.download(
                "Profile",
                &private,
                &format!("field_name=avatar&token={other_token}"),
                &[],
            )
            .await,
            StatusCode::NOT_FOUND,
        ),
        (
            "not a file field",
            f.download(
                "Profile",
                &private,
                &format!("field_name=name&token={}", f.alice),
                &[],
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "empty file field",
            f.download(
                "Profile",
                &private,
                &format!("field_name=cv&token={}", f.alice),
                &[],
            )
            .await,
            StatusCode::NOT_FOUND,
        ),
        (
            "no field_name",
            f.download("Profile", &private, &format!("token={}", f.alice), &[])
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (what, r, status) in cases {
        assert_eq!(r.status, status, "{what}: {}", r.text);
        assert!(
            !r.body["errors"].is_null(),
            "{what}: QuickBlox error shape: {}",
            r.text
        );
    }
    let r = f.delete_file("Profile", &private, &f.bob, "avatar").await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "Bob can't see the record: {}",
        r.text
    );
    let open = f.record("Profile", &f.alice, json!({"name": "open"})).await;
    f.upload("Profile", &open, &f.alice, "avatar", b"x").await;
    let r = f.delete_file("Profile", &open, &f.bob, "avatar").await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "update permission: owner: {}",
        r.text
    );
    let r = f.delete_file("Profile", &open, &f.alice, "name").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
}

#[tokio::test]
async fn deleting_a_record_takes_its_descendants_at_any_depth_and_their_files() {
    let f = files_api().await;
    f.api
        .control
        .create_class(
            f.api.app.id,
            "Node",
            fields(&["label:string", "doc:file"]),
            // Children are not the deleter's to delete one by one: the cascade still takes them.
            Some(Permissions {
                delete: Access::Owner,
                ..Permissions::default()
            }),
        )
        .await
        .unwrap();
    // profile ← n1 ← n2 ← n3 ← n4 (a chain deeper than one level, across classes), and
    // a file on the top and on the two deepest.
    let root = f.record("Profile", &f.alice, json!({"name": "root"})).await;
    let mut chain = vec![root.clone()];
    for depth in 1..=4 {
        let parent = chain.last().unwrap().clone();
        let owner = if depth == 4 { &f.bob } else { &f.alice };
        chain.push(
            f.record(
                "Node",
                owner,
                json!({"label": format!("n{depth}"), "_parent_id": parent}),
            )
            .await,
        );
    }
    let unrelated = f
        .record("Node", &f.alice, json!({"label": "unrelated"}))
        .await;
    let mut stored = Vec::new();
    for (class, id, field, token) in [
        ("Profile", &chain[0], "avatar", &f.alice),
        ("Node", &chain[3], "doc", &f.alice),
        ("Node", &chain[4], "doc", &f.bob),
        ("Node", &unrelated, "doc", &f.alice),
    ] {
        let r = f.upload(class, id, token, field, b"payload").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        stored.push(f.stored(r.body["file_id"].as_str().unwrap()));
    }
    assert!(stored.iter().all(|p| p.exists()));

    let r = f
        .api
        .form(
            Method::DELETE,
            &format!("/data/Profile/{root}.json"),
            Some(&f.alice),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = f
        .api
        .form(Method::GET, "/data/Node.json", Some(&f.alice), "")
        .await;
    let left: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["label"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["unrelated"], "the whole chain went with its root");
    assert!(
        !stored[0].exists() && !stored[1].exists() && !stored[2].exists(),
        "their files too"
    );
    assert!(stored[3].exists(), "others' files stay");

    // A cycle (a → b → a through `_parent_id`) ends: both go, once.
    let a = f.record("Node", &f.alice, json!({"label": "a"})).await;
    let b = f
        .record("Node", &f.alice, json!({"label": "b", "_parent_id": a}))
        .await;
    let r = f
        .api
        .json(
            Method::PUT,
            &format!("/data/Node/{a}.json"),
            Some(&f.alice),
            &json!({"_parent_id": b}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = f
        .api
        .form(
            Method::DELETE,
            "/data/Node/by_criteria.json",
            Some(&f.alice),
            "label=a",
        )
        .await;
    assert_eq!(
        r.body,
        json!({"total_deleted": 1}),
        "the count is of matches: {}",
        r.text
    );
    let r = f
        .api
        .form(Method::GET, "/data/Node.json", Some(&f.alice), "")
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "{}", r.text);

    // Deleting the class deletes its records' files as well.
    f.api
        .control
        .delete_class(f.api.app.id, "Node")
        .await
        .unwrap();
    assert!(!stored[3].exists(), "the class's files went with it");
}

#[tokio::test]
async fn the_upload_limit_is_the_content_limit_not_the_default_body_limit() {
    // axum's default body limit is 2 MiB: uploads go past it up to the configured limit,
    // while the other file routes keep it.
    let big = 3 * 1024 * 1024;
    let f = files_api_with(big as u64 + 1).await;
    let id = f
        .record("Profile", &f.alice, json!({"name": "alice"}))
        .await;
    let r = f
        .upload("Profile", &id, &f.alice, "avatar", &vec![1u8; big])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["size"], big);
    let padding = "x".repeat(big);
    let r = f
        .api
        .form(
            Method::DELETE,
            &format!("/data/Profile/{id}/file.json"),
            Some(&f.alice),
            &format!("field_name=avatar&pad={padding}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = f
        .download(
            "Profile",
            &id,
            &format!("field_name=avatar&token={}", f.alice),
            &[],
        )
        .await;
    assert_eq!(r.text.len(), big, "the file is still there");
}
