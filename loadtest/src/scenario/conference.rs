//! `conference`: R rooms × P participants joining through the Janus videoroom API over
//! WebSocket (subprotocol `janus-protocol`): Switchboard's `/janus`, or Debian's `janus`
//! videoroom (`string_ids`) unchanged.
//!
//! Each participant opens a Janus session, joins its room as a publisher (feed id = its
//! user id), publishes Opus plus three-layer simulcast VP8 (`l`/`m`/`h`) of synthetic RTP
//! at the configured bitrates, frame rate and packet sizes from a str0m PeerConnection, and
//! subscribes to every other publisher of its room (one subscriber handle and
//! PeerConnection per feed, as janus.js and the QuickBlox client do), including those that
//! join later. Every PeerConnection has its own loopback UDP socket; all are tasks on the
//! load generator's runtime, many per thread.
//!
//! Every payload ends in a stamp (run tag, publisher feed, stream, frame, send time in µs
//! of this process's clock), so subscribers measure one-way latency, RFC 3550 jitter, loss
//! (gaps in the server's sequence numbers, which stay continuous across layer switches),
//! bitrate and layer switches per track. Unit of work: a packet a subscriber received,
//! i.e. a packet the server forwarded, so `--server-pid` gives server CPU per forwarded
//! packet.
//!
//! Admission: `--grant-secret` mints Switchboard join grants here (one per participant,
//! sent as the URL's `?token=`, as an app sets a stock client's server URL); `--token-url`
//! fetches them from Switchboard's REST API (sign-up, a group dialog per room, `POST
//! /calls/conference/token.json`); `--token` sends one token as is (URL and every request:
//! Janus's token auth); none of them talks plain Janus, which needs the rooms created
//! first (`--create-rooms`, the default without a grant).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::janus::{self, Closed, Janus, Refused, Unreachable};
use super::media::MediaSpec;
use super::peer::{Peer, Publisher, Subscriber, TrackRow};
use super::qb::{AppArgs, Rest};
use crate::report::Report;
use crate::run::{drive_udp, Common, Live};

/// Most participants per room (Janus's and Switchboard's conference size).
pub const MAX_PARTICIPANTS: u32 = 32;
/// Keepalive period (Janus sessions time out after 60 s without a message).
const KEEPALIVE: Duration = Duration::from_secs(25);
/// First feed id: participant `i` of the run is feed `FEED_BASE + i` (ids from a REST
/// sign-up are the users' ids instead).
const FEED_BASE: u64 = 100_001;
/// How long a failing run waits for its participants to hand in their counts.
const HALT_LIMIT: Duration = Duration::from_secs(5);
/// Validity of grants minted with `--grant-secret`.
const GRANT_TTL: u64 = 6 * 3600;

#[derive(Debug, Clone, clap::Args)]
pub struct ConferenceArgs {
    #[command(flatten)]
    pub common: Common,
    /// The Janus WebSocket: Switchboard's `/janus` on its HTTP listener (the banner's
    /// `REST API (HTTP)` address), or Janus's websockets transport.
    #[arg(long, default_value = "ws://127.0.0.1:8080/janus")]
    pub target: String,
    /// Rooms (conferences) at once. `--clients` and `--rate` do not apply here: clients
    /// are rooms × participants, and the media flags set the packet rate.
    #[arg(long, default_value_t = 1)]
    pub rooms: u32,
    /// Participants per room: each publishes and subscribes to all the others.
    #[arg(long, default_value_t = 12)]
    pub participants: u32,
    /// Switchboard's grant secret (its `--sfu-grant-secret`): a join grant per participant
    /// is minted here.
    #[arg(long, env = "LOADTEST_GRANT_SECRET", conflicts_with_all = ["token", "token_url"])]
    pub grant_secret: Option<String>,
    /// Application id named in minted grants.
    #[arg(long, default_value_t = 1)]
    pub grant_app: i64,
    /// Switchboard's REST API (base URL, or its `/calls/conference/token.json`): users are
    /// signed up with the app credentials, a group dialog is made per room and each
    /// participant fetches its grant.
    #[arg(long, conflicts_with = "token")]
    pub token_url: Option<String>,
    #[command(flatten)]
    pub app: AppArgs,
    /// A token sent as is, in the URL's `?token=` and on every request (Janus token auth).
    #[arg(long)]
    pub token: Option<String>,
    /// Send the videoroom `create` for each room before joining (plain Janus needs its
    /// rooms to exist; "room exists" is fine). Default: on without a grant, off with one.
    #[arg(long, overrides_with = "no_create_rooms")]
    pub create_rooms: bool,
    /// Never send `create` (the server makes rooms on first join, as Switchboard does).
    #[arg(long, overrides_with = "create_rooms")]
    pub no_create_rooms: bool,
    /// Opus bitrate (payload kbit/s, 20 ms frames).
    #[arg(long, default_value_t = 40)]
    pub audio_kbps: u32,
    /// VP8 simulcast layer bitrates, low,medium,high (payload kbit/s).
    #[arg(long, default_value = "150,500,1500")]
    pub video_kbps: String,
    /// Video frames per second (every layer).
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Periodic keyframe interval (keyframes also answer every PLI/FIR).
    #[arg(long, default_value = "3s", value_parser = crate::run::parse_duration)]
    pub keyframe_every: Duration,
    /// The simulcast layer subscribers ask for (Janus `substream`: 0 low … 2 high);
    /// default: the server's choice.
    #[arg(long)]
    pub substream: Option<u8>,
    /// Room name prefix (rooms are PREFIX0, PREFIX1 …); default: fresh per run.
    #[arg(long)]
    pub room_prefix: Option<String>,
    /// Address the participants' media sockets bind: loopback, or an address in
    /// 198.18.0.0/15 inside the network namespace `bench/peers/janus.sh` makes (Janus
    /// gathers no loopback candidates). Server candidates elsewhere are ignored.
    #[arg(long, default_value = "127.0.0.1")]
    pub media_ip: std::net::IpAddr,
    /// Write one CSV line per subscribed track (packets, kbit/s, loss, jitter, switches).
    #[arg(long)]
    pub tracks: Option<PathBuf>,
}

/// One participant's place: its room, feed id and the WebSocket URL it connects to.
#[derive(Debug, Clone)]
struct Seat {
    index: u32,
    room: String,
    feed: u64,
    url: String,
}

struct Ctx {
    live: Arc<Live>,
    tag: u32,
    spec: MediaSpec,
    participants: u32,
    create_rooms: bool,
    token: Option<String>,
    keyframe_every: Duration,
    substream: Option<u8>,
    media_ip: std::net::IpAddr,
    rows: Arc<Mutex<Vec<TrackRow>>>,
    /// A failure every participant would hit (nothing listens, joins refused): ends the run.
    fatal: mpsc::Sender<String>,
    /// Set when the run fails: media tasks stop and hand in their counts.
    halt: watch::Receiver<bool>,
}

pub async fn run(mut args: ConferenceArgs) -> anyhow::Result<Report> {
    anyhow::ensure!((1..=1000).contains(&args.rooms), "--rooms must be 1..=1000");
    anyhow::ensure!(
        (2..=MAX_PARTICIPANTS).contains(&args.participants),
        "--participants must be 2..={MAX_PARTICIPANTS}"
    );
    args.common.clients = args.rooms * args.participants;
    args.common.check()?;
    check_ws_target(&args.target)?;
    anyhow::ensure!(
        args.substream.is_none_or(|s| s <= 2),
        "--substream must be 0, 1 or 2"
    );
    let kbps: Vec<u32> = args
        .video_kbps
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()
        .context("--video-kbps: three numbers, low,medium,high")?;
    let kbps: [u32; 3] = kbps
        .try_into()
        .map_err(|_| anyhow::anyhow!("--video-kbps: three numbers, low,medium,high"))?;
    let spec = MediaSpec::new(args.audio_kbps, kbps, args.fps)?;
    anyhow::ensure!(
        args.keyframe_every >= Duration::from_millis(100),
        "--keyframe-every must be at least 100ms"
    );
    anyhow::ensure!(
        super::peer::media_ip_allowed(args.media_ip),
        "--media-ip {} is neither loopback nor in 198.18.0.0/15",
        args.media_ip
    );
    sfu::init_crypto();
    let tag: u32 = rand::random();
    let prefix = args
        .room_prefix
        .clone()
        .unwrap_or_else(|| format!("lt{tag:08x}-r"));
    let granted = args.grant_secret.is_some() || args.token_url.is_some();
    let create_rooms = if args.create_rooms {
        true
    } else if args.no_create_rooms {
        false
    } else {
        !granted
    };
    let seats = match &args.token_url {
        Some(url) => seats_from_rest(&args, url, tag).await?,
        None => seats_local(&args, &prefix),
    };

    let mut report = Report::new("conference", &args.target, "forwarded packet");
    report.params = params(&args, &spec, create_rooms, granted);
    report.notes.push(format!(
        "offered load: {} publishers × {:.0} packets/s; each subscriber receives audio and one video layer per feed",
        seats.len(),
        spec.packets_per_s()
    ));
    let live = Live::new(args.common.count);
    let (fatal_tx, mut fatal_rx) = mpsc::channel(1);
    let (halt_tx, halt) = watch::channel(false);
    let rows = Arc::new(Mutex::new(Vec::new()));
    let ctx = Arc::new(Ctx {
        live: live.clone(),
        tag,
        spec,
        participants: args.participants,
        create_rooms,
        token: args.token.clone(),
        keyframe_every: args.keyframe_every,
        substream: args.substream,
        media_ip: args.media_ip,
        rows: rows.clone(),
        fatal: fatal_tx,
        halt,
    });
    let common = args.common.clone();
    let work = async move {
        let n = seats.len() as u32;
        let tasks: Vec<_> = seats
            .into_iter()
            .map(|seat| {
                let ctx = ctx.clone();
                let delay = common.ramp_delay(seat.index, n);
                tokio::spawn(async move {
                    let mut halt = ctx.halt.clone();
                    let stopped = tokio::select! {
                        s = ctx.live.sleep(delay) => s,
                        _ = halt.wait_for(|h| *h) => true,
                    };
                    if stopped {
                        return;
                    }
                    if let Err(e) = participant(&ctx, &seat).await {
                        on_failure(&ctx, e);
                    }
                })
            })
            .collect();
        let mut all_done = std::pin::pin!(async {
            for t in tasks {
                let _ = t.await;
            }
        });
        let fatal = tokio::select! {
            _ = &mut all_done => None,
            Some(why) = fatal_rx.recv() => Some(why),
        };
        if let Some(why) = fatal {
            // Media tasks stop and flush what they measured into the partial report.
            let _ = halt_tx.send(true);
            let _ = tokio::time::timeout(HALT_LIMIT, all_done).await;
            bail!("{why}");
        }
        if !ctx.live.stopped() {
            bail!("every participant ended before the run did (see the errors)");
        }
        Ok(())
    };
    let mut report = drive_udp(&args.common, live, report, work).await;
    let rows = std::mem::take(&mut *rows.lock().unwrap_or_else(|e| e.into_inner()));
    summarise(&mut report, &rows);
    if let Some(path) = &args.tracks {
        std::fs::write(path, tracks_csv(&rows))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

/// `ws://host:port/path` on loopback.
fn check_ws_target(url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("ws://")
        .with_context(|| format!("--target {url:?}: a ws:// URL (plain WebSocket)"))?;
    crate::target::loopback(rest.split(['/', '?']).next().unwrap_or(rest))?;
    Ok(())
}

fn with_token(url: &str, token: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}token={token}")
}

/// Seats with grants minted here (`--grant-secret`), a static token, or none.
fn seats_local(args: &ConferenceArgs, prefix: &str) -> Vec<Seat> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let key = args
        .grant_secret
        .as_ref()
        .map(|s| sfu::grant::GrantKey::new(s.as_bytes()));
    let mut seats = Vec::new();
    for r in 0..args.rooms {
        let room = format!("{prefix}{r}");
        for p in 0..args.participants {
            let index = r * args.participants + p;
            let feed = FEED_BASE + index as u64;
            let url = match (&key, &args.token) {
                (Some(k), _) => with_token(
                    &args.target,
                    &k.mint(
                        args.grant_app,
                        feed,
                        &room,
                        sfu::grant::GrantRole::Publisher,
                        now,
                        GRANT_TTL,
                    ),
                ),
                (None, Some(t)) => with_token(&args.target, t),
                (None, None) => args.target.clone(),
            };
            seats.push(Seat {
                index,
                room: room.clone(),
                feed,
                url,
            });
        }
    }
    seats
}

/// Seats from Switchboard's REST API: per room, P users signed up, a group dialog with
/// them all, and a grant per user for that dialog.
async fn seats_from_rest(args: &ConferenceArgs, url: &str, tag: u32) -> anyhow::Result<Vec<Seat>> {
    let base = url
        .trim_end_matches('/')
        .trim_end_matches("/calls/conference/token.json");
    crate::target::loopback_url(base)?;
    let app = args
        .app
        .resolve()
        .context("--token-url needs the app's credentials")?;
    let rest = Rest::new(base, app)?;
    let app_token = rest
        .session(None)
        .await
        .with_context(|| format!("cannot open an app session at {base}"))?;
    let mut seats = Vec::new();
    for r in 0..args.rooms {
        let mut users = Vec::new();
        for p in 0..args.participants {
            let login = format!("lt{tag:08x}r{r}u{p}");
            let password = format!("{login}-password");
            let id = rest
                .sign_up(&app_token, &login, &password)
                .await
                .with_context(|| format!("signing up {login}"))?;
            let token = rest
                .session(Some((&login, &password)))
                .await
                .with_context(|| format!("user session of {login}"))?;
            users.push((id, token));
        }
        let occupants: Vec<String> = users.iter().map(|(id, _)| id.to_string()).collect();
        let dialog = rest
            .send(
                rest.http
                    .post(rest.url("/chat/Dialog.json"))
                    .header("QB-Token", &users[0].1)
                    .form(&[
                        ("type", "2"),
                        ("name", &format!("loadtest room {r}")),
                        ("occupants_ids", &occupants.join(",")),
                    ]),
            )
            .await
            .context("creating the room's group dialog")?;
        let room = dialog["_id"]
            .as_str()
            .context("dialog without _id")?
            .to_string();
        for (p, (id, token)) in users.iter().enumerate() {
            let grant = rest
                .send(
                    rest.http
                        .post(rest.url("/calls/conference/token.json"))
                        .header("QB-Token", token)
                        .form(&[("room", room.as_str()), ("role", "publisher")]),
                )
                .await
                .context("POST /calls/conference/token.json")?;
            let grant = grant["token"]
                .as_str()
                .context("grant response without a token")?;
            seats.push(Seat {
                index: r * args.participants + p as u32,
                room: room.clone(),
                feed: *id,
                url: with_token(&args.target, grant),
            });
        }
    }
    Ok(seats)
}

fn params(
    args: &ConferenceArgs,
    spec: &MediaSpec,
    create_rooms: bool,
    granted: bool,
) -> std::collections::BTreeMap<String, Value> {
    let mut p = args.common.params();
    p.remove("rate");
    p.insert("rooms".into(), args.rooms.into());
    p.insert("participants".into(), args.participants.into());
    p.insert("audio_kbps".into(), args.audio_kbps.into());
    p.insert("video_kbps".into(), json!(args.video_kbps));
    p.insert("fps".into(), args.fps.into());
    p.insert(
        "keyframe_every_s".into(),
        args.keyframe_every.as_secs_f64().into(),
    );
    p.insert("audio_payload_bytes".into(), spec.audio_bytes.into());
    p.insert("video_frame_bytes".into(), json!(spec.frame_bytes));
    p.insert("substream".into(), json!(args.substream));
    p.insert("create_rooms".into(), create_rooms.into());
    p.insert("media_ip".into(), json!(args.media_ip));
    let admission = if args.token_url.is_some() {
        "token-url"
    } else if args.grant_secret.is_some() {
        "grant-secret"
    } else if args.token.is_some() {
        "token"
    } else {
        "none"
    };
    p.insert("admission".into(), admission.into());
    p.insert("granted".into(), granted.into());
    p
}

/// Sorts a participant's failure: one that every participant would hit ends the run.
fn on_failure(ctx: &Ctx, e: anyhow::Error) {
    let live = &ctx.live;
    if live.stopped() && e.downcast_ref::<Closed>().is_some() {
        return;
    }
    let fatal = if let Some(u) = e.downcast_ref::<Unreachable>() {
        Some(u.to_string())
    } else if let Some(r) = e.downcast_ref::<Refused>() {
        let hint = match r.code {
            403 | 433 => " (give the server's grant secret with --grant-secret, or --token-url)",
            426 => " (the room does not exist: --create-rooms)",
            432 => " (the room is full: fewer --participants, or a larger room)",
            _ => "",
        };
        Some(format!("the server refused: {r}{hint}"))
    } else if e.downcast_ref::<Closed>().is_some() {
        Some("the server closed the Janus connection mid-run".to_string())
    } else {
        None
    };
    live.error(format!("{e:#}"));
    if let Some(why) = fatal {
        let _ = ctx.fatal.try_send(why);
    }
}

/// One participant: join, publish, subscribe to the others, keep the session alive.
async fn participant(ctx: &Arc<Ctx>, seat: &Seat) -> anyhow::Result<()> {
    let live = &ctx.live;
    let t0 = Instant::now();
    let mut j = Janus::open(&seat.url, ctx.token.clone()).await?;
    let handle = j.attach().await?;
    if ctx.create_rooms {
        let body = json!({
            "request": "create", "room": seat.room, "publishers": ctx.participants,
            "description": "loadtest", "audiocodec": "opus", "videocodec": "vp8",
            "notify_joining": false, "permanent": false,
        });
        match j.message(handle, body, None).await {
            Ok(_) => live.add("rooms_created", 1),
            // Another participant created it first.
            Err(e) if e.downcast_ref::<Refused>().is_some_and(|r| r.code == 427) => {}
            Err(e) => return Err(e),
        }
    }
    let join = json!({
        "request": "join", "room": seat.room, "ptype": "publisher",
        "id": seat.feed.to_string(), "display": format!("loadtest {}", seat.feed),
    });
    let joined = j.message(handle, join, None).await?;
    live.latency("join", t0.elapsed().as_micros() as u64);
    live.add("joins", 1);

    let mut tasks = Vec::new();
    let mut peer = Peer::new(ctx.media_ip)?;
    let (offer, pending, audio, video) = peer.publish_offer()?;
    let jsep = json!({"type": "offer", "sdp": offer.to_sdp_string(), "trickle": false});
    let reply = j
        .message(
            handle,
            json!({"request": "configure", "audio": true, "video": true}),
            Some(jsep),
        )
        .await?;
    let answer = reply
        .jsep
        .as_ref()
        .and_then(|j| j["sdp"].as_str())
        .context("configure: no SDP answer")?;
    peer.accept_answer(pending, answer)
        .context("the server's SDP answer")?;
    let publisher = Publisher::new(
        ctx.tag,
        seat.feed,
        ctx.spec.clone(),
        audio,
        video,
        ctx.keyframe_every,
        t0,
    );
    let l = live.clone();
    let halt = ctx.halt.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = peer.run(publisher, l.clone(), halt).await {
            l.error(format!("publisher: {e:#}"));
        }
    }));

    let mut subscribed = HashSet::new();
    subscribed.insert(seat.feed.to_string());
    let mut pending_feeds = janus::publishers(&joined.data);
    let mut halt = ctx.halt.clone();
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await;
    let result = loop {
        for (id, text) in std::mem::take(&mut pending_feeds) {
            if !subscribed.insert(text.clone()) || live.stopped() {
                continue;
            }
            match subscribe(ctx, &mut j, seat, id, &text).await {
                Ok(task) => tasks.push(task),
                Err(e) if e.downcast_ref::<Closed>().is_some() => return Err(e),
                Err(e) => live.error(format!("subscribe: {e:#}")),
            }
        }
        tokio::select! {
            ev = j.next_event() => match ev {
                Ok(v) => {
                    pending_feeds = janus::publishers(&v["plugindata"]["data"]);
                    on_event(live, &v);
                }
                Err(e) => break Err(e),
            },
            _ = keepalive.tick() => {
                if let Err(e) = j.keepalive().await {
                    break Err(e);
                }
            }
            _ = super::peer::stopped(live, &mut halt) => break Ok(()),
        }
    };
    // A failure is reported at once (it may end the run); the media tasks end with the
    // run, subscribers after a short drain.
    if let Err(e) = result {
        on_failure(ctx, e);
    }
    for t in tasks {
        let _ = t.await;
    }
    j.close().await;
    Ok(())
}

fn on_event(live: &Live, v: &Value) {
    match v["janus"].as_str() {
        Some("hangup") => live.error(format!(
            "hangup: {}",
            v["reason"].as_str().unwrap_or("no reason")
        )),
        Some("timeout") => live.error("the server timed the Janus session out"),
        Some("event") => {
            let data = &v["plugindata"]["data"];
            if data.get("unpublished").is_some() || data.get("leaving").is_some() {
                live.add("feeds_left", 1);
            }
        }
        _ => {}
    }
}

/// Subscribes to one feed on a new handle and starts its PeerConnection.
async fn subscribe(
    ctx: &Arc<Ctx>,
    j: &mut Janus,
    seat: &Seat,
    id: Value,
    text: &str,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let feed: u64 = text
        .parse()
        .with_context(|| format!("feed id {text:?} is not a number"))?;
    let started = Instant::now();
    let handle = j.attach().await?;
    let mut body = json!({
        "request": "join", "room": seat.room, "ptype": "subscriber",
        "streams": [{"feed": id}],
    });
    if let Some(s) = ctx.substream {
        body["substream"] = json!(s);
    }
    let reply = j.message(handle, body, None).await?;
    let offer = reply
        .jsep
        .as_ref()
        .and_then(|j| j["sdp"].as_str())
        .context("subscriber join: no SDP offer")?;
    let mut peer = Peer::new(ctx.media_ip)?;
    let answer = peer.answer(offer).context("the server's SDP offer")?;
    let jsep = json!({"type": "answer", "sdp": answer.to_sdp_string(), "trickle": false});
    j.message(
        handle,
        json!({"request": "start", "room": seat.room}),
        Some(jsep),
    )
    .await?;
    ctx.live.add("subscriptions", 1);
    let role = Subscriber::new(ctx.tag, seat.feed, feed, started, ctx.rows.clone());
    let live = ctx.live.clone();
    let halt = ctx.halt.clone();
    Ok(tokio::spawn(async move {
        if let Err(e) = peer.run(role, live.clone(), halt).await {
            live.error(format!("subscriber: {e:#}"));
        }
    }))
}

/// Totals over the subscribed tracks, loss as errors (so `--slo loss<1%` reads it), and a
/// note on the spread of per-track bitrates.
fn summarise(report: &mut Report, rows: &[TrackRow]) {
    let mut c = std::collections::BTreeMap::<&str, u64>::new();
    for r in rows {
        let s = &r.stats;
        *c.entry("tracks_subscribed").or_default() += 1;
        if s.packets == 0 {
            *c.entry("tracks_without_media").or_default() += 1;
        }
        *c.entry(if r.kind == "audio" {
            "audio_packets"
        } else {
            "video_packets"
        })
        .or_default() += s.packets;
        *c.entry(if r.kind == "audio" {
            "audio_bytes"
        } else {
            "video_bytes"
        })
        .or_default() += s.bytes;
        *c.entry("packets_lost").or_default() += s.lost();
        *c.entry("reordered").or_default() += s.flow.reordered;
        if r.kind == "video" {
            *c.entry("layer_switches").or_default() += s.switches;
            for (l, name) in ["video_packets_l", "video_packets_m", "video_packets_h"]
                .iter()
                .enumerate()
            {
                *c.entry(name).or_default() += s.per_layer[l];
            }
        }
    }
    for (k, v) in c {
        report.counters.insert(k.to_string(), v);
    }
    for kind in ["audio", "video"] {
        let mut jitter = crate::report::new_histogram();
        let mut kbps: Vec<f64> = Vec::new();
        for r in rows
            .iter()
            .filter(|r| r.kind == kind && r.stats.packets >= 2)
        {
            let _ = jitter.record(
                (r.stats.flow.jitter.value_us().round() as u64)
                    .clamp(1, crate::report::MAX_LATENCY_US),
            );
            kbps.push(r.stats.kbps());
        }
        if let Ok(lat) = crate::report::Latency::from_histogram(&jitter) {
            if lat.count > 0 {
                report.latencies.insert(format!("jitter_{kind}"), lat);
            }
        }
        if !kbps.is_empty() {
            kbps.sort_by(f64::total_cmp);
            report.notes.push(format!(
                "{kind} tracks: {} with media, kbit/s per track min {:.0} / median {:.0} / max {:.0}",
                kbps.len(),
                kbps[0],
                kbps[kbps.len() / 2],
                kbps[kbps.len() - 1]
            ));
        }
    }
    let lost = report.counters.get("packets_lost").copied().unwrap_or(0);
    if lost > 0 {
        *report.errors.entry("lost packets".into()).or_default() += lost;
        report.totals.errors += lost;
        report.finish_totals();
    }
}

fn tracks_csv(rows: &[TrackRow]) -> String {
    let mut out = String::from(
        "subscriber,publisher,kind,packets,bytes,kbps,lost,reordered,jitter_ms,layer_switches,packets_l,packets_m,packets_h,max_latency_ms,max_latency_seq,max_latency_after_first_ms\n",
    );
    for r in rows {
        let s = &r.stats;
        out += &format!(
            "{},{},{},{},{},{:.1},{},{},{:.3},{},{},{},{},{:.1},{},{}\n",
            r.subscriber,
            r.publisher,
            r.kind,
            s.packets,
            s.bytes,
            s.kbps(),
            s.lost(),
            s.flow.reordered,
            s.flow.jitter.value_us() / 1e3,
            s.switches,
            s.per_layer[0],
            s.per_layer[1],
            s.per_layer[2],
            s.worst.map_or(0.0, |w| w.latency_us as f64 / 1e3),
            s.worst.map_or(0, |w| w.seq),
            s.worst.map_or(0, |w| w.after_first.as_millis()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::media::Stamp;
    use crate::scenario::peer::TrackStats;

    #[test]
    fn targets_are_loopback_ws_urls() {
        assert!(check_ws_target("ws://127.0.0.1:8080/janus").is_ok());
        assert!(check_ws_target("ws://localhost:18188").is_ok());
        assert!(check_ws_target("ws://10.0.0.1:8080/janus").is_err());
        assert!(check_ws_target("wss://127.0.0.1:8443/janus").is_err());
        assert!(check_ws_target("http://127.0.0.1:8080").is_err());
        assert_eq!(with_token("ws://h:1/janus", "T"), "ws://h:1/janus?token=T");
        assert_eq!(with_token("ws://h:1/j?a=b", "T"), "ws://h:1/j?a=b&token=T");
    }

    #[test]
    fn loss_per_second_follows_sequence_numbers() {
        // As the subscriber counts: expected from the highest sequence number's growth,
        // arrivals by the send second they carry (the run started at µs 0 here).
        let live = Live::new(None);
        let mut t = TrackStats::default();
        let t0 = Instant::now();
        // Second 1: 1000, 1001, 1003 (1002 late, still in second 1); second 2: 1005, 1006
        // (1004 never comes).
        for (seq, sent_us) in [
            (1000u64, 100_000u64),
            (1001, 200_000),
            (1003, 400_000),
            (1002, 300_000),
            (1005, 1_100_000),
            (1006, 1_200_000),
        ] {
            let stamp = Stamp {
                tag: 1,
                feed: 2,
                stream: 2,
                frame: 0,
                sent_us,
            };
            live.expect_at(sent_us, t.seq_advance(seq));
            live.arrived_at(sent_us, 1);
            t.on_packet(seq, 100, &stamp, t0, sent_us + 500);
        }
        // By hand: second 1 expected 1000..=1003 = 4, all 4 arrived; second 2 expected
        // 1004..=1006 = 3, 2 arrived. The total is the track's loss.
        let (expected, arrived) = live.loss_by_second().unwrap();
        assert_eq!((expected, arrived), (vec![0, 4, 3], vec![0, 4, 2]));
        assert_eq!(t.lost(), 1);
    }

    #[test]
    fn tracks_count_loss_switches_and_bitrate() {
        let t0 = Instant::now();
        let mut t = TrackStats::default();
        let stamp = |stream, sent_us| Stamp {
            tag: 1,
            feed: 2,
            stream,
            frame: 0,
            sent_us,
        };
        // Sequence 1000..=1009 with 1004 lost; the layer goes m, m, h … (one switch).
        for (i, seq) in [1000u64, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009]
            .into_iter()
            .enumerate()
        {
            let stream = if i < 2 { 2 } else { 3 };
            let at = t0 + Duration::from_millis(100 * i as u64);
            let lat = t.on_packet(
                seq,
                125,
                &stamp(stream, 1000 * i as u64),
                at,
                1000 * i as u64 + 300,
            );
            assert_eq!(lat, 300);
        }
        assert_eq!((t.packets, t.lost(), t.switches), (9, 1, 1));
        assert_eq!(t.per_layer, [0, 2, 7]);
        // 9 × 125 bytes over 0.8 s = 11.25 kbit/s.
        assert!((t.kbps() - 11.25).abs() < 1e-9, "{}", t.kbps());
        assert_eq!(t.flow.jitter.value_us(), 0.0, "constant transit");

        let rows = vec![
            TrackRow {
                subscriber: 1,
                publisher: 2,
                kind: "video",
                stats: t,
            },
            TrackRow {
                subscriber: 1,
                publisher: 2,
                kind: "audio",
                stats: TrackStats::default(),
            },
        ];
        let mut r = Report::new("conference", "ws://127.0.0.1:1/janus", "forwarded packet");
        r.totals.ops = 9;
        r.duration_s = 1.0;
        summarise(&mut r, &rows);
        assert_eq!(r.counters["tracks_subscribed"], 2);
        assert_eq!(r.counters["tracks_without_media"], 1);
        assert_eq!(r.counters["packets_lost"], 1);
        assert_eq!(r.counters["layer_switches"], 1);
        assert_eq!(r.errors["lost packets"], 1);
        assert_eq!(r.totals.errors, 1);
        let csv = tracks_csv(&rows);
        assert_eq!(csv.lines().count(), 3);
        assert!(csv
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("1,2,video,9,1125,11.2"));
    }
}
