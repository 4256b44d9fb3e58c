//! The chat persistence boundary, apart from [`Store`](crate::domain::Store) so chat tables
//! evolve on their own; `crate::store` implements both on one database.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::model::{ChatMessage, Dialog};
use super::query::{DialogQuery, MessageQuery};
use crate::domain::model::{AppId, UserId};
use crate::domain::store::StoreResult;

/// Which per-recipient flag a receipt sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receipt {
    Delivered,
    /// Read implies delivered.
    Read,
}

#[async_trait]
pub trait ChatStore: Send + Sync + 'static {
    /// Which of `ids` are users of `app`.
    async fn existing_users(&self, app: AppId, ids: &[UserId]) -> StoreResult<Vec<UserId>>;

    // Dialogs.
    /// Inserts a dialog and its occupants. A second private dialog of the same pair is a
    /// `StoreError::Conflict { field: "occupants_ids" }`.
    async fn insert_dialog(&self, dialog: &Dialog) -> StoreResult<()>;
    async fn dialog(&self, app: AppId, id: &str) -> StoreResult<Option<Dialog>>;
    async fn private_dialog_of(
        &self,
        app: AppId,
        a: UserId,
        b: UserId,
    ) -> StoreResult<Option<Dialog>>;
    /// Writes name, photo, data, `is_join_required`, `updated_at` and the occupant list;
    /// `removed` occupants also lose their message state in the dialog.
    async fn update_dialog(&self, dialog: &Dialog, removed: &[UserId]) -> StoreResult<()>;
    /// Deletes the dialog with its occupants and messages; false if it did not exist.
    async fn delete_dialog(&self, app: AppId, id: &str) -> StoreResult<bool>;
    /// Hides a dialog from one occupant's list (private dialogs "deleted for me"); a new
    /// message shows it again.
    async fn hide_dialog(
        &self,
        app: AppId,
        id: &str,
        user: UserId,
        hidden: bool,
    ) -> StoreResult<()>;
    /// The dialogs `user` sees (non-hidden memberships and every public dialog) matching
    /// `query`, and the number of matches.
    async fn list_dialogs(
        &self,
        app: AppId,
        user: UserId,
        query: &DialogQuery,
    ) -> StoreResult<(Vec<Dialog>, i64)>;

    // Messages.
    /// Inserts a message with a state row per occupant (the sender's read and delivered),
    /// makes it the dialog's last message and shows the dialog again to occupants who hid
    /// it. A taken id is `StoreError::Conflict { field: "_id" }`.
    async fn insert_message(
        &self,
        app: AppId,
        message: &ChatMessage,
        occupants: &[UserId],
    ) -> StoreResult<()>;
    /// Messages by id, in one application, with their read and delivered ids.
    async fn messages(&self, app: AppId, ids: &[String]) -> StoreResult<Vec<ChatMessage>>;
    /// One page of a dialog's history as `user` sees it (without what they deleted for
    /// themselves).
    async fn list_messages(
        &self,
        app: AppId,
        user: UserId,
        dialog_id: &str,
        query: &MessageQuery,
    ) -> StoreResult<Vec<ChatMessage>>;
    /// How many messages of that history match the query's filters (paging ignored): a
    /// separate call, because counting a long history costs far more than one page of it.
    async fn count_messages(
        &self,
        app: AppId,
        user: UserId,
        dialog_id: &str,
        query: &MessageQuery,
    ) -> StoreResult<i64>;
    /// Sets a receipt flag for `user` on the listed messages of the dialog (`None`: all of
    /// them); returns how many messages changed.
    async fn mark_messages(
        &self,
        app: AppId,
        user: UserId,
        dialog_id: &str,
        ids: Option<&[String]>,
        receipt: Receipt,
    ) -> StoreResult<u64>;
    async fn update_message_body(
        &self,
        app: AppId,
        id: &str,
        body: &str,
        now: OffsetDateTime,
    ) -> StoreResult<()>;
    /// Hides messages from one user's history.
    async fn delete_messages_for(
        &self,
        app: AppId,
        user: UserId,
        ids: &[String],
    ) -> StoreResult<()>;
    /// Deletes messages for everyone and recomputes the last message of their dialogs.
    async fn delete_messages(&self, app: AppId, ids: &[String]) -> StoreResult<()>;
    /// Unread messages of `user` per dialog (only dialogs with some), limited to `dialogs`
    /// when given.
    async fn unread_counts(
        &self,
        app: AppId,
        user: UserId,
        dialogs: Option<&[String]>,
    ) -> StoreResult<Vec<(String, i64)>>;

    // Offline queue.
    /// Appends a stanza and drops the oldest beyond `cap`; returns how many were dropped.
    async fn push_offline(
        &self,
        app: AppId,
        user: UserId,
        stanza: &str,
        now: OffsetDateTime,
        cap: usize,
    ) -> StoreResult<u64>;
    /// Removes and returns the user's queued stanzas, oldest first.
    async fn take_offline(
        &self,
        app: AppId,
        user: UserId,
    ) -> StoreResult<Vec<(String, OffsetDateTime)>>;
}
