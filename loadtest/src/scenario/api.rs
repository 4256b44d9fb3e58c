//! `api`: QuickBlox REST load. Each client signs a user up, opens a user session and a
//! public dialog, then cycles through the chosen operations: signed app-session creation,
//! user reads, dialog reads (and, when asked, dialog writes), message writes and reads.
//! Unit of work: an answered request.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use super::qb::{AppArgs, ConnectRefused, Rest};
use crate::report::Report;
use crate::run::{drive, Common, Live, Pacer};

/// The operations, in the order one client cycles through them (weights by repetition:
/// reads dominate, as in a chat app's REST traffic).
const DEFAULT_MIX: &str = "user_read,message_create,message_list,dialog_list,user_read,\
                           message_create,message_list,user_read,dialog_list,session_create";

#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub common: Common,
    /// Base URL of the plain-HTTP REST listener (the banner's `REST API (HTTP)`).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    #[command(flatten)]
    pub app: AppArgs,
    /// Comma-separated operations a client cycles through (repeat one to weigh it):
    /// session_create, user_read, dialog_list, dialog_create, dialog_update, message_create,
    /// message_list (the default leaves the dialog writes out: every dialog_create adds a
    /// dialog that later dialog_list calls page through).
    #[arg(long, default_value = DEFAULT_MIX)]
    pub mix: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    SessionCreate,
    UserRead,
    DialogList,
    DialogCreate,
    DialogUpdate,
    MessageCreate,
    MessageList,
}

impl Op {
    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s.trim() {
            "session_create" => Op::SessionCreate,
            "user_read" => Op::UserRead,
            "dialog_list" => Op::DialogList,
            "dialog_create" => Op::DialogCreate,
            "dialog_update" => Op::DialogUpdate,
            "message_create" => Op::MessageCreate,
            "message_list" => Op::MessageList,
            other => anyhow::bail!("unknown --mix operation {other:?}"),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Op::SessionCreate => "session_create",
            Op::UserRead => "user_read",
            Op::DialogList => "dialog_list",
            Op::DialogCreate => "dialog_create",
            Op::DialogUpdate => "dialog_update",
            Op::MessageCreate => "message_create",
            Op::MessageList => "message_list",
        }
    }
}

/// What one client set up before its loop.
struct Client {
    token: String,
    user_id: u64,
    dialog_id: String,
}

pub async fn run(args: ApiArgs) -> anyhow::Result<Report> {
    args.common.check()?;
    crate::target::loopback_url(&args.target)?;
    let app = args.app.resolve()?;
    let mix: Vec<Op> = args
        .mix
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(Op::parse)
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!mix.is_empty(), "--mix is empty");
    let rest = Rest::new(&args.target, app)?;
    // Fail fast and clearly when the target is down or the credentials are wrong.
    rest.session(None)
        .await
        .with_context(|| format!("cannot open an app session at {}", args.target))?;

    let mut report = Report::new("api", &args.target, "request");
    report.params = params(&args);
    let live = Live::new(args.common.count);
    let common = args.common.clone();
    let run_id = format!("{:x}", rand::random::<u32>());
    let work = {
        let live = live.clone();
        let common = common.clone();
        async move {
            let mut tasks = Vec::new();
            let lost_server = Arc::new(AtomicU32::new(0));
            let up = Arc::new(AtomicU32::new(0));
            for i in 0..common.clients {
                let (live, rest, mix, common, lost_server, up) = (
                    live.clone(),
                    rest.clone(),
                    mix.clone(),
                    common.clone(),
                    lost_server.clone(),
                    up.clone(),
                );
                let login = format!("lt{run_id}u{i}");
                tasks.push(tokio::spawn(async move {
                    if live.sleep(common.ramp_delay(i, common.clients)).await {
                        return;
                    }
                    match client(&live, &rest, &login, &mix, common.rate_per_client()).await {
                        ClientEnd::NeverUp => {}
                        ClientEnd::Done => {
                            up.fetch_add(1, Ordering::Relaxed);
                        }
                        ClientEnd::LostServer => {
                            up.fetch_add(1, Ordering::Relaxed);
                            lost_server.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            // Every client that got going found the server gone: it died or stopped
            // listening (with --server-pid the sampler usually says so first).
            let lost = lost_server.load(Ordering::Relaxed);
            if lost > 0 && lost == up.load(Ordering::Relaxed) {
                anyhow::bail!("the server stopped accepting connections mid-run ({lost} clients)");
            }
            Ok(())
        }
    };
    Ok(drive(&common, live, report, work).await)
}

fn params(args: &ApiArgs) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut p = args.common.params();
    p.insert("mix".into(), serde_json::json!(args.mix));
    p
}

/// How a client's run ended.
enum ClientEnd {
    /// Its setup failed (counted as an error).
    NeverUp,
    /// The run ended.
    Done,
    /// A connection to the server was refused after the run was under way.
    LostServer,
}

/// Whether `e` is a refused or failed TCP connect (the server is not listening).
fn is_connect_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<ConnectRefused>())
}

async fn client(live: &Arc<Live>, rest: &Rest, login: &str, mix: &[Op], rate: f64) -> ClientEnd {
    let me = match setup(rest, login).await {
        Ok(c) => c,
        Err(e) => {
            live.error(format!("setup: {e:#}"));
            return ClientEnd::NeverUp;
        }
    };
    live.add("users_signed_up", 1);
    live.client_up();
    let mut pacer = Pacer::new(rate);
    let mut i = 0usize;
    while pacer.wait(live).await {
        let op = mix[i % mix.len()];
        i += 1;
        let t0 = Instant::now();
        match call(rest, &me, op, i).await {
            Ok(()) => live.record(op.name(), t0.elapsed().as_micros() as u64),
            Err(e) => {
                live.error(format!("{}: {e:#}", op.name()));
                if is_connect_error(&e) {
                    live.client_down();
                    return ClientEnd::LostServer;
                }
            }
        }
    }
    live.client_down();
    ClientEnd::Done
}

async fn setup(rest: &Rest, login: &str) -> anyhow::Result<Client> {
    let password = format!("{login}-password");
    let app_token = rest.session(None).await.context("app session")?;
    let user_id = rest
        .sign_up(&app_token, login, &password)
        .await
        .context("sign up")?;
    let token = rest
        .session(Some((login, &password)))
        .await
        .context("user session")?;
    let dialog = rest
        .send(
            rest.http
                .post(rest.url("/chat/Dialog.json"))
                .header("QB-Token", &token)
                .form(&[("type", "1"), ("name", "loadtest")]),
        )
        .await
        .context("create dialog")?;
    let dialog_id = dialog["_id"]
        .as_str()
        .context("dialog without _id")?
        .to_string();
    Ok(Client {
        token,
        user_id,
        dialog_id,
    })
}

async fn call(rest: &Rest, me: &Client, op: Op, i: usize) -> anyhow::Result<()> {
    let h = &rest.http;
    let req = match op {
        Op::SessionCreate => {
            rest.session(None).await?;
            return Ok(());
        }
        Op::UserRead => h.get(rest.url(&format!("/users/{}.json", me.user_id))),
        Op::DialogList => h.get(rest.url("/chat/Dialog.json?limit=10")),
        Op::DialogCreate => h
            .post(rest.url("/chat/Dialog.json"))
            .form(&[("type", "1"), ("name", &format!("loadtest {i}"))]),
        Op::DialogUpdate => h
            .put(rest.url(&format!("/chat/Dialog/{}.json", me.dialog_id)))
            .form(&[("name", &format!("loadtest {i}"))]),
        Op::MessageCreate => h.post(rest.url("/chat/Message.json")).form(&[
            ("chat_dialog_id", me.dialog_id.as_str()),
            ("message", &format!("loadtest message {i}")),
        ]),
        Op::MessageList => h.get(rest.url(&format!(
            "/chat/Message.json?chat_dialog_id={}&limit=10&sort_desc=date_sent",
            me.dialog_id
        ))),
    };
    rest.send(req.header("QB-Token", &me.token)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_parses_back_from_its_name() {
        for op in [
            Op::SessionCreate,
            Op::UserRead,
            Op::DialogList,
            Op::DialogCreate,
            Op::DialogUpdate,
            Op::MessageCreate,
            Op::MessageList,
        ] {
            assert_eq!(Op::parse(op.name()).unwrap(), op);
        }
        assert!(Op::parse("dialog_delete").is_err());
        for name in DEFAULT_MIX.split(',') {
            Op::parse(name).unwrap();
        }
    }
}
