//! [`ChatStore`] over the same `AnyPool` as [`Store`](crate::domain::Store): dialogs,
//! occupants, history, per-recipient message state and the offline queue.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use time::OffsetDateTime;

use super::chat_cache::DialogCache;
use super::chat_writer::{self, Job, Writer};
use super::query::{escape_like, Bind, Sql};
use super::rows::{from_millis, millis};
use super::sql::SqlStore;
use crate::domain::chat::model::{Attachment, ChatMessage, Dialog, DialogType};
use crate::domain::chat::query::{
    ChatFilter, ChatOp, ChatQuery, DialogField, DialogQuery, MessageField, MessageQuery,
};
use crate::domain::chat::store::{ChatStore, Receipt};
use crate::domain::model::{AppId, UserId};
use crate::domain::store::{StoreError, StoreResult};
use crate::domain::user_query::FilterValue;

const DIALOG_COLUMNS: [&str; 14] = [
    "id",
    "app_id",
    "dialog_type",
    "name",
    "photo",
    "user_id",
    "data",
    "is_join_required",
    "created_at",
    "updated_at",
    "last_message",
    "last_message_date_sent",
    "last_message_user_id",
    "last_message_id",
];

const MESSAGE_COLUMNS: [&str; 13] = [
    "seq",
    "id",
    "dialog_id",
    "sender_id",
    "recipient_id",
    "body",
    "attachments",
    "custom",
    "markable",
    "date_sent",
    "created_at",
    "updated_at",
    "app_id",
];

/// Rows per multi-row INSERT: well under PostgreSQL's 65535 bind parameters.
const INSERT_CHUNK: usize = 500;

fn columns(list: &[&str], alias: &str) -> String {
    list.iter()
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn decode_err(e: serde_json::Error) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

fn dialog_row(row: &AnyRow) -> sqlx::Result<Dialog> {
    let kind: i64 = row.try_get("dialog_type")?;
    let data: Option<String> = row.try_get("data")?;
    Ok(Dialog {
        id: row.try_get("id")?,
        app_id: AppId(row.try_get("app_id")?),
        kind: DialogType::from_number(kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("dialog type {kind}").into()))?,
        name: row.try_get("name")?,
        photo: row.try_get("photo")?,
        user_id: UserId(row.try_get("user_id")?),
        occupants: Vec::new(),
        data: data
            .map(|d| serde_json::from_str(&d))
            .transpose()
            .map_err(decode_err)?,
        is_join_required: row
            .try_get::<Option<i64>, _>("is_join_required")?
            .map(|v| v != 0),
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
        last_message: row.try_get("last_message")?,
        last_message_date_sent: row.try_get("last_message_date_sent")?,
        last_message_user_id: row
            .try_get::<Option<i64>, _>("last_message_user_id")?
            .map(UserId),
        last_message_id: row.try_get("last_message_id")?,
    })
}

fn message_row(row: &AnyRow) -> sqlx::Result<(i64, ChatMessage)> {
    let attachments: String = row.try_get("attachments")?;
    let attachments: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&attachments).map_err(decode_err)?;
    let custom: String = row.try_get("custom")?;
    let message = ChatMessage {
        id: row.try_get("id")?,
        dialog_id: row.try_get("dialog_id")?,
        sender_id: UserId(row.try_get("sender_id")?),
        recipient_id: row.try_get::<Option<i64>, _>("recipient_id")?.map(UserId),
        body: row.try_get("body")?,
        attachments: attachments
            .into_iter()
            .map(|fields| Attachment { fields })
            .collect(),
        custom: serde_json::from_str(&custom).map_err(decode_err)?,
        markable: row.try_get::<i64, _>("markable")? != 0,
        date_sent: row.try_get("date_sent")?,
        read_ids: Vec::new(),
        delivered_ids: Vec::new(),
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
    };
    Ok((row.try_get("seq")?, message))
}

fn private_pair(a: UserId, b: UserId) -> String {
    format!("{}:{}", a.0.min(b.0), a.0.max(b.0))
}

fn unique_violation(err: sqlx::Error, field: &'static str) -> StoreError {
    match err.as_database_error() {
        Some(db) if db.is_unique_violation() => StoreError::Conflict { field },
        _ => StoreError::Database(err),
    }
}

fn push_list(sql: &mut Sql, values: impl IntoIterator<Item = Bind>) {
    for (i, value) in values.into_iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(value);
    }
}

fn texts(ids: &[String]) -> impl Iterator<Item = Bind> + '_ {
    ids.iter().map(|id| Bind::Text(id.clone()))
}

/// `column <op> value(s)`; every value bound.
fn push_comparison(sql: &mut Sql, column: &str, op: ChatOp, values: &[FilterValue]) {
    let symbol = match op {
        ChatOp::Eq => "=",
        ChatOp::Ne => "<>",
        ChatOp::Lt => "<",
        ChatOp::Lte => "<=",
        ChatOp::Gt => ">",
        ChatOp::Gte => ">=",
        ChatOp::In | ChatOp::Nin | ChatOp::All => {
            let not = if op == ChatOp::Nin { " NOT" } else { "" };
            sql.push(column).push(not).push(" IN (");
            push_list(sql, values.iter().map(Bind::from));
            sql.push(")");
            return;
        }
        ChatOp::Ctn => {
            let text = match &values[0] {
                FilterValue::Text(t) => t.to_lowercase(),
                FilterValue::Integer(v) => v.to_string(),
            };
            sql.push("LOWER(")
                .push(column)
                .push(") LIKE ")
                .bind(Bind::Text(format!("%{}%", escape_like(&text))))
                .push(" ESCAPE '\\'");
            return;
        }
    };
    sql.push(column)
        .push(" ")
        .push(symbol)
        .push(" ")
        .bind(Bind::from(&values[0]));
}

fn dialog_column(field: DialogField) -> &'static str {
    match field {
        DialogField::Id => "d.id",
        DialogField::Type => "d.dialog_type",
        DialogField::Name => "d.name",
        DialogField::UserId => "d.user_id",
        DialogField::CreatedAt => "d.created_at",
        DialogField::UpdatedAt => "d.updated_at",
        DialogField::LastMessageDateSent => "d.last_message_date_sent",
        // Filtered through chat_occupants, never sorted (the query parser refuses it).
        DialogField::OccupantsIds => "d.id",
    }
}

fn message_column(field: MessageField) -> &'static str {
    match field {
        MessageField::Id => "m.id",
        MessageField::DateSent => "m.date_sent",
        MessageField::SenderId => "m.sender_id",
        MessageField::RecipientId => "m.recipient_id",
        MessageField::CreatedAt => "m.created_at",
        MessageField::UpdatedAt => "m.updated_at",
        MessageField::Message => "m.body",
    }
}

fn push_occupants_filter(sql: &mut Sql, filter: &ChatFilter<DialogField>) {
    let members = |sql: &mut Sql| {
        sql.push(
            "SELECT COUNT(*) FROM chat_occupants f WHERE f.dialog_id = d.id AND f.user_id IN (",
        );
        push_list(sql, filter.values.iter().map(Bind::from));
        sql.push(")");
    };
    match filter.op {
        ChatOp::All => {
            // The parser removed duplicate values, so every one must match a row.
            sql.push("(");
            members(sql);
            sql.push(&format!(") = {}", filter.values.len()));
        }
        ChatOp::Ne | ChatOp::Nin => {
            sql.push("(");
            members(sql);
            sql.push(") = 0");
        }
        _ => {
            sql.push("(");
            members(sql);
            sql.push(") > 0");
        }
    }
}

fn push_order<F: Copy>(sql: &mut Sql, query: &ChatQuery<F>, column: &str, tie_break: &str) {
    let direction = if query.sort.descending { "DESC" } else { "ASC" };
    // Nulls last on both engines (their defaults differ), then a stable tie-break.
    sql.push(&format!(
        " ORDER BY {column} IS NULL, {column} {direction}, {tie_break} {direction} LIMIT "
    ))
    .bind(Bind::Int(query.limit))
    .push(" OFFSET ")
    .bind(Bind::Int(query.skip));
}

/// What the clones of one store share for chat: the dialog cache and the history writer
/// (started on the first message, inside the runtime).
#[derive(Default)]
pub(super) struct ChatState {
    cache: Arc<DialogCache>,
    writer: OnceLock<Writer>,
}

impl ChatState {
    /// Drops every cached dialog (a write outside the chat tables' methods removed some).
    pub(super) fn forget_dialogs(&self) {
        self.cache.clear();
    }
}

impl std::fmt::Debug for ChatState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatState")
            .field("writer_started", &self.writer.get().is_some())
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    fn chat_pool(&self) -> &AnyPool {
        &self.pool
    }

    fn dialog_cache(&self) -> &DialogCache {
        &self.chat.cache
    }

    /// A dialog with its occupants and who of them hid it, remembered in the cache.
    async fn one_dialog_cached(
        &self,
        sql: &Sql,
        pair: Option<String>,
    ) -> StoreResult<Option<Dialog>> {
        let epoch = self.dialog_cache().epoch();
        let Some(row) = sql.query().fetch_optional(self.chat_pool()).await? else {
            return Ok(None);
        };
        let mut dialog = dialog_row(&row)?;
        let rows = sqlx::query(
            "SELECT user_id, hidden FROM chat_occupants WHERE dialog_id = $1 ORDER BY position, user_id",
        )
        .bind(dialog.id.clone())
        .fetch_all(self.chat_pool())
        .await?;
        let mut hidden = Vec::new();
        for row in rows {
            let user = UserId(row.try_get("user_id")?);
            dialog.occupants.push(user);
            if row.try_get::<i64, _>("hidden")? != 0 {
                hidden.push(user);
            }
        }
        self.dialog_cache().fill(epoch, &dialog, hidden, pair);
        Ok(Some(dialog))
    }

    async fn load_occupants(&self, dialogs: &mut [Dialog]) -> StoreResult<()> {
        if dialogs.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = dialogs.iter().map(|d| d.id.clone()).collect();
        let mut sql = Sql::default();
        sql.push("SELECT dialog_id, user_id FROM chat_occupants WHERE dialog_id IN (");
        push_list(&mut sql, texts(&ids));
        sql.push(") ORDER BY dialog_id, position, user_id");
        let rows = sql.query().fetch_all(self.chat_pool()).await?;
        let mut by_dialog: HashMap<String, Vec<UserId>> = HashMap::new();
        for row in rows {
            let dialog: String = row.try_get("dialog_id")?;
            by_dialog
                .entry(dialog)
                .or_default()
                .push(UserId(row.try_get("user_id")?));
        }
        for dialog in dialogs {
            dialog.occupants = by_dialog.remove(&dialog.id).unwrap_or_default();
        }
        Ok(())
    }

    /// Fills `read_ids` and `delivered_ids` from the state rows.
    async fn load_states(&self, messages: &mut [(i64, ChatMessage)]) -> StoreResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut sql = Sql::default();
        sql.push("SELECT message_seq, user_id, delivered, is_read FROM chat_message_states WHERE message_seq IN (");
        push_list(&mut sql, messages.iter().map(|(seq, _)| Bind::Int(*seq)));
        sql.push(") ORDER BY message_seq, user_id");
        let rows = sql.query().fetch_all(self.chat_pool()).await?;
        let mut states: HashMap<i64, Vec<(UserId, bool, bool)>> = HashMap::new();
        for row in rows {
            states
                .entry(row.try_get("message_seq")?)
                .or_default()
                .push((
                    UserId(row.try_get("user_id")?),
                    row.try_get::<i64, _>("delivered")? != 0,
                    row.try_get::<i64, _>("is_read")? != 0,
                ));
        }
        for (seq, message) in messages.iter_mut() {
            for (user, delivered, read) in states.remove(seq).unwrap_or_default() {
                if read {
                    message.read_ids.push(user);
                }
                if delivered || read {
                    message.delivered_ids.push(user);
                }
            }
        }
        Ok(())
    }

    /// `SELECT COUNT(*)` over the `FROM ... WHERE ...` that `filter` writes.
    async fn count_rows(&self, filter: &impl Fn(&mut Sql)) -> StoreResult<i64> {
        let mut count = Sql::default();
        count.push("SELECT COUNT(*) AS n");
        filter(&mut count);
        let row = count.query().fetch_one(self.chat_pool()).await?;
        Ok(row.try_get("n")?)
    }

    async fn fetch_messages(&self, sql: &Sql) -> StoreResult<Vec<ChatMessage>> {
        let rows = sql.query().fetch_all(self.chat_pool()).await?;
        let mut messages = rows
            .iter()
            .map(message_row)
            .collect::<Result<Vec<_>, _>>()?;
        self.load_states(&mut messages).await?;
        Ok(messages.into_iter().map(|(_, m)| m).collect())
    }
}

/// `FROM ... WHERE ...` of a dialog's history as `user` sees it (without what they deleted
/// for themselves), with the query's filters.
fn history_filter(sql: &mut Sql, app: AppId, user: UserId, dialog_id: &str, query: &MessageQuery) {
    sql.push(" FROM chat_messages m WHERE m.app_id = ")
        .bind(Bind::Int(app.0))
        .push(" AND m.dialog_id = ")
        .bind(Bind::Text(dialog_id.to_string()))
        .push(" AND NOT EXISTS (SELECT 1 FROM chat_message_states s WHERE s.message_seq = m.seq AND s.user_id = ")
        .bind(Bind::Int(user.0))
        .push(" AND s.deleted = 1)");
    for f in &query.filters {
        sql.push(" AND ");
        push_comparison(sql, message_column(f.field), f.op, &f.values);
    }
}

async fn write_occupants(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    dialog: &Dialog,
    hidden: &HashMap<i64, i64>,
) -> StoreResult<()> {
    for (chunk_index, chunk) in dialog.occupants.chunks(INSERT_CHUNK).enumerate() {
        let mut sql = Sql::default();
        sql.push(
            "INSERT INTO chat_occupants (dialog_id, app_id, user_id, position, hidden) VALUES ",
        );
        for (i, user) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            let position = (chunk_index * INSERT_CHUNK + i) as i64;
            sql.push("(")
                .bind(Bind::Text(dialog.id.clone()))
                .push(", ")
                .bind(Bind::Int(dialog.app_id.0))
                .push(", ")
                .bind(Bind::Int(user.0))
                .push(", ")
                .bind(Bind::Int(position))
                .push(", ")
                .bind(Bind::Int(hidden.get(&user.0).copied().unwrap_or(0)))
                .push(")");
        }
        sql.query().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn set_last_message(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    app: AppId,
    dialog_id: &str,
) -> StoreResult<()> {
    let last = sqlx::query(
        "SELECT id, body, date_sent, sender_id FROM chat_messages WHERE app_id = $1 AND dialog_id = $2 \
         ORDER BY date_sent DESC, seq DESC LIMIT 1",
    )
    .bind(app.0)
    .bind(dialog_id.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    let (id, body, date_sent, sender) = match &last {
        Some(row) => (
            Some(row.try_get::<String, _>("id")?),
            Some(row.try_get::<String, _>("body")?),
            Some(row.try_get::<i64, _>("date_sent")?),
            Some(row.try_get::<i64, _>("sender_id")?),
        ),
        None => (None, None, None, None),
    };
    sqlx::query(
        "UPDATE chat_dialogs SET last_message = $1, last_message_date_sent = $2, \
         last_message_user_id = $3, last_message_id = $4 WHERE app_id = $5 AND id = $6",
    )
    .bind(body)
    .bind(date_sent)
    .bind(sender)
    .bind(id)
    .bind(app.0)
    .bind(dialog_id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl ChatStore for SqlStore {
    async fn existing_users(&self, app: AppId, ids: &[UserId]) -> StoreResult<Vec<UserId>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        for chunk in ids.chunks(INSERT_CHUNK) {
            let mut sql = Sql::default();
            sql.push("SELECT id FROM users WHERE app_id = ")
                .bind(Bind::Int(app.0))
                .push(" AND id IN (");
            push_list(&mut sql, chunk.iter().map(|u| Bind::Int(u.0)));
            sql.push(")");
            for row in sql.query().fetch_all(self.chat_pool()).await? {
                found.push(UserId(row.try_get("id")?));
            }
        }
        Ok(found)
    }

    async fn insert_dialog(&self, dialog: &Dialog) -> StoreResult<()> {
        let pair = match (dialog.kind, dialog.occupants.as_slice()) {
            (DialogType::Private, [a, b]) => Some(private_pair(*a, *b)),
            _ => None,
        };
        let mut tx = self.chat_pool().begin().await?;
        sqlx::query(
            "INSERT INTO chat_dialogs (id, app_id, dialog_type, name, photo, user_id, data, \
             is_join_required, private_pair, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(dialog.id.clone())
        .bind(dialog.app_id.0)
        .bind(dialog.kind.number())
        .bind(dialog.name.clone())
        .bind(dialog.photo.clone())
        .bind(dialog.user_id.0)
        .bind(dialog.data.as_ref().map(|d| d.to_string()))
        .bind(dialog.is_join_required.map(i64::from))
        .bind(pair)
        .bind(millis(dialog.created_at))
        .bind(millis(dialog.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "occupants_ids"))?;
        write_occupants(&mut tx, dialog, &HashMap::new()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn dialog(&self, app: AppId, id: &str) -> StoreResult<Option<Dialog>> {
        if let Some(dialog) = self.dialog_cache().get(app, id) {
            return Ok(Some(dialog));
        }
        let mut sql = Sql::default();
        sql.push(&format!(
            "SELECT {} FROM chat_dialogs d WHERE d.app_id = ",
            columns(&DIALOG_COLUMNS, "d")
        ))
        .bind(Bind::Int(app.0))
        .push(" AND d.id = ")
        .bind(Bind::Text(id.to_string()));
        self.one_dialog_cached(&sql, None).await
    }

    async fn private_dialog_of(
        &self,
        app: AppId,
        a: UserId,
        b: UserId,
    ) -> StoreResult<Option<Dialog>> {
        let key = (app, private_pair(a, b));
        if let Some(dialog) = self.dialog_cache().get_pair(&key) {
            return Ok(Some(dialog));
        }
        let mut sql = Sql::default();
        sql.push(&format!(
            "SELECT {} FROM chat_dialogs d WHERE d.app_id = ",
            columns(&DIALOG_COLUMNS, "d")
        ))
        .bind(Bind::Int(app.0))
        .push(" AND d.private_pair = ")
        .bind(Bind::Text(key.1.clone()));
        self.one_dialog_cached(&sql, Some(key.1)).await
    }

    async fn update_dialog(&self, dialog: &Dialog, removed: &[UserId]) -> StoreResult<()> {
        let mut tx = self.chat_pool().begin().await?;
        sqlx::query(
            "UPDATE chat_dialogs SET name = $1, photo = $2, data = $3, is_join_required = $4, \
             updated_at = $5 WHERE app_id = $6 AND id = $7",
        )
        .bind(dialog.name.clone())
        .bind(dialog.photo.clone())
        .bind(dialog.data.as_ref().map(|d| d.to_string()))
        .bind(dialog.is_join_required.map(i64::from))
        .bind(millis(dialog.updated_at))
        .bind(dialog.app_id.0)
        .bind(dialog.id.clone())
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query("SELECT user_id, hidden FROM chat_occupants WHERE dialog_id = $1")
            .bind(dialog.id.clone())
            .fetch_all(&mut *tx)
            .await?;
        let mut hidden = HashMap::new();
        for row in rows {
            hidden.insert(
                row.try_get::<i64, _>("user_id")?,
                row.try_get::<i64, _>("hidden")?,
            );
        }
        sqlx::query("DELETE FROM chat_occupants WHERE dialog_id = $1")
            .bind(dialog.id.clone())
            .execute(&mut *tx)
            .await?;
        write_occupants(&mut tx, dialog, &hidden).await?;
        for chunk in removed.chunks(INSERT_CHUNK) {
            let mut sql = Sql::default();
            sql.push("DELETE FROM chat_message_states WHERE dialog_id = ")
                .bind(Bind::Text(dialog.id.clone()))
                .push(" AND user_id IN (");
            push_list(&mut sql, chunk.iter().map(|u| Bind::Int(u.0)));
            sql.push(")");
            sql.query().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.dialog_cache().remove(dialog.app_id, &dialog.id);
        Ok(())
    }

    async fn delete_dialog(&self, app: AppId, id: &str) -> StoreResult<bool> {
        let mut tx = self.chat_pool().begin().await?;
        let exists = sqlx::query("SELECT id FROM chat_dialogs WHERE app_id = $1 AND id = $2")
            .bind(app.0)
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            tx.rollback().await?;
            return Ok(false);
        }
        for table in ["chat_message_states", "chat_messages", "chat_occupants"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE dialog_id = $1"))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM chat_dialogs WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.dialog_cache().remove(app, id);
        Ok(true)
    }

    async fn hide_dialog(
        &self,
        app: AppId,
        id: &str,
        user: UserId,
        hidden: bool,
    ) -> StoreResult<()> {
        // Every private message "shows the dialog again": no write when it already shows.
        if self.dialog_cache().is_hidden(app, id, user) == Some(hidden) {
            return Ok(());
        }
        sqlx::query("UPDATE chat_occupants SET hidden = $1 WHERE app_id = $2 AND dialog_id = $3 AND user_id = $4")
            .bind(i64::from(hidden))
            .bind(app.0)
            .bind(id.to_string())
            .bind(user.0)
            .execute(self.chat_pool())
            .await?;
        self.dialog_cache().set_hidden(app, id, user, hidden);
        Ok(())
    }

    async fn list_dialogs(
        &self,
        app: AppId,
        user: UserId,
        query: &DialogQuery,
    ) -> StoreResult<(Vec<Dialog>, i64)> {
        let filter = |sql: &mut Sql| {
            // Public dialogs and the user's own, each found through its index and the
            // dialogs then by id; an OR of the two would test every dialog of the app.
            sql.push(" FROM chat_dialogs d WHERE d.id IN (SELECT p.id FROM chat_dialogs p WHERE p.app_id = ")
                .bind(Bind::Int(app.0))
                .push(" AND p.dialog_type = 1 UNION SELECT o.dialog_id FROM chat_occupants o WHERE o.app_id = ")
                .bind(Bind::Int(app.0))
                .push(" AND o.user_id = ")
                .bind(Bind::Int(user.0))
                .push(" AND o.hidden = 0)");
            for f in &query.filters {
                sql.push(" AND ");
                if f.field == DialogField::OccupantsIds {
                    push_occupants_filter(sql, f);
                } else {
                    push_comparison(sql, dialog_column(f.field), f.op, &f.values);
                }
            }
        };
        let total = self.count_rows(&filter).await?;

        let mut page = Sql::default();
        page.push(&format!("SELECT {}", columns(&DIALOG_COLUMNS, "d")));
        filter(&mut page);
        push_order(&mut page, query, dialog_column(query.sort.field), "d.id");
        let rows = page.query().fetch_all(self.chat_pool()).await?;
        let mut dialogs = rows.iter().map(dialog_row).collect::<Result<Vec<_>, _>>()?;
        self.load_occupants(&mut dialogs).await?;
        Ok((dialogs, total))
    }

    async fn insert_message(
        &self,
        app: AppId,
        m: &ChatMessage,
        occupants: &[UserId],
    ) -> StoreResult<()> {
        let writer = self.chat.writer.get_or_init(|| {
            chat_writer::spawn(self.pool.clone(), self.engine(), self.chat.cache.clone())
        });
        let (done, result) = tokio::sync::oneshot::channel();
        let job = Job {
            app,
            message: m.clone(),
            occupants: occupants.to_vec(),
            done,
        };
        if writer.send(job).await.is_err() {
            // The writer is gone (its runtime shut down): write directly.
            return insert_one(self.chat_pool(), app, m, occupants).await;
        }
        result
            .await
            .unwrap_or_else(|_| Err(StoreError::Database(sqlx::Error::WorkerCrashed)))
    }

    async fn messages(&self, app: AppId, ids: &[String]) -> StoreResult<Vec<ChatMessage>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::default();
        sql.push(&format!(
            "SELECT {} FROM chat_messages m WHERE m.app_id = ",
            columns(&MESSAGE_COLUMNS, "m")
        ))
        .bind(Bind::Int(app.0))
        .push(" AND m.id IN (");
        push_list(&mut sql, texts(ids));
        sql.push(") ORDER BY m.seq");
        self.fetch_messages(&sql).await
    }

    async fn list_messages(
        &self,
        app: AppId,
        user: UserId,
        dialog_id: &str,
        query: &MessageQuery,
    ) -> StoreResult<Vec<ChatMessage>> {
        let mut page = Sql::default();
        page.push(&format!("SELECT {}", columns(&MESSAGE_COLUMNS, "m")));
        history_filter(&mut page, app, user, dialog_id, query);
        push_order(&mut page, query, message_column(query.sort.field), "m.seq");
        self.fetch_messages(&page).await
    }

    async fn count_messages(
        &self,
        app: AppId,
        user: UserId,
        dialog_id: &str,
        query: &MessageQuery,
    ) -> StoreResult<i64> {
        self.count_rows(&|sql: &mut Sql| history_filter(sql, app, user, dialog_id, query))
            .await
    }

    async fn mark_messages(
        &self,
        app: AppId,
        user: UserId,
        dialog_id: &str,
        ids: Option<&[String]>,
        receipt: Receipt,
    ) -> StoreResult<u64> {
        let read = i64::from(receipt == Receipt::Read);
        let Some(ids) = ids else {
            let unset = if read == 1 {
                "is_read = 0"
            } else {
                "delivered = 0"
            };
            let done = sqlx::query(&format!(
                "UPDATE chat_message_states SET delivered = 1, is_read = CASE WHEN $1 = 1 THEN 1 ELSE is_read END \
                 WHERE app_id = $2 AND dialog_id = $3 AND user_id = $4 AND {unset}"
            ))
            .bind(read)
            .bind(app.0)
            .bind(dialog_id.to_string())
            .bind(user.0)
            .execute(self.chat_pool())
            .await?;
            return Ok(done.rows_affected());
        };
        if ids.is_empty() {
            return Ok(0);
        }
        // An upsert: users without a state row (readers of public dialogs) get one.
        let mut sql = Sql::default();
        sql.push("INSERT INTO chat_message_states (message_seq, app_id, dialog_id, user_id, delivered, is_read, deleted) SELECT m.seq, m.app_id, m.dialog_id, ")
            .bind(Bind::Int(user.0))
            .push(", 1, ")
            .bind(Bind::Int(read))
            .push(", 0 FROM chat_messages m WHERE m.app_id = ")
            .bind(Bind::Int(app.0))
            .push(" AND m.dialog_id = ")
            .bind(Bind::Text(dialog_id.to_string()))
            .push(" AND m.id IN (");
        push_list(&mut sql, texts(ids));
        sql.push(
            ") ON CONFLICT (message_seq, user_id) DO UPDATE SET delivered = 1, \
             is_read = CASE WHEN excluded.is_read = 1 THEN 1 ELSE chat_message_states.is_read END",
        );
        Ok(sql.query().execute(self.chat_pool()).await?.rows_affected())
    }

    async fn update_message_body(
        &self,
        app: AppId,
        id: &str,
        body: &str,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut tx = self.chat_pool().begin().await?;
        sqlx::query(
            "UPDATE chat_messages SET body = $1, updated_at = $2 WHERE app_id = $3 AND id = $4",
        )
        .bind(body.to_string())
        .bind(millis(now))
        .bind(app.0)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE chat_dialogs SET last_message = $1 WHERE app_id = $2 AND last_message_id = $3",
        )
        .bind(body.to_string())
        .bind(app.0)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // Whichever dialog had it as its last message: edits are rare, start over.
        self.dialog_cache().clear();
        Ok(())
    }

    async fn delete_messages_for(
        &self,
        app: AppId,
        user: UserId,
        ids: &[String],
    ) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut sql = Sql::default();
        sql.push("INSERT INTO chat_message_states (message_seq, app_id, dialog_id, user_id, delivered, is_read, deleted) SELECT m.seq, m.app_id, m.dialog_id, ")
            .bind(Bind::Int(user.0))
            .push(", 0, 0, 1 FROM chat_messages m WHERE m.app_id = ")
            .bind(Bind::Int(app.0))
            .push(" AND m.id IN (");
        push_list(&mut sql, texts(ids));
        sql.push(") ON CONFLICT (message_seq, user_id) DO UPDATE SET deleted = 1");
        sql.query().execute(self.chat_pool()).await?;
        Ok(())
    }

    async fn delete_messages(&self, app: AppId, ids: &[String]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let in_ids = |sql: &mut Sql| {
            sql.push(" app_id = ")
                .bind(Bind::Int(app.0))
                .push(" AND id IN (");
            push_list(sql, texts(ids));
            sql.push(")");
        };
        let mut tx = self.chat_pool().begin().await?;
        let mut last = Sql::default();
        last.push("SELECT id FROM chat_dialogs WHERE");
        last.push(" app_id = ")
            .bind(Bind::Int(app.0))
            .push(" AND last_message_id IN (");
        push_list(&mut last, texts(ids));
        last.push(")");
        let affected: Vec<String> = last
            .query()
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<_, _>>()?;
        let mut states = Sql::default();
        states.push("DELETE FROM chat_message_states WHERE message_seq IN (SELECT seq FROM chat_messages WHERE");
        in_ids(&mut states);
        states.push(")");
        states.query().execute(&mut *tx).await?;
        let mut messages = Sql::default();
        messages.push("DELETE FROM chat_messages WHERE");
        in_ids(&mut messages);
        messages.query().execute(&mut *tx).await?;
        for dialog in &affected {
            set_last_message(&mut tx, app, dialog).await?;
        }
        tx.commit().await?;
        for dialog in &affected {
            self.dialog_cache().remove(app, dialog);
        }
        Ok(())
    }

    async fn unread_counts(
        &self,
        app: AppId,
        user: UserId,
        dialogs: Option<&[String]>,
    ) -> StoreResult<Vec<(String, i64)>> {
        let mut sql = Sql::default();
        sql.push("SELECT dialog_id, COUNT(*) AS n FROM chat_message_states WHERE app_id = ")
            .bind(Bind::Int(app.0))
            .push(" AND user_id = ")
            .bind(Bind::Int(user.0))
            .push(" AND is_read = 0 AND deleted = 0");
        if let Some(dialogs) = dialogs {
            if dialogs.is_empty() {
                return Ok(Vec::new());
            }
            sql.push(" AND dialog_id IN (");
            push_list(&mut sql, texts(dialogs));
            sql.push(")");
        }
        sql.push(" GROUP BY dialog_id ORDER BY dialog_id");
        let rows = sql.query().fetch_all(self.chat_pool()).await?;
        Ok(rows
            .iter()
            .map(|row| Ok((row.try_get("dialog_id")?, row.try_get("n")?)))
            .collect::<sqlx::Result<_>>()?)
    }

    async fn push_offline(
        &self,
        app: AppId,
        user: UserId,
        stanza: &str,
        now: OffsetDateTime,
        cap: usize,
    ) -> StoreResult<u64> {
        let mut tx = self.chat_pool().begin().await?;
        sqlx::query(
            "INSERT INTO chat_offline (app_id, user_id, stanza, stored_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(app.0)
        .bind(user.0)
        .bind(stanza.to_string())
        .bind(millis(now))
        .execute(&mut *tx)
        .await?;
        let dropped = sqlx::query(
            "DELETE FROM chat_offline WHERE app_id = $1 AND user_id = $2 AND id <= \
             (SELECT id FROM chat_offline WHERE app_id = $1 AND user_id = $2 ORDER BY id DESC LIMIT 1 OFFSET $3)",
        )
        .bind(app.0)
        .bind(user.0)
        .bind(i64::try_from(cap).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(dropped)
    }

    async fn take_offline(
        &self,
        app: AppId,
        user: UserId,
    ) -> StoreResult<Vec<(String, OffsetDateTime)>> {
        // One statement, so two logins at once never both receive a stanza.
        let rows = sqlx::query(
            "DELETE FROM chat_offline WHERE app_id = $1 AND user_id = $2 RETURNING id, stanza, stored_at",
        )
        .bind(app.0)
        .bind(user.0)
        .fetch_all(self.chat_pool())
        .await?;
        let mut stanzas = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64, _>("id")?,
                    row.try_get::<String, _>("stanza")?,
                    from_millis(row.try_get("stored_at")?),
                ))
            })
            .collect::<sqlx::Result<Vec<_>>>()?;
        stanzas.sort_by_key(|(id, _, _)| *id);
        Ok(stanzas.into_iter().map(|(_, s, t)| (s, t)).collect())
    }
}

/// One message in its own transaction: the writer's fallback when a batch fails.
pub(super) async fn insert_one(
    pool: &AnyPool,
    app: AppId,
    m: &ChatMessage,
    occupants: &[UserId],
) -> StoreResult<()> {
    let attachments: Vec<&serde_json::Map<String, serde_json::Value>> =
        m.attachments.iter().map(|a| &a.fields).collect();
    let attachments =
        serde_json::to_string(&attachments).map_err(|e| StoreError::Database(decode_err(e)))?;
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
            "INSERT INTO chat_messages (id, app_id, dialog_id, sender_id, recipient_id, body, attachments, \
             custom, markable, date_sent, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING seq",
        )
        .bind(m.id.clone())
        .bind(app.0)
        .bind(m.dialog_id.clone())
        .bind(m.sender_id.0)
        .bind(m.recipient_id.map(|r| r.0))
        .bind(m.body.clone())
        .bind(attachments)
        .bind(serde_json::Value::Object(m.custom.clone()).to_string())
        .bind(i64::from(m.markable))
        .bind(m.date_sent)
        .bind(millis(m.created_at))
        .bind(millis(m.updated_at))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "_id"))?;
    let seq: i64 = row.try_get("seq")?;
    for chunk in occupants.chunks(INSERT_CHUNK) {
        let mut sql = Sql::default();
        sql.push("INSERT INTO chat_message_states (message_seq, app_id, dialog_id, user_id, delivered, is_read) VALUES ");
        for (i, user) in chunk.iter().enumerate() {
            let own = i64::from(*user == m.sender_id);
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(")
                .bind(Bind::Int(seq))
                .push(", ")
                .bind(Bind::Int(app.0))
                .push(", ")
                .bind(Bind::Text(m.dialog_id.clone()))
                .push(", ")
                .bind(Bind::Int(user.0))
                .push(", ")
                .bind(Bind::Int(own))
                .push(", ")
                .bind(Bind::Int(own))
                .push(")");
        }
        sql.query().execute(&mut *tx).await?;
    }
    sqlx::query(
            "UPDATE chat_dialogs SET last_message = $1, last_message_date_sent = $2, \
             last_message_user_id = $3, last_message_id = $4, updated_at = $5 WHERE app_id = $6 AND id = $7",
        )
        .bind(m.body.clone())
        .bind(m.date_sent)
        .bind(m.sender_id.0)
        .bind(m.id.clone())
        .bind(millis(m.created_at))
        .bind(app.0)
        .bind(m.dialog_id.clone())
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE chat_occupants SET hidden = 0 WHERE dialog_id = $1 AND hidden = 1")
        .bind(m.dialog_id.clone())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
