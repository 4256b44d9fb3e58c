//! `switchboard`: the all-in-one server and its management commands.
//!
//! Wiring only: configuration, telemetry, listeners and shutdown live here; every protocol
//! and domain rule lives in the crates this binary starts.

mod apps_cmd;
mod classes_cmd;
mod cli;
mod config;
mod roles;
mod serve;
mod telemetry;
mod tls;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    release_large_allocations();
    let cli = cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            None => serve::run(cli.serve).await,
            Some(cli::Command::Serve(args)) => serve::run(*args).await,
            Some(cli::Command::App { command }) => apps_cmd::run(command).await,
            Some(cli::Command::Class { command }) => classes_cmd::run(command).await,
        }
    })
}

/// Serves blocks of 1 MiB and more (each argon2 hash takes 19 MiB) straight from mmap, so a
/// burst of logins gives its memory back when done. glibc's default raises this threshold
/// after the first such free, and its per-thread arenas then kept ~500 MiB after 200 logins.
fn release_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
