//! Reading QuickBlox WebRTC signals: `type="headline"` messages whose `<extraParams/>` say
//! `moduleIdentifier` `WebRTCVideoChat` (PROTOCOLS.md §7). Only the fields the server
//! needs are read; the SDP and candidates pass through untouched.

use control_api::domain::calls::CallType;
use control_api::domain::model::UserId;
use minidom::Element;

use crate::core::framing::NS_CLIENT;

/// The SDK's module name for 1:1 and mesh call signals.
pub const MODULE_WEBRTC: &str = "WebRTCVideoChat";

/// Longest `sessionID` kept (the SDK's are 36-character UUIDs; arbitrary headroom).
const MAX_SESSION_ID: usize = 64;

/// Opponent ids read from one signal; more than this is refused long before the mesh
/// limit matters (arbitrary, far above any mesh).
const MAX_LISTED_OPPONENTS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignalType {
    Call,
    Accept,
    Reject,
    HangUp,
    IceCandidates,
    Update,
    /// A signal type this server does not know: routed, not tracked.
    Other,
}

impl SignalType {
    fn parse(s: &str) -> Self {
        match s {
            "call" => SignalType::Call,
            "accept" => SignalType::Accept,
            "reject" => SignalType::Reject,
            "hangUp" => SignalType::HangUp,
            "iceCandidates" => SignalType::IceCandidates,
            "update" => SignalType::Update,
            _ => SignalType::Other,
        }
    }

    /// The metric label: the SDK's own spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalType::Call => "call",
            SignalType::Accept => "accept",
            SignalType::Reject => "reject",
            SignalType::HangUp => "hangUp",
            SignalType::IceCandidates => "iceCandidates",
            SignalType::Update => "update",
            SignalType::Other => "other",
        }
    }
}

/// What the server reads from one call signal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signal {
    pub kind: SignalType,
    pub session_id: String,
    pub call_type: CallType,
    /// The call's initiator (`callerID`), not necessarily the sender: in a mesh call the
    /// opponents also `call` each other under the initiator's session.
    pub caller: UserId,
    /// `opponentsIDs`, without duplicates and without the caller.
    pub opponents: Vec<UserId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A headline that is no call signal (system notifications and the like).
    NotACall,
    Signal(Signal),
    /// A call signal the server cannot track; `&str` says what is wrong.
    Malformed(&'static str),
}

fn text(params: &Element, name: &str) -> Option<String> {
    params
        .get_child(name, NS_CLIENT)
        .map(|c| c.text().trim().to_string())
}

pub fn parse(message: &Element) -> Parsed {
    let Some(params) = message.get_child("extraParams", NS_CLIENT) else {
        return Parsed::NotACall;
    };
    if text(params, "moduleIdentifier").as_deref() != Some(MODULE_WEBRTC) {
        return Parsed::NotACall;
    }
    let kind = SignalType::parse(text(params, "signalType").as_deref().unwrap_or_default());
    let Some(session_id) = text(params, "sessionID").filter(|s| !s.is_empty()) else {
        return Parsed::Malformed("a call signal needs a sessionID");
    };
    if session_id.len() > MAX_SESSION_ID {
        return Parsed::Malformed("sessionID is too long");
    }
    let call_type = match text(params, "callType").as_deref() {
        Some("2") => CallType::Audio,
        // The SDK always sends it; video is its default.
        _ => CallType::Video,
    };
    let Some(caller) = text(params, "callerID").and_then(|c| c.parse().ok()) else {
        return Parsed::Malformed("a call signal needs a numeric callerID");
    };
    let caller = UserId(caller);
    let mut opponents = Vec::new();
    if let Some(list) = params.get_child("opponentsIDs", NS_CLIENT) {
        for id in list.children().filter(|c| c.name() == "opponentID") {
            if opponents.len() == MAX_LISTED_OPPONENTS {
                return Parsed::Malformed("too many opponentsIDs");
            }
            let Ok(id) = id.text().trim().parse() else {
                return Parsed::Malformed("opponentID must be numeric");
            };
            let id = UserId(id);
            if id != caller && !opponents.contains(&id) {
                opponents.push(id);
            }
        }
    }
    Parsed::Signal(Signal {
        kind,
        session_id,
        call_type,
        caller,
        opponents,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(xml: &str) -> Element {
        match crate::core::framing::parse_ws_frame(xml, 1 << 16).unwrap() {
            crate::core::framing::StreamEvent::Element(e) => e,
            _ => panic!("not an element"),
        }
    }

    #[test]
    fn reads_the_sdk_call_shape() {
        let message = element(
            "<message id='6b05207e591e616f75000000' to='12-1@localhost' type='headline'>\
             <extraParams xmlns='jabber:client'><userInfo><bandwidth>0</bandwidth></userInfo>\
             <sessionID>66f30993-2f1b-44ec-a298-ba149ea484b9</sessionID><callType>2</callType>\
             <callerID>11</callerID><opponentsIDs><opponentID>12</opponentID><opponentID>12</opponentID>\
             <opponentID>13</opponentID></opponentsIDs><sdp>v=0</sdp>\
             <moduleIdentifier>WebRTCVideoChat</moduleIdentifier><signalType>call</signalType>\
             <platform>web</platform></extraParams></message>",
        );
        let Parsed::Signal(signal) = parse(&message) else {
            panic!("not parsed");
        };
        assert_eq!(signal.kind, SignalType::Call);
        assert_eq!(signal.call_type, CallType::Audio);
        assert_eq!(signal.caller, UserId(11));
        assert_eq!(signal.opponents, vec![UserId(12), UserId(13)]);
        assert_eq!(signal.session_id, "66f30993-2f1b-44ec-a298-ba149ea484b9");
    }

    #[test]
    fn other_headlines_and_broken_signals() {
        let notification = element(
            "<message type='headline'><extraParams xmlns='jabber:client'>\
             <moduleIdentifier>SystemNotifications</moduleIdentifier></extraParams></message>",
        );
        assert_eq!(parse(&notification), Parsed::NotACall);
        assert_eq!(
            parse(&element("<message type='headline'/>")),
            Parsed::NotACall
        );
        let no_session = element(
            "<message type='headline'><extraParams xmlns='jabber:client'><callerID>1</callerID>\
             <moduleIdentifier>WebRTCVideoChat</moduleIdentifier><signalType>call</signalType>\
             </extraParams></message>",
        );
        assert!(matches!(parse(&no_session), Parsed::Malformed(_)));
        let bad_opponent = element(
            "<message type='headline'><extraParams xmlns='jabber:client'><sessionID>s</sessionID>\
             <callerID>1</callerID><opponentsIDs><opponentID>x</opponentID></opponentsIDs>\
             <moduleIdentifier>WebRTCVideoChat</moduleIdentifier><signalType>hangUp</signalType>\
             </extraParams></message>",
        );
        assert!(matches!(parse(&bad_opponent), Parsed::Malformed(_)));
    }
}
