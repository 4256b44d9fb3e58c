//! Group and public dialogs as XEP-0045 rooms: join, leave, occupant presence, groupchat.

use control_api::domain::chat::query::{ChatSort, MessageField, MessageQuery};
use control_api::domain::chat::{DialogType, NewChatMessage};
use control_api::domain::model::UserId;
use control_api::domain::push::OfflineChatPush;
use minidom::Element;

use super::address::{RoomAddr, UserAddr};
use super::framing::{to_outbound, to_xml, Addressed, NS_CLIENT};
use super::messages::{extra_params, is_object_id, refuse};
use super::notifier::chat_stanza;
use super::router::Outbound;
use super::session::Session;
use super::stanza::{self, name};

fn occupant_presence(
    from: &str,
    to: &str,
    id: Option<&str>,
    unavailable: bool,
    self_presence: bool,
) -> Element {
    let mut x = Element::builder("x", stanza::NS_MUC_USER).append(
        Element::builder("item", stanza::NS_MUC_USER)
            .attr(name("affiliation"), "member")
            .attr(
                name("role"),
                if unavailable { "none" } else { "participant" },
            )
            .build(),
    );
    if self_presence {
        x = x.append(
            Element::builder("status", stanza::NS_MUC_USER)
                .attr(name("code"), "110")
                .build(),
        );
    }
    let mut presence = Element::builder("presence", NS_CLIENT)
        .attr(name("from"), from)
        .attr(name("to"), to);
    // Every presence carries an id: the QuickBlox Node SDK calls `id.endsWith(...)` on
    // any muc#user presence and throws on one without.
    let id = id.map_or_else(
        || control_api::domain::ids::session_token()[..12].to_string(),
        str::to_string,
    );
    presence = presence.attr(name("id"), id);
    if unavailable {
        presence = presence.attr(name("type"), "unavailable");
    }
    presence.append(x.build()).build()
}

fn join_error(session: &Session, request: &Element, room: &RoomAddr, condition: &str, text: &str) {
    let me = session.me();
    let from = room.occupant(&session.ctx.domain, me.user);
    let mut error = stanza::stanza_error(request, Some(&from), "auth", condition, text);
    error.append_child(Element::builder("x", stanza::NS_MUC).build());
    session.send(&error);
}

/// Joins the caller to a dialog's room if the dialog lets them in (occupants of group
/// dialogs; anyone of the app for public ones).
pub(crate) async fn join(session: &mut Session, request: &Element, room: RoomAddr) {
    let me = session.me();
    if room.app != me.app {
        return join_error(
            session,
            request,
            &room,
            "forbidden",
            "this room belongs to another application",
        );
    }
    let dialog = match session
        .ctx
        .control
        .dialog_for_user(me.app, me.user, &room.dialog)
        .await
    {
        Ok(dialog) => dialog,
        Err(_) => {
            return join_error(
                session,
                request,
                &room,
                "forbidden",
                "you are not an occupant of this dialog",
            )
        }
    };
    if dialog.kind == DialogType::Private {
        return join_error(
            session,
            request,
            &room,
            "not-allowed",
            "private dialogs have no room",
        );
    }
    let domain = session.ctx.domain.clone();
    let my_full = session.full_jid();
    let mine = room.occupant(&domain, me.user);
    let before = session
        .ctx
        .router
        .join_room(&room, me.user, session.resource_handle());
    for other in &before {
        let from = room.occupant(&domain, *other);
        session.send(&occupant_presence(&from, &my_full, None, false, false));
    }
    session
        .ctx
        .router
        .broadcast_room(&room, Some(me.user), |user, resource| {
            let to = crate::core::address::UserAddr { app: me.app, user }.full(&domain, resource);
            Outbound::from(to_xml(&occupant_presence(&mine, &to, None, false, false)))
        });
    session.send(&occupant_presence(
        &mine,
        &my_full,
        request.attr("id"),
        false,
        true,
    ));
    send_history(session, request, &room).await;
    if wants_subject(request) {
        let subject = Element::builder("message", NS_CLIENT)
            .attr(name("type"), "groupchat")
            .attr(name("from"), room.bare(&domain))
            .attr(name("to"), my_full.as_str())
            .append(stanza::text_child(
                "subject",
                NS_CLIENT,
                dialog.name.clone().unwrap_or_default(),
            ))
            .build();
        session.send(&subject);
    }
    session.rooms.insert(room);
}

/// Room history when none is asked for; QuickBlox clients ask for none and read REST.
const DEFAULT_HISTORY: i64 = 20;
/// The most a join may ask for; more is paged over REST.
const MAX_HISTORY: i64 = 100;

/// XEP-0045 §7.2.14: the last messages, oldest first, each with `<delay/>` from the room.
async fn send_history(session: &Session, request: &Element, room: &RoomAddr) {
    let asked = request
        .get_child("x", stanza::NS_MUC)
        .and_then(|x| x.get_child("history", stanza::NS_MUC))
        .and_then(|h| h.attr("maxstanzas"))
        .and_then(|n| n.parse::<i64>().ok());
    let limit = asked.unwrap_or(DEFAULT_HISTORY).clamp(0, MAX_HISTORY);
    if limit == 0 {
        return;
    }
    let me = session.me();
    let query = MessageQuery {
        filters: Vec::new(),
        sort: ChatSort {
            field: MessageField::DateSent,
            descending: true,
        },
        skip: 0,
        limit,
    };
    let messages = match session
        .ctx
        .control
        .list_messages(me.app, me.user, &room.dialog, &query, false)
        .await
    {
        Ok(messages) => messages,
        Err(e) => return tracing::debug!(error = %e, "room history unavailable"),
    };
    let domain = &session.ctx.domain;
    for message in messages.iter().rev() {
        let from = room.occupant(domain, message.sender_id);
        let mut element = chat_stanza(message, "groupchat", &from);
        element.set_attr(rxml::Namespace::NONE, name("to"), session.full_jid());
        let stamp = time::OffsetDateTime::from_unix_timestamp(message.date_sent)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        element.append_child(
            Element::builder("delay", stanza::NS_DELAY)
                .attr(name("from"), room.bare(domain))
                .attr(name("stamp"), stamp)
                .build(),
        );
        session.send(&element);
    }
}

/// XEP-0045 §7.2.15 ends a join with the room subject, and standard clients wait for it.
/// QuickBlox SDKs hand every groupchat message to the app's message listener, where a
/// subject would show up as an empty message; they join asking for no history
/// (`maxstanzas='0'`), and get no subject either.
fn wants_subject(request: &Element) -> bool {
    let history = request
        .get_child("x", stanza::NS_MUC)
        .and_then(|x| x.get_child("history", stanza::NS_MUC));
    history.and_then(|h| h.attr("maxstanzas")) != Some("0")
}

pub(crate) fn leave(session: &mut Session, room: &RoomAddr) {
    if !session.rooms.remove(room) {
        return;
    }
    let me = session.me();
    let domain = session.ctx.domain.clone();
    let mine = room.occupant(&domain, me.user);
    let gone = session.ctx.router.leave_room(room, me.user, session.conn);
    session.send(&occupant_presence(
        &mine,
        &session.full_jid(),
        None,
        true,
        true,
    ));
    if gone {
        session
            .ctx
            .router
            .broadcast_room(room, Some(me.user), |user, resource| {
                let to =
                    crate::core::address::UserAddr { app: me.app, user }.full(&domain, resource);
                Outbound::from(to_xml(&occupant_presence(&mine, &to, None, true, false)))
            });
    }
}

/// `disco#items` on a room lists who is in it.
pub(crate) fn on_room_iq(session: &Session, iq: &Element, room: &RoomAddr) {
    if iq.get_child("query", stanza::NS_DISCO_ITEMS).is_none() || room.app != session.me().app {
        session.send(&stanza::stanza_error(
            iq,
            None,
            "cancel",
            "feature-not-implemented",
            "not supported on rooms",
        ));
        return;
    }
    let domain = &session.ctx.domain;
    let mut query = Element::builder("query", stanza::NS_DISCO_ITEMS);
    for user in session.ctx.router.room_occupants(room) {
        query = query.append(
            Element::builder("item", stanza::NS_DISCO_ITEMS)
                .attr(name("jid"), room.occupant(domain, user))
                .build(),
        );
    }
    let from = room.bare(domain);
    session.send(&stanza::iq_result(
        iq,
        Some(&from),
        Some(&session.full_jid()),
        Some(query.build()),
    ));
}

/// A message to a room: stored (when asked) and reflected to every joined occupant,
/// the sender included, from `room/{sender}`.
pub(crate) async fn on_groupchat(
    session: &mut Session,
    mut message: Element,
    kind: &str,
    room: RoomAddr,
) {
    let me = session.me();
    if room.app != me.app || !session.ctx.router.is_in_room(&room, me.user) {
        session.send(&stanza::stanza_error(
            &message,
            None,
            "cancel",
            "not-acceptable",
            "join the room first",
        ));
        return;
    }
    let body = message.get_child("body", NS_CLIENT).map(Element::text);
    let is_chat = kind == "groupchat";
    let mut offline_push = None;
    if let (Some(body), true) = (body, is_chat) {
        let extra = extra_params(&message);
        let new = NewChatMessage {
            id: message
                .attr("id")
                .filter(|id| is_object_id(id))
                .map(str::to_string),
            dialog_id: Some(room.dialog.clone()),
            recipient_id: None,
            body,
            attachments: extra.attachments,
            custom: extra.custom,
            markable: message.get_child("markable", stanza::NS_MARKERS).is_some(),
            save_to_history: extra.save_to_history,
            date_sent: None,
        };
        match session
            .ctx
            .control
            .post_chat_message(me.app, me.user, new)
            .await
        {
            Ok((posted, dialog)) => {
                super::messages::stamp_public(&mut message, &posted.dialog_id, posted.date_sent);
                if message.attr("id").is_none() {
                    message.set_attr(rxml::Namespace::NONE, name("id"), posted.id.clone());
                }
                // Occupants with no resource online at all get a push; those online but
                // outside the room read it from history, as QuickBlox clients do.
                let router = &session.ctx.router;
                let recipients: Vec<UserId> = dialog
                    .occupants
                    .iter()
                    .copied()
                    .filter(|u| *u != me.user)
                    .filter(|u| {
                        !router.is_online(UserAddr {
                            app: me.app,
                            user: *u,
                        })
                    })
                    .collect();
                // Built only when somebody is offline: no copies on the common path.
                if !recipients.is_empty() {
                    offline_push = Some(OfflineChatPush {
                        app: me.app,
                        dialog_id: posted.dialog_id,
                        message_id: posted.id,
                        sender: me.user,
                        recipients,
                        text: posted.body,
                    });
                }
            }
            Err(e) => return refuse(session, &message, &e),
        }
    }
    let domain = session.ctx.domain.clone();
    message.set_attr(
        rxml::Namespace::NONE,
        name("from"),
        room.occupant(&domain, me.user),
    );
    // Typing notifications go to the others only; chat messages come back to the sender too.
    let except: Option<UserId> = if is_chat && message.get_child("body", NS_CLIENT).is_some() {
        None
    } else {
        Some(me.user)
    };
    // Serialised once; each occupant's copy differs only in `to`.
    let once = Addressed::new(&mut message);
    let sent = session
        .ctx
        .router
        .broadcast_room(&room, except, |user, resource| {
            let to = crate::core::address::UserAddr { app: me.app, user }.full(&domain, resource);
            match &once {
                Some(once) => once.to(&to),
                None => {
                    let mut copy = message.clone();
                    copy.set_attr(rxml::Namespace::NONE, name("to"), to);
                    to_outbound(&copy)
                }
            }
        });
    session.ctx.metrics.routed(sent > 0);
    if let Some(push) = offline_push {
        super::messages::push_offline(session, push);
    }
}
