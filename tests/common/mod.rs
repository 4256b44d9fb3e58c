//! What the binary's integration tests share: the `switchboard` command with a clean
//! environment, and a running `serve` read up to its banner.
#![allow(dead_code)]

use std::process::Command;

mod server;
pub use server::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

pub fn switchboard(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args);
    // Settings must come from the test alone, not from the developer's environment.
    for (key, _) in std::env::vars() {
        if key.starts_with("SWITCHBOARD_") {
            command.env_remove(key);
        }
    }
    command
}
