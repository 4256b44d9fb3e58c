//! A minimal XMPP client over TCP for load: stream framing, SASL PLAIN, bind, MUC join.
//!
//! The framer cuts the stream into top-level elements by counting tags (quotes, comments
//! and processing instructions handled); it neither validates nor builds a tree, which is
//! all a load client needs and keeps the client's own CPU low. It works against any RFC
//! 6120 server that offers PLAIN without TLS on loopback (Switchboard, Prosody with
//! `allow_unencrypted_plain_auth`, ejabberd without `starttls_required`).

use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// An authenticated, bound stream.
pub struct Conn {
    pub stream: TcpStream,
    pub framer: Framer,
    pub full_jid: String,
}

/// Reads until the framer yields an event; an error if the server closes the connection.
pub async fn read_event(stream: &mut TcpStream, framer: &mut Framer) -> anyhow::Result<Event> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(ev) = framer.next_event() {
            return Ok(ev);
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("connection closed by the server");
        }
        framer.push(&buf[..n]);
    }
}

async fn read_element(stream: &mut TcpStream, framer: &mut Framer) -> anyhow::Result<String> {
    loop {
        match read_event(stream, framer).await? {
            Event::Element(e) => return Ok(e),
            Event::StreamOpen(_) => {}
            Event::StreamEnd => bail!("the server ended the stream"),
        }
    }
}

async fn open_stream(stream: &mut TcpStream, domain: &str) -> anyhow::Result<(Framer, String)> {
    let head = format!(
        "<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' \
         xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    );
    stream.write_all(head.as_bytes()).await?;
    let mut framer = Framer::default();
    loop {
        let e = read_element(stream, &mut framer).await?;
        if name(&e).ends_with("features") {
            return Ok((framer, e));
        }
        if name(&e).ends_with("error") {
            bail!("stream error: {}", short(&e));
        }
    }
}

/// Connects, authenticates with SASL PLAIN and binds `resource`; sends initial presence
/// when `available`. Bounded by `limit`.
pub async fn login(
    addr: std::net::SocketAddr,
    account: &Account,
    resource: &str,
    available: bool,
    limit: Duration,
) -> anyhow::Result<Conn> {
    tokio::time::timeout(limit, login_inner(addr, account, resource, available))
        .await
        .context("login timed out")?
}

async fn login_inner(
    addr: std::net::SocketAddr,
    account: &Account,
    resource: &str,
    available: bool,
) -> anyhow::Result<Conn> {
    let mut stream = TcpStream::connect(addr).await.context("connect refused")?;
    stream.set_nodelay(true)?;
    let domain = account.domain();
    let (mut framer, features) = open_stream(&mut stream, domain).await?;
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
    stream.write_all(auth.as_bytes()).await?;
    let reply = read_element(&mut stream, &mut framer).await?;
    if name(&reply) != "success" {
        bail!("login refused");
    }
    let (mut framer, features) = open_stream(&mut stream, domain).await?;
    let bind = format!(
        "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>{resource}</resource></bind></iq>"
    );
    stream.write_all(bind.as_bytes()).await?;
    let full_jid = loop {
        let e = read_element(&mut stream, &mut framer).await?;
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
        stream
            .write_all(b"<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
            .await?;
        loop {
            let e = read_element(&mut stream, &mut framer).await?;
            if name(&e) == "iq" && attr(&e, "id") == Some("sess1") {
                break;
            }
        }
    }
    if available {
        stream.write_all(b"<presence/>").await?;
    }
    Ok(Conn {
        stream,
        framer,
        full_jid,
    })
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
    conn.stream.write_all(presence.as_bytes()).await?;
    let me = format!("{room}/{nick}");
    let occupant_prefix = format!("{room}/");
    let wait = async {
        loop {
            let e = read_element(&mut conn.stream, &mut conn.framer).await?;
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
