//! Runs cut short: Ctrl-C (SIGINT to the loadtest process) and the server dying mid-run,
//! each once messages flow on a freshly started `switchboard serve`. Both end with a
//! partial report covering what ran, never a hang. Synchronised on the server's own
//! delivery counter and on the processes' exits, every wait bounded.

use std::process::{Command, Stdio};

use loadtest::report::Report;

#[path = "../../tests/common/server.rs"]
mod server;
#[path = "support/switchboard.rs"]
mod switchboard;

use switchboard::{metric, strings, wait_output, wait_until, Server, LOADTEST};

const DELIVERED: &str = "switchboard_xmpp_routed_messages_total{result=\"delivered\"}";

/// A `chat` run far longer than the test, with a report at `json`.
fn long_chat(server: &Server, json: &std::path::Path, extra: &[&str]) -> std::process::Child {
    let mut args = strings(&["chat", "--target"]);
    args.push(server.get("XMPP (TCP)"));
    args.push("--api".into());
    args.push(server.get("REST API (HTTP)"));
    args.extend(server.app_args());
    args.extend(strings(&[
        "--duration",
        "300s",
        "--ramp-up",
        "500ms",
        "--clients",
        "2",
        "--rate",
        "20",
        "--quiet",
        "--out",
        json.to_str().unwrap(),
    ]));
    args.extend(strings(extra));
    Command::new(LOADTEST)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run loadtest")
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
    let mut server = Server::start();
    let pid = server.pid().to_string();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("died.json");
    let run = long_chat(&server, &json, &["--server-pid", &pid]);
    wait_until("messages delivered", || metric(&server, DELIVERED) >= 1.0);
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
    // Whichever the run noticed first: the sampled pid gone, or every connection closed.
    assert!(
        stderr.contains("the run failed")
            && (stderr.contains("went away") || stderr.contains("closed all")),
        "{stderr}"
    );
    let r = Report::read(&json).expect("partial report written");
    assert!(r.partial);
    assert!(
        r.totals.ops > 0,
        "messages were delivered before the server died"
    );
    assert!(r.server.is_some(), "server usage up to its death");
}
