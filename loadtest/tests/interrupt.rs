//! Runs cut short: Ctrl-C (SIGINT to the loadtest process) and the server dying mid-run
//! (`chat`, `api`, `turn`), each once work flows on a freshly started `switchboard serve`.
//! Each ends with a partial report covering what ran, never a hang. Synchronised on the
//! server's own work counters and on the processes' exits, every wait bounded.

use std::process::{Command, Stdio};

use loadtest::report::Report;

#[path = "../../tests/common/server.rs"]
mod server;
#[path = "support/switchboard.rs"]
mod switchboard;

use switchboard::{load_shape, metric, strings, wait_output, wait_until, Server, LOADTEST};

const DELIVERED: &str = "switchboard_xmpp_routed_messages_total{result=\"delivered\"}";
/// `user_read` requests answered. An `api` client sends its next request only after it
/// recorded the last answer, so more of these than clients means requests were recorded.
const USER_READS: &str =
    "switchboard_http_requests_total{method=\"GET\",route=\"/users/{id}\",status=\"200\"}";
/// Packets relayed back to a TURN client: the peer received (and counted) each one first.
const RELAYED_TO_CLIENT: &str = "switchboard_turn_relayed_packets_total{direction=\"to_client\"}";
const TURN_SECRET: &str = "interrupt-turn-secret";

/// A `chat` run far longer than the test, with a report at `json`.
fn long_chat(server: &Server, json: &std::path::Path, extra: &[&str]) -> std::process::Child {
    let mut args = strings(&["chat", "--target"]);
    args.push(server.get("XMPP (TCP)"));
    args.push("--api".into());
    args.push(server.get("REST API (HTTP)"));
    spawn(&long_run(server, args, json, extra))
}

/// `head` (scenario and target) with the app's credentials, 2 clients at 20/s for far longer
/// than the test, quiet, report at `json`, then `extra`.
fn long_run(
    server: &Server,
    mut head: Vec<String>,
    json: &std::path::Path,
    extra: &[&str],
) -> Vec<String> {
    head.extend(server.app_args());
    head.extend(load_shape("300s", "500ms", 2, 20));
    head.extend(strings(&["--quiet", "--out", json.to_str().unwrap()]));
    head.extend(strings(extra));
    head
}

fn spawn(args: &[String]) -> std::process::Child {
    Command::new(LOADTEST)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run loadtest")
}

/// Kills the server once `work` (a server counter) reaches `at_least`, then checks that
/// `run` failed clearly: exit code 1, "the run failed" and one of `why` on stderr, and a
/// partial report at `json` with the server's usage up to its death. Callers check the work
/// done with a counter the client moved before the server's `work` could.
fn kill_server_and_check(
    mut server: Server,
    run: std::process::Child,
    work: &str,
    at_least: f64,
    why: &[&str],
    json: &std::path::Path,
) -> Report {
    wait_until(work, || metric(&server, work) >= at_least);
    let _ = server.inner.child.kill();
    let _ = server.inner.child.wait();
    let out = wait_output(run, "after the server died");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains("the run failed") && why.iter().any(|w| stderr.contains(w)),
        "{stderr}"
    );
    let r = Report::read(json).expect("partial report written");
    assert!(r.partial);
    assert!(r.server.is_some(), "server usage up to its death");
    r
}

#[test]
fn ctrl_c_ends_a_run_with_a_partial_report() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("interrupted.json");
    let run = long_chat(&server, &json, &[]);
    wait_until("messages delivered", || metric(&server, DELIVERED) >= 1.0);
    let status = Command::new("kill")
        .args(["-INT", &run.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = wait_output(run, "after SIGINT");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Interrupting is a clean end: exit 0, the summary printed, the report written.
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("(partial)"), "{stdout}");
    let r = Report::read(&json).expect("partial report written");
    assert!(r.partial);
    assert!(
        r.notes.iter().any(|n| n.contains("interrupted (Ctrl-C)")),
        "{:?}",
        r.notes
    );
    assert!(r.totals.ops > 0, "messages were delivered before Ctrl-C");
    assert!(r.duration_s < 300.0);
}

#[test]
fn a_server_dying_mid_chat_run_fails_clearly_with_a_partial_report() {
    let server = Server::start();
    let pid = server.pid().to_string();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("died.json");
    let run = long_chat(&server, &json, &["--server-pid", &pid]);
    // Whichever the run noticed first: the sampled pid gone, or every connection closed.
    let r = kill_server_and_check(
        server,
        run,
        DELIVERED,
        1.0,
        &["went away", "closed all"],
        &json,
    );
    // The server counts a message delivered once it has routed it, perhaps before the client
    // read it (so `ops`, the deliveries the client recorded, may be 0); a delivered message
    // was sent and counted as such by the client first.
    assert!(
        r.counters.get("messages_sent").is_some_and(|&n| n > 0),
        "{:?}",
        r.counters
    );
}

/// An `api` run far longer than the test (2 clients, 20 requests/s), report at `json`.
fn long_api(server: &Server, json: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut args = strings(&["api", "--target"]);
    args.push(server.get("REST API (HTTP)"));
    long_run(server, args, json, extra)
}

#[test]
fn a_server_dying_mid_api_run_fails_clearly_with_a_partial_report() {
    let server = Server::start();
    let pid = server.pid().to_string();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("died.json");
    let run = spawn(&long_api(&server, &json, &["--server-pid", &pid]));
    // Whichever notices first ends the run: the sampled pid gone, or every client's
    // connection refused.
    let r = kill_server_and_check(
        server,
        run,
        USER_READS,
        3.0,
        &["went away", "stopped accepting connections"],
        &json,
    );
    assert!(
        r.totals.ops > 0,
        "requests were recorded before the server died"
    );
    assert!(
        r.latencies.contains_key("user_read"),
        "{:?}",
        r.latencies.keys()
    );
}

#[test]
fn an_api_run_without_the_server_pid_also_notices_the_server_dying() {
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("died.json");
    let run = spawn(&long_api(&server, &json, &[]));
    wait_until(USER_READS, || metric(&server, USER_READS) >= 3.0);
    let _ = server.inner.child.kill();
    let _ = server.inner.child.wait();
    let out = wait_output(run, "after the server died");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the run failed") && stderr.contains("stopped accepting connections"),
        "{stderr}"
    );
    let r = Report::read(&json).expect("partial report written");
    assert!(r.partial);
    assert!(r.totals.ops > 0, "work was done before the server died");
}

#[test]
fn a_server_dying_mid_turn_relay_run_fails_clearly_with_a_partial_report() {
    let server = Server::start_with(&[
        "--turn-secret",
        TURN_SECRET,
        "--turn-allow-peers",
        "127.0.0.1/32",
    ]);
    let pid = server.pid().to_string();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("died.json");
    let run = spawn(&strings(&[
        "turn",
        "--target",
        &server.get("TURN (UDP)"),
        "--transport",
        "udp",
        "--secret",
        TURN_SECRET,
        "--clients",
        "2",
        "--rate",
        "100",
        "--duration",
        "300s",
        "--ramp-up",
        "500ms",
        "--quiet",
        "--server-pid",
        &pid,
        "--out",
        json.to_str().unwrap(),
    ]));
    // Whichever the run noticed first: the sampled pid gone, or every client refused
    // (ICMP port unreachable) and ended.
    let r = kill_server_and_check(
        server,
        run,
        RELAYED_TO_CLIENT,
        1.0,
        &["went away", "every client ended"],
        &json,
    );
    assert_eq!(r.scenario, "turn");
    assert!(
        r.counters.get("peer_received").copied().unwrap_or(0) > 0,
        "packets reached the peer: {r:?}"
    );
}
