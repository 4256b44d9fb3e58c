//! The `switchboard` binary end to end: app management, serving over TLS with a generated
//! certificate, config sources, graceful shutdown and restart on the same data.

use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::{switchboard, Server, STARTUP_LIMIT};
use control_api::domain::signature;
use serde_json::Value;

fn run(args: &[&str]) -> Output {
    switchboard(args).output().expect("run switchboard")
}

fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

fn serve_in(dir: &Path) -> Command {
    let mut command = switchboard(&[
        "serve",
        "--data-dir",
        dir.to_str().unwrap(),
        "--http-addr",
        "127.0.0.1:0",
        "--https-addr",
        "127.0.0.1:0",
        "--xmpp-addr",
        "127.0.0.1:0",
        "--turn-addr",
        "127.0.0.1:0",
        "--sfu-addr",
        "127.0.0.1:0",
    ]);
    command.env("RUST_LOG", "warn");
    command
}

#[test]
fn app_commands_manage_applications() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let created = stdout_json(&run(&[
        "app",
        "create",
        "--name",
        "Acme",
        "--json",
        "--data-dir",
        data,
    ]));
    for key in ["application_id", "auth_key", "auth_secret", "account_key"] {
        assert!(!created[key].is_null(), "{key} missing in {created}");
    }
    let list = stdout_json(&run(&["app", "list", "--json", "--data-dir", data]));
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["name"] == "Acme" && a["auth_key"] == created["auth_key"]));

    let human = run(&["app", "list", "--data-dir", data]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains(created["auth_secret"].as_str().unwrap())
    );

    let id = created["application_id"].to_string();
    assert!(run(&["app", "delete", &id, "--data-dir", data])
        .status
        .success());
    let list = stdout_json(&run(&["app", "list", "--json", "--data-dir", data]));
    assert!(list.as_array().unwrap().iter().all(|a| a["name"] != "Acme"));

    let missing = run(&["app", "delete", "999", "--data-dir", data]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no application with id 999"));
}

#[test]
fn app_rotate_key_replaces_the_owner_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let created = stdout_json(&run(&[
        "app",
        "create",
        "--name",
        "Owner",
        "--json",
        "--data-dir",
        data,
    ]));
    let key = created["api_key"]
        .as_str()
        .expect("app create gives the owner's API key");
    let id = created["application_id"].to_string();
    let listed = stdout_json(&run(&["app", "list", "--json", "--data-dir", data]));
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["api_key"] == key));

    let rotated = stdout_json(&run(&[
        "app",
        "rotate-key",
        &id,
        "--json",
        "--data-dir",
        data,
    ]));
    let new_key = rotated["api_key"].as_str().unwrap();
    assert_ne!(new_key, key);
    let human = run(&["app", "list", "--data-dir", data]);
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(human.contains(new_key) && !human.contains(key), "{human}");

    let missing = run(&["app", "rotate-key", "999", "--data-dir", data]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no application with id 999"));
}

#[test]
fn class_commands_create_update_and_delete_classes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let app = stdout_json(&run(&[
        "app",
        "create",
        "--name",
        "Cars",
        "--json",
        "--data-dir",
        data,
    ]));
    let app = app["application_id"].to_string();
    let class = |args: &[&str]| {
        let mut all = vec!["class"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--app", &app, "--data-dir", data]);
        run(&all)
    };
    let created = stdout_json(&class(&[
        "create",
        "--name",
        "Car",
        "--field",
        "model:string",
        "--json",
    ]));
    assert_eq!(created["create"], "open");
    let updated = stdout_json(&class(&[
        "update",
        "--name",
        "Car",
        "--field",
        "model:string",
        "--field",
        "photo:file",
        "--read",
        "owner",
        "--create",
        "not_allowed",
        "--json",
    ]));
    assert_eq!(
        updated["fields"],
        serde_json::json!([{"name": "model", "type": "string"}, {"name": "photo", "type": "file"}])
    );
    assert_eq!(updated["permissions"]["read"]["access"], "owner");
    assert_eq!(
        updated["permissions"]["update"]["access"], "owner",
        "untouched"
    );
    assert_eq!(updated["create"], "not_allowed");
    let refused = class(&["update", "--name", "Car", "--field", "model:integer"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already a field"));
    let missing = class(&["update", "--name", "Boat", "--field", "a:string"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no class \"Boat\""));

    assert!(class(&["delete", "--name", "Car"]).status.success());
    let listed = stdout_json(&class(&["list", "--json"]));
    assert_eq!(listed, serde_json::json!([]));
}

#[tokio::test]
async fn serves_the_api_over_tls_and_restarts_on_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&mut serve_in(dir.path()));
    let cert_line = server.get("TLS certificate").to_string();
    assert!(cert_line.contains("generated"), "{cert_line}");
    let cert_path = dir.path().join("tls/cert.pem");
    assert!(cert_line.starts_with(cert_path.to_str().unwrap()));
    let https = server.get("REST API (HTTPS)").to_string();
    let http = server.get("REST API (HTTP)").to_string();
    let app_id: i64 = server.get("application id").parse().unwrap();
    let auth_key = server.get("auth key").to_string();
    let auth_secret = server.get("auth secret").to_string();

    let cert = reqwest::Certificate::from_pem(&std::fs::read(&cert_path).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(cert)
        .build()
        .unwrap();
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mut params = vec![
        ("application_id".to_string(), app_id.to_string()),
        ("auth_key".to_string(), auth_key.clone()),
        ("nonce".to_string(), "1".to_string()),
        ("timestamp".to_string(), timestamp),
    ];
    let signed = signature::signed_string(&params);
    params.push((
        "signature".into(),
        signature::sign_sha1(&auth_secret, &signed),
    ));
    let response = client
        .post(format!("{https}/session.json"))
        .form(&params)
        .send()
        .await
        .expect("TLS request with the generated certificate trusted");
    assert_eq!(response.status(), 201);
    assert!(response.headers().contains_key("qb-token-expirationdate"));
    let body: Value = response.json().await.unwrap();
    assert!(body["session"]["token"].is_string());

    let health: Value = reqwest::get(format!("{http}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let metrics = reqwest::get(format!("{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchboard_sessions_active 1"),
        "{metrics}"
    );

    // The CLI works beside a running server on the same database.
    let data = dir.path().to_str().unwrap();
    let created = stdout_json(&run(&[
        "app",
        "create",
        "--name",
        "second",
        "--json",
        "--data-dir",
        data,
    ]));
    assert!(created["application_id"].as_i64().unwrap() > app_id);

    // Stopped off the runtime's thread, so the client's connection task stays polled and
    // answers the server's HTTP/2 GOAWAY (a blocked runtime would hold the shutdown).
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();

    let again = Server::start(&mut serve_in(dir.path()));
    assert!(
        again
            .lines
            .iter()
            .any(|l| l.contains("Default application (existing)")),
        "{:?}",
        again.lines
    );
    assert_eq!(again.get("auth key"), auth_key);
    assert!(!again.get("TLS certificate").contains("generated"));
    again.stop();
}

#[test]
fn settings_come_from_the_config_file_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-file");
    let config = dir.path().join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nhttp_addr = \"127.0.0.1:0\"\nhttps_addr = \"127.0.0.1:0\"\nxmpp_addr = \"127.0.0.1:0\"\nxmpp_domain = \"chat.example\"\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut command = switchboard(&["--config", config.to_str().unwrap()]);
    command.env("SWITCHBOARD_PUBLIC_API_URL", "https://api.example:9443");
    let server = Server::start(&mut command);
    assert!(server.get("store").starts_with(data.to_str().unwrap()));
    assert_eq!(server.get("announced API"), "https://api.example:9443");
    server.stop();

    std::fs::write(&config, "http_adress = \"127.0.0.1:0\"\n").unwrap();
    let output = run(&["serve", "--config", config.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("http_adress"));
}

#[test]
fn turn_role_answers_stun_and_keeps_its_secret_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&mut serve_in(dir.path()));
    let turn: std::net::SocketAddr = server.get("TURN (UDP)").parse().unwrap();
    assert_eq!(server.get("TURN (TCP)"), turn.to_string());
    // A STUN Binding request (RFC 8489 §5): type 0x0001, no attributes.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(STARTUP_LIMIT)).unwrap();
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    request.extend_from_slice(&[7; 12]);
    socket.send_to(&request, turn).unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = socket.recv_from(&mut buf).expect("a Binding response");
    assert_eq!(&buf[..2], &[0x01, 0x01], "Binding success");
    assert_eq!(&buf[8..20], &[7; 12], "same transaction");
    assert!(n > 20);
    let secret = std::fs::read_to_string(dir.path().join("turn-secret")).unwrap();
    assert!(secret.len() >= 32);
    server.stop();
    let again = Server::start(&mut serve_in(dir.path()));
    again.stop();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("turn-secret")).unwrap(),
        secret
    );
}

#[test]
fn a_turn_coalescing_window_past_its_bound_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = serve_in(dir.path())
        .args(["--turn-coalesce-us", "1001"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("coalescing window must be at most 1 ms"),
        "{stderr}"
    );
}
