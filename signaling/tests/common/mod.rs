//! The XMPP test harness shared by `xmpp.rs` and `calls.rs`: a server over a fresh SQLite
//! store on a loopback port, and a minimal TCP client that reads the server's stanzas as
//! elements.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use control_api::domain::ice::IceConfig;
use control_api::domain::model::{App, UserId, UserProfile};
use control_api::domain::push::{NoPushSender, PushSender};
use control_api::domain::sessions::SessionRequest;
use control_api::domain::signature;
use control_api::{open_store, ControlConfig, ControlPlane, SystemClock};
use minidom::Element;
use prometheus_client::registry::Registry;
use signaling::core::framing::{StreamEvent, TcpFramer, NS_CLIENT};
use signaling::{XmppConfig, XmppContext};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The TURN REST secret of the test relay (no relay runs; only credentials are minted).
pub const ICE_SECRET: &[u8] = b"test-turn-secret";

pub fn ice_config() -> IceConfig {
    IceConfig {
        secret: ICE_SECRET.to_vec(),
        stun_urls: vec!["stun:127.0.0.1:3478".into()],
        turn_urls: vec![
            "turn:127.0.0.1:3478?transport=udp".into(),
            "turn:127.0.0.1:3478?transport=tcp".into(),
        ],
        credential_ttl: Duration::from_secs(3600),
    }
}

/// Guards against a hung test only; no assertion depends on it.
pub const READ_LIMIT: Duration = Duration::from_secs(20);
pub const MAX_STANZA: usize = 16 * 1024;

pub struct Server {
    pub addr: SocketAddr,
    pub control: ControlPlane,
    pub app: App,
    pub ctx: Arc<XmppContext>,
    pub registry: Registry,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start() -> Self {
        Self::start_with(XmppConfig {
            max_stanza_bytes: MAX_STANZA,
            ..XmppConfig::default()
        })
        .await
    }

    pub async fn start_with(xmpp: XmppConfig) -> Self {
        Self::start_with_push(xmpp, Arc::new(NoPushSender)).await
    }

    /// A server whose control plane delivers pushes through `push`.
    pub async fn start_with_push(xmpp: XmppConfig, push: Arc<dyn PushSender>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open_store("sqlite", dir.path()).await.unwrap());
        let config = ControlConfig {
            chat_endpoint: "localhost".into(),
            ice: Some(ice_config()),
            ..ControlConfig::default()
        };
        let control =
            ControlPlane::new(store, Arc::new(SystemClock), config).with_push_sender(push);
        let (app, _) = control.ensure_default_app().await.unwrap();
        let mut registry = Registry::default();
        let ctx = signaling::context(control.clone(), "localhost".into(), xmpp, &mut registry);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(signaling::driver::tcp::serve(
            listener,
            ctx.clone(),
            std::future::pending(),
        ));
        Self {
            addr,
            control,
            app,
            ctx,
            registry,
            _dir: dir,
        }
    }

    pub async fn user(&self, login: &str) -> UserId {
        let hash = control_api::domain::password::hash(format!("{login}-password"))
            .await
            .unwrap();
        let profile = UserProfile {
            login: Some(login.into()),
            ..UserProfile::default()
        };
        let user = self
            .control
            .store()
            .insert_user(self.app.id, &profile, &hash, self.control.now())
            .await
            .unwrap();
        user.id
    }

    /// A user session token, minted the way `POST /session.json` does.
    pub async fn token(&self, login: &str) -> String {
        let mut params = vec![
            ("application_id".to_string(), self.app.id.to_string()),
            ("auth_key".to_string(), self.app.auth_key.clone()),
            ("nonce".to_string(), "1".to_string()),
            (
                "timestamp".to_string(),
                self.control.now().unix_timestamp().to_string(),
            ),
            ("user[login]".to_string(), login.to_string()),
            ("user[password]".to_string(), format!("{login}-password")),
        ];
        let signed = signature::signed_string(&params);
        params.push((
            "signature".into(),
            signature::sign_sha1(&self.app.auth_secret, &signed),
        ));
        let (session, _) = self
            .control
            .create_session(&SessionRequest { params })
            .await
            .unwrap();
        session.token
    }

    pub fn jid(&self, user: UserId) -> String {
        format!("{}-{}@localhost", user.0, self.app.id.0)
    }

    pub async fn client(&self, user: UserId, secret: &str) -> Client {
        let mut client = Client::connect(self.addr).await;
        client.open().await;
        let node = format!("{}-{}", user.0, self.app.id.0);
        assert!(
            client.authenticate(&node, secret).await,
            "authentication failed"
        );
        client.open().await;
        client.bind("test").await;
        client
    }

    /// A client bound to the resource `resource` (a taken name gets a suffix).
    pub async fn client_on(&self, user: UserId, resource: &str) -> Client {
        let mut client = Client::connect(self.addr).await;
        client.open().await;
        let node = format!("{}-{}", user.0, self.app.id.0);
        let secret = format!("{}-password", self.login_of(user).await);
        assert!(client.authenticate(&node, &secret).await);
        client.open().await;
        client.bind(resource).await;
        client
    }

    async fn login_of(&self, user: UserId) -> String {
        self.control
            .store()
            .user(
                self.app.id,
                &control_api::domain::user_query::UserLookup::Id(user),
            )
            .await
            .unwrap()
            .unwrap()
            .profile
            .login
            .unwrap()
    }

    /// The metrics as `/metrics` would serve them.
    pub fn metrics(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text
    }
}

pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

pub struct Client {
    pub stream: Box<dyn Io>,
    framer: TcpFramer,
    events: VecDeque<StreamEvent>,
    pub jid: String,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self {
            stream: Box::new(TcpStream::connect(addr).await.unwrap()),
            framer: TcpFramer::new(1 << 20),
            events: VecDeque::new(),
            jid: String::new(),
        }
    }

    pub async fn send(&mut self, xml: &str) {
        self.stream.write_all(xml.as_bytes()).await.unwrap();
    }

    /// The next event from the server; `None` once it closed the connection.
    pub async fn next(&mut self) -> Option<StreamEvent> {
        let mut buf = [0u8; 4096];
        while self.events.is_empty() {
            let n = tokio::time::timeout(READ_LIMIT, self.stream.read(&mut buf))
                .await
                .expect("server answered")
                .ok()?;
            if n == 0 {
                return None;
            }
            let mut out = Vec::new();
            self.framer
                .feed(&buf[..n], &mut out)
                .expect("server sends well-formed XML");
            self.events.extend(out);
        }
        self.events.pop_front()
    }

    /// The next element, whatever its name.
    pub async fn until_any(&mut self) -> Element {
        loop {
            match self.next().await {
                Some(StreamEvent::Element(e)) => return e,
                Some(_) => continue,
                None => panic!("connection closed while waiting for an element"),
            }
        }
    }

    /// The next element named `name`, skipping others (presence noise and the like).
    pub async fn until(&mut self, name: &str) -> Element {
        loop {
            match self.next().await {
                Some(StreamEvent::Element(e)) if e.name() == name => return e,
                Some(_) => continue,
                None => panic!("connection closed while waiting for <{name}>"),
            }
        }
    }

    pub async fn open(&mut self) {
        self.framer.reset();
        self.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>").await;
        assert!(matches!(self.next().await, Some(StreamEvent::Open { .. })));
        self.until("features").await;
    }

    pub async fn authenticate(&mut self, node: &str, secret: &str) -> bool {
        let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{node}\0{secret}"));
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>"
        ))
        .await;
        loop {
            match self.next().await {
                Some(StreamEvent::Element(e)) if e.name() == "success" => return true,
                Some(StreamEvent::Element(e)) if e.name() == "failure" => return false,
                Some(_) => continue,
                None => return false,
            }
        }
    }

    pub async fn bind(&mut self, resource: &str) {
        self.send(&format!("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>")).await;
        let result = self.until("iq").await;
        assert_eq!(result.attr("type"), Some("result"));
        self.jid = result
            .get_child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
            .unwrap()
            .get_child("jid", "urn:ietf:params:xml:ns:xmpp-bind")
            .unwrap()
            .text();
        self.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
            .await;
        let roster = self.until("iq").await;
        assert!(roster.get_child("query", "jabber:iq:roster").is_some());
        self.send("<presence/>").await;
    }
}

pub fn extra(message: &Element, key: &str) -> Option<String> {
    message
        .get_child("extraParams", NS_CLIENT)?
        .get_child(key, NS_CLIENT)
        .map(Element::text)
}
