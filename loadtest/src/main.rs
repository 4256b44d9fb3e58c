//! `loadtest`: drive a Switchboard (or a peer server) on loopback and report.
//!
//! Exit codes: 0 done, 1 error (bad flags, unreachable target, or the scenario failed
//! mid-run: its partial report is still written), 2 usage, 3 an `--slo` objective was
//! breached.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use loadtest::report::{self, Report};
use loadtest::run::Common;
use loadtest::scenario::{api, chat, conference, turn};
use loadtest::{html, slo};

#[derive(Parser)]
#[command(
    name = "loadtest",
    version,
    about = "Load generator and reports for Switchboard (loopback targets only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// QuickBlox REST: signed sessions, user reads, dialog and message reads and writes.
    Api(api::ApiArgs),
    /// XMPP over TCP: 1:1 and group messages with delivery latency; idle connections.
    Chat(chat::ChatArgs),
    /// Janus videoroom conferences: R rooms × P str0m peers publishing Opus + simulcast VP8.
    Conference(conference::ConferenceArgs),
    /// TURN over UDP or TCP: allocations, and packets relayed to and from a loopback peer.
    Turn(turn::TurnArgs),
    /// Merge reports of one scenario run by several load agents at once (exact histograms).
    Merge {
        reports: Vec<PathBuf>,
        /// Where the merged JSON goes (stdout if absent).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Print the side-by-side table of two reports with the ratio b/a.
    Compare { a: PathBuf, b: PathBuf },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Api(args) => {
            let common = args.common.clone();
            finish(api::run(args).await?, &common)
        }
        Command::Chat(args) => {
            let common = args.common.clone();
            finish(chat::run(args).await?, &common)
        }
        Command::Conference(args) => {
            let common = args.common.clone();
            finish(conference::run(args).await?, &common)
        }
        Command::Turn(args) => {
            let common = args.common.clone();
            finish(turn::run(args).await?, &common)
        }
        Command::Merge { reports, out, html } => {
            anyhow::ensure!(!reports.is_empty(), "give the reports to merge");
            let all = reports
                .iter()
                .map(|p| Report::read(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let merged = report::merge(&all)?;
            match out {
                Some(path) => merged.write(&path)?,
                None => println!("{}", serde_json::to_string_pretty(&merged)?),
            }
            if let Some(path) = html {
                std::fs::write(&path, html::render(&merged))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare { a, b } => {
            let (ra, rb) = (Report::read(&a)?, Report::read(&b)?);
            print!(
                "{}",
                report::compare_table(&ra, &rb, &a.to_string_lossy(), &b.to_string_lossy())
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes the report where asked, prints the summary, and checks the objectives.
fn finish(report: Report, common: &Common) -> anyhow::Result<ExitCode> {
    if let Some(path) = &common.out {
        report.write(path)?;
    }
    if let Some(path) = &common.html {
        std::fs::write(path, html::render(&report))?;
    }
    println!(
        "{} → {}: {:.1}s{}",
        report.scenario,
        report.target,
        report.duration_s,
        if report.partial { " (partial)" } else { "" }
    );
    for (label, v) in report::table_rows(&report) {
        println!("  {label:<32} {:>14}", report::fmt_num(v));
    }
    for (kind, n) in &report.errors {
        println!("  error: {kind} ×{n}");
    }
    for note in &report.notes {
        println!("  note: {note}");
    }
    if let Some(why) = report
        .notes
        .iter()
        .find_map(|n| n.strip_prefix("scenario failed: "))
    {
        eprintln!("loadtest: the run failed (partial report): {why}");
        return Ok(ExitCode::from(1));
    }
    if let Some(spec) = &common.slo {
        let breaches = slo::breaches(&report, &slo::parse(spec)?);
        if !breaches.is_empty() {
            for b in &breaches {
                eprintln!("SLO breached: {b}");
            }
            return Ok(ExitCode::from(3));
        }
        println!("  SLO met: {spec}");
    }
    Ok(ExitCode::SUCCESS)
}
