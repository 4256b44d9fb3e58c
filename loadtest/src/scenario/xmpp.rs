//! A minimal XMPP client for load: stream framing, SASL PLAIN, bind, MUC join, over TCP
//! (RFC 6120) or WebSocket (RFC 7395).
//!
//! Over TCP the framer cuts the stream into top-level elements by counting tags (quotes,
//! comments and processing instructions handled); it neither validates nor builds a tree,
//! which is all a load client needs and keeps the client's own CPU low. Over WebSocket
//! (subprotocol `xmpp`) every text frame is one element and `<open/>` / `<close/>` of the
//! framing namespace stand for the stream header and end. It works against any server
//! that offers PLAIN without TLS on loopback (Switchboard, Prosody with
//! `allow_unencrypted_plain_auth`, ejabberd without `starttls_required`).

use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// RFC 7395's framing namespace (`<open/>`, `<close/>`).
pub const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// What the framer found.
#[derive(Debug, PartialEq)]
pub enum Event {
    /// The server's `<stream:stream …>` head.
    StreamOpen(String),
    /// One complete top-level element (stanza, features, SASL reply …).
    Element(String),
    StreamEnd,
}

#[derive(Default)]
pub struct Framer {
    buf: Vec<u8>,
    pos: usize,
    depth: u32,
    elem_start: usize,
}

/// Buffered bytes past which consumed input is dropped (arbitrary, a few stanzas' worth).
const COMPACT_AT: usize = 64 * 1024;

impl Framer {
    pub fn push(&mut self, data: &[u8]) {
        if self.pos > COMPACT_AT || (self.pos == self.buf.len() && self.depth <= 1) {
            let keep_from = if self.depth > 1 {
                self.elem_start
            } else {
                self.pos
            };
            self.buf.drain(..keep_from);
            self.pos -= keep_from;
            self.elem_start -= keep_from.min(self.elem_start);
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete event, or `None` until more bytes come.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            let start = self.pos + self.buf[self.pos..].iter().position(|&b| b == b'<')?;
            let tag = &self.buf[start..];
            let end = if tag.starts_with(b"<!--") {
                start + find(tag, b"-->")? + 2
            } else {
                start + tag_end(tag)?
            };
            self.pos = end + 1;
            let tag = &self.buf[start..=end];
            if tag.starts_with(b"<?") || tag.starts_with(b"<!") {
                continue;
            }
            if tag.starts_with(b"</") {
                self.depth = self.depth.saturating_sub(1);
                match self.depth {
                    0 => return Some(Event::StreamEnd),
                    1 => return Some(Event::Element(self.text(self.elem_start, end))),
                    _ => continue,
                }
            }
            let self_closing = tag.ends_with(b"/>");
            match (self.depth, self_closing) {
                (0, _) => {
                    self.depth = 1;
                    return Some(Event::StreamOpen(self.text(start, end)));
                }
                (1, true) => return Some(Event::Element(self.text(start, end))),
                (1, false) => {
                    self.elem_start = start;
                    self.depth = 2;
                }
                (_, true) => {}
                (_, false) => self.depth += 1,
            }
        }
    }

    fn text(&self, from: usize, to: usize) -> String {
        String::from_utf8_lossy(&self.buf[from..=to]).into_owned()
    }
}

/// Index of the `>` closing the tag at the start of `tag`, skipping quoted attribute values.
fn tag_end(tag: &[u8]) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in tag.iter().enumerate().skip(1) {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if b == q => quote = None,
            (None, b'>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The element's name (`message`, `stream:features` …).
pub fn name(elem: &str) -> &str {
    let rest = elem.strip_prefix('<').unwrap_or(elem);
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// An attribute of the element's own (first) tag.
pub fn attr<'a>(elem: &'a str, key: &str) -> Option<&'a str> {
    let head = &elem[..tag_end(elem.as_bytes()).unwrap_or(elem.len())];
    let mut from = 0;
    while let Some(i) = head[from..].find(key) {
        let at = from + i;
        from = at + key.len();
        let before_ok = head[..at].ends_with(|c: char| c.is_whitespace());
        let rest = &head[at + key.len()..];
        if let (true, Some(rest)) = (before_ok, rest.strip_prefix('=')) {
            let q = rest.chars().next()?;
            let val = &rest[1..];
            return val.find(q).map(|e| &val[..e]);
        }
    }
    None
}

/// Text of the first `<child>` or `<child …>` element.
pub fn child_text<'a>(elem: &'a str, child: &str) -> Option<&'a str> {
    let open = format!("<{child}");
    let mut from = 0;
    loop {
        let at = from + elem[from..].find(&open)?;
        let after = &elem[at + open.len()..];
        from = at + open.len();
        if after.starts_with(['>', ' ', '\t', '\n', '\r']) {
            let body_start = at + open.len() + after.find('>')? + 1;
            let close = format!("</{child}>");
            let len = elem[body_start..].find(&close)?;
            return Some(&elem[body_start..body_start + len]);
        }
    }
}

/// An account to log in with: bare JID and password (or a Switchboard session token).
#[derive(Debug, Clone)]
pub struct Account {
    pub jid: String,
    pub password: String,
}

impl Account {
    pub fn node(&self) -> &str {
        self.jid.split('@').next().unwrap_or(&self.jid)
    }

    pub fn domain(&self) -> &str {
        self.jid
            .split_once('@')
            .map(|(_, d)| d.split('/').next().unwrap_or(d))
            .unwrap_or("localhost")
    }
}

/// How the client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Transport {
    /// XMPP over TCP (RFC 6120), `host:port`.
    #[default]
    Tcp,
    /// XMPP over WebSocket (RFC 7395), `ws://host:port/path`, subprotocol `xmpp`.
    Ws,
}

/// Where to connect: a TCP address or a WebSocket URL, both on loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(std::net::SocketAddr),
    Ws(String),
}

impl Endpoint {
    /// `target` for `transport`, checked to be loopback. Over WebSocket a bare `host:port`
    /// means Switchboard's path, `ws://host:port/ws`.
    pub fn parse(transport: Transport, target: &str) -> anyhow::Result<Self> {
        match transport {
            Transport::Tcp => {
                if target.contains("://") {
                    bail!(
                        "--target {target:?} is a URL: XMPP over TCP wants host:port \
                         (or use --transport ws)"
                    );
                }
                Ok(Self::Tcp(crate::target::loopback(target)?))
            }
            Transport::Ws => {
                let url = if target.contains("://") {
                    target.to_string()
                } else {
                    format!("ws://{target}/ws")
                };
                let rest = url.strip_prefix("ws://").with_context(|| {
                    format!("--target {url:?}: a ws:// URL (plain WebSocket on loopback)")
                })?;
                crate::target::loopback(rest.split(['/', '?']).next().unwrap_or(rest))?;
                Ok(Self::Ws(url))
            }
        }
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

enum Io {
    Tcp {
        stream: TcpStream,
        framer: Framer,
        buf: Box<[u8]>,
    },
    // Boxed: the WebSocket state is much larger than a TCP stream.
    Ws(Box<Ws>),
}

/// An authenticated, bound stream.
pub struct Conn {
    io: Io,
    pub full_jid: String,
}

impl Conn {
    /// Sends one stanza (or any top-level element).
    pub async fn send(&mut self, stanza: &str) -> anyhow::Result<()> {
        match &mut self.io {
            Io::Tcp { stream, .. } => stream.write_all(stanza.as_bytes()).await?,
            Io::Ws(ws) => ws
                .send(Message::text(stanza))
                .await
                .map_err(|e| anyhow::anyhow!("connection closed by the server ({e})"))?,
        }
        Ok(())
    }

    /// The next event; an error if the server closes the connection. Cancel safe: a
    /// partly read element stays buffered for the next call.
    pub async fn next_event(&mut self) -> anyhow::Result<Event> {
        match &mut self.io {
            Io::Tcp {
                stream,
                framer,
                buf,
            } => loop {
                if let Some(ev) = framer.next_event() {
                    return Ok(ev);
                }
                let n = stream.read(buf).await?;
                if n == 0 {
                    bail!("connection closed by the server");
                }
                framer.push(&buf[..n]);
            },
            Io::Ws(ws) => loop {
                match ws.next().await {
                    None | Some(Ok(Message::Close(_))) => {
                        bail!("connection closed by the server")
                    }
                    Some(Err(e)) => bail!("connection closed by the server ({e})"),
                    Some(Ok(Message::Text(t))) => return Ok(ws_event(t.as_str())),
                    Some(Ok(Message::Binary(_))) => bail!("the server sent a binary frame"),
                    Some(Ok(_)) => {}
                }
            },
        }
    }

    /// An event already read and buffered (TCP), without waiting.
    pub fn buffered_event(&mut self) -> Option<Event> {
        match &mut self.io {
            Io::Tcp { framer, .. } => framer.next_event(),
            Io::Ws(_) => None,
        }
    }

    /// The next element, skipping stream heads; an error if the stream ends.
    async fn next_element(&mut self) -> anyhow::Result<String> {
        loop {
            match self.next_event().await? {
                Event::Element(e) => return Ok(e),
                Event::StreamOpen(_) => {}
                Event::StreamEnd => bail!("the server ended the stream"),
            }
        }
    }

    /// Ends the stream (best effort: the server may be gone).
    pub async fn close(&mut self) {
        match &mut self.io {
            Io::Tcp { stream, .. } => {
                let _ = stream.write_all(b"</stream:stream>").await;
            }
            Io::Ws(ws) => {
                let close = format!("<close xmlns='{NS_FRAMING}'/>");
                let _ = ws.send(Message::text(close)).await;
                let _ = WebSocketStream::close(ws.as_mut(), None).await;
            }
        }
    }

    /// Opens (or, after SASL, restarts) the stream and returns the server's features.
    async fn open_stream(&mut self, domain: &str) -> anyhow::Result<String> {
        match &mut self.io {
            Io::Tcp { stream, framer, .. } => {
                let head = format!(
                    "<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' \
                     xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
                );
                stream.write_all(head.as_bytes()).await?;
                *framer = Framer::default();
            }
            Io::Ws(ws) => {
                let open = format!("<open xmlns='{NS_FRAMING}' to='{domain}' version='1.0'/>");
                ws.send(Message::text(open))
                    .await
                    .context("connection closed by the server")?;
            }
        }
        loop {
            let e = self.next_element().await?;
            if name(&e).ends_with("features") {
                return Ok(e);
            }
            if name(&e).ends_with("error") {
                bail!("stream error: {}", short(&e));
            }
        }
    }
}

/// One WebSocket text frame as a stream event: RFC 7395's `<open/>` and `<close/>` stand
/// for the stream header and end; anything else is one element.
pub fn ws_event(frame: &str) -> Event {
    let frame = frame.trim();
    let framing = attr(frame, "xmlns") == Some(NS_FRAMING);
    match name(frame) {
        "open" if framing => Event::StreamOpen(frame.to_string()),
        "close" if framing => Event::StreamEnd,
        _ => Event::Element(frame.to_string()),
    }
}

async fn connect(endpoint: &Endpoint) -> anyhow::Result<Io> {
    match endpoint {
        Endpoint::Tcp(addr) => {
            let stream = TcpStream::connect(addr).await.context("connect refused")?;
            stream.set_nodelay(true)?;
            Ok(Io::Tcp {
                stream,
                framer: Framer::default(),
                buf: vec![0u8; 16 * 1024].into_boxed_slice(),
            })
        }
        Endpoint::Ws(url) => {
            let mut req = url
                .as_str()
                .into_client_request()
                .with_context(|| format!("{url:?} is not a WebSocket URL"))?;
            req.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                "xmpp".parse().expect("a valid header value"),
            );
            // TCP_NODELAY, as browsers set it: one small frame per stanza goes out at once.
            let (ws, resp) = tokio_tungstenite::connect_async_with_config(req, None, true)
                .await
                .map_err(|e| describe_ws_connect(url, &e))?;
            let proto = resp
                .headers()
                .get("Sec-WebSocket-Protocol")
                .and_then(|v| v.to_str().ok());
            if proto != Some("xmpp") {
                bail!("{url}: the server did not accept the `xmpp` WebSocket subprotocol");
            }
            Ok(Io::Ws(Box::new(ws)))
        }
    }
}

fn describe_ws_connect(url: &str, e: &tokio_tungstenite::tungstenite::Error) -> anyhow::Error {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            anyhow::anyhow!("connect refused: nothing listens at {url}")
        }
        E::Http(resp) => anyhow::anyhow!(
            "{url} answered HTTP {} instead of a WebSocket upgrade (wrong path?)",
            resp.status()
        ),
        other => anyhow::anyhow!("connect to {url} failed: {other}"),
    }
}

/// Connects, authenticates with SASL PLAIN and binds `resource`; sends initial presence
/// when `available`. Bounded by `limit`.
pub async fn login(
    endpoint: &Endpoint,
    account: &Account,
    resource: &str,
    available: bool,
    limit: Duration,
) -> anyhow::Result<Conn> {
    tokio::time::timeout(limit, login_inner(endpoint, account, resource, available))
        .await
        .context("login timed out")?
}

async fn login_inner(
    endpoint: &Endpoint,
    account: &Account,
    resource: &str,
    available: bool,
) -> anyhow::Result<Conn> {
    let mut conn = Conn {
        io: connect(endpoint).await?,
        full_jid: String::new(),
    };
    let domain = account.domain();
    let features = conn.open_stream(domain).await?;
    if features.contains("<required") && features.contains("starttls") {
        bail!("the server requires STARTTLS (not supported by loadtest)");
    }
    if !features.contains(">PLAIN<") {
        bail!("the server does not offer SASL PLAIN");
    }
    let creds = format!("\0{}\0{}", account.node(), account.password);
    let auth = format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
        base64::engine::general_purpose::STANDARD.encode(creds)
    );
    conn.send(&auth).await?;
    let reply = conn.next_element().await?;
    if name(&reply) != "success" {
        bail!("login refused");
    }
    let features = conn.open_stream(domain).await?;
    let bind = format!(
        "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>{resource}</resource></bind></iq>"
    );
    conn.send(&bind).await?;
    conn.full_jid = loop {
        let e = conn.next_element().await?;
        if name(&e) == "iq" && attr(&e, "id") == Some("bind1") {
            if attr(&e, "type") != Some("result") {
                bail!("bind refused: {}", short(&e));
            }
            break child_text(&e, "jid")
                .context("bind result without a jid")?
                .to_string();
        }
    };
    if features.contains("xmpp-session") && !features.contains("<optional") {
        conn.send(
            "<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
        )
        .await?;
        loop {
            let e = conn.next_element().await?;
            if name(&e) == "iq" && attr(&e, "id") == Some("sess1") {
                break;
            }
        }
    }
    if available {
        conn.send("<presence/>").await?;
    }
    Ok(conn)
}

/// Joins a MUC room as `nick` and waits for the self-presence (status 110 or the room's
/// echo of our nick).
pub async fn join_room(
    conn: &mut Conn,
    room: &str,
    nick: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let presence = format!(
        "<presence id='join1' to='{room}/{nick}'><x xmlns='http://jabber.org/protocol/muc'>\
         <history maxstanzas='0'/></x></presence>"
    );
    conn.send(&presence).await?;
    let me = format!("{room}/{nick}");
    let occupant_prefix = format!("{room}/");
    let wait = async {
        loop {
            let e = conn.next_element().await?;
            let from = attr(&e, "from").unwrap_or("");
            if name(&e) != "presence" || !from.starts_with(&occupant_prefix) {
                continue;
            }
            if attr(&e, "type") == Some("error") {
                bail!("room join refused: {}", short(&e));
            }
            // Self-presence: status 110, or our own nick echoed (a server may rename us).
            if from == me || e.contains("code='110'") || e.contains("code=\"110\"") {
                return Ok(());
            }
        }
    };
    tokio::time::timeout(limit, wait)
        .await
        .context("room join timed out")?
}

fn short(e: &str) -> String {
    e.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[&[u8]]) -> Vec<Event> {
        let mut f = Framer::default();
        let mut out = Vec::new();
        for chunk in input {
            f.push(chunk);
            while let Some(e) = f.next_event() {
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn frames_a_stream_split_anywhere() {
        let stream = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' id='x>y'>\
            <stream:features><mechanisms><mechanism>PLAIN</mechanism></mechanisms></stream:features>\
            <!-- a comment <x> --> <message to='a' id=\"1\"><body>1 &lt; 2 &gt; 0</body></message>\
            <presence/></stream:stream>";
        let whole = all(&[stream.as_bytes()]);
        assert_eq!(whole.len(), 5, "{whole:?}");
        assert!(matches!(&whole[0], Event::StreamOpen(s) if s.contains("id='x>y'")));
        assert!(matches!(&whole[1], Event::Element(s) if name(s) == "stream:features"));
        assert!(
            matches!(&whole[2], Event::Element(s) if child_text(s, "body") == Some("1 &lt; 2 &gt; 0"))
        );
        assert_eq!(whole[3], Event::Element("<presence/>".into()));
        assert_eq!(whole[4], Event::StreamEnd);
        let bytes = stream.as_bytes();
        for cut in 1..bytes.len() {
            assert_eq!(
                all(&[&bytes[..cut], &bytes[cut..]]),
                whole,
                "split at {cut}"
            );
        }
    }

    #[test]
    fn reads_attributes_and_children() {
        let m = "<message from='1-2@localhost/r' to=\"b@x\" xml:id='q' id='7'><body x='1'>lt 3</body><bodyx>no</bodyx></message>";
        assert_eq!(name(m), "message");
        assert_eq!(attr(m, "from"), Some("1-2@localhost/r"));
        assert_eq!(attr(m, "to"), Some("b@x"));
        assert_eq!(attr(m, "id"), Some("7"));
        assert_eq!(attr(m, "type"), None);
        assert_eq!(child_text(m, "body"), Some("lt 3"));
        assert_eq!(
            child_text("<iq><bind><jid>a@b/c</jid></bind></iq>", "jid"),
            Some("a@b/c")
        );
    }

    #[test]
    fn accounts_split_their_jid() {
        let a = Account {
            jid: "12-1@localhost".into(),
            password: "p".into(),
        };
        assert_eq!((a.node(), a.domain()), ("12-1", "localhost"));
    }
}
