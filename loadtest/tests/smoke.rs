//! Short, bounded loopback runs of `loadtest api`, `chat` and `turn` against a freshly
//! started `switchboard serve`: requests, messages and relayed packets flow, reports are
//! well formed, bad targets and credentials fail clearly. Nothing here asserts on speed.

use std::process::{Command, Output, Stdio};

use loadtest::report::{Report, SCHEMA};

// The binary harness the root crate's tests use (std only).
#[path = "../../tests/common/server.rs"]
mod server;
#[path = "support/switchboard.rs"]
mod switchboard;

use switchboard::{assert_ok, load_shape, loadtest, metric, strings, wait_until, Server, LOADTEST};

/// A run that failed clearly: exit code 1, `needle` in its error output, a partial report
/// at `json` with no work done.
fn assert_failed_with_partial_report(out: &Output, needle: &str, json: &std::path::Path) -> Report {
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(needle), "{stderr}");
    let r = Report::read(json).expect("partial report written");
    assert!(r.partial);
    assert_eq!(r.totals.ops, 0);
    r
}

#[test]
fn api_and_chat_against_a_real_server() {
    let server = Server::start();
    let pid = server.inner.child.id().to_string();
    let dir = tempfile::tempdir().unwrap();
    let api_json = dir.path().join("api.json");
    let api_html = dir.path().join("api.html");

    let mut args = strings(&["api", "--target"]);
    args.push(server.get("REST API (HTTP)"));
    args.extend(server.app_args());
    args.extend(load_shape("3s", "500ms", 2, 40));
    args.extend(strings(&[
        "--mix",
        "session_create,user_read,dialog_list,dialog_create,dialog_update,message_create,message_list",
        "--quiet",
        "--slo",
        "errors<50%",
        "--server-pid",
        &pid,
        "--out",
        api_json.to_str().unwrap(),
        "--html",
        api_html.to_str().unwrap(),
    ]));
    let out = loadtest(&args);
    assert_ok(&out);
    let api = Report::read(&api_json).expect("api report");
    assert_eq!(api.schema, SCHEMA);
    assert_eq!(api.scenario, "api");
    assert!(!api.partial, "{:?}", api.notes);
    assert!(api.totals.ops > 0, "requests flowed: {api:?}");
    assert_eq!(api.totals.errors, 0, "{:?}", api.errors);
    assert_eq!(api.latencies["all"].count, api.totals.ops);
    for op in [
        "session_create",
        "user_read",
        "dialog_list",
        "dialog_create",
        "dialog_update",
        "message_create",
        "message_list",
    ] {
        assert!(api.latencies.contains_key(op), "{op} ran");
    }
    let server_usage = api.server.as_ref().expect("server sampled");
    assert!(server_usage.cpu_us_per_unit.is_some());
    assert!(!api.series.is_empty());
    let page = std::fs::read_to_string(&api_html).unwrap();
    assert!(page.contains("<svg") && page.contains("Latency CDF"));

    // An impossible objective breaches: exit code 3.
    let mut strict = args.clone();
    let slo_at = strict.iter().position(|a| a == "errors<50%").unwrap();
    strict[slo_at] = "p50<1us".into();
    let dur_at = strict.iter().position(|a| a == "3s").unwrap();
    strict[dur_at] = "1s".into();
    let out_at = strict.iter().position(|a| a == "--out").unwrap();
    strict[out_at + 1] = dir.path().join("strict.json").to_str().unwrap().into();
    assert_eq!(loadtest(&strict).status.code(), Some(3));

    let chat_json = dir.path().join("chat.json");
    let mut args = strings(&["chat", "--target"]);
    args.push(server.get("XMPP (TCP)"));
    args.extend(strings(&["--api"]));
    args.push(server.get("REST API (HTTP)"));
    args.extend(server.app_args());
    args.extend(load_shape("4s", "1s", 4, 40));
    args.extend(strings(&[
        "--room-size",
        "2",
        "--idle",
        "5",
        "--quiet",
        "--server-pid",
        &pid,
        "--out",
        chat_json.to_str().unwrap(),
    ]));
    let out = loadtest(&args);
    assert_ok(&out);
    let chat = Report::read(&chat_json).expect("chat report");
    assert_eq!(chat.scenario, "chat");
    assert_eq!(chat.counters["logins"], 4);
    assert_eq!(chat.counters["idle_connections"], 5);
    assert!(chat.totals.ops > 0, "messages delivered: {chat:?}");
    assert!(chat.totals.ops <= chat.counters["deliveries_expected"]);
    assert!(chat.latencies.contains_key("chat") && chat.latencies.contains_key("groupchat"));
    assert_eq!(chat.totals.errors, 0, "{:?}", chat.errors);

    // Refused logins (a wrong password): every one is counted and named, the run ends by its
    // time bound and writes its report, never hangs.
    let users = dir.path().join("wrong-users.txt");
    std::fs::write(&users, "1-1@localhost wrong\n2-1@localhost wrong\n").unwrap();
    let refused_json = dir.path().join("refused-chat.json");
    let mut args = strings(&["chat", "--target"]);
    args.push(server.get("XMPP (TCP)"));
    args.extend(strings(&[
        "--users",
        users.to_str().unwrap(),
        "--clients",
        "2",
        "--duration",
        "2s",
        "--quiet",
        "--out",
        refused_json.to_str().unwrap(),
    ]));
    let out = loadtest(&args);
    assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("login refused"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let refused = Report::read(&refused_json).expect("report written");
    assert_eq!(refused.counters["login_failures"], 2);
    assert_eq!(refused.totals.ops, 0);

    // Two agents' reports merge: counts add up.
    let merged_json = dir.path().join("merged.json");
    let out = loadtest(&strings(&[
        "merge",
        api_json.to_str().unwrap(),
        api_json.to_str().unwrap(),
        "--out",
        merged_json.to_str().unwrap(),
    ]));
    assert_ok(&out);
    let merged = Report::read(&merged_json).unwrap();
    assert_eq!(merged.totals.ops, 2 * api.totals.ops);
    assert_eq!(merged.latencies["all"].count, 2 * api.totals.ops);
    let out = loadtest(&strings(&[
        "compare",
        api_json.to_str().unwrap(),
        merged_json.to_str().unwrap(),
    ]));
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("b/a"));
}

#[test]
fn bad_targets_fail_clearly() {
    let out = loadtest(&strings(&[
        "api",
        "--target",
        "http://10.1.2.3:8080",
        "--app-id",
        "1",
        "--auth-key",
        "k",
        "--auth-secret",
        "s",
        "--quiet",
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a loopback address"));

    // Nothing listens on this port (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = loadtest(&strings(&[
        "api",
        "--target",
        &format!("http://127.0.0.1:{port}"),
        "--app-id",
        "1",
        "--auth-key",
        "k",
        "--auth-secret",
        "s",
        "--quiet",
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open an app session"));

    let users = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(users.path(), "a@localhost pw\nb@localhost pw\n").unwrap();
    let out = loadtest(&strings(&[
        "chat",
        "--target",
        &format!("127.0.0.1:{port}"),
        "--users",
        users.path().to_str().unwrap(),
        "--clients",
        "2",
        "--duration",
        "2s",
        "--quiet",
    ]));
    // The run ends by its time bound with every login counted as failed.
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("connect refused"));

    // TURN over UDP to a closed port: refused at once, every client ends, the run fails.
    let out = loadtest(&strings(&[
        "turn",
        "--target",
        &format!("127.0.0.1:{port}"),
        "--secret",
        "s",
        "--clients",
        "2",
        "--duration",
        "60s",
        "--quiet",
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("connection refused"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the run failed"));
}

#[test]
fn turn_relays_over_udp_and_tcp_and_refuses_a_wrong_secret() {
    let server = Server::start_with(&[
        "--turn-secret",
        "smoke-secret",
        "--turn-allow-peers",
        "127.0.0.1/32",
    ]);
    let pid = server.inner.child.id().to_string();
    let target = server.get("TURN (UDP)");
    let dir = tempfile::tempdir().unwrap();
    for transport in ["udp", "tcp"] {
        let json = dir.path().join(format!("turn-{transport}.json"));
        let out = loadtest(&strings(&[
            "turn",
            "--target",
            &target,
            "--transport",
            transport,
            "--secret",
            "smoke-secret",
            "--via",
            "both",
            "--refresh-every",
            "500ms",
            "--clients",
            "3",
            "--rate",
            "150",
            "--duration",
            "3s",
            "--ramp-up",
            "500ms",
            "--quiet",
            "--server-pid",
            &pid,
            "--out",
            json.to_str().unwrap(),
        ]));
        assert_ok(&out);
        let r = Report::read(&json).expect("turn report");
        assert_eq!(r.scenario, "turn");
        assert_eq!(r.unit, "relayed packet");
        assert_eq!(r.params["transport"], transport);
        assert!(!r.partial, "{:?}", r.notes);
        let c = |k: &str| r.counters.get(k).copied().unwrap_or(0);
        assert_eq!(c("allocations"), 3, "{r:?}");
        assert!(c("peer_received") > 0, "packets reached the peer: {r:?}");
        assert!(c("echoes_received") > 0, "echoes came back: {r:?}");
        // Every packet is accounted for: arrived (on either leg) or lost.
        assert_eq!(r.totals.ops, c("peer_received") + c("echoes_received"));
        assert_eq!(
            r.totals.ops + c("packets_lost"),
            c("packets_sent") + c("echoes_sent")
        );
        for op in [
            "allocate",
            "create_permission",
            "channel_bind",
            "channel",
            "send",
            "echo",
            "jitter",
        ] {
            assert!(
                r.latencies.contains_key(op),
                "{op} recorded: {:?}",
                r.latencies.keys()
            );
        }
        assert_eq!(r.latencies["all"].count, r.totals.ops);
        assert!(r.server.as_ref().and_then(|s| s.cpu_us_per_unit).is_some());
        assert_eq!(c("released"), 3);
        // Refreshes (every 500 ms here) were answered with success: no refresh errors.
        assert!(c("refreshes_confirmed") > 0, "{r:?}");
        assert!(
            r.errors.keys().all(|k| k == "lost packets"),
            "{:?}",
            r.errors
        );
    }

    // A wrong secret ends the run at once with the server's refusal and a partial report.
    let json = dir.path().join("turn-bad.json");
    let out = loadtest(&strings(&[
        "turn",
        "--target",
        &target,
        "--secret",
        "not-the-secret",
        "--clients",
        "2",
        "--duration",
        "60s",
        "--quiet",
        "--out",
        json.to_str().unwrap(),
    ]));
    let r = assert_failed_with_partial_report(&out, "refused the credentials", &json);
    assert!(r.totals.errors > 0);
}

const GRANT_SECRET: &str = "smoke-conference-secret";

/// `conference` runs with grants minted from the SFU's shared secret.
fn conference_args(ws: &str, extra: &[&str]) -> Vec<String> {
    let mut args = strings(&["conference", "--target", ws, "--quiet"]);
    args.extend(strings(extra));
    args
}

fn janus_url(server: &Server) -> String {
    let http = server.get("REST API (HTTP)");
    format!("{}/janus", http.replacen("http://", "ws://", 1))
}

#[test]
fn conference_media_flows_on_every_track() {
    let server = Server::start_with(&[
        "--roles",
        "api,sfu",
        "--sfu-grant-secret",
        GRANT_SECRET,
        "--sfu-workers",
        "1",
    ]);
    let pid = server.inner.child.id().to_string();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("conference.json");
    let tracks = dir.path().join("tracks.csv");
    let out = loadtest(&conference_args(
        &janus_url(&server),
        &[
            "--grant-secret",
            GRANT_SECRET,
            "--rooms",
            "1",
            "--participants",
            "3",
            "--duration",
            "5s",
            "--ramp-up",
            "500ms",
            "--server-pid",
            &pid,
            "--out",
            json.to_str().unwrap(),
            "--tracks",
            tracks.to_str().unwrap(),
        ],
    ));
    assert_ok(&out);
    let r = Report::read(&json).expect("conference report");
    assert_eq!(r.scenario, "conference");
    assert_eq!(r.unit, "forwarded packet");
    assert!(!r.partial, "{:?}", r.notes);
    let c = |k: &str| r.counters.get(k).copied().unwrap_or(0);
    assert_eq!(c("joins"), 3, "{r:?}");
    // Each of 3 participants subscribes to the other 2: audio + video each.
    assert_eq!(c("subscriptions"), 6, "{r:?}");
    assert_eq!(c("tracks_subscribed"), 12, "{r:?}");
    assert_eq!(c("tracks_without_media"), 0, "media on every track: {r:?}");
    assert!(c("audio_packets") > 0 && c("video_packets") > 0);
    assert_eq!(r.totals.ops, c("audio_packets") + c("video_packets"));
    assert_eq!(r.latencies["all"].count, r.totals.ops);
    for op in [
        "join",
        "publish",
        "subscribe",
        "first_media",
        "audio",
        "video",
        "jitter_audio",
        "jitter_video",
    ] {
        assert!(
            r.latencies.contains_key(op),
            "{op}: {:?}",
            r.latencies.keys()
        );
    }
    assert!(r.server.as_ref().and_then(|s| s.cpu_us_per_unit).is_some());
    assert!(
        r.errors.keys().all(|k| k == "lost packets"),
        "{:?}",
        r.errors
    );
    let csv = std::fs::read_to_string(&tracks).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 12, "{csv}");
    for row in rows {
        let packets: u64 = row.split(',').nth(3).unwrap().parse().unwrap();
        assert!(packets > 0, "a track without media: {row}");
    }
}

#[test]
fn conference_fails_clearly_on_bad_targets_refused_joins_and_a_dying_server() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens: refused at once, exit 1, partial report.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let json = dir.path().join("unreachable.json");
    let out = loadtest(&conference_args(
        &format!("ws://127.0.0.1:{port}/janus"),
        &[
            "--participants",
            "2",
            "--duration",
            "60s",
            "--out",
            json.to_str().unwrap(),
        ],
    ));
    assert_failed_with_partial_report(&out, "connection refused", &json);

    // Not loopback: refused before anything is sent.
    let out = loadtest(&conference_args("ws://10.1.2.3:8080/janus", &[]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a loopback address"));

    // Switchboard without a grant: the join is refused (Janus 433), the run ends at once.
    let server = Server::start_with(&[
        "--roles",
        "api,sfu",
        "--sfu-grant-secret",
        GRANT_SECRET,
        "--sfu-workers",
        "1",
    ]);
    let ws = janus_url(&server);
    let json = dir.path().join("refused.json");
    let out = loadtest(&conference_args(
        &ws,
        &[
            "--no-create-rooms",
            "--participants",
            "2",
            "--duration",
            "60s",
            "--out",
            json.to_str().unwrap(),
        ],
    ));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused") && stderr.contains("433"),
        "{stderr}"
    );
    assert!(Report::read(&json).expect("partial report").partial);

    // The server dies mid-run: the run ends with a partial report, not a hang.
    let mut server = server;
    let json = dir.path().join("died.json");
    let pid = server.inner.child.id().to_string();
    let run = Command::new(LOADTEST)
        .args(conference_args(
            &ws,
            &[
                "--grant-secret",
                GRANT_SECRET,
                "--participants",
                "2",
                "--duration",
                "120s",
                "--server-pid",
                &pid,
                "--out",
                json.to_str().unwrap(),
            ],
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run loadtest");
    // Media is being forwarded (bounded wait on the server's own counter)...
    wait_until("media forwarded", || {
        metric(&server, "switchboard_sfu_rtp_forwarded_total") >= 1.0
    });
    // ...when the server is killed.
    let _ = server.inner.child.kill();
    let _ = server.inner.child.wait();
    let out = run.wait_with_output().expect("loadtest ends");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the run failed"), "{stderr}");
    let r = Report::read(&json).expect("partial report");
    assert!(r.partial);
    assert!(r.totals.ops > 0, "media flowed before the server died");
}
