//! Pushes messages posted over REST (`send_to_chat=1`) to the occupants online over XMPP,
//! and to the devices of those offline.

use std::sync::Arc;

use control_api::domain::chat::{ChatMessage, ChatNotifier, Dialog, DialogType};
use control_api::domain::push::OfflineChatPush;
use minidom::Element;

use super::address::{RoomAddr, UserAddr};
use super::context::XmppContext;
use super::framing::{to_xml, NS_CLIENT};
use super::router::Outbound;
use super::stanza::{self, name};

pub struct XmppNotifier {
    ctx: Arc<XmppContext>,
}

impl XmppNotifier {
    pub fn new(ctx: Arc<XmppContext>) -> Self {
        Self { ctx }
    }
}

/// A stored chat message as the stanza the SDKs expect (`extraParams` with `dialog_id`,
/// `date_sent`, custom parameters and attachments).
pub(crate) fn chat_stanza(message: &ChatMessage, kind: &str, from: &str) -> Element {
    let mut extra = Element::builder("extraParams", NS_CLIENT)
        .append(stanza::text_child("save_to_history", NS_CLIENT, "1"))
        .append(stanza::text_child(
            "dialog_id",
            NS_CLIENT,
            message.dialog_id.clone(),
        ))
        .append(stanza::text_child(
            "date_sent",
            NS_CLIENT,
            message.date_sent.to_string(),
        ));
    for (key, value) in &message.custom {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let Ok(key) = rxml::NcName::try_from(key.as_str()) {
            extra = extra.append(
                Element::builder(key.as_str(), NS_CLIENT)
                    .append(text)
                    .build(),
            );
        }
    }
    for attachment in &message.attachments {
        let mut element = Element::builder("attachment", NS_CLIENT);
        for (key, value) in &attachment.fields {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let Ok(key) = rxml::NcName::try_from(key.as_str()) {
                element = element.attr(key, text);
            }
        }
        extra = extra.append(element.build());
    }
    let mut builder = Element::builder("message", NS_CLIENT)
        .attr(name("type"), kind)
        .attr(name("id"), message.id.clone())
        .attr(name("from"), from)
        .append(stanza::text_child("body", NS_CLIENT, message.body.clone()))
        .append(extra.build());
    if message.markable {
        builder = builder.append(Element::builder("markable", stanza::NS_MARKERS).build());
    }
    builder.build()
}

impl XmppNotifier {
    /// Occupants with no resource online get the message as a push.
    fn push_to_offline(&self, message: &ChatMessage, dialog: &Dialog) {
        let router = &self.ctx.router;
        let recipients: Vec<_> = dialog
            .occupants
            .iter()
            .copied()
            .filter(|u| *u != message.sender_id)
            .filter(|u| {
                !router.is_online(UserAddr {
                    app: dialog.app_id,
                    user: *u,
                })
            })
            .collect();
        if recipients.is_empty() {
            return;
        }
        let push = OfflineChatPush {
            app: dialog.app_id,
            dialog_id: dialog.id.clone(),
            message_id: message.id.clone(),
            sender: message.sender_id,
            recipients,
            text: message.body.clone(),
        };
        let control = self.ctx.control.clone();
        tokio::spawn(async move {
            if let Err(e) = control.push_offline_message(push).await {
                tracing::warn!(error = %e, "offline-message push failed");
            }
        });
    }
}

impl ChatNotifier for XmppNotifier {
    fn message_posted(&self, message: &ChatMessage, dialog: &Dialog) {
        self.push_to_offline(message, dialog);
        let domain = &self.ctx.domain;
        let sender = UserAddr {
            app: dialog.app_id,
            user: message.sender_id,
        };
        if dialog.kind == DialogType::Private {
            let element = chat_stanza(message, "chat", &sender.bare(domain));
            for occupant in dialog.occupants.iter().filter(|u| **u != message.sender_id) {
                let to = UserAddr {
                    app: dialog.app_id,
                    user: *occupant,
                };
                let mut copy = element.clone();
                copy.set_attr(rxml::Namespace::NONE, name("to"), to.bare(domain));
                self.ctx
                    .router
                    .send_to_user(to, None, &Outbound::from(to_xml(&copy)));
            }
            return;
        }
        let room = RoomAddr {
            app: dialog.app_id,
            dialog: dialog.id.clone(),
        };
        let element = chat_stanza(
            message,
            "groupchat",
            &room.occupant(domain, message.sender_id),
        );
        self.ctx
            .router
            .broadcast_room(&room, None, |user, resource| {
                let mut copy = element.clone();
                copy.set_attr(
                    rxml::Namespace::NONE,
                    name("to"),
                    UserAddr {
                        app: dialog.app_id,
                        user,
                    }
                    .full(domain, resource),
                );
                Outbound::from(to_xml(&copy))
            });
    }
}
