//! Building the stanzas the server sends.

use minidom::Element;

use super::framing::{NS_CLIENT, NS_FRAMING, NS_STREAM};

pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const NS_STREAMS_ERR: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const NS_ROSTER: &str = "jabber:iq:roster";
pub const NS_PING: &str = "urn:xmpp:ping";
pub const NS_CARBONS: &str = "urn:xmpp:carbons:2";
pub const NS_SM: &str = "urn:xmpp:sm:3";
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const NS_MARKERS: &str = "urn:xmpp:chat-markers:0";
pub const NS_RECEIPTS: &str = "urn:xmpp:receipts";
pub const NS_DELAY: &str = "urn:xmpp:delay";
pub const NS_LAST: &str = "jabber:iq:last";
pub const NS_PRIVACY: &str = "jabber:iq:privacy";

/// How the stream header and features are framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Tcp,
    WebSocket,
}

/// The server's stream header (or RFC 7395 `<open/>`), with a fresh stream id.
pub fn stream_header(framing: Framing, domain: &str, id: &str) -> String {
    match framing {
        Framing::Tcp => format!(
            "<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' \
             id='{id}' from='{domain}' version='1.0' xml:lang='en'>"
        ),
        Framing::WebSocket => {
            format!("<open xmlns='{NS_FRAMING}' id='{id}' from='{domain}' version='1.0' xml:lang='en'/>")
        }
    }
}

pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const NS_FORWARD: &str = "urn:xmpp:forward:0";

/// Whether to offer STARTTLS before authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartTls {
    Unavailable,
    Optional,
    Required,
}

/// Features before authentication: STARTTLS where offered, and SASL PLAIN only (tokens
/// cannot do SCRAM). Mechanisms are withheld while TLS is required and not yet on.
pub fn features_pre_auth(starttls: StartTls) -> String {
    let mechanisms =
        format!("<mechanisms xmlns='{NS_SASL}'><mechanism>PLAIN</mechanism></mechanisms>");
    let body = match starttls {
        StartTls::Unavailable => mechanisms,
        StartTls::Optional => format!("<starttls xmlns='{NS_TLS}'/>{mechanisms}"),
        StartTls::Required => format!("<starttls xmlns='{NS_TLS}'><required/></starttls>"),
    };
    format!("<stream:features xmlns:stream='{NS_STREAM}'>{body}</stream:features>")
}

pub fn features_post_auth() -> String {
    format!(
        "<stream:features xmlns:stream='{NS_STREAM}'><bind xmlns='{NS_BIND}'/>\
         <session xmlns='{NS_SESSION}'><optional/></session><sm xmlns='{NS_SM}'/></stream:features>"
    )
}

/// A stream-level error, then the stream's end.
pub fn stream_error(framing: Framing, condition: &str, text: &str) -> String {
    let error = format!(
        "<stream:error xmlns:stream='{NS_STREAM}'><{condition} xmlns='{NS_STREAMS_ERR}'/>\
         <text xmlns='{NS_STREAMS_ERR}'>{}</text></stream:error>",
        escape(text)
    );
    match framing {
        Framing::Tcp => format!("{error}</stream:stream>"),
        Framing::WebSocket => format!("{error}<close xmlns='{NS_FRAMING}'/>"),
    }
}

pub fn stream_close(framing: Framing) -> String {
    match framing {
        Framing::Tcp => "</stream:stream>".into(),
        Framing::WebSocket => format!("<close xmlns='{NS_FRAMING}'/>"),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn sasl_success() -> Element {
    Element::builder("success", NS_SASL).build()
}

pub fn sasl_failure(condition: &str) -> Element {
    Element::builder("failure", NS_SASL)
        .append(Element::builder(condition, NS_SASL).build())
        .build()
}

pub fn text_child(name: &str, ns: &str, text: impl Into<String>) -> Element {
    Element::builder(name, ns).append(text.into()).build()
}

/// `<iq type='result'>` answering `request`, with an optional payload.
pub fn iq_result(
    request: &Element,
    from: Option<&str>,
    to: Option<&str>,
    payload: Option<Element>,
) -> Element {
    let mut builder = Element::builder("iq", NS_CLIENT)
        .attr(name("type"), "result")
        .attr(name("id"), request.attr("id").unwrap_or_default());
    if let Some(from) = from {
        builder = builder.attr(name("from"), from);
    }
    if let Some(to) = to {
        builder = builder.attr(name("to"), to);
    }
    if let Some(payload) = payload {
        builder = builder.append(payload);
    }
    builder.build()
}

/// The error reply to a stanza: same name and id, `type='error'`, with the RFC 6120
/// condition and a human-readable text.
pub fn stanza_error(
    request: &Element,
    from: Option<&str>,
    kind: &str,
    condition: &str,
    text: &str,
) -> Element {
    let legacy_code = match condition {
        "not-authorized" => "401",
        "forbidden" => "403",
        "item-not-found" => "404",
        "not-acceptable" => "406",
        "bad-request" => "400",
        "policy-violation" => "405",
        "feature-not-implemented" => "501",
        _ => "503",
    };
    let error = Element::builder("error", NS_CLIENT)
        .attr(name("type"), kind)
        .attr(name("code"), legacy_code)
        .append(Element::builder(condition, NS_STANZAS).build())
        .append(text_child("text", NS_STANZAS, text))
        .build();
    let mut builder = Element::builder(request.name(), NS_CLIENT).attr(name("type"), "error");
    if let Some(id) = request.attr("id") {
        builder = builder.attr(name("id"), id);
    }
    if let Some(from) = from.or_else(|| request.attr("to")) {
        builder = builder.attr(name("from"), from);
    }
    builder.append(error).build()
}

/// An attribute name known to be a valid NCName.
pub fn name(s: &'static str) -> rxml::NcName {
    // Only called with literal, valid attribute names.
    rxml::NcName::try_from(s).expect("valid attribute name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::framing::to_xml;

    #[test]
    fn errors_echo_the_request_id_and_carry_condition_and_text() {
        let request = Element::builder("message", NS_CLIENT)
            .attr(name("id"), "m1")
            .attr(name("to"), "9-1@localhost")
            .build();
        let xml = to_xml(&stanza_error(
            &request,
            None,
            "cancel",
            "service-unavailable",
            "no <such> user",
        ));
        assert!(xml.contains("type='error'"), "{xml}");
        assert!(xml.contains("id='m1'"), "{xml}");
        assert!(
            xml.contains("<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"),
            "{xml}"
        );
        assert!(xml.contains("no &lt;such&gt; user"), "{xml}");
    }
}
