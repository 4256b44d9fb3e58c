//! Chat: dialogs, message history, receipts, unread counts and the offline queue.
//!
//! One domain for both faces: the REST API (`/chat/Dialog.json`, `/chat/Message.json`) and
//! the XMPP server call the same [`ControlPlane`] methods, so a message sent over XMPP
//! shows in the REST history and unread counts agree. Access rule everywhere: a dialog is
//! visible to its occupants, and public dialogs (type 1) to every user of the application;
//! what a user cannot see is `NotFound`, never another application's data.
//!
//! Entry points for the XMPP server: [`ControlPlane::authenticate_chat_user`],
//! [`ControlPlane::chat_user_exists`], [`ControlPlane::dialog_for_user`],
//! [`ControlPlane::private_dialog`], [`ControlPlane::post_chat_message`],
//! [`ControlPlane::mark_delivered`], [`ControlPlane::mark_read`],
//! [`ControlPlane::queue_offline`], [`ControlPlane::take_offline`] and
//! [`ControlPlane::set_chat_notifier`].

pub mod dialogs;
pub mod messages;
pub mod model;
pub mod offline;
pub mod query;
pub mod store;

use std::sync::Arc;

pub use dialogs::{DeleteOutcome, DialogPage, DialogUpdate, NewDialog};
pub use messages::MessageUpdate;
pub use model::{Attachment, ChatMessage, Dialog, DialogType, NewChatMessage};
pub use query::{DialogQuery, MessageQuery};
pub use store::{ChatStore, Receipt};

use super::ControlPlane;

/// Set once by the XMPP role: messages posted over REST with `send_to_chat=1` are pushed to
/// the dialog's online occupants through it.
pub trait ChatNotifier: Send + Sync + 'static {
    fn message_posted(&self, message: &ChatMessage, dialog: &Dialog);
}

impl ControlPlane {
    /// Installs the XMPP server's notifier; only the first call takes effect.
    pub fn set_chat_notifier(&self, notifier: Arc<dyn ChatNotifier>) {
        if self.chat_notifier.set(notifier).is_err() {
            tracing::warn!("chat notifier already set; keeping the first");
        }
    }

    /// Hands a REST-posted message to the XMPP server, if one runs in this process.
    pub fn notify_message_posted(&self, message: &ChatMessage, dialog: &Dialog) {
        match self.chat_notifier.get() {
            Some(notifier) => notifier.message_posted(message, dialog),
            None => tracing::debug!(dialog = %dialog.id, "no chat notifier: send_to_chat skipped"),
        }
    }
}
