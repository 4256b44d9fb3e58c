//! One client stream: negotiation (SASL PLAIN, bind, session), then stanza handling.
//!
//! Drivers feed [`StreamEvent`]s to [`Session::handle`] and write whatever arrives on the
//! connection's outbound queue; [`Flow`] tells them when to restart the parser or close.
//! Domain effects (authentication, history, receipts) go through the control plane, the
//! same services the REST API uses.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use minidom::Element;
use tokio::sync::{mpsc, oneshot};

use super::address::{resolve, RoomAddr, Target, UserAddr};
use super::context::XmppContext;
use super::framing::{to_outbound, to_xml, StreamEvent, NS_CLIENT};
use super::resume::{StreamManagement, Takeover};
use super::router::{ConnId, Outbound, Resource};
use super::stanza::{self, name, Framing};
use super::{calls, extdisco, messages, muc};

/// What the driver should do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// SASL succeeded: the client restarts the stream; TCP drivers reset their parser.
    Restart,
    /// `<proceed/>` was queued: the TCP driver flushes it, starts TLS, resets its parser
    /// and calls [`Session::secured`].
    StartTls,
    /// XEP-0198 `<resume/>`: the driver looks up the parked session `previd` (see
    /// [`crate::core::resume`]), swaps it in and calls [`Session::resumed`], or calls
    /// [`Session::resume_failed`].
    Resume {
        previd: String,
        h: u32,
    },
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Stream open, not authenticated.
    Connected,
    Authenticated,
    /// A resource is bound: stanzas flow.
    Bound,
}

/// RFC 6120 leaves the retry count to the server; three covers a typo.
const MAX_AUTH_FAILURES: u32 = 3;

pub struct Session {
    pub(crate) ctx: Arc<XmppContext>,
    pub(crate) framing: Framing,
    pub(crate) conn: ConnId,
    pub(crate) tx: mpsc::Sender<Outbound>,
    state: State,
    pub(crate) user: Option<UserAddr>,
    pub(crate) resource: Option<String>,
    pub(crate) rooms: HashSet<RoomAddr>,
    available: bool,
    /// Private-dialog peers told of this resource's presence (see [`super::presence`]).
    presence_peers: Vec<control_api::domain::model::UserId>,
    auth_failures: u32,
    /// XEP-0198 state once the client enabled stream management.
    pub(crate) sm: Option<StreamManagement>,
    /// Fires when a new connection resumes this session (see [`crate::core::resume`]).
    pub takeover: Option<oneshot::Receiver<Takeover>>,
    /// RFC 6120 §4.9.1.1: even an error needs our stream header first.
    header_sent: bool,
    pub(crate) carbons: Arc<AtomicBool>,
    rate: RateLimit,
    /// The transport is encrypted (TLS from the start, or after STARTTLS).
    secure: bool,
}

impl Session {
    /// `secure`: the transport is already encrypted (WebSocket over HTTPS counts as the
    /// listener's business; plain WebSocket on loopback is accepted as it is).
    pub fn new(
        ctx: Arc<XmppContext>,
        framing: Framing,
        tx: mpsc::Sender<Outbound>,
        secure: bool,
    ) -> Self {
        let conn = ctx.router.next_conn_id();
        let ctx_rate = (ctx.config.stanza_rate, ctx.config.stanza_burst);
        Self {
            ctx,
            framing,
            conn,
            tx,
            state: State::Connected,
            user: None,
            resource: None,
            rooms: HashSet::new(),
            available: false,
            presence_peers: Vec::new(),
            auth_failures: 0,
            sm: None,
            takeover: None,
            header_sent: false,
            carbons: Arc::new(AtomicBool::new(false)),
            rate: RateLimit::new(ctx_rate),
            secure,
        }
    }

    pub(crate) fn send_raw(&self, xml: impl Into<Outbound>) {
        let _ = self.ctx.router.offer(&self.tx, &xml.into());
    }

    pub(crate) fn send(&self, element: &Element) {
        self.send_raw(to_outbound(element));
    }

    /// The bound full JID.
    pub(crate) fn full_jid(&self) -> String {
        match (self.user, &self.resource) {
            (Some(user), Some(resource)) => user.full(&self.ctx.domain, resource),
            (Some(user), None) => user.bare(&self.ctx.domain),
            _ => String::new(),
        }
    }

    pub(crate) fn me(&self) -> UserAddr {
        // Only called once bound (stanzas are refused before).
        self.user.expect("session is authenticated")
    }

    pub(crate) fn resource_handle(&self) -> Resource {
        Resource {
            conn: self.conn,
            name: self.resource.clone().unwrap_or_default(),
            tx: self.tx.clone(),
            carbons: self.carbons.clone(),
        }
    }

    /// Handles one event; `now` is when the driver read it (for the stanza rate limit).
    pub async fn handle(&mut self, event: StreamEvent, now: Instant) -> Flow {
        if matches!(event, StreamEvent::Element(_)) && !self.rate.allow(now) {
            return self.fail("policy-violation", "too many stanzas: slow down");
        }
        match event {
            StreamEvent::Open { .. } => {
                self.open();
                Flow::Continue
            }
            StreamEvent::Close => {
                self.send_raw(stanza::stream_close(self.framing));
                Flow::Close
            }
            StreamEvent::Element(element) => self.on_element(element).await,
        }
    }

    /// A stream error for a framing failure: tells the client why, then closes.
    pub fn fail(&mut self, condition: &str, text: &str) -> Flow {
        self.ctx
            .metrics
            .stream_errors
            .get_or_create(&condition.into())
            .inc();
        if !self.header_sent {
            self.send_header();
        }
        self.send_raw(stanza::stream_error(self.framing, condition, text));
        Flow::Close
    }

    fn send_header(&mut self) {
        let id = control_api::domain::ids::session_token();
        self.send_raw(stanza::stream_header(
            self.framing,
            &self.ctx.domain,
            &id[..16],
        ));
        self.header_sent = true;
    }

    fn open(&mut self) {
        self.send_header();
        match self.state {
            State::Connected => self.send_raw(stanza::features_pre_auth(self.starttls())),
            State::Authenticated | State::Bound => self.send_raw(stanza::features_post_auth()),
        }
    }

    fn starttls(&self) -> stanza::StartTls {
        match (&self.ctx.config.tls, self.secure, self.framing) {
            (Some(_), false, Framing::Tcp) if self.ctx.config.require_tls => {
                stanza::StartTls::Required
            }
            (Some(_), false, Framing::Tcp) => stanza::StartTls::Optional,
            _ => stanza::StartTls::Unavailable,
        }
    }

    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The driver finished the TLS handshake; the client now opens a new stream.
    pub fn secured(&mut self) {
        self.secure = true;
        self.header_sent = false;
    }

    async fn on_element(&mut self, element: Element) -> Flow {
        if self.state == State::Connected {
            if element.is("starttls", stanza::NS_TLS) {
                if self.starttls() == stanza::StartTls::Unavailable {
                    self.send(&Element::builder("failure", stanza::NS_TLS).build());
                    self.send_raw(stanza::stream_close(self.framing));
                    return Flow::Close;
                }
                self.send(&Element::builder("proceed", stanza::NS_TLS).build());
                return Flow::StartTls;
            }
            if element.is("auth", stanza::NS_SASL) {
                if self.starttls() == stanza::StartTls::Required {
                    self.send(&stanza::sasl_failure("encryption-required"));
                    return Flow::Continue;
                }
                return self.on_auth(&element).await;
            }
            return self.fail("not-authorized", "authenticate first");
        }
        if element.has_ns(stanza::NS_SM) {
            return self.on_stream_management(&element);
        }
        if !element.has_ns(NS_CLIENT) {
            return self.fail("unsupported-stanza-type", "unknown top-level element");
        }
        if let Some(sm) = self.sm.as_mut() {
            sm.inbound = sm.inbound.wrapping_add(1);
        }
        if element.name() == "iq" && self.state == State::Authenticated {
            return self.on_iq_before_bind(&element);
        }
        if self.state != State::Bound {
            return self.fail("not-authorized", "bind a resource first");
        }
        self.ctx.metrics.stanza(element.name());
        match element.name() {
            "message" => messages::on_message(self, element).await,
            "presence" => self.on_presence(element).await,
            "iq" => self.on_iq(element).await,
            _ => {
                return self.fail(
                    "unsupported-stanza-type",
                    "expected message, presence or iq",
                )
            }
        }
        Flow::Continue
    }

    async fn on_auth(&mut self, auth: &Element) -> Flow {
        if auth.attr("mechanism") != Some("PLAIN") {
            self.send(&stanza::sasl_failure("invalid-mechanism"));
            return Flow::Continue;
        }
        let credentials = base64::engine::general_purpose::STANDARD
            .decode(auth.text().trim())
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok());
        let parsed = credentials.as_deref().and_then(parse_plain);
        let result = match parsed {
            Some((addr, secret)) => self
                .ctx
                .control
                .authenticate_chat_user(addr.app, addr.user, secret)
                .await
                .map(|_| addr)
                .ok(),
            None => None,
        };
        match result {
            Some(addr) => {
                self.ctx.metrics.auth(true);
                self.user = Some(addr);
                self.state = State::Authenticated;
                self.send(&stanza::sasl_success());
                Flow::Restart
            }
            None => {
                self.ctx.metrics.auth(false);
                self.auth_failures += 1;
                self.send(&stanza::sasl_failure("not-authorized"));
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    self.send_raw(stanza::stream_close(self.framing));
                    return Flow::Close;
                }
                Flow::Continue
            }
        }
    }

    fn on_iq_before_bind(&mut self, iq: &Element) -> Flow {
        let Some(bind) = iq.get_child("bind", stanza::NS_BIND) else {
            self.send(&stanza::stanza_error(
                iq,
                None,
                "cancel",
                "not-allowed",
                "bind a resource first",
            ));
            return Flow::Continue;
        };
        let wanted = bind
            .get_child("resource", stanza::NS_BIND)
            .map(|r| r.text().trim().to_string())
            .filter(|r| !r.is_empty() && r.len() <= 256)
            .unwrap_or_else(|| control_api::domain::ids::session_token()[..12].to_string());
        let me = self.me();
        let resource = self.ctx.router.bind(
            me,
            self.conn,
            &wanted,
            self.tx.clone(),
            self.carbons.clone(),
        );
        self.resource = Some(resource);
        self.state = State::Bound;
        let jid = stanza::text_child("jid", stanza::NS_BIND, self.full_jid());
        let payload = Element::builder("bind", stanza::NS_BIND)
            .append(jid)
            .build();
        self.send(&stanza::iq_result(iq, None, None, Some(payload)));
        tracing::debug!(jid = %self.full_jid(), "resource bound");
        Flow::Continue
    }

    fn on_stream_management(&mut self, element: &Element) -> Flow {
        match element.name() {
            "enable" if self.state == State::Bound && self.sm.is_none() => {
                let resume = matches!(element.attr("resume"), Some("true" | "1"));
                let id = resume.then(control_api::domain::ids::session_token);
                if let Some(id) = &id {
                    self.takeover = Some(self.ctx.resume.attach(id, self.me()));
                }
                let mut enabled = Element::builder("enabled", stanza::NS_SM);
                if let Some(id) = &id {
                    let window = self.ctx.config.resume_window.as_secs().to_string();
                    enabled = enabled
                        .attr(name("id"), id.as_str())
                        .attr(name("resume"), "true")
                        .attr(name("max"), window);
                }
                self.sm = Some(StreamManagement {
                    id,
                    ..StreamManagement::default()
                });
                self.send(&enabled.build());
            }
            "r" => {
                let handled = self.sm.as_ref().map_or(0, |sm| sm.inbound).to_string();
                self.send(
                    &Element::builder("a", stanza::NS_SM)
                        .attr(name("h"), handled)
                        .build(),
                );
            }
            "a" => {
                let h = element.attr("h").and_then(|h| h.parse().ok());
                if let (Some(sm), Some(h)) = (self.sm.as_mut(), h) {
                    sm.on_ack(h);
                }
            }
            "resume" if self.state == State::Authenticated => {
                let previd = element.attr("previd").unwrap_or_default().to_string();
                let h = element.attr("h").and_then(|h| h.parse().ok()).unwrap_or(0);
                return Flow::Resume { previd, h };
            }
            _ => {
                let failed = Element::builder("failed", stanza::NS_SM)
                    .append(Element::builder("unexpected-request", stanza::NS_STANZAS).build());
                self.send(&failed.build());
            }
        }
        Flow::Continue
    }

    /// The driver wrote `out` to the client.
    pub fn on_sent(&mut self, out: &Outbound) {
        let cap = self.ctx.config.outbound_queue;
        if let Some(sm) = self.sm.as_mut() {
            sm.on_sent(out, cap);
        }
    }

    /// The resumption id, when this session may be parked after its connection drops.
    pub fn resumption_id(&self) -> Option<String> {
        match (&self.sm, self.state) {
            (Some(sm), State::Bound) => sm.id.clone(),
            _ => None,
        }
    }

    /// This (parked) session continues on a new connection: acknowledge, then return the
    /// stanzas to send again, oldest first. The driver writes them before anything queued.
    pub fn resumed(
        &mut self,
        previd: &str,
        h: u32,
        framing: Framing,
        secure: bool,
    ) -> Vec<Outbound> {
        self.framing = framing;
        self.secure = secure;
        self.header_sent = true;
        if let (Some(id), Some(user)) = (self.sm.as_ref().and_then(|sm| sm.id.clone()), self.user) {
            self.takeover = Some(self.ctx.resume.attach(&id, user));
        }
        let Some(sm) = self.sm.as_mut() else {
            return Vec::new();
        };
        sm.on_ack(h);
        let resumed = Element::builder("resumed", stanza::NS_SM)
            .attr(name("previd"), previd)
            .attr(name("h"), sm.inbound.to_string())
            .build();
        let mut out = vec![Outbound::from(to_xml(&resumed))];
        // Re-sent stanzas are counted again when written.
        out.extend(sm.unacked.drain(..).map(|(_, stanza)| stanza));
        sm.outbound = h;
        out
    }

    pub fn resume_failed(&self) {
        let failed = Element::builder("failed", stanza::NS_SM)
            .append(Element::builder("item-not-found", stanza::NS_STANZAS).build());
        self.send(&failed.build());
    }

    async fn on_presence(&mut self, presence: Element) {
        let kind = presence.attr("type").unwrap_or("available").to_string();
        match resolve(presence.attr("to"), &self.ctx.domain) {
            Target::Room { room, .. } => {
                if kind == "unavailable" {
                    muc::leave(self, &room);
                } else if kind == "available" {
                    muc::join(self, &presence, room).await;
                }
            }
            Target::Server => {
                if kind == "unavailable" {
                    self.leave_all_rooms();
                    self.available = false;
                    let peers = std::mem::take(&mut self.presence_peers);
                    super::presence::withdraw(self, &peers);
                } else if kind == "available" && !self.available {
                    self.available = true;
                    messages::deliver_offline(self).await;
                    self.presence_peers = super::presence::peers(self).await;
                    super::presence::announce(self, &presence, &self.presence_peers);
                } else if kind == "available" {
                    super::presence::broadcast(self, &presence, &self.presence_peers);
                }
            }
            // Roster subscriptions are not kept (QuickBlox apps use dialogs); ignore.
            Target::User { .. } | Target::Unknown => {}
        }
    }

    async fn on_iq(&mut self, iq: Element) {
        let kind = iq.attr("type").unwrap_or_default();
        if kind == "result" || kind == "error" {
            // Answers to user-to-user queries go back to the asker.
            if let Target::User { addr, resource } = resolve(iq.attr("to"), &self.ctx.domain) {
                let mut forwarded = iq.clone();
                forwarded.set_attr(rxml::Namespace::NONE, name("from"), self.full_jid());
                self.ctx.router.send_to_user(
                    addr,
                    resource.as_deref(),
                    &Outbound::from(to_xml(&forwarded)),
                );
            }
            return;
        }
        if iq.attr("id").is_none() || (kind != "get" && kind != "set") {
            self.send(&stanza::stanza_error(
                &iq,
                None,
                "modify",
                "bad-request",
                "an iq needs an id and a type",
            ));
            return;
        }
        match resolve(iq.attr("to"), &self.ctx.domain) {
            Target::Server => self.on_server_iq(&iq),
            Target::Room { room, .. } => muc::on_room_iq(self, &iq, &room),
            Target::User { addr, resource } => self.on_user_iq(&iq, addr, resource).await,
            Target::Unknown => self.send(&stanza::stanza_error(
                &iq,
                None,
                "cancel",
                "remote-server-not-found",
                "this server only serves its own domain",
            )),
        }
    }

    fn on_server_iq(&mut self, iq: &Element) {
        let domain = self.ctx.domain.clone();
        let from = Some(domain.as_str());
        let payload = iq.children().next();
        let reply = match payload.map(|p| (p.name(), p.ns())) {
            Some(("session", ns)) if ns == stanza::NS_SESSION => {
                stanza::iq_result(iq, from, None, None)
            }
            Some(("ping", ns)) if ns == stanza::NS_PING => stanza::iq_result(iq, from, None, None),
            Some(("query", ns)) if ns == stanza::NS_ROSTER => stanza::iq_result(
                iq,
                from,
                None,
                Some(Element::builder("query", stanza::NS_ROSTER).build()),
            ),
            Some((verb @ ("enable" | "disable"), ns)) if ns == stanza::NS_CARBONS => {
                self.carbons.store(verb == "enable", Ordering::Relaxed);
                stanza::iq_result(iq, from, None, None)
            }
            Some(("query", ns)) if ns == stanza::NS_PRIVACY => {
                let query = (iq.attr("type") == Some("get"))
                    .then(|| Element::builder("query", stanza::NS_PRIVACY).build());
                stanza::iq_result(iq, from, None, query)
            }
            Some((_, ns)) if ns == extdisco::NS_EXTDISCO => {
                // Matched a payload just above.
                extdisco::reply(self, iq, payload.expect("payload"))
            }
            Some(("query", ns)) if ns == stanza::NS_DISCO_INFO => {
                stanza::iq_result(iq, from, None, Some(server_disco_info()))
            }
            _ => stanza::stanza_error(
                iq,
                from,
                "cancel",
                "service-unavailable",
                "not supported by this server",
            ),
        };
        self.send(&reply);
    }

    async fn on_user_iq(&mut self, iq: &Element, addr: UserAddr, resource: Option<String>) {
        if addr.app != self.me().app {
            self.send(&stanza::stanza_error(
                iq,
                None,
                "cancel",
                "service-unavailable",
                "no such user",
            ));
            return;
        }
        let online = self.ctx.router.is_online(addr);
        if iq.get_child("query", stanza::NS_LAST).is_some() {
            let reply = if online {
                let query = Element::builder("query", stanza::NS_LAST)
                    .attr(name("seconds"), "0")
                    .build();
                stanza::iq_result(iq, iq.attr("to"), None, Some(query))
            } else {
                stanza::stanza_error(
                    iq,
                    None,
                    "cancel",
                    "service-unavailable",
                    "the user is offline",
                )
            };
            self.send(&reply);
            return;
        }
        let mut forwarded = iq.clone();
        forwarded.set_attr(rxml::Namespace::NONE, name("from"), self.full_jid());
        let delivered = self.ctx.router.send_to_user(
            addr,
            resource.as_deref(),
            &Outbound::from(to_xml(&forwarded)),
        );
        if delivered == 0 {
            self.send(&stanza::stanza_error(
                iq,
                None,
                "cancel",
                "service-unavailable",
                "the user is offline",
            ));
        }
    }

    fn leave_all_rooms(&mut self) {
        let rooms: Vec<RoomAddr> = self.rooms.iter().cloned().collect();
        for room in rooms {
            muc::leave(self, &room);
        }
    }

    /// Called by the driver when the session ends for good (not when it is parked).
    pub fn finish(&mut self) {
        if let Some(id) = self.sm.as_ref().and_then(|sm| sm.id.clone()) {
            self.ctx.resume.forget(&id);
        }
        self.leave_all_rooms();
        if let (Some(user), State::Bound) = (self.user, self.state) {
            self.ctx.router.unbind(user, self.conn);
            let peers = std::mem::take(&mut self.presence_peers);
            super::presence::withdraw(self, &peers);
            if !self.ctx.router.is_online(user) {
                calls::on_offline(&self.ctx, user);
            }
        }
    }
}

/// A token bucket over stanzas: `rate` per second sustained, `burst` at once.
struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl RateLimit {
    fn new((rate, burst): (u32, u32)) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: None,
        }
    }

    fn allow(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// `authzid\0authcid\0password`; the authcid is `{user}-{app}` (node-xmpp may append the
/// domain), the password a session token or the user's password.
fn parse_plain(decoded: &str) -> Option<(UserAddr, &str)> {
    let mut parts = decoded.splitn(3, '\0');
    let (_authzid, authcid, secret) = (parts.next()?, parts.next()?, parts.next()?);
    let node = authcid.split('@').next()?;
    Some((UserAddr::parse_node(node)?, secret))
}

fn server_disco_info() -> Element {
    let mut query = Element::builder("query", stanza::NS_DISCO_INFO).append(
        Element::builder("identity", stanza::NS_DISCO_INFO)
            .attr(name("category"), "server")
            .attr(name("type"), "im")
            .attr(name("name"), "Switchboard")
            .build(),
    );
    for feature in [
        stanza::NS_PING,
        stanza::NS_CARBONS,
        stanza::NS_MUC,
        stanza::NS_LAST,
        extdisco::NS_EXTDISCO,
    ] {
        query = query.append(
            Element::builder("feature", stanza::NS_DISCO_INFO)
                .attr(name("var"), feature)
                .build(),
        );
    }
    query.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_credentials_in_both_sdk_shapes() {
        let (addr, secret) = parse_plain("\x0012-1\x00token").unwrap();
        assert_eq!((addr.user.0, addr.app.0, secret), (12, 1, "token"));
        let (addr, _) = parse_plain("12-1@localhost\x0012-1@localhost\x00pw").unwrap();
        assert_eq!(addr.user.0, 12);
        assert!(parse_plain("nonsense").is_none());
        assert!(parse_plain("\x00alice\x00pw").is_none());
    }
}
