//! `chat`: N XMPP users over TCP or WebSocket (`--transport ws`) sending M messages a
//! second, 1:1 (user i to user i+1's full JID) and, with `--room-size`, to group rooms as
//! well. Each body carries the send time, so the receiver measures delivery latency. Unit of work: a routed (delivered)
//! message; a groupchat message counts once per occupant it reaches, sender included.
//!
//! Credentials come from Switchboard's REST API (`--api` and the app flags: sign-up and
//! a session token per user, rooms as group dialogs) or from `--users FILE` (`jid password`
//! lines, rooms at `--muc-domain`), so the same run drives Prosody or ejabberd.
//! `--idle N` first opens N authenticated connections that stay idle (no presence, no
//! traffic) and reports the server's RSS growth per connection.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::qb::{AppArgs, Rest};
use super::xmpp::{self, Account, Conn, Endpoint, Event, Transport};
use crate::report::Report;
use crate::run::{drive, Common, Live, Pacer};

/// Bound on one login (connect, SASL, bind, join).
const LOGIN_LIMIT: Duration = Duration::from_secs(20);
/// How long receivers keep reading after the run ends, for messages in flight.
const DRAIN: Duration = Duration::from_secs(1);
/// Logins in flight at once while setting up (arbitrary: keeps the server's accept queue short).
const LOGIN_CONCURRENCY: usize = 32;
/// Marks our message bodies: `lt <sender> <seq> <send time µs>`.
const BODY_TAG: &str = "lt";
/// QuickBlox SDKs send this with every chat message that should stay in the history.
const HISTORY_PARAMS: &str =
    "<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams>";

#[derive(Debug, Clone, clap::Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub common: Common,
    /// The XMPP listener (loopback only): host:port over TCP (default 127.0.0.1:5222);
    /// over WebSocket a ws:// URL, or host:port for Switchboard's `ws://host:port/ws`
    /// (default ws://127.0.0.1:8080/ws).
    #[arg(long)]
    pub target: Option<String>,
    /// XMPP over TCP (RFC 6120) or over WebSocket (RFC 7395, subprotocol `xmpp`, as the
    /// QuickBlox JS SDK connects).
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    pub transport: Transport,
    /// A file of `jid password` lines (any XMPP server); otherwise users are signed up
    /// through Switchboard's REST API at --api.
    #[arg(long)]
    pub users: Option<std::path::PathBuf>,
    /// Switchboard's plain-HTTP REST base URL (for sign-up and session tokens).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api: String,
    #[command(flatten)]
    pub app: AppArgs,
    /// XMPP domain of Switchboard's JIDs (REST mode).
    #[arg(long, default_value = "localhost")]
    pub domain: String,
    /// Users per group room; 0 = 1:1 only. With rooms, senders alternate 1:1 and groupchat.
    #[arg(long, default_value_t = 0)]
    pub room_size: u32,
    /// MUC service of the rooms in --users mode (rooms `loadtestK@DOMAIN` are created on join).
    #[arg(long, default_value = "conference.localhost")]
    pub muc_domain: String,
    /// Authenticated idle connections to hold (server RSS per connection is reported).
    #[arg(long, default_value_t = 0)]
    pub idle: u32,
    /// Ask the server to keep every message in the dialog history, as QuickBlox SDKs do
    /// (`<extraParams><save_to_history>1</save_to_history></extraParams>`).
    #[arg(long)]
    pub history: bool,
    /// After the ramp-up, messages sent during this long are delivered and checked for loss
    /// but left out of the latency histograms and the rate (counter `warmup_deliveries`):
    /// first messages create private dialogs on Switchboard, which steady traffic does not.
    #[arg(long, default_value = "0s", value_parser = crate::run::parse_duration)]
    pub warmup: Duration,
}

impl ChatArgs {
    /// `--target`, or the transport's default.
    pub fn target(&self) -> String {
        match (&self.target, self.transport) {
            (Some(t), _) => t.clone(),
            (None, Transport::Tcp) => "127.0.0.1:5222".into(),
            (None, Transport::Ws) => "ws://127.0.0.1:8080/ws".into(),
        }
    }
}

pub async fn run(args: ChatArgs) -> anyhow::Result<Report> {
    args.common.check()?;
    let endpoint = Endpoint::parse(args.transport, &args.target())?;
    let n = args.common.clients as usize;
    let (accounts, rooms) = credentials(&args).await?;
    anyhow::ensure!(
        accounts.len() >= n.min(2),
        "need at least {} users, have {}",
        n.min(2),
        accounts.len()
    );
    let target = match &endpoint {
        Endpoint::Tcp(_) => args.target(),
        Endpoint::Ws(url) => url.clone(),
    };
    let mut report = Report::new("chat", &target, "routed message");
    report.params = params(&args);
    let per_conn = args.common.rate_per_client();
    if per_conn > 45.0 {
        report.notes.push(format!(
            "{per_conn:.0} msgs/s per connection: Switchboard ends streams above 50 stanzas/s (flood limit); add --clients"
        ));
    }
    let live = Live::new(args.common.count);
    let idle = open_idle(&args, &endpoint, &accounts, &live).await;
    let common = args.common.clone();
    let history = args.history;
    let warmup = args.warmup;
    let work = {
        let live = live.clone();
        async move {
            let accounts = Arc::new(accounts);
            let rooms = Arc::new(rooms);
            let endpoint = Arc::new(endpoint);
            let sessions = Arc::new(Sessions::default());
            let mut tasks = Vec::new();
            let started = Instant::now();
            for i in 0..n {
                let (live, accounts, rooms, common, endpoint, sessions) = (
                    live.clone(),
                    accounts.clone(),
                    rooms.clone(),
                    common.clone(),
                    endpoint.clone(),
                    sessions.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    if live
                        .sleep(common.ramp_delay(i as u32, common.clients))
                        .await
                    {
                        return;
                    }
                    let mut plan =
                        Plan::for_user(i, n, &accounts, &rooms, common.rate_per_client());
                    plan.send_from = started + common.ramp_up;
                    plan.record_from = plan.send_from + warmup;
                    if history {
                        plan.extra = HISTORY_PARAMS;
                    }
                    if let Err(e) = chatter(&live, &endpoint, &accounts[i], plan, &sessions).await {
                        live.error(format!("chat: {e:#}"));
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            drop(idle);
            // Every chatting connection lost before the run ended: the server went away (or
            // threw everyone out). A run whose logins were refused still ends normally.
            let up = sessions.logged_in.load(Ordering::Relaxed);
            if up > 0 && sessions.dropped.load(Ordering::Relaxed) == up && !live.stopped() {
                anyhow::bail!("the server closed all {up} chat connections mid-run");
            }
            Ok(())
        }
    };
    let mut report = drive(&args.common, live, report, work).await;
    let sent = report.counters.get("messages_sent").copied().unwrap_or(0);
    let expected = report
        .counters
        .get("deliveries_expected")
        .copied()
        .unwrap_or(0);
    let warmup = report
        .counters
        .get("warmup_deliveries")
        .copied()
        .unwrap_or(0);
    report.counters.insert(
        "messages_lost".into(),
        expected.saturating_sub(report.totals.ops + warmup),
    );
    report
        .counters
        .entry("messages_sent".into())
        .or_insert(sent);
    Ok(report)
}

fn params(args: &ChatArgs) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut p = args.common.params();
    p.insert("room_size".into(), serde_json::json!(args.room_size));
    p.insert("idle".into(), serde_json::json!(args.idle));
    let transport = match args.transport {
        Transport::Tcp => "tcp",
        Transport::Ws => "ws",
    };
    p.insert("transport".into(), serde_json::json!(transport));
    p.insert("history".into(), serde_json::json!(args.history));
    p.insert(
        "warmup_s".into(),
        serde_json::json!(args.warmup.as_secs_f64()),
    );
    let source = if args.users.is_some() { "file" } else { "rest" };
    p.insert("credentials".into(), serde_json::json!(source));
    p
}

/// A room: its JID and the indexes of its members.
#[derive(Debug, Clone)]
struct Room {
    jid: String,
    members: Vec<usize>,
}

/// What one user sends: to whom, how fast, and which room it sits in.
struct Plan {
    index: usize,
    /// Sending starts when the ramp-up is over and every user has logged in and joined.
    send_from: Instant,
    /// Deliveries of messages sent earlier are warm-up: counted, not measured.
    record_from: Instant,
    peer: Option<String>,
    room: Option<(String, u64)>,
    rate: f64,
    /// Appended to every message: QuickBlox's `extraParams`, or nothing.
    extra: &'static str,
}

impl Plan {
    fn for_user(i: usize, n: usize, accounts: &[Account], rooms: &[Room], rate: f64) -> Self {
        let peer = (n > 1).then(|| format!("{}/lt", accounts[(i + 1) % n].jid));
        let room = rooms
            .iter()
            .find(|r| r.members.contains(&i))
            .map(|r| (r.jid.clone(), r.members.len() as u64));
        Self {
            index: i,
            send_from: Instant::now(),
            record_from: Instant::now(),
            peer,
            room,
            rate,
            extra: "",
        }
    }
}

/// The accounts (and rooms) of the run, from the file or from Switchboard's REST API.
async fn credentials(args: &ChatArgs) -> anyhow::Result<(Vec<Account>, Vec<Room>)> {
    let n = args.common.clients as usize;
    let size = args.room_size as usize;
    if let Some(path) = &args.users {
        let accounts = read_users(path)?;
        let rooms = (0..n.checked_div(size).unwrap_or(0))
            .map(|k| Room {
                jid: format!("loadtest{k}@{}", args.muc_domain),
                members: (k * size..(k + 1) * size).collect(),
            })
            .collect();
        return Ok((accounts, rooms));
    }
    crate::target::loopback_url(&args.api)?;
    let app = args
        .app
        .resolve()
        .context("chat needs --users FILE, or Switchboard's app credentials to sign users up")?;
    let rest = Rest::new(&args.api, app)?;
    let app_token = rest
        .session(None)
        .await
        .with_context(|| format!("cannot open an app session at {}", args.api))?;
    let run_id = format!("{:x}", rand::random::<u32>());
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for i in 0..n {
        let (rest, app_token, sem) = (rest.clone(), app_token.clone(), sem.clone());
        let login = format!("lt{run_id}c{i}");
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            let password = format!("{login}-password");
            let id = rest.sign_up(&app_token, &login, &password).await?;
            let token = rest.session(Some((&login, &password))).await?;
            anyhow::Ok((id, token))
        }));
    }
    let mut users = Vec::new();
    for t in tasks {
        users.push(t.await?.context("signing users up")?);
    }
    let accounts: Vec<Account> = users
        .iter()
        .map(|(id, token)| Account {
            jid: format!("{id}-{}@{}", rest.app.id, args.domain),
            password: token.clone(),
        })
        .collect();
    let mut rooms = Vec::new();
    for k in 0..n.checked_div(size).unwrap_or(0) {
        let members: Vec<usize> = (k * size..(k + 1) * size).collect();
        let occupants: Vec<String> = members.iter().map(|&m| users[m].0.to_string()).collect();
        let d = rest
            .send(
                rest.http
                    .post(rest.url("/chat/Dialog.json"))
                    .header("QB-Token", &users[members[0]].1)
                    .form(&[
                        ("type", "2"),
                        ("name", "loadtest"),
                        ("occupants_ids", &occupants.join(",")),
                    ]),
            )
            .await
            .context("creating a group dialog")?;
        let id = d["_id"].as_str().context("dialog without _id")?;
        rooms.push(Room {
            jid: format!("{}_{id}@muc.{}", rest.app.id, args.domain),
            members,
        });
    }
    Ok((accounts, rooms))
}

fn read_users(path: &std::path::Path) -> anyhow::Result<Vec<Account>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (jid, password) = l
                .split_once(char::is_whitespace)
                .with_context(|| format!("{}: line {l:?} is not `jid password`", path.display()))?;
            Ok(Account {
                jid: jid.to_string(),
                password: password.trim().to_string(),
            })
        })
        .collect()
}

/// Idle connections: opened before the run, held until it ends. RSS per connection is
/// the server's growth from before the first to after the last (settled) login.
async fn open_idle(
    args: &ChatArgs,
    endpoint: &Endpoint,
    accounts: &[Account],
    live: &Arc<Live>,
) -> Vec<Conn> {
    if args.idle == 0 || accounts.is_empty() {
        return Vec::new();
    }
    let pid = args.common.server_pid;
    let before = pid.and_then(crate::procstat::read);
    let sem = Arc::new(tokio::sync::Semaphore::new(LOGIN_CONCURRENCY));
    // Logins/s: the idle logins run back to back, LOGIN_CONCURRENCY at a time.
    let logins_started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..args.idle as usize {
        let account = accounts[k % accounts.len()].clone();
        let (sem, endpoint) = (sem.clone(), endpoint.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            xmpp::login(&endpoint, &account, &format!("idle{k}"), false, LOGIN_LIMIT).await
        }));
    }
    let mut conns = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(c)) => conns.push(c),
            Ok(Err(e)) => live.error(format!("idle login: {e:#}")),
            Err(e) => live.error(format!("idle login: {e}")),
        }
    }
    live.add("idle_connections", conns.len() as u64);
    live.add(
        "idle_logins_ms",
        logins_started.elapsed().as_millis().max(1) as u64,
    );
    // Let the server finish allocating for the last logins before reading its RSS.
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let (Some(a), Some(b)) = (before, pid.and_then(crate::procstat::read)) {
        if !conns.is_empty() {
            let per = b.rss_bytes.saturating_sub(a.rss_bytes) / conns.len() as u64;
            live.add("idle_rss_bytes_per_connection", per);
        }
    }
    conns
}

/// Chatting users that logged in, and those whose connection failed before the run ended.
#[derive(Default)]
struct Sessions {
    logged_in: AtomicU32,
    dropped: AtomicU32,
}

/// One chatting user: logs in, joins its room, sends on its pace and counts what arrives.
async fn chatter(
    live: &Arc<Live>,
    endpoint: &Endpoint,
    account: &Account,
    plan: Plan,
    sessions: &Sessions,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let setup = async {
        let mut conn = xmpp::login(endpoint, account, "lt", true, LOGIN_LIMIT).await?;
        if let Some((room, _)) = &plan.room {
            // Switchboard's occupants are named by user id (the JID's node up to `-`).
            let nick = account.node().split('-').next().unwrap_or(account.node());
            xmpp::join_room(&mut conn, room, nick, LOGIN_LIMIT).await?;
        }
        anyhow::Ok(conn)
    };
    let mut conn = tokio::select! {
        res = setup => match res {
            Ok(c) => c,
            Err(e) => {
                live.add("login_failures", 1);
                return Err(e);
            }
        },
        _ = live.wait_stop() => return Ok(()),
    };
    live.latency("login", t0.elapsed().as_micros() as u64);
    live.add("logins", 1);
    live.client_up();
    sessions.logged_in.fetch_add(1, Ordering::Relaxed);
    let result = chat_loop(live, &mut conn, &plan).await;
    if result.is_err() && !live.stopped() {
        sessions.dropped.fetch_add(1, Ordering::Relaxed);
    }
    live.client_down();
    conn.close().await;
    result
}

async fn chat_loop(live: &Arc<Live>, conn: &mut Conn, plan: &Plan) -> anyhow::Result<()> {
    if Instant::now() < plan.send_from && live.sleep(plan.send_from - Instant::now()).await {
        return Ok(());
    }
    let record_from_us = live.now_us()
        + plan
            .record_from
            .saturating_duration_since(Instant::now())
            .as_micros() as u64;
    let mut pacer = Pacer::new(plan.rate);
    let sending = plan.rate > 0.0 && (plan.peer.is_some() || plan.room.is_some());
    let mut seq = 0u64;
    let mut drain_until: Option<Instant> = None;
    loop {
        let due = pacer.due();
        let stop_at = drain_until.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()), if sending && drain_until.is_none() => {
                pacer.advance();
                seq += 1;
                let stanza = message(live, plan, seq);
                conn.send(&stanza).await.context("send")?;
            }
            _ = live.wait_stop(), if drain_until.is_none() => {
                drain_until = Some(Instant::now() + DRAIN);
            }
            _ = tokio::time::sleep_until(stop_at.into()), if drain_until.is_some() => return Ok(()),
            ev = conn.next_event() => {
                let mut ev = Some(ev?);
                // Everything already read, in one go (TCP reads bring many stanzas).
                while let Some(e) = ev {
                    match e {
                        Event::Element(e) => on_element(live, &e, conn, record_from_us).await?,
                        Event::StreamEnd => anyhow::bail!("the server ended the stream"),
                        Event::StreamOpen(_) => {}
                    }
                    ev = conn.buffered_event();
                }
            }
        }
    }
}

/// The next stanza: 1:1 to the peer, or (every other one, with a room) groupchat.
fn message(live: &Live, plan: &Plan, seq: u64) -> String {
    let now_us = live.now_us();
    let body = format!("{BODY_TAG} {} {seq} {now_us}", plan.index);
    let group = plan
        .room
        .as_ref()
        .filter(|_| plan.peer.is_none() || seq % 2 == 0);
    match (group, &plan.peer) {
        (Some((room, members)), _) => {
            live.add("messages_sent", 1);
            live.add("deliveries_expected", *members);
            live.expect_at(now_us, *members);
            format!(
                "<message to='{room}' type='groupchat' id='m{seq}'><body>{body}</body>{}</message>",
                plan.extra
            )
        }
        (None, Some(peer)) => {
            live.add("messages_sent", 1);
            live.add("deliveries_expected", 1);
            live.expect_at(now_us, 1);
            format!(
                "<message to='{peer}' type='chat' id='m{seq}'><body>{body}</body>{}</message>",
                plan.extra
            )
        }
        (None, None) => String::new(),
    }
}

async fn on_element(
    live: &Live,
    e: &str,
    conn: &mut Conn,
    record_from_us: u64,
) -> anyhow::Result<()> {
    match xmpp::name(e) {
        "message" => {
            let kind = xmpp::attr(e, "type").unwrap_or("normal");
            if kind == "error" {
                live.error("message error");
                return Ok(());
            }
            let Some(body) = xmpp::child_text(e, "body") else {
                return Ok(());
            };
            let mut parts = body.split(' ');
            if parts.next() != Some(BODY_TAG) {
                return Ok(());
            }
            let sent_us: u64 = parts.nth(2).and_then(|v| v.parse().ok()).unwrap_or(0);
            live.arrived_at(sent_us, 1);
            let op = if kind == "groupchat" {
                "groupchat"
            } else {
                "chat"
            };
            if sent_us < record_from_us {
                live.add("warmup_deliveries", 1);
            } else {
                live.record(op, live.now_us().saturating_sub(sent_us));
            }
        }
        "iq" if xmpp::attr(e, "type") == Some("get") => {
            // Server pings (XEP-0199) and other queries: answer so the stream stays up.
            let id = xmpp::attr(e, "id").unwrap_or("");
            let to = xmpp::attr(e, "from").unwrap_or("");
            let reply = format!("<iq type='result' id='{id}' to='{to}'/>");
            conn.send(&reply).await?;
        }
        "stream:error" => anyhow::bail!("stream error: {}", &e[..e.len().min(200)]),
        _ => {}
    }
    Ok(())
}
