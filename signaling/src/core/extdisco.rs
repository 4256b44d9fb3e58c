//! XEP-0215 external service discovery (`urn:xmpp:extdisco:2`): the STUN/TURN servers a
//! client should use, with fresh TURN REST API credentials — the same list and the same
//! minting as `GET /calls/ice_servers.json`.
//!
//! `<services/>` (optionally `type='turn'` and so on) lists every service;
//! `<credentials><service host=… type=…/></credentials>` answers credentials for the named
//! ones. Without a configured relay the list is empty, as the XEP allows.

use control_api::domain::ice::IceServers;
use minidom::Element;

use super::session::Session;
use super::stanza::{self, name};

pub const NS_EXTDISCO: &str = "urn:xmpp:extdisco:2";

/// One `<service/>`, parsed from an ICE URL such as `turn:127.0.0.1:3478?transport=udp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub kind: String,
    pub host: String,
    pub port: u16,
    pub transport: String,
    /// TURN only: the REST API username and password.
    pub credentials: Option<(String, String)>,
}

/// Parses `stun:`, `turn:` and `turns:` URLs (RFC 7064/7065); anything else is skipped.
pub fn parse_url(url: &str) -> Option<Service> {
    let (scheme, rest) = url.split_once(':')?;
    if !matches!(scheme, "stun" | "stuns" | "turn" | "turns") {
        return None;
    }
    let (hostport, query) = rest.split_once('?').unwrap_or((rest, ""));
    let transport = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("transport="))
        .map(str::to_string)
        .unwrap_or_else(|| if scheme.ends_with('s') { "tcp" } else { "udp" }.into());
    let (host, port) = match hostport.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse().ok()?),
        _ => (hostport, if scheme.ends_with('s') { 5349 } else { 3478 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some(Service {
        kind: scheme.to_string(),
        host: host.to_string(),
        port,
        transport,
        credentials: None,
    })
}

/// Every service of `servers`, TURN entries with their credentials.
pub fn services(servers: &IceServers) -> Vec<Service> {
    let stun = servers.stun_urls.iter().filter_map(|u| parse_url(u));
    let turn = servers.turn_urls.iter().filter_map(|u| {
        parse_url(u).map(|mut s| {
            s.credentials = Some((servers.username.clone(), servers.credential.clone()));
            s
        })
    });
    stun.chain(turn).collect()
}

fn service_element(service: &Service, expires: &str) -> Element {
    let mut builder = Element::builder("service", NS_EXTDISCO)
        .attr(name("type"), service.kind.clone())
        .attr(name("host"), service.host.clone())
        .attr(name("port"), service.port.to_string())
        .attr(name("transport"), service.transport.clone());
    if let Some((username, password)) = &service.credentials {
        builder = builder
            .attr(name("username"), username.clone())
            .attr(name("password"), password.clone())
            .attr(name("expires"), expires.to_string())
            .attr(name("restricted"), "1");
    }
    builder.build()
}

/// The answer to an extdisco `get` addressed to the server.
pub(crate) fn reply(session: &Session, iq: &Element, payload: &Element) -> Element {
    let from = Some(session.ctx.domain.as_str());
    if iq.attr("type") != Some("get") {
        return stanza::stanza_error(iq, from, "cancel", "bad-request", "use type='get'");
    }
    let servers = session.ctx.control.ice_servers(session.me().user).ok();
    let expires = servers
        .as_ref()
        .and_then(|s| {
            s.expires_at
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let all = servers.as_ref().map(services).unwrap_or_default();
    let wanted: Vec<(Option<&str>, Option<&str>)> = if payload.name() == "credentials" {
        payload
            .children()
            .filter(|c| c.name() == "service")
            .map(|c| (c.attr("type"), c.attr("host")))
            .collect()
    } else {
        vec![(payload.attr("type"), None)]
    };
    let matches = |s: &Service| {
        wanted.iter().any(|(kind, host)| {
            kind.is_none_or(|k| k == s.kind) && host.is_none_or(|h| h == s.host)
        })
    };
    let mut answer = Element::builder(payload.name(), NS_EXTDISCO);
    if let Some(kind) = payload.attr("type") {
        answer = answer.attr(name("type"), kind.to_string());
    }
    for service in all.iter().filter(|s| matches(s)) {
        answer = answer.append(service_element(service, &expires));
    }
    stanza::iq_result(iq, from, None, Some(answer.build()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_urls_become_services() {
        let turn = parse_url("turn:127.0.0.1:3478?transport=tcp").unwrap();
        assert_eq!(
            (
                turn.kind.as_str(),
                turn.host.as_str(),
                turn.port,
                turn.transport.as_str()
            ),
            ("turn", "127.0.0.1", 3478, "tcp")
        );
        let turns = parse_url("turns:[::1]:5349?transport=tcp").unwrap();
        assert_eq!((turns.host.as_str(), turns.port), ("::1", 5349));
        let stun = parse_url("stun:example.org").unwrap();
        assert_eq!((stun.port, stun.transport.as_str()), (3478, "udp"));
        assert!(parse_url("https://example.org").is_none());
        assert!(parse_url("turn:127.0.0.1:x").is_none());
    }
}
