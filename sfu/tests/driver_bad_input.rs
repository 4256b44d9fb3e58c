//! Bad input against the real driver: the `/janus` WebSocket on a loopback HTTP listener and a
//! worker's UDP socket on 127.0.0.1. Whatever one connection sends, it gets its protocol's own
//! error and takes down nothing but itself: other sessions keep working, the worker keeps
//! serving media.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sfu::config::SfuConfig;
use sfu::driver::worker::{spawn_workers, Workers};
use sfu::driver::ws::{router, system_clock, JanusState};
use sfu::grant::{GrantKey, GrantRole};
use sfu::metrics::Metrics;
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SECRET: &[u8] = b"driver-test-secret";
/// Upper bound on any single wait, so a broken server fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(15);

struct Server {
    http: SocketAddr,
    workers: Workers,
    metrics: Metrics,
    _stop: watch::Sender<bool>,
}

async fn start(max_publishers: usize) -> Server {
    let mut config = SfuConfig::local("127.0.0.1:0".parse().unwrap());
    config.workers = 1;
    config.max_publishers = max_publishers;
    let metrics = Metrics::default();
    let (stop, stop_rx) = watch::channel(false);
    let (workers, _threads) = spawn_workers(&config, metrics.clone(), stop_rx).unwrap();
    let state = Arc::new(JanusState {
        workers: workers.clone(),
        grants: GrantKey::new(SECRET),
        require_grant: true,
        session_timeout: Duration::from_secs(60),
        clock: system_clock(),
        metrics: metrics.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    Server {
        http,
        workers,
        metrics,
        _stop: stop,
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn grant(key: &GrantKey, user: u64, room: &str, issued: u64, ttl: u64) -> String {
    key.mint(1, user, room, GrantRole::Publisher, issued, ttl)
}

struct Janus {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    tx: u64,
}

impl Janus {
    async fn connect(s: &Server) -> Self {
        let mut req = format!("ws://{}/janus", s.http)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "janus-protocol".parse().unwrap());
        let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(
            resp.headers()["sec-websocket-protocol"],
            "janus-protocol",
            "subprotocol"
        );
        Self { ws, tx: 0 }
    }

    async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    async fn recv(&mut self) -> Value {
        loop {
            let m = timeout(WAIT, self.ws.next())
                .await
                .expect("a reply in time")
                .expect("connection open")
                .expect("frame");
            if let Message::Text(t) = m {
                return serde_json::from_str(t.as_str()).unwrap();
            }
        }
    }

    /// Sends `req` with a fresh transaction; returns the first non-ack reply to it.
    async fn call(&mut self, mut req: Value) -> Value {
        self.tx += 1;
        let tx = format!("t{}", self.tx);
        req["transaction"] = json!(tx);
        self.send_raw(&req.to_string()).await;
        loop {
            let v = timeout(WAIT, self.recv())
                .await
                .unwrap_or_else(|_| panic!("no reply to {req}"));
            if v["transaction"] == json!(tx) && v["janus"] != "ack" {
                return v;
            }
        }
    }

    /// A keepalive; Janus answers it with an `ack` for its transaction.
    async fn keepalive(&mut self, session: u64) -> Value {
        self.tx += 1;
        let tx = format!("t{}", self.tx);
        let req = json!({"janus": "keepalive", "session_id": session, "transaction": tx});
        self.send_raw(&req.to_string()).await;
        loop {
            let v = self.recv().await;
            if v["transaction"] == json!(tx) {
                return v;
            }
        }
    }

    /// `create` + `attach`: (session, handle).
    async fn handle(&mut self) -> (u64, u64) {
        let s = self.call(json!({"janus": "create"})).await;
        let session = s["data"]["id"].as_u64().expect("session id");
        let h = self
            .call(json!({"janus": "attach", "session_id": session, "plugin": "janus.plugin.videoroom"}))
            .await;
        (session, h["data"]["id"].as_u64().expect("handle id"))
    }

    async fn message(
        &mut self,
        session: u64,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> Value {
        let mut req =
            json!({"janus": "message", "session_id": session, "handle_id": handle, "body": body});
        if let Some(j) = jsep {
            req["jsep"] = j;
        }
        self.call(req).await
    }
}

fn error_code(v: &Value) -> Option<u64> {
    v["error"]["code"].as_u64()
}

fn plugin_error(v: &Value) -> Option<u64> {
    v["plugindata"]["data"]["error_code"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_janus_requests_get_janus_errors_and_break_nothing() {
    sfu::init_crypto();
    let s = start(12).await;
    let mut other = Janus::connect(&s).await;
    let (other_session, _) = other.handle().await;

    let mut bad = Janus::connect(&s).await;
    bad.send_raw("{\"janus\": \"create\", ").await;
    assert_eq!(error_code(&bad.recv().await), Some(454), "invalid JSON");
    bad.send_raw("[1, 2, 3]").await;
    assert_eq!(error_code(&bad.recv().await), Some(455), "not an object");
    bad.send_raw("{\"transaction\": \"x\"}").await;
    assert_eq!(error_code(&bad.recv().await), Some(452), "missing request");
    bad.send_raw("{\"janus\": \"create\"}").await;
    assert_eq!(
        error_code(&bad.recv().await),
        Some(456),
        "missing transaction"
    );
    bad.ws
        .send(Message::binary(vec![0xff, 0xfe, 0x00]))
        .await
        .unwrap();
    assert_eq!(
        error_code(&bad.recv().await),
        Some(454),
        "binary, not UTF-8"
    );
    let v = bad
        .call(json!({"janus": "attach", "session_id": 4242, "plugin": "janus.plugin.videoroom"}))
        .await;
    assert_eq!(error_code(&v), Some(458), "unknown session");
    let (session, handle) = bad.handle().await;
    let v = bad
        .call(json!({"janus": "attach", "session_id": session, "plugin": "janus.plugin.nope"}))
        .await;
    assert_eq!(error_code(&v), Some(460), "unknown plugin");
    let v = bad
        .call(json!({"janus": "message", "session_id": session, "handle_id": 999, "body": {"request": "list"}}))
        .await;
    assert_eq!(error_code(&v), Some(459), "unknown handle");
    let v = bad
        .call(json!({"janus": "message", "session_id": session, "handle_id": handle}))
        .await;
    assert_eq!(error_code(&v), Some(456), "message without body");
    let v = bad
        .message(
            session,
            handle,
            json!({"request": "join", "room": "r1"}),
            None,
        )
        .await;
    assert_eq!(plugin_error(&v), Some(429), "join without ptype");
    let v = bad
        .message(session, handle, json!({"request": "frobnicate"}), None)
        .await;
    assert!(plugin_error(&v).is_some(), "unknown videoroom request: {v}");
    let v = bad
        .call(json!({"janus": "bogus", "session_id": session}))
        .await;
    assert_eq!(error_code(&v), Some(453), "unknown request");

    // The same connection still works after all that...
    let v = bad.keepalive(session).await;
    assert_eq!(v["janus"], "ack", "{v}");
    let v = bad
        .message(session, handle, json!({"request": "list"}), None)
        .await;
    assert_eq!(v["plugindata"]["data"]["videoroom"], "success", "{v}");
    // ...and so does everyone else's.
    let v = other.keepalive(other_session).await;
    assert_eq!(v["janus"], "ack");
    let n = s
        .metrics
        .janus_errors
        .get_or_create(&sfu::metrics::ErrorLabel { code: "454".into() })
        .get();
    assert!(n >= 2, "errors counted by code: {n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_or_expired_grants_and_a_full_room_are_refused() {
    sfu::init_crypto();
    let s = start(1).await;
    let key = GrantKey::new(SECRET);
    let room = "dialog-full";
    let mut j = Janus::connect(&s).await;
    let join = |token: &str, id: u64| json!({"request": "join", "room": room, "ptype": "publisher", "id": id, "token": token});

    let (session, handle) = j.handle().await;
    let forged =
        GrantKey::new(b"someone-else").mint(1, 7, room, GrantRole::Publisher, now_secs(), 600);
    let v = j.message(session, handle, join(&forged, 7), None).await;
    assert_eq!(plugin_error(&v), Some(433), "forged grant: {v}");
    let expired = grant(&key, 7, room, now_secs() - 3600, 60);
    let v = j.message(session, handle, join(&expired, 7), None).await;
    assert_eq!(plugin_error(&v), Some(433), "expired grant: {v}");
    let other_room = grant(&key, 7, "dialog-other", now_secs(), 600);
    let v = j.message(session, handle, join(&other_room, 7), None).await;
    assert_eq!(plugin_error(&v), Some(433), "grant for another room: {v}");
    let not_me = grant(&key, 8, room, now_secs(), 600);
    let v = j.message(session, handle, join(&not_me, 7), None).await;
    assert_eq!(plugin_error(&v), Some(433), "grant for another user: {v}");
    let mut truncated = grant(&key, 7, room, now_secs(), 600);
    truncated.truncate(truncated.len() - 5);
    let v = j.message(session, handle, join(&truncated, 7), None).await;
    assert_eq!(plugin_error(&v), Some(433), "mangled grant: {v}");

    // The handle that was refused can still join with a good grant.
    let good = grant(&key, 7, room, now_secs(), 600);
    let v = j.message(session, handle, join(&good, 7), None).await;
    assert_eq!(v["plugindata"]["data"]["videoroom"], "joined", "{v}");

    // max_publishers = 1: the next publisher is refused, with Janus's code.
    let (session2, handle2) = j.handle().await;
    let second = grant(&key, 9, room, now_secs(), 600);
    let v = j.message(session2, handle2, join(&second, 9), None).await;
    assert_eq!(plugin_error(&v), Some(432), "room full: {v}");
}

/// A str0m client on a real UDP socket: the browser's part, against a real worker.
struct UdpPeer {
    rtc: Rtc,
    sock: UdpSocket,
    local: SocketAddr,
    connected: bool,
}

impl UdpPeer {
    async fn new() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = sock.local_addr().unwrap();
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .build(std::time::Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
        Self {
            rtc,
            sock,
            local,
            connected: false,
        }
    }

    /// Runs the client until `until` holds or `WAIT` passes (then panics with `what`).
    async fn run_until(&mut self, what: &str, mut until: impl FnMut(&mut Self) -> bool) {
        let deadline = Instant::now() + WAIT;
        let mut buf = vec![0u8; 2000];
        loop {
            if until(self) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            let next = loop {
                match self.rtc.poll_output().unwrap() {
                    Output::Timeout(t) => break t,
                    Output::Transmit(t) => {
                        self.sock.send_to(&t.contents, t.destination).await.unwrap();
                    }
                    Output::Event(Event::Connected) => self.connected = true,
                    Output::Event(_) => {}
                }
            };
            let wait = tokio::time::Instant::from_std(next).min(deadline);
            tokio::select! {
                r = self.sock.recv_from(&mut buf) => {
                    let (n, from) = r.unwrap();
                    let now = std::time::Instant::now();
                    if let Ok(r) = Receive::new(Protocol::Udp, from, self.local, &buf[..n]) {
                        let _ = self.rtc.handle_input(Input::Receive(now, r));
                    }
                }
                _ = tokio::time::sleep_until(wait) => {
                    self.rtc.handle_input(Input::Timeout(std::time::Instant::now())).unwrap();
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_udp_never_takes_down_the_worker_or_a_live_session() {
    sfu::init_crypto();
    let s = start(12).await;
    let media: SocketAddr = s.workers.addrs()[0];
    let key = GrantKey::new(SECRET);
    let room = "dialog-udp";

    // Garbage before any session: random bytes, a truncated STUN header, STUN with a bogus
    // USERNAME, RTP and RTCP for SSRCs nobody has, an empty datagram.
    let junk = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut stun_bad_user = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
    stun_bad_user.extend_from_slice(&[7; 12]);
    stun_bad_user.extend_from_slice(&[0x00, 0x06, 0x00, 0x08]);
    stun_bad_user.extend_from_slice(b"zz:yy:xx");
    let datagrams: Vec<Vec<u8>> = vec![
        (0..200u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect(),
        vec![0x00, 0x01, 0x00, 0x50, 0x21, 0x12, 0xa4],
        stun_bad_user,
        [
            &[0x80u8, 0x60, 0x00, 0x01, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef][..],
            &[0; 100],
        ]
        .concat(),
        vec![0x81, 0xc9, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef],
        vec![],
    ];
    for d in &datagrams {
        junk.send_to(d, media).await.unwrap();
    }

    // A publisher connects through the same worker and publishes.
    let mut j = Janus::connect(&s).await;
    let (session, handle) = j.handle().await;
    let token = grant(&key, 5, room, now_secs(), 600);
    let v = j
        .message(
            session,
            handle,
            json!({"request": "join", "room": room, "ptype": "publisher", "id": 5, "token": token}),
            None,
        )
        .await;
    assert_eq!(v["plugindata"]["data"]["videoroom"], "joined", "{v}");
    let mut peer = UdpPeer::new().await;
    let mut sdp = peer.rtc.sdp_api();
    let audio = sdp.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, pending) = sdp.apply().unwrap();
    let v = j
        .message(
            session,
            handle,
            json!({"request": "configure", "audio": true}),
            Some(json!({"type": "offer", "sdp": offer.to_sdp_string()})),
        )
        .await;
    let answer = v["jsep"]["sdp"]
        .as_str()
        .unwrap_or_else(|| panic!("answer: {v}"));
    peer.rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(answer).unwrap())
        .unwrap();
    peer.run_until("ICE and DTLS with the worker", |p| p.connected)
        .await;

    // Garbage from the live peer's own address (the worker routes it to that peer's
    // PeerConnection) and from elsewhere, interleaved with real media.
    let opus = peer
        .rtc
        .codec_config()
        .find(|p| p.spec().codec == str0m::format::Codec::Opus)
        .unwrap()
        .pt();
    let mut seq = 1u64;
    let mut media_event = false;
    let deadline = Instant::now() + WAIT;
    while !media_event {
        assert!(Instant::now() < deadline, "no media event from the worker");
        for d in &datagrams {
            peer.sock.send_to(d, media).await.unwrap();
            junk.send_to(d, media).await.unwrap();
        }
        {
            let now = std::time::Instant::now();
            let mut api = peer.rtc.direct_api();
            let tx = api.stream_tx_by_mid(audio, None).unwrap();
            tx.write_rtp(str0m::rtp::RtpWrite::new(
                opus,
                seq.into(),
                (seq * 960) as u32,
                now,
                vec![0xfc, 1, 2, 3],
            ));
            seq += 1;
        }
        let until = Instant::now() + Duration::from_millis(20);
        peer.run_until("a 20 ms media tick", |_| Instant::now() >= until)
            .await;
        // The worker tells the publisher its media arrived (`media`, receiving: true).
        while let Ok(Some(Ok(Message::Text(t)))) =
            timeout(Duration::from_millis(1), j.ws.next()).await
        {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["janus"] == "media" && v["receiving"] == true {
                media_event = true;
            }
        }
    }
    // The session is intact: the worker still answers for it.
    let v = j
        .message(
            session,
            handle,
            json!({"request": "listparticipants", "room": room}),
            None,
        )
        .await;
    let parts = &v["plugindata"]["data"]["participants"];
    assert_eq!(parts[0]["id"], 5, "{v}");
    assert!(
        s.metrics.unknown_source.get() + s.metrics.malformed.get() > 0,
        "garbage was seen and dropped"
    );
}
