//! Turning bytes into stream events, for both XMPP framings.
//!
//! TCP (RFC 6120) is one long document: `<stream:stream>` opens it and each child element is
//! a stanza. WebSocket (RFC 7395) carries one complete element per frame, `<open/>` and
//! `<close/>` included. Both yield the same [`StreamEvent`]s. Parsing uses rxml, which has
//! no DTDs and no entity expansion, so entity bombs cannot even be expressed.

use std::cell::RefCell;

use minidom::tree_builder::TreeBuilder;
use minidom::Element;
use rxml::error::EndOrError;
use rxml::{Parse, RawEvent, RawParser};

use super::router::Outbound;

pub const NS_CLIENT: &str = "jabber:client";
pub const NS_STREAM: &str = "http://etherx.jabber.org/streams";
pub const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// What the client said, independent of framing.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// `<stream:stream>` or `<open/>`: the stream (re)starts; `to` is the domain asked for.
    Open { to: Option<String> },
    /// A top-level element: stanza, SASL, stream-management or other nonza.
    Element(Element),
    /// `</stream:stream>` or `<close/>`.
    Close,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FramingError {
    #[error("not well-formed XML: {0}")]
    NotWellFormed(String),
    #[error("stanza larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("invalid framing: {0}")]
    InvalidFraming(&'static str),
}

/// Incremental parser for the TCP framing.
pub struct TcpFramer {
    parser: RawParser,
    tree: TreeBuilder,
    opened: bool,
    /// Bytes consumed since the current top-level child began (0 between stanzas).
    stanza_bytes: usize,
    max_stanza: usize,
}

impl TcpFramer {
    pub fn new(max_stanza: usize) -> Self {
        Self {
            parser: RawParser::new(),
            tree: TreeBuilder::new(),
            opened: false,
            stanza_bytes: 0,
            max_stanza,
        }
    }

    /// Forget everything: the client restarts the stream after SASL success.
    pub fn reset(&mut self) {
        *self = Self::new(self.max_stanza);
    }

    /// Parses as much of `data` as forms events; keeps the rest buffered inside the parser.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), FramingError> {
        loop {
            let before = data.len();
            let event = match self.parser.parse(&mut data, false) {
                Ok(Some(event)) => event,
                Ok(None) => {
                    out.push(StreamEvent::Close);
                    return Ok(());
                }
                Err(EndOrError::NeedMoreData) => {
                    self.count(before - data.len())?;
                    if self.tree.depth() <= 1 {
                        // Between stanzas: give back the lexer's 8 KiB token scratchpad, so an
                        // idle connection holds only what its stream state needs.
                        self.parser.release_temporaries();
                    }
                    return Ok(());
                }
                Err(EndOrError::Error(e)) => {
                    return Err(FramingError::NotWellFormed(e.to_string()))
                }
            };
            self.count(before - data.len())?;
            if self.on_event(event, out)? {
                // A restart must begin with a fresh parser: stop here, the caller resets.
                return Ok(());
            }
        }
    }

    fn count(&mut self, consumed: usize) -> Result<(), FramingError> {
        if self.tree.depth() >= 2 {
            self.stanza_bytes += consumed;
            if self.stanza_bytes > self.max_stanza {
                return Err(FramingError::TooLarge {
                    limit: self.max_stanza,
                });
            }
        }
        Ok(())
    }

    /// Returns true when the stream was closed.
    fn on_event(
        &mut self,
        event: RawEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<bool, FramingError> {
        let depth = self.tree.depth();
        match &event {
            // Whitespace keepalives between stanzas would pile up as text in the root.
            RawEvent::Text(..) if depth <= 1 => return Ok(false),
            RawEvent::ElementFoot(..) if depth == 1 => {
                out.push(StreamEvent::Close);
                return Ok(true);
            }
            _ => {}
        }
        let head_close = matches!(event, RawEvent::ElementHeadClose(..));
        let foot = matches!(event, RawEvent::ElementFoot(..));
        self.tree
            .process_event(event)
            .map_err(|e| FramingError::NotWellFormed(e.to_string()))?;
        if head_close && self.tree.depth() == 1 && !self.opened {
            self.opened = true;
            let root = self
                .tree
                .top()
                .ok_or(FramingError::InvalidFraming("no root"))?;
            if !root.is("stream", NS_STREAM) {
                return Err(FramingError::InvalidFraming("expected <stream:stream>"));
            }
            out.push(StreamEvent::Open {
                to: root.attr("to").map(str::to_string),
            });
        } else if foot && self.tree.depth() == 1 {
            self.stanza_bytes = 0;
            if let Some(child) = self.tree.unshift_child() {
                out.push(StreamEvent::Element(child));
            }
        }
        Ok(false)
    }
}

/// Parses one RFC 7395 WebSocket frame.
pub fn parse_ws_frame(frame: &str, max_stanza: usize) -> Result<StreamEvent, FramingError> {
    if frame.len() > max_stanza {
        return Err(FramingError::TooLarge { limit: max_stanza });
    }
    // Unqualified elements in a frame belong to jabber:client, as on a TCP stream.
    let element = Element::from_reader_with_prefixes(frame.as_bytes(), Some(NS_CLIENT.to_string()))
        .map_err(|e| FramingError::NotWellFormed(e.to_string()))?;
    if element.is("open", NS_FRAMING) {
        return Ok(StreamEvent::Open {
            to: element.attr("to").map(str::to_string),
        });
    }
    if element.is("close", NS_FRAMING) {
        return Ok(StreamEvent::Close);
    }
    Ok(StreamEvent::Element(element))
}

/// Serialises an element (no XML declaration).
pub fn to_xml(element: &Element) -> String {
    let mut out = Vec::with_capacity(256);
    // Writing into a Vec cannot fail for an element we built.
    let _ = element.write_to(&mut out);
    String::from_utf8(out).unwrap_or_default()
}

thread_local! {
    /// Serialisation scratch: stanzas are written here, then copied once into their shared
    /// `Outbound` (no growing `Vec`, no second copy from a `String`).
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(4096));
}

/// Serialises an element straight into the bytes its recipients' queues share.
pub fn to_outbound(element: &Element) -> Outbound {
    SCRATCH.with_borrow_mut(|buf| {
        buf.clear();
        // Writing into a Vec cannot fail; minidom writes UTF-8.
        let _ = element.write_to(buf);
        Outbound::from(std::str::from_utf8(buf).unwrap_or_default())
    })
}

/// A stanza for many recipients that differ only in `to` (a room's occupants): serialised
/// once, with each recipient's `to` spliced into the start tag.
pub struct Addressed {
    xml: String,
    /// Where the attributes of the start tag begin (after `<name`).
    at: usize,
}

impl Addressed {
    /// `element` must carry no `to` (it is removed here); `None` when its serialisation does
    /// not start with a plain `<name ` (then build each copy with [`to_outbound`]).
    pub fn new(element: &mut Element) -> Option<Self> {
        element.attrs_mut().remove(&rxml::Namespace::NONE, "to");
        let xml = to_xml(element);
        let at = 1 + element.name().len();
        let plain = xml.as_bytes().first() == Some(&b'<')
            && xml.get(1..at) == Some(element.name())
            && xml.as_bytes().get(at) == Some(&b' ');
        plain.then_some(Self { xml, at })
    }

    /// The stanza addressed to `to`.
    pub fn to(&self, to: &str) -> Outbound {
        SCRATCH.with_borrow_mut(|buf| {
            buf.clear();
            buf.extend_from_slice(&self.xml.as_bytes()[..self.at]);
            buf.extend_from_slice(b" to='");
            escape_attr(to, buf);
            buf.push(b'\'');
            buf.extend_from_slice(&self.xml.as_bytes()[self.at..]);
            Outbound::from(std::str::from_utf8(buf).unwrap_or_default())
        })
    }
}

/// An attribute value between single quotes.
fn escape_attr(value: &str, out: &mut Vec<u8>) {
    for b in value.bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'\'' => out.extend_from_slice(b"&apos;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

    fn feed_all(framer: &mut TcpFramer, chunks: &[&str]) -> Result<Vec<StreamEvent>, FramingError> {
        let mut out = Vec::new();
        for chunk in chunks {
            framer.feed(chunk.as_bytes(), &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn tcp_stream_yields_open_elements_and_close_across_chunk_boundaries() {
        let mut framer = TcpFramer::new(10_000);
        let doc = format!("{OPEN} <message to='a@b'><body>hi</body></message>\n<iq type='get' id='1'/></stream:stream>");
        let chunks: Vec<String> = doc
            .as_bytes()
            .chunks(7)
            .map(|c| String::from_utf8_lossy(c).to_string())
            .collect();
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let events = feed_all(&mut framer, &refs).unwrap();
        assert_eq!(
            events[0],
            StreamEvent::Open {
                to: Some("localhost".into())
            }
        );
        let StreamEvent::Element(message) = &events[1] else {
            panic!("{events:?}")
        };
        assert!(message.is("message", NS_CLIENT));
        assert_eq!(message.get_child("body", NS_CLIENT).unwrap().text(), "hi");
        assert!(matches!(&events[2], StreamEvent::Element(e) if e.name() == "iq"));
        assert_eq!(events[3], StreamEvent::Close);
    }

    #[test]
    fn entity_declarations_and_unbalanced_xml_are_errors() {
        let mut framer = TcpFramer::new(10_000);
        let bomb = "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>]><stream:stream/>";
        assert!(feed_all(&mut framer, &[bomb]).is_err());
        let mut framer = TcpFramer::new(10_000);
        assert!(feed_all(&mut framer, &[OPEN, "<message></iq>"]).is_err());
        assert!(parse_ws_frame("<message><body></message>", 10_000).is_err());
        assert!(parse_ws_frame("<a>&lol;</a>", 10_000).is_err());
    }

    #[test]
    fn oversized_stanzas_are_refused() {
        let mut framer = TcpFramer::new(100);
        let big = format!("<message><body>{}</body></message>", "x".repeat(500));
        let result = feed_all(&mut framer, &[OPEN, &big]);
        assert_eq!(result, Err(FramingError::TooLarge { limit: 100 }));
        assert!(matches!(
            parse_ws_frame(&big, 100),
            Err(FramingError::TooLarge { .. })
        ));
    }

    #[test]
    fn one_serialisation_is_addressed_to_each_recipient() {
        let StreamEvent::Element(message) = parse_ws_frame(
            "<message to='room@muc.x' type='groupchat' id='1'><body>a &amp; b</body></message>",
            1000,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            &*to_outbound(&message),
            "<message xmlns='jabber:client' id='1' to='room@muc.x' type='groupchat'><body>a &amp; b</body></message>"
        );
        let mut message = message;
        let once = Addressed::new(&mut message).expect("plain start tag");
        assert_eq!(message.attr("to"), None);
        let to = |jid: &str| -> Element { once.to(jid).parse().unwrap() };
        let alice = to("1-2@x/phone");
        assert_eq!(alice.attr("to"), Some("1-2@x/phone"));
        assert_eq!(alice.attr("type"), Some("groupchat"));
        assert_eq!(alice.get_child("body", NS_CLIENT).unwrap().text(), "a & b");
        // A resource is the client's choice: quotes and markup stay inside the value.
        assert_eq!(to("1-2@x/a'b<c").attr("to"), Some("1-2@x/a'b<c"));
    }

    #[test]
    fn websocket_frames_are_single_elements_in_jabber_client() {
        let open = parse_ws_frame(
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>",
            1000,
        );
        assert_eq!(
            open.unwrap(),
            StreamEvent::Open {
                to: Some("localhost".into())
            }
        );
        let close = parse_ws_frame("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>", 1000);
        assert_eq!(close.unwrap(), StreamEvent::Close);
        let StreamEvent::Element(message) =
            parse_ws_frame("<message to='x'><body>b</body></message>", 1000).unwrap()
        else {
            panic!()
        };
        assert!(message.is("message", NS_CLIENT));
        assert_eq!(
            to_xml(&message),
            "<message xmlns='jabber:client' to='x'><body>b</body></message>"
        );
    }
}
