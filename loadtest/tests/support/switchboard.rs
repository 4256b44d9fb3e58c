//! A fresh `switchboard serve` for the loadtest's behaviour tests, on loopback ports of its
//! own in a temp data dir, and the loadtest binary.
//! Included by `#[path]` after the root crate's `tests/common/server.rs` as `server`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::server;

pub const LOADTEST: &str = env!("CARGO_BIN_EXE_loadtest");

/// The `switchboard` binary: `SWITCHBOARD_BIN`, or the one `cargo test --workspace` built
/// beside this test's own target directory.
pub fn switchboard_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHBOARD_BIN") {
        return p.into();
    }
    // current_exe is TARGET/debug/deps/NAME-HASH.
    let exe = std::env::current_exe().expect("own path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("switchboard");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p switchboard, or cargo test --workspace)",
        bin.display()
    );
    bin
}

pub struct Server {
    pub inner: server::Server,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With extra `serve` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new(switchboard_bin());
        command.args(["serve", "--data-dir", dir.path().to_str().unwrap()]);
        command.args(extra);
        for face in ["http", "https", "xmpp", "turn", "sfu"] {
            command.args([format!("--{face}-addr"), "127.0.0.1:0".into()]);
        }
        for (key, _) in std::env::vars() {
            if key.starts_with("SWITCHBOARD_") {
                command.env_remove(key);
            }
        }
        command.env("RUST_LOG", "warn");
        Self {
            inner: server::Server::start(&mut command),
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.inner.child.id()
    }

    /// A banner value's first word (the URL or address, without a trailing note).
    pub fn get(&self, label: &str) -> String {
        self.inner
            .get(label)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }

    /// `--app-id`, `--auth-key`, `--auth-secret` of the server's first application.
    pub fn app_args(&self) -> Vec<String> {
        vec![
            "--app-id".into(),
            self.get("application id"),
            "--auth-key".into(),
            self.get("auth key"),
            "--auth-secret".into(),
            self.get("auth secret"),
        ]
    }
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A run's load shape: `--duration`, `--ramp-up`, `--clients`, `--rate`.
pub fn load_shape(duration: &str, ramp_up: &str, clients: u32, rate: u32) -> Vec<String> {
    strings(&[
        "--duration",
        duration,
        "--ramp-up",
        ramp_up,
        "--clients",
        &clients.to_string(),
        "--rate",
        &rate.to_string(),
    ])
}

pub fn loadtest(args: &[String]) -> Output {
    Command::new(LOADTEST)
        .args(args)
        .output()
        .expect("run loadtest")
}

pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "loadtest failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The sum of a metric's samples on the server's `/metrics` (0 when unreachable).
pub fn metric(server: &Server, name: &str) -> f64 {
    use std::io::{Read, Write};
    let http = server.get("REST API (HTTP)");
    let addr = http.trim_start_matches("http://");
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return 0.0;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `cond` until it holds, bounded by the harness's start-up limit (a guard against
/// a hang, not a timing assertion).
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + server::STARTUP_LIMIT;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {:?}",
            server::STARTUP_LIMIT
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The child's exit and output, bounded by the harness's start-up limit: a run that does
/// not end is killed and fails the test.
pub fn wait_output(child: std::process::Child, what: &str) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(server::STARTUP_LIMIT) {
        Ok(out) => out.expect("wait for loadtest"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!(
                "{what}: loadtest did not end within {:?}",
                server::STARTUP_LIMIT
            );
        }
    }
}
