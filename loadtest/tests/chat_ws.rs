//! `loadtest chat --transport ws`: XMPP over WebSocket (RFC 7395) against a freshly started
//! `switchboard serve`. The target is the HTTP listener's `/ws`, which speaks nothing but
//! HTTP and WebSocket, so messages that arrive there came over WebSocket frames.

use loadtest::report::{Report, SCHEMA};

#[path = "../../tests/common/server.rs"]
mod server;
#[path = "support/switchboard.rs"]
mod switchboard;

use switchboard::{assert_ok, load_shape, loadtest, strings, Server};

#[test]
fn chat_over_websocket_delivers_messages_and_writes_the_report() {
    let server = Server::start();
    let pid = server.pid().to_string();
    let http = server.get("REST API (HTTP)");
    let ws_url = format!("{}/ws", http.replacen("http://", "ws://", 1));
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("chat-ws.json");
    let html = dir.path().join("chat-ws.html");

    let mut args = strings(&["chat", "--transport", "ws", "--target", &ws_url, "--api"]);
    args.push(http.clone());
    args.extend(server.app_args());
    args.extend(load_shape("4s", "1s", 4, 40));
    args.extend(strings(&[
        "--room-size",
        "2",
        "--idle",
        "2",
        "--quiet",
        "--server-pid",
        &pid,
        "--out",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]));
    let out = loadtest(&args);
    assert_ok(&out);
    let r = Report::read(&json).expect("chat report written");
    assert_eq!(r.schema, SCHEMA);
    assert_eq!(r.scenario, "chat");
    assert_eq!(r.target, ws_url);
    assert_eq!(r.params["transport"], "ws");
    assert!(!r.partial, "{:?}", r.notes);
    assert_eq!(r.counters["logins"], 4, "{r:?}");
    assert_eq!(r.counters["idle_connections"], 2, "{r:?}");
    assert!(r.totals.ops > 0, "messages delivered over ws: {r:?}");
    assert!(r.totals.ops <= r.counters["deliveries_expected"]);
    assert!(r.counters["messages_sent"] > 0);
    assert!(
        r.latencies.contains_key("chat") && r.latencies.contains_key("groupchat"),
        "1:1 and room messages both delivered: {:?}",
        r.latencies.keys()
    );
    assert_eq!(r.totals.errors, 0, "{:?}", r.errors);
    // Per-second loss, by the second messages were sent in: adds up to the run's totals.
    assert!(r
        .series
        .iter()
        .all(|s| s.expected.is_some() && s.lost.is_some()));
    let expected: u64 = r.series.iter().filter_map(|s| s.expected).sum();
    let lost: u64 = r.series.iter().filter_map(|s| s.lost).sum();
    assert_eq!(
        expected, r.counters["deliveries_expected"],
        "{:?}",
        r.series
    );
    assert_eq!(lost, r.counters["messages_lost"], "{:?}", r.series);
    assert!(r
        .server
        .as_ref()
        .is_some_and(|s| s.cpu_us_per_unit.is_some()));
    let page = std::fs::read_to_string(&html).expect("html written");
    assert!(page.contains("<svg") && page.contains("Latency CDF"));
    assert!(page.contains("Loss over time"));

    // host:port over ws means Switchboard's /ws on that listener; wrong passwords are refused
    // over ws as over TCP: counted, named, and the run ends by its time bound.
    let users = dir.path().join("wrong-users.txt");
    std::fs::write(&users, "1-1@localhost wrong\n2-1@localhost wrong\n").unwrap();
    let refused_json = dir.path().join("refused.json");
    let out = loadtest(&strings(&[
        "chat",
        "--transport",
        "ws",
        "--target",
        http.strip_prefix("http://").unwrap(),
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
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("login refused"), "{stdout}");
    let refused = Report::read(&refused_json).expect("report written");
    assert_eq!(refused.target, ws_url);
    assert_eq!(refused.counters["login_failures"], 2);
    assert_eq!(refused.totals.ops, 0);

    // A path that is not a WebSocket endpoint: the HTTP answer is named.
    let out = loadtest(&strings(&[
        "chat",
        "--transport",
        "ws",
        "--target",
        &format!("{ws_url}-nothing-here"),
        "--users",
        users.to_str().unwrap(),
        "--clients",
        "2",
        "--duration",
        "2s",
        "--quiet",
    ]));
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("instead of a WebSocket upgrade"),
        "{stdout}"
    );
}

#[test]
fn websocket_targets_are_checked() {
    // A ws:// URL with the default TCP transport, and a non-loopback ws target: refused
    // before anything connects.
    for (transport, target, needle) in [
        ("tcp", "ws://127.0.0.1:1/ws", "--transport ws"),
        ("ws", "ws://10.1.2.3:8080/ws", "not a loopback address"),
        ("ws", "wss://127.0.0.1:8443/ws", "a ws:// URL"),
    ] {
        let out = loadtest(&strings(&[
            "chat",
            "--transport",
            transport,
            "--target",
            target,
            "--users",
            "/nonexistent",
            "--quiet",
        ]));
        assert_eq!(out.status.code(), Some(1), "{target}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{target}: {stderr}");
    }
}
