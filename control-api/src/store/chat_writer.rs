//! Group commit for chat history: messages posted at about the same time share one
//! transaction.
//!
//! [`ChatStore::insert_message`](crate::domain::chat::ChatStore::insert_message) hands the
//! message to one writer task per store and waits for its commit, so the guarantee is the
//! same as before: when the call returns, the message, its per-occupant state and the
//! dialog's last message are durable (to the engine's `synchronous` setting) and any reader
//! sees them; the XMPP server routes only after that. What changes is the cost: while one
//! transaction commits, the next messages queue, and the writer takes them all (up to
//! [`MAX_BATCH`]) into one transaction of a few multi-row statements instead of five
//! statements and a commit per message. A batch that fails as a whole (a dialog deleted
//! meanwhile) is written again one message per transaction, so only the bad one fails; a
//! taken id fails only its own message (`ON CONFLICT DO NOTHING`, then `Conflict`).

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection, Row};
use tokio::sync::{mpsc, oneshot};

use super::chat_cache::DialogCache;
use super::rows::millis;
use super::sql::Engine;
use crate::domain::chat::model::ChatMessage;
use crate::domain::model::{AppId, UserId};
use crate::domain::store::{StoreError, StoreResult};

/// Messages per transaction at most: arbitrary, bounds one commit's size and the wait of
/// the last message in it.
const MAX_BATCH: usize = 256;
/// Messages waiting for the writer before senders wait too (backpressure).
const QUEUE: usize = 4 * MAX_BATCH;
/// Rows per multi-row statement: far below SQLite's 32766 and PostgreSQL's 65535 bind
/// parameters at 12 per message row, and few distinct statement texts to prepare.
const ROWS_PER_STATEMENT: usize = 64;

pub(super) struct Job {
    pub app: AppId,
    pub message: ChatMessage,
    pub occupants: Vec<UserId>,
    pub done: oneshot::Sender<StoreResult<()>>,
}

/// The sending side; the task ends when the store (and so this) is dropped.
pub(super) type Writer = mpsc::Sender<Job>;

pub(super) fn spawn(pool: AnyPool, engine: Engine, cache: Arc<DialogCache>) -> Writer {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(pool, engine, cache, rx));
    tx
}

async fn run(pool: AnyPool, engine: Engine, cache: Arc<DialogCache>, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut conn = None;
    let closed = pool.close_event();
    tokio::pin!(closed);
    loop {
        let job = tokio::select! {
            job = rx.recv() => match job {
                Some(job) => job,
                None => break,
            },
            // `close()` waits for checked-out connections: give ours back.
            () = &mut closed, if conn.is_some() => {
                conn = None;
                continue;
            }
        };
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let written = match writer_connection(&pool, engine, &mut conn).await {
            Ok(c) => write_batch(c, engine, &cache, &batch).await,
            Err(e) => Err(e),
        };
        match written {
            Ok(outcomes) => {
                for (job, outcome) in batch.drain(..).zip(outcomes) {
                    if outcome.is_ok() {
                        cache.on_message(job.app, &job.message);
                    }
                    let _ = job.done.send(outcome);
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, size = batch.len(), "chat batch failed: writing one by one");
                // It may be the connection that failed: take a fresh one next time.
                conn = None;
                for job in batch.drain(..) {
                    let outcome =
                        super::chat::insert_one(&pool, job.app, &job.message, &job.occupants).await;
                    if outcome.is_ok() {
                        cache.on_message(job.app, &job.message);
                    }
                    let _ = job.done.send(outcome);
                }
            }
        }
    }
}

/// The writer keeps one connection: its page cache stays warm with the pages every batch
/// touches (pooled connections would each read them again after the others' writes).
async fn writer_connection<'c>(
    pool: &AnyPool,
    engine: Engine,
    conn: &'c mut Option<PoolConnection<Any>>,
) -> StoreResult<&'c mut PoolConnection<Any>> {
    if conn.is_none() {
        let mut fresh = pool.acquire().await?;
        if engine == Engine::Sqlite {
            // 16 MiB of pages (default 2 MiB), and statement journals of multi-row
            // statements in memory rather than in temporary files.
            sqlx::query("PRAGMA cache_size = -16384")
                .execute(&mut *fresh)
                .await?;
            sqlx::query("PRAGMA temp_store = MEMORY")
                .execute(&mut *fresh)
                .await?;
        }
        *conn = Some(fresh);
    }
    // Set just above.
    Ok(conn.as_mut().expect("writer connection"))
}

/// One transaction for the batch; per message `Ok` or `Conflict` (a taken id).
async fn write_batch(
    conn: &mut PoolConnection<Any>,
    engine: Engine,
    cache: &DialogCache,
    batch: &[Job],
) -> StoreResult<Vec<StoreResult<()>>> {
    let mut tx = conn.begin().await?;
    let mut seqs: Vec<Option<i64>> = vec![None; batch.len()];
    for (chunk_index, chunk) in batch.chunks(ROWS_PER_STATEMENT).enumerate() {
        let inserted = insert_messages(&mut tx, engine, chunk).await?;
        // A taken id returns no row; of two equal ids in one batch the first is inserted.
        let mut by_key: HashMap<(i64, String), i64> = inserted.into_iter().collect();
        for (i, job) in chunk.iter().enumerate() {
            seqs[chunk_index * ROWS_PER_STATEMENT + i] =
                by_key.remove(&(job.app.0, job.message.id.clone()));
        }
    }
    insert_states(&mut tx, engine, batch, &seqs).await?;
    update_dialogs(&mut tx, engine, cache, batch, &seqs).await?;
    tx.commit().await?;
    Ok(seqs
        .iter()
        .map(|seq| match seq {
            Some(_) => Ok(()),
            None => Err(StoreError::Conflict { field: "_id" }),
        })
        .collect())
}

/// `rows` rows of `width` parameters, each row in parentheses (`rows` 0: one bare list).
/// PostgreSQL numbers them (`$1, $2, …`). SQLite gets anonymous `?`: sqlx matches numbered
/// ones to arguments by name, which costs time quadratic in their count (most of the
/// server's CPU at 12 × 64 parameters).
fn placeholders(sql: &mut String, engine: Engine, rows: usize, width: usize) {
    let mut n = 0;
    for row in 0..rows.max(1) {
        if rows > 0 {
            sql.push_str(if row == 0 { "(" } else { ", (" });
        }
        for col in 0..width {
            n += 1;
            if col > 0 {
                sql.push_str(", ");
            }
            match engine {
                Engine::Sqlite => sql.push('?'),
                Engine::Postgres => {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
            }
        }
        if rows > 0 {
            sql.push(')');
        }
    }
}

async fn insert_messages(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    chunk: &[Job],
) -> StoreResult<Vec<((i64, String), i64)>> {
    let mut sql = String::from(
        "INSERT INTO chat_messages (id, app_id, dialog_id, sender_id, recipient_id, body, attachments, \
         custom, markable, date_sent, created_at, updated_at) VALUES ",
    );
    placeholders(&mut sql, engine, chunk.len(), 12);
    sql.push_str(" ON CONFLICT DO NOTHING RETURNING seq, app_id, id");
    let mut query = sqlx::query(&sql);
    for job in chunk {
        let m = &job.message;
        let attachments: Vec<&serde_json::Map<String, serde_json::Value>> =
            m.attachments.iter().map(|a| &a.fields).collect();
        let attachments = serde_json::to_string(&attachments)
            .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?;
        query = query
            .bind(m.id.clone())
            .bind(job.app.0)
            .bind(m.dialog_id.clone())
            .bind(m.sender_id.0)
            .bind(m.recipient_id.map(|r| r.0))
            .bind(m.body.clone())
            .bind(attachments)
            .bind(serde_json::Value::Object(m.custom.clone()).to_string())
            .bind(i64::from(m.markable))
            .bind(m.date_sent)
            .bind(millis(m.created_at))
            .bind(millis(m.updated_at));
    }
    let rows = query.fetch_all(&mut **tx).await?;
    rows.iter()
        .map(|row| {
            Ok((
                (row.try_get::<i64, _>("app_id")?, row.try_get("id")?),
                row.try_get("seq")?,
            ))
        })
        .collect::<sqlx::Result<_>>()
        .map_err(Into::into)
}

/// A state row per occupant of each inserted message; the sender's is read and delivered.
async fn insert_states(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    batch: &[Job],
    seqs: &[Option<i64>],
) -> StoreResult<()> {
    let rows: Vec<(i64, &Job, UserId)> = batch
        .iter()
        .zip(seqs)
        .filter_map(|(job, seq)| seq.map(|seq| (seq, job)))
        .flat_map(|(seq, job)| job.occupants.iter().map(move |u| (seq, job, *u)))
        .collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT * 2) {
        let mut sql = String::from(
            "INSERT INTO chat_message_states (message_seq, app_id, dialog_id, user_id, delivered, is_read) VALUES ",
        );
        placeholders(&mut sql, engine, chunk.len(), 6);
        let mut query = sqlx::query(&sql);
        for (seq, job, user) in chunk {
            let own = i64::from(*user == job.message.sender_id);
            query = query
                .bind(*seq)
                .bind(job.app.0)
                .bind(job.message.dialog_id.clone())
                .bind(user.0)
                .bind(own)
                .bind(own);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Each dialog's last message becomes the batch's last one in it, and the dialog shows
/// again to occupants who had hidden it (unless the cache knows nobody has).
async fn update_dialogs(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    engine: Engine,
    cache: &DialogCache,
    batch: &[Job],
    seqs: &[Option<i64>],
) -> StoreResult<()> {
    let mut last: HashMap<&str, &Job> = HashMap::new();
    for (job, seq) in batch.iter().zip(seqs) {
        if seq.is_some() {
            last.insert(job.message.dialog_id.as_str(), job);
        }
    }
    let last: Vec<&Job> = last.into_values().collect();
    for chunk in last.chunks(ROWS_PER_STATEMENT) {
        // VALUES columns are column1.. on both engines.
        let mut sql = String::from(
            "UPDATE chat_dialogs SET last_message = v.column2, last_message_date_sent = v.column3, \
             last_message_user_id = v.column4, last_message_id = v.column5, updated_at = v.column6 \
             FROM (VALUES ",
        );
        placeholders(&mut sql, engine, chunk.len(), 6);
        sql.push_str(") AS v WHERE chat_dialogs.id = v.column1");
        let mut query = sqlx::query(&sql);
        for job in chunk {
            let m = &job.message;
            query = query
                .bind(m.dialog_id.clone())
                .bind(m.body.clone())
                .bind(m.date_sent)
                .bind(m.sender_id.0)
                .bind(m.id.clone())
                .bind(millis(m.created_at));
        }
        query.execute(&mut **tx).await?;

        let hidden: Vec<&str> = chunk
            .iter()
            .filter(|job| cache.any_hidden(job.app, &job.message.dialog_id))
            .map(|job| job.message.dialog_id.as_str())
            .collect();
        if hidden.is_empty() {
            continue;
        }
        let mut unhide = String::from(
            "UPDATE chat_occupants SET hidden = 0 WHERE hidden = 1 AND dialog_id IN (",
        );
        placeholders(&mut unhide, engine, 0, hidden.len());
        unhide.push(')');
        let mut query = sqlx::query(&unhide);
        for id in hidden {
            query = query.bind(id.to_string());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_and_anonymous_for_sqlite() {
        let mut pg = String::new();
        placeholders(&mut pg, Engine::Postgres, 2, 3);
        assert_eq!(pg, "($1, $2, $3), ($4, $5, $6)");
        let mut lite = String::new();
        placeholders(&mut lite, Engine::Sqlite, 2, 2);
        assert_eq!(lite, "(?, ?), (?, ?)");
        let mut list = String::new();
        placeholders(&mut list, Engine::Postgres, 0, 3);
        assert_eq!(list, "$1, $2, $3");
    }
}
