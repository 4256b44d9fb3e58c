//! A running `switchboard serve` read up to its banner. Std only, so other crates' tests
//! include it too (`loadtest/tests/smoke.rs`, by `#[path]`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Guards against a hung child only; no assertion depends on it.
pub const STARTUP_LIMIT: Duration = Duration::from_secs(60);

/// A running `serve` and what its banner said.
pub struct Server {
    pub child: Child,
    pub banner: HashMap<String, String>,
    pub lines: Vec<String>,
}

impl Server {
    pub fn start(command: &mut Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        loop {
            let line = rx
                .recv_timeout(STARTUP_LIMIT)
                .expect("serve printed its banner");
            if line == "Switchboard ready" {
                break;
            }
            lines.push(line);
        }
        let banner = lines
            .iter()
            .filter_map(|l| {
                let (label, value) = l.trim().split_once("  ")?;
                Some((label.trim().to_string(), value.trim().to_string()))
            })
            .collect();
        Self {
            child,
            banner,
            lines,
        }
    }

    pub fn get(&self, label: &str) -> &str {
        self.banner
            .get(label)
            .unwrap_or_else(|| panic!("banner has no {label:?}: {:?}", self.lines))
    }

    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = self.child.wait().expect("wait");
        assert!(exit.success(), "serve exited with {exit}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
