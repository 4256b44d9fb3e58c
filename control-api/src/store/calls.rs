//! [`CallStore`] over the same `AnyPool`: finished calls and their participants.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::rows::{from_millis, millis};
use super::sql::SqlStore;
use crate::domain::calls::{CallOutcome, CallRecord, CallStore, CallType};
use crate::domain::model::{AppId, UserId};
use crate::domain::store::StoreResult;

const CALL_COLUMNS: &str = "c.app_id, c.session_id, c.caller_id, c.opponents, c.call_type, \
     c.outcome, c.started_at, c.answered_at, c.ended_at";

fn call(row: &AnyRow) -> sqlx::Result<CallRecord> {
    let opponents: String = row.try_get("opponents")?;
    let decode = |column: &str, e: &str| sqlx::Error::ColumnDecode {
        index: column.into(),
        source: e.to_string().into(),
    };
    Ok(CallRecord {
        app: AppId(row.try_get("app_id")?),
        session_id: row.try_get("session_id")?,
        caller: UserId(row.try_get("caller_id")?),
        opponents: opponents
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map(UserId))
            .collect::<Result<_, _>>()
            .map_err(|_| decode("opponents", "not a list of ids"))?,
        call_type: CallType::from_code(row.try_get("call_type")?)
            .ok_or_else(|| decode("call_type", "unknown call type"))?,
        outcome: CallOutcome::parse(&row.try_get::<String, _>("outcome")?)
            .ok_or_else(|| decode("outcome", "unknown outcome"))?,
        started_at: from_millis(row.try_get("started_at")?),
        answered_at: row
            .try_get::<Option<i64>, _>("answered_at")?
            .map(from_millis),
        ended_at: from_millis(row.try_get("ended_at")?),
    })
}

#[async_trait]
impl CallStore for SqlStore {
    async fn insert_call(&self, record: &CallRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // Replacing keeps a retried write idempotent; participants go with the cascade.
        sqlx::query("DELETE FROM call_sessions WHERE app_id = $1 AND session_id = $2")
            .bind(record.app.0)
            .bind(record.session_id.clone())
            .execute(&mut *tx)
            .await?;
        let opponents = record
            .opponents
            .iter()
            .map(|u| u.0.to_string())
            .collect::<Vec<_>>()
            .join(",");
        sqlx::query(
            "INSERT INTO call_sessions (app_id, session_id, caller_id, opponents, call_type, \
             outcome, started_at, answered_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(record.app.0)
        .bind(record.session_id.clone())
        .bind(record.caller.0)
        .bind(opponents)
        .bind(record.call_type.code())
        .bind(record.outcome.as_str())
        .bind(millis(record.started_at))
        .bind(record.answered_at.map(millis))
        .bind(millis(record.ended_at))
        .execute(&mut *tx)
        .await?;
        let mut people = vec![record.caller];
        for opponent in &record.opponents {
            if !people.contains(opponent) {
                people.push(*opponent);
            }
        }
        for user in people {
            sqlx::query(
                "INSERT INTO call_participants (app_id, session_id, user_id, started_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(record.app.0)
            .bind(record.session_id.clone())
            .bind(user.0)
            .bind(millis(record.started_at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_calls(
        &self,
        app: AppId,
        user: UserId,
        limit: i64,
        skip: i64,
    ) -> StoreResult<(Vec<CallRecord>, i64)> {
        let rows = sqlx::query(&format!(
            "SELECT {CALL_COLUMNS} FROM call_participants p JOIN call_sessions c \
             ON c.app_id = p.app_id AND c.session_id = p.session_id \
             WHERE p.app_id = $1 AND p.user_id = $2 \
             ORDER BY p.started_at DESC, c.session_id LIMIT $3 OFFSET $4"
        ))
        .bind(app.0)
        .bind(user.0)
        .bind(limit)
        .bind(skip)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM call_participants WHERE app_id = $1 AND user_id = $2",
        )
        .bind(app.0)
        .bind(user.0)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        let calls = rows.iter().map(call).collect::<sqlx::Result<Vec<_>>>()?;
        Ok((calls, total))
    }
}
