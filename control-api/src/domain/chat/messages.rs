//! Messages: posting (from XMPP or REST), history, receipts, edits and deletion.

use std::collections::HashMap;

use super::dialogs::{dedup, is_object_id, DeleteOutcome};
use super::model::{ChatMessage, Dialog, NewChatMessage};
use super::query::MessageQuery;
use super::store::Receipt;
use crate::domain::error::DomainError;
use crate::domain::ids;
use crate::domain::model::{AppId, UserId};
use crate::domain::store::StoreError;
use crate::domain::ControlPlane;

/// Generous bounds that keep one history row small; an XMPP stanza limit applies first.
const MAX_BODY_LEN: usize = 64 * 1024;
const MAX_ATTACHMENTS: usize = 50;
const MAX_EXTRAS_LEN: usize = 64 * 1024;
/// Dates a client may claim for `date_sent`: after 1970, before the year 3000.
const MAX_DATE_SENT: i64 = 32_503_680_000;
/// One request names at most this many messages (a page of history).
pub const MAX_IDS: usize = 100;

const NOT_SENDER: &str = "Only the sender can do this";

/// What `PUT /chat/Message/{ids}.json` asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageUpdate {
    pub read: bool,
    pub delivered: bool,
    /// A new body (the sender only).
    pub body: Option<String>,
}

impl ControlPlane {
    /// Posts a message. The sender must see the dialog (an occupant, or anyone for public
    /// dialogs); a 1:1 message without a dialog id goes to the pair's private dialog, found
    /// or created. The id and `date_sent` are assigned when absent; with `save_to_history`
    /// the message is stored (where the REST history reads it), becomes the dialog's last
    /// message and counts as unread for the other occupants. Returns the message and its
    /// dialog: the occupants other than the sender are who the XMPP server delivers to. A
    /// duplicate id is a validation error, never a second row.
    pub async fn post_chat_message(
        &self,
        app: AppId,
        sender: UserId,
        msg: NewChatMessage,
    ) -> Result<(ChatMessage, Dialog), DomainError> {
        let mut dialog = match (&msg.dialog_id, msg.recipient_id) {
            (Some(id), _) => self.dialog_for_user(app, sender, id).await?,
            (None, Some(recipient)) => self.private_dialog(app, sender, recipient).await?,
            (None, None) => return Err(DomainError::invalid("chat_dialog_id", "is required")),
        };
        check_content(&msg)?;
        let now = self.now();
        let id = match msg.id {
            Some(id) if is_object_id(&id) => id,
            Some(_) => {
                return Err(DomainError::invalid(
                    "_id",
                    "must be 24 hexadecimal characters",
                ))
            }
            None => ids::object_id(now),
        };
        let date_sent = msg.date_sent.unwrap_or_else(|| now.unix_timestamp());
        if !(0..MAX_DATE_SENT).contains(&date_sent) {
            return Err(DomainError::invalid("date_sent", "is out of range"));
        }
        let message = ChatMessage {
            id,
            dialog_id: dialog.id.clone(),
            sender_id: sender,
            recipient_id: dialog.peer_of(sender),
            body: msg.body,
            attachments: msg.attachments,
            custom: msg.custom,
            markable: msg.markable,
            date_sent,
            read_ids: vec![sender],
            delivered_ids: vec![sender],
            created_at: now,
            updated_at: now,
        };
        if msg.save_to_history {
            let mut holders = vec![sender];
            holders.extend(dialog.occupants.iter().copied());
            self.chat
                .insert_message(app, &message, &dedup(holders))
                .await
                .map_err(|e| match e {
                    StoreError::Conflict { .. } => {
                        DomainError::invalid("_id", "has already been taken")
                    }
                    other => other.into(),
                })?;
            dialog.last_message = Some(message.body.clone());
            dialog.last_message_date_sent = Some(date_sent);
            dialog.last_message_user_id = Some(sender);
            dialog.last_message_id = Some(message.id.clone());
            dialog.updated_at = now;
        }
        Ok((message, dialog))
    }

    /// A delivery receipt (XEP-0184 / chat markers `received`) for messages of a dialog;
    /// empty ids mean every message of the dialog.
    pub async fn mark_delivered(
        &self,
        app: AppId,
        user: UserId,
        dialog_id: &str,
        message_ids: &[String],
    ) -> Result<(), DomainError> {
        self.mark(app, user, dialog_id, message_ids, Receipt::Delivered)
            .await
    }

    /// A read marker (XEP-0333 `displayed`); empty ids mean every message of the dialog.
    pub async fn mark_read(
        &self,
        app: AppId,
        user: UserId,
        dialog_id: &str,
        message_ids: &[String],
    ) -> Result<(), DomainError> {
        self.mark(app, user, dialog_id, message_ids, Receipt::Read)
            .await
    }

    async fn mark(
        &self,
        app: AppId,
        user: UserId,
        dialog_id: &str,
        message_ids: &[String],
        receipt: Receipt,
    ) -> Result<(), DomainError> {
        self.dialog_for_user(app, user, dialog_id).await?;
        if message_ids.is_empty() {
            self.chat
                .mark_messages(app, user, dialog_id, None, receipt)
                .await?;
            return Ok(());
        }
        let ids: Vec<String> = message_ids
            .iter()
            .filter(|id| is_object_id(id))
            .cloned()
            .collect();
        for chunk in ids.chunks(MAX_IDS) {
            self.chat
                .mark_messages(app, user, dialog_id, Some(chunk), receipt)
                .await?;
        }
        Ok(())
    }

    /// `GET /chat/Message.json`: one page of a dialog's history as `user` sees it. Unless
    /// `mark_as_read` is false the returned messages become read by `user` (and show so).
    pub async fn list_messages(
        &self,
        app: AppId,
        user: UserId,
        dialog_id: &str,
        query: &MessageQuery,
        mark_as_read: bool,
    ) -> Result<Vec<ChatMessage>, DomainError> {
        self.dialog_for_user(app, user, dialog_id).await?;
        let mut messages = self.chat.list_messages(app, user, dialog_id, query).await?;
        if mark_as_read {
            let unread: Vec<String> = messages
                .iter()
                .filter(|m| !m.read_ids.contains(&user))
                .map(|m| m.id.clone())
                .collect();
            if !unread.is_empty() {
                self.chat
                    .mark_messages(app, user, dialog_id, Some(&unread), Receipt::Read)
                    .await?;
                // Shown as the store would list them: ids ascending.
                for m in messages.iter_mut().filter(|m| unread.contains(&m.id)) {
                    m.read_ids.push(user);
                    m.read_ids.sort();
                    if !m.delivered_ids.contains(&user) {
                        m.delivered_ids.push(user);
                        m.delivered_ids.sort();
                    }
                }
            }
        }
        Ok(messages)
    }

    /// `GET /chat/Message.json?count=1`: how many messages of the history `user` sees
    /// match the query's filters.
    pub async fn count_messages(
        &self,
        app: AppId,
        user: UserId,
        dialog_id: &str,
        query: &MessageQuery,
    ) -> Result<i64, DomainError> {
        self.dialog_for_user(app, user, dialog_id).await?;
        Ok(self
            .chat
            .count_messages(app, user, dialog_id, query)
            .await?)
    }

    /// `PUT /chat/Message/{ids}.json`: receipts for any visible message, a new body for the
    /// sender's own. Every id must name a message `user` sees (in `dialog_id` if given).
    pub async fn update_messages(
        &self,
        app: AppId,
        user: UserId,
        ids: &[String],
        dialog_id: Option<&str>,
        update: MessageUpdate,
    ) -> Result<(), DomainError> {
        let (messages, missing) = self.visible_messages(app, user, ids).await?;
        let outside = messages
            .iter()
            .any(|m| dialog_id.is_some_and(|d| d != m.dialog_id));
        if !missing.is_empty() || outside || messages.is_empty() {
            return Err(DomainError::NotFound);
        }
        if let Some(body) = &update.body {
            if messages.iter().any(|m| m.sender_id != user) {
                return Err(DomainError::Forbidden(NOT_SENDER));
            }
            if body.trim().is_empty() {
                return Err(DomainError::invalid("message", "can't be blank"));
            }
            if body.len() > MAX_BODY_LEN {
                return Err(DomainError::invalid("message", "is too long"));
            }
            let now = self.now();
            for m in &messages {
                self.chat.update_message_body(app, &m.id, body, now).await?;
            }
        }
        let receipt = match (update.read, update.delivered) {
            (true, _) => Some(Receipt::Read),
            (false, true) => Some(Receipt::Delivered),
            (false, false) => None,
        };
        if let Some(receipt) = receipt {
            let mut by_dialog: HashMap<&str, Vec<String>> = HashMap::new();
            for m in &messages {
                by_dialog
                    .entry(&m.dialog_id)
                    .or_default()
                    .push(m.id.clone());
            }
            for (dialog, ids) in by_dialog {
                self.chat
                    .mark_messages(app, user, dialog, Some(&ids), receipt)
                    .await?;
            }
        }
        Ok(())
    }

    /// `DELETE /chat/Message/{ids}.json`: for `user` only, or with `force` for everyone
    /// (the sender's own messages only; a refusal deletes nothing).
    pub async fn delete_messages(
        &self,
        app: AppId,
        user: UserId,
        ids: &[String],
        force: bool,
    ) -> Result<DeleteOutcome, DomainError> {
        let (messages, not_found) = self.visible_messages(app, user, ids).await?;
        if force && messages.iter().any(|m| m.sender_id != user) {
            return Err(DomainError::Forbidden(NOT_SENDER));
        }
        let deleted: Vec<String> = messages.into_iter().map(|m| m.id).collect();
        if !deleted.is_empty() {
            if force {
                self.chat.delete_messages(app, &deleted).await?;
            } else {
                self.chat.delete_messages_for(app, user, &deleted).await?;
            }
        }
        Ok(DeleteOutcome { deleted, not_found })
    }

    /// The named messages whose dialogs `user` sees, and the ids that name none.
    async fn visible_messages(
        &self,
        app: AppId,
        user: UserId,
        ids: &[String],
    ) -> Result<(Vec<ChatMessage>, Vec<String>), DomainError> {
        let ids = dedup(ids.to_vec());
        if ids.len() > MAX_IDS {
            return Err(DomainError::invalid(
                "ids",
                format!("at most {MAX_IDS} at once"),
            ));
        }
        let wanted: Vec<String> = ids.iter().filter(|id| is_object_id(id)).cloned().collect();
        let stored = if wanted.is_empty() {
            Vec::new()
        } else {
            self.chat.messages(app, &wanted).await?
        };
        let mut visible_dialogs: HashMap<String, bool> = HashMap::new();
        let mut messages = Vec::new();
        for message in stored {
            let visible = match visible_dialogs.get(&message.dialog_id) {
                Some(v) => *v,
                None => {
                    let v = match self.dialog_for_user(app, user, &message.dialog_id).await {
                        Ok(_) => true,
                        Err(DomainError::NotFound) => false,
                        Err(e) => return Err(e),
                    };
                    visible_dialogs.insert(message.dialog_id.clone(), v);
                    v
                }
            };
            if visible {
                messages.push(message);
            }
        }
        let missing = ids
            .into_iter()
            .filter(|id| !messages.iter().any(|m| &m.id == id))
            .collect();
        Ok((messages, missing))
    }
}

fn check_content(msg: &NewChatMessage) -> Result<(), DomainError> {
    if msg.body.trim().is_empty() && msg.attachments.is_empty() {
        return Err(DomainError::invalid("message", "can't be blank"));
    }
    if msg.body.len() > MAX_BODY_LEN {
        return Err(DomainError::invalid(
            "message",
            format!("is too long (maximum is {MAX_BODY_LEN} bytes)"),
        ));
    }
    if msg.attachments.len() > MAX_ATTACHMENTS {
        return Err(DomainError::invalid(
            "attachments",
            format!("too many (maximum is {MAX_ATTACHMENTS})"),
        ));
    }
    let extras: usize = msg
        .attachments
        .iter()
        .map(|a| {
            serde_json::Value::Object(a.fields.clone())
                .to_string()
                .len()
        })
        .sum::<usize>()
        + serde_json::Value::Object(msg.custom.clone())
            .to_string()
            .len();
    if extras > MAX_EXTRAS_LEN {
        return Err(DomainError::invalid(
            "base",
            format!("attachments and custom parameters exceed {MAX_EXTRAS_LEN} bytes"),
        ));
    }
    Ok(())
}
