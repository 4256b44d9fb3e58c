//! `<message/>`: 1:1 chat with history and offline delivery, receipts and markers,
//! typing, and headline signals (routed live only, never stored).

use control_api::domain::chat::{Attachment, NewChatMessage};
use control_api::domain::push::OfflineChatPush;
use control_api::DomainError;
use minidom::Element;
use serde_json::{Map, Value};

use super::address::{resolve, Target, UserAddr};
use super::calls::{self, Gate};
use super::context::XmppContext;
use super::framing::{to_outbound, to_xml, NS_CLIENT};
use super::muc;
use super::router::Outbound;
use super::session::Session;
use super::stanza::{self, name};

/// What a QuickBlox `<extraParams/>` carries.
#[derive(Debug, Default)]
pub(crate) struct ExtraParams {
    pub dialog_id: Option<String>,
    pub save_to_history: bool,
    pub attachments: Vec<Attachment>,
    pub custom: Map<String, Value>,
}

pub(crate) fn extra_params(message: &Element) -> ExtraParams {
    let mut extra = ExtraParams::default();
    let Some(params) = message.get_child("extraParams", NS_CLIENT) else {
        return extra;
    };
    for child in params.children() {
        match child.name() {
            "dialog_id" => {
                extra.dialog_id = Some(child.text().trim().to_string()).filter(|d| !d.is_empty())
            }
            "save_to_history" => {
                extra.save_to_history = matches!(child.text().trim(), "1" | "true")
            }
            "attachment" => {
                let fields = child
                    .attrs()
                    .iter()
                    .map(|((_, key), value)| (key.to_string(), Value::String(value.to_string())))
                    .collect();
                extra.attachments.push(Attachment { fields });
            }
            "date_sent" | "message_id" => {}
            key => {
                extra.custom.insert(key.to_string(), element_value(child));
            }
        }
    }
    extra
}

/// Nested elements become objects; leaves become strings, as the SDK reads them back.
fn element_value(element: &Element) -> Value {
    if element.children().next().is_none() {
        return Value::String(element.text());
    }
    Value::Object(
        element
            .children()
            .map(|c| (c.name().to_string(), element_value(c)))
            .collect(),
    )
}

/// Adds `dialog_id` and `date_sent` to `<extraParams/>` where the sender left them out.
pub(crate) fn stamp_public(message: &mut Element, dialog_id: &str, date_sent: i64) {
    if message.get_child("extraParams", NS_CLIENT).is_none() {
        message.append_child(Element::builder("extraParams", NS_CLIENT).build());
    }
    // Present: just ensured above.
    let params = message
        .get_child_mut("extraParams", NS_CLIENT)
        .expect("extraParams");
    if params.get_child("dialog_id", NS_CLIENT).is_none() {
        params.append_child(stanza::text_child("dialog_id", NS_CLIENT, dialog_id));
    }
    if params.get_child("date_sent", NS_CLIENT).is_none() {
        params.append_child(stanza::text_child(
            "date_sent",
            NS_CLIENT,
            date_sent.to_string(),
        ));
    }
}

pub(crate) async fn on_message(session: &mut Session, message: Element) {
    let kind = message.attr("type").unwrap_or("normal").to_string();
    if kind == "error" {
        return;
    }
    let started = std::time::Instant::now();
    route(session, message, &kind).await;
    session
        .ctx
        .metrics
        .routing_duration
        .observe(started.elapsed().as_secs_f64());
}

async fn route(session: &mut Session, message: Element, kind: &str) {
    let kind = kind.to_string();
    match resolve(message.attr("to"), &session.ctx.domain) {
        Target::User { addr, resource } => to_user(session, message, &kind, addr, resource).await,
        Target::Room { room, .. } => muc::on_groupchat(session, message, &kind, room).await,
        Target::Server => {}
        Target::Unknown => session.send(&stanza::stanza_error(
            &message,
            None,
            "cancel",
            "remote-server-not-found",
            "this server only serves its own domain",
        )),
    }
}

async fn to_user(
    session: &mut Session,
    mut message: Element,
    kind: &str,
    to: UserAddr,
    resource: Option<String>,
) {
    let me = session.me();
    if to.app != me.app {
        session.send(&stanza::stanza_error(
            &message,
            None,
            "cancel",
            "service-unavailable",
            "no such user",
        ));
        return;
    }
    message.set_attr(rxml::Namespace::NONE, name("from"), session.full_jid());
    let call = match kind {
        "headline" => match calls::on_signal(session, &message).await {
            Gate::Route(call) => call,
            Gate::Refused => return,
        },
        _ => None,
    };
    let extra = extra_params(&message);
    apply_markers(session, &message, extra.dialog_id.as_deref()).await;

    let body = message.get_child("body", NS_CLIENT).map(Element::text);
    let stored = match (&body, kind) {
        (Some(body), "chat" | "normal") => {
            let new = NewChatMessage {
                id: message
                    .attr("id")
                    .filter(|id| is_object_id(id))
                    .map(str::to_string),
                dialog_id: extra.dialog_id.clone(),
                recipient_id: Some(to.user),
                body: body.clone(),
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
                Ok((posted, _dialog)) => {
                    stamp_public(&mut message, &posted.dialog_id, posted.date_sent);
                    if message.attr("id").is_none() {
                        message.set_attr(rxml::Namespace::NONE, name("id"), posted.id.clone());
                    }
                    Some((posted.dialog_id, posted.id))
                }
                Err(e) => {
                    refuse(session, &message, &e);
                    return;
                }
            }
        }
        _ => None,
    };
    if stored.is_some() {
        send_carbons(session, &message);
    }
    let xml = to_outbound(&message);
    let delivered = session
        .ctx
        .router
        .send_to_user(to, resource.as_deref(), &xml);
    session.ctx.metrics.routed(delivered > 0);
    if let Some(signal) = call {
        calls::after_route(session, &message, to, &signal, delivered).await;
        return;
    }
    if delivered > 0 {
        return;
    }
    if let Some((dialog_id, message_id)) = stored {
        push_offline(
            session,
            OfflineChatPush {
                app: me.app,
                dialog_id,
                message_id,
                sender: me.user,
                recipients: vec![to.user],
                text: body.unwrap_or_default(),
            },
        );
        queue_offline(session, to, message).await;
    } else if kind == "headline"
        && !session
            .ctx
            .control
            .chat_user_exists(to.app, to.user)
            .await
            .unwrap_or(false)
    {
        session.send(&stanza::stanza_error(
            &message,
            None,
            "cancel",
            "item-not-found",
            "no such user",
        ));
    }
}

/// XEP-0280: copies of a sent chat message to the sender's other resources that asked.
/// (Received messages already reach every resource, so no `<received/>` carbons exist.)
fn send_carbons(session: &Session, message: &Element) {
    let me = session.me();
    let domain = &session.ctx.domain;
    for resource in session.ctx.router.carbon_resources(me, session.conn) {
        let forwarded = Element::builder("forwarded", stanza::NS_FORWARD).append(message.clone());
        let sent = Element::builder("sent", stanza::NS_CARBONS).append(forwarded.build());
        let carbon = Element::builder("message", NS_CLIENT)
            .attr(name("type"), "chat")
            .attr(name("from"), me.bare(domain))
            .attr(name("to"), me.full(domain, &resource.name))
            .append(sent.build())
            .build();
        session
            .ctx
            .router
            .offer(&resource.tx, &Outbound::from(to_xml(&carbon)));
    }
}

/// XEP-0333 markers and XEP-0184 receipts update delivered/read state before routing.
async fn apply_markers(session: &Session, message: &Element, dialog_id: Option<&str>) {
    let Some(dialog_id) = dialog_id else {
        return;
    };
    let me = session.me();
    let control = &session.ctx.control;
    for child in message.children() {
        let Some(id) = child.attr("id").map(str::to_string) else {
            continue;
        };
        let result = match (child.name(), child.ns().as_str()) {
            ("received", stanza::NS_MARKERS) | ("received", stanza::NS_RECEIPTS) => {
                control
                    .mark_delivered(me.app, me.user, dialog_id, &[id])
                    .await
            }
            ("displayed", stanza::NS_MARKERS) => {
                control.mark_read(me.app, me.user, dialog_id, &[id]).await
            }
            _ => continue,
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "marker not applied");
        }
    }
}

/// XEP-0203: when the server first stored the stanza.
pub(crate) fn add_delay(ctx: &XmppContext, message: &mut Element) {
    let stamp = ctx
        .control
        .now()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    message.append_child(
        Element::builder("delay", stanza::NS_DELAY)
            .attr(name("from"), ctx.domain.clone())
            .attr(name("stamp"), stamp)
            .build(),
    );
}

/// A push to the devices of recipients with no online resource, from a task of its own so
/// routing never waits on a provider.
pub(crate) fn push_offline(session: &Session, push: OfflineChatPush) {
    if push.recipients.is_empty() {
        return;
    }
    let control = session.ctx.control.clone();
    tokio::spawn(async move {
        if let Err(e) = control.push_offline_message(push).await {
            tracing::warn!(error = %e, "offline-message push failed");
        }
    });
}

async fn queue_offline(session: &Session, to: UserAddr, mut message: Element) {
    add_delay(&session.ctx, &mut message);
    match session
        .ctx
        .control
        .queue_offline(to.app, to.user, to_xml(&message))
        .await
    {
        Ok(()) => {
            session.ctx.metrics.offline_queued.inc();
        }
        Err(e) => tracing::warn!(error = %e, "storing an offline message failed"),
    }
}

/// Delivers what was stored while the user was offline, oldest first.
pub(crate) async fn deliver_offline(session: &Session) {
    let me = session.me();
    match session.ctx.control.take_offline(me.app, me.user).await {
        Ok(stored) => {
            for (xml, _) in stored {
                session.send_raw(xml);
            }
        }
        Err(e) => tracing::warn!(error = %e, "reading offline messages failed"),
    }
}

/// The stanza error for a refused message, mapped from the domain's reason.
pub(crate) fn refuse(session: &Session, message: &Element, error: &DomainError) {
    let (kind, condition, text) = match error {
        DomainError::NotFound => (
            "cancel",
            "item-not-found",
            "no such dialog or user".to_string(),
        ),
        DomainError::Forbidden(why) => ("auth", "forbidden", why.to_string()),
        DomainError::Validation(fields) => (
            "modify",
            "not-acceptable",
            fields
                .iter()
                .map(|(f, m)| format!("{f} {m}"))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => (
            "wait",
            "internal-server-error",
            "try again later".to_string(),
        ),
    };
    session.send(&stanza::stanza_error(message, None, kind, condition, &text));
}

pub(crate) fn is_object_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit())
}
