//! Presence between the occupants of private dialogs. QuickBlox keeps no roster for chat:
//! a private dialog is the contact relation, so a resource's available and unavailable
//! presence goes to the online resources of its private-dialog peers, and a resource coming
//! online learns which of those peers are online. Group dialogs have room presence instead
//! (see `muc`).

use control_api::domain::chat::query::{ChatSort, DialogField};
use control_api::domain::chat::DialogQuery;
use control_api::domain::model::UserId;
use minidom::Element;

use super::address::UserAddr;
use super::framing::{to_xml, NS_CLIENT};
use super::router::Outbound;
use super::session::Session;
use super::stanza::name;

/// Peers taken from the most recently active private dialogs; presence to every contact
/// of a user with thousands of dialogs would cost every login that many stanzas.
const MAX_PEERS: &str = "100";

/// The peers of the session's user: the other occupants of their private dialogs.
pub(crate) async fn peers(session: &Session) -> Vec<UserId> {
    let me = session.me();
    let params = [
        ("type".to_string(), "3".to_string()),
        ("limit".to_string(), MAX_PEERS.to_string()),
    ];
    let sort = ChatSort {
        field: DialogField::LastMessageDateSent,
        descending: true,
    };
    let page = match DialogQuery::parse(&params, sort) {
        Ok(query) => {
            session
                .ctx
                .control
                .list_dialogs(me.app, me.user, &query)
                .await
        }
        Err(e) => Err(e),
    };
    match page {
        Ok(page) => {
            let mut peers: Vec<UserId> = page
                .dialogs
                .iter()
                .flat_map(|d| d.occupants.iter().copied())
                .filter(|u| *u != me.user)
                .collect();
            peers.sort();
            peers.dedup();
            peers
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading private-dialog peers for presence failed");
            Vec::new()
        }
    }
}

/// Sends the client's presence (initial or an update of its status) to its peers' online
/// resources; returns the peers that were online.
pub(crate) fn broadcast(session: &Session, own: &Element, peers: &[UserId]) -> Vec<UserAddr> {
    let me = session.me();
    let domain = &session.ctx.domain;
    let mut copy = own.clone();
    copy.set_attr(rxml::Namespace::NONE, name("from"), session.full_jid());
    let mut online = Vec::new();
    for &user in peers {
        let peer = UserAddr { app: me.app, user };
        copy.set_attr(rxml::Namespace::NONE, name("to"), peer.bare(domain));
        let xml: Outbound = to_xml(&copy).into();
        if session.ctx.router.send_to_user(peer, None, &xml) > 0 {
            online.push(peer);
        }
    }
    online
}

/// The initial presence: broadcast, then each online peer's presence back to the client.
pub(crate) fn announce(session: &Session, own: &Element, peers: &[UserId]) {
    let domain = &session.ctx.domain;
    let to = session.full_jid();
    for peer in broadcast(session, own, peers) {
        // Connection id 0 is never assigned: every resource of the peer.
        for resource in session.ctx.router.other_resources(peer, 0) {
            let presence = Element::builder("presence", NS_CLIENT)
                .attr(name("from"), peer.full(domain, &resource.name))
                .attr(name("to"), to.clone())
                .build();
            session.send(&presence);
        }
    }
}

/// Tells the peers' online resources that this resource went away.
pub(crate) fn withdraw(session: &Session, peers: &[UserId]) {
    let me = session.me();
    let domain = &session.ctx.domain;
    let from = session.full_jid();
    for &user in peers {
        let peer = UserAddr { app: me.app, user };
        let presence = Element::builder("presence", NS_CLIENT)
            .attr(name("type"), "unavailable")
            .attr(name("from"), from.clone())
            .attr(name("to"), peer.bare(domain))
            .build();
        session
            .ctx
            .router
            .send_to_user(peer, None, &to_xml(&presence).into());
    }
}
