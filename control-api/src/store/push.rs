//! [`PushStore`] over the same `AnyPool`: subscriptions and push events.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;
use time::OffsetDateTime;

use super::query::{Bind, Sql};
use super::rows::{from_millis, millis};
use super::sql::SqlStore;
use crate::domain::model::{AppId, UserId};
use crate::domain::push::{Channel, PushEvent, PushStore, Schedule, Subscription};
use crate::domain::store::StoreResult;

const SUBSCRIPTION_COLUMNS: &str =
    "id, app_id, user_id, channel, platform, udid, token, environment, bundle_id, created_at";
const EVENT_COLUMNS: &str = "id, app_id, user_id, event_type, environment, push_type, message, \
     recipients, sent, failed, created_at, updated_at, name, next_at, period, end_at, occurrences";

fn decode<T>(what: &str, value: Option<T>) -> sqlx::Result<T> {
    value.ok_or_else(|| sqlx::Error::Decode(format!("unknown {what}").into()))
}

fn subscription_row(row: &AnyRow) -> sqlx::Result<Subscription> {
    let channel: String = row.try_get("channel")?;
    Ok(Subscription {
        id: row.try_get("id")?,
        app_id: AppId(row.try_get("app_id")?),
        user_id: UserId(row.try_get("user_id")?),
        channel: decode("channel", Channel::parse(&channel))?,
        platform: row.try_get("platform")?,
        udid: row.try_get("udid")?,
        token: row.try_get("token")?,
        environment: row.try_get("environment")?,
        bundle_id: row.try_get("bundle_id")?,
        created_at: from_millis(row.try_get("created_at")?),
    })
}

fn event_row(row: &AnyRow) -> sqlx::Result<PushEvent> {
    let push_type: Option<String> = row.try_get("push_type")?;
    let recipients: String = row.try_get("recipients")?;
    Ok(PushEvent {
        id: row.try_get("id")?,
        app_id: AppId(row.try_get("app_id")?),
        user_id: UserId(row.try_get("user_id")?),
        event_type: row.try_get("event_type")?,
        environment: row.try_get("environment")?,
        push_type: push_type
            .map(|p| decode("push type", Channel::parse(&p)))
            .transpose()?,
        message: row.try_get("message")?,
        recipients: serde_json::from_str(&recipients)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        sent: row.try_get("sent")?,
        failed: row.try_get("failed")?,
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
        name: row.try_get("name")?,
        schedule: Schedule {
            next_at: row.try_get::<Option<i64>, _>("next_at")?.map(from_millis),
            period: row.try_get("period")?,
            end_at: row.try_get::<Option<i64>, _>("end_at")?.map(from_millis),
            occurrences: row.try_get("occurrences")?,
        },
    })
}

#[async_trait]
impl PushStore for SqlStore {
    async fn upsert_subscription(&self, s: &Subscription) -> StoreResult<Subscription> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM push_subscriptions WHERE app_id = $1 AND user_id = $2 AND udid = $3 AND channel = $4",
        )
        .bind(s.app_id.0)
        .bind(s.user_id.0)
        .bind(s.udid.clone())
        .bind(s.channel.name())
        .execute(&mut *tx)
        .await?;
        let sql = format!(
            "INSERT INTO push_subscriptions (app_id, user_id, channel, platform, udid, token, \
             environment, bundle_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING {SUBSCRIPTION_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(s.app_id.0)
            .bind(s.user_id.0)
            .bind(s.channel.name())
            .bind(s.platform.clone())
            .bind(s.udid.clone())
            .bind(s.token.clone())
            .bind(s.environment.clone())
            .bind(s.bundle_id.clone())
            .bind(millis(s.created_at))
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(subscription_row(&row)?)
    }

    async fn subscriptions_of(
        &self,
        app: AppId,
        users: &[UserId],
    ) -> StoreResult<Vec<Subscription>> {
        let mut found = Vec::new();
        for chunk in users.chunks(500) {
            let mut sql = Sql::default();
            sql.push(&format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM push_subscriptions WHERE app_id = "
            ))
            .bind(Bind::Int(app.0))
            .push(" AND user_id IN ")
            .bind_list(chunk.iter().map(|u| Bind::Int(u.0)))
            .push(" ORDER BY id");
            let rows = sql.query().fetch_all(&self.pool).await?;
            for row in &rows {
                found.push(subscription_row(row)?);
            }
        }
        Ok(found)
    }

    async fn delete_subscription(&self, app: AppId, user: UserId, id: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "DELETE FROM push_subscriptions WHERE app_id = $1 AND user_id = $2 AND id = $3",
        )
        .bind(app.0)
        .bind(user.0)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_subscription_by_id(&self, app: AppId, id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM push_subscriptions WHERE app_id = $1 AND id = $2")
            .bind(app.0)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn count_subscriptions(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM push_subscriptions")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    async fn users_by_tags(
        &self,
        app: AppId,
        any: &[String],
        all: &[String],
        exclude: &[String],
    ) -> StoreResult<Vec<UserId>> {
        let wanted: BTreeSet<&String> = any.iter().chain(all).chain(exclude).collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::default();
        sql.push("SELECT user_id, tag FROM user_tags WHERE app_id = ")
            .bind(Bind::Int(app.0))
            .push(" AND tag IN ")
            .bind_list(wanted.iter().map(|t| Bind::Text((*t).clone())));
        let mut tags_of: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
        for row in sql.query().fetch_all(&self.pool).await? {
            tags_of
                .entry(row.try_get("user_id")?)
                .or_default()
                .insert(row.try_get("tag")?);
        }
        Ok(tags_of
            .into_iter()
            .filter(|(_, tags)| any.is_empty() || any.iter().any(|t| tags.contains(t)))
            .filter(|(_, tags)| all.iter().all(|t| tags.contains(t)))
            .filter(|(_, tags)| !exclude.iter().any(|t| tags.contains(t)))
            .map(|(user, _)| UserId(user))
            .collect())
    }

    async fn insert_event(&self, e: &PushEvent) -> StoreResult<PushEvent> {
        let sql = format!(
            "INSERT INTO push_events (app_id, user_id, event_type, environment, push_type, message, \
             recipients, sent, failed, created_at, updated_at, name, next_at, period, end_at, \
             occurrences) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             $15, $16) RETURNING {EVENT_COLUMNS}"
        );
        let recipients = serde_json::to_string(&e.recipients).expect("plain data serializes");
        let row = sqlx::query(&sql)
            .bind(e.app_id.0)
            .bind(e.user_id.0)
            .bind(e.event_type.clone())
            .bind(e.environment.clone())
            .bind(e.push_type.map(Channel::name))
            .bind(e.message.clone())
            .bind(recipients)
            .bind(e.sent)
            .bind(e.failed)
            .bind(millis(e.created_at))
            .bind(millis(e.updated_at))
            .bind(e.name.clone())
            .bind(e.schedule.next_at.map(millis))
            .bind(e.schedule.period)
            .bind(e.schedule.end_at.map(millis))
            .bind(e.schedule.occurrences)
            .fetch_one(&self.pool)
            .await?;
        Ok(event_row(&row)?)
    }

    async fn update_event_counts(&self, e: &PushEvent) -> StoreResult<()> {
        sqlx::query("UPDATE push_events SET sent = $1, failed = $2, updated_at = $3 WHERE app_id = $4 AND id = $5")
            .bind(e.sent)
            .bind(e.failed)
            .bind(millis(e.updated_at))
            .bind(e.app_id.0)
            .bind(e.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn event(&self, app: AppId, id: i64) -> StoreResult<Option<PushEvent>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM push_events WHERE app_id = $1 AND id = $2");
        let row = sqlx::query(&sql)
            .bind(app.0)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(event_row).transpose()?)
    }

    async fn list_events(
        &self,
        app: AppId,
        user: UserId,
        limit: i64,
        offset: i64,
    ) -> StoreResult<(Vec<PushEvent>, i64)> {
        super::query::owned_page(
            &self.pool,
            "push_events",
            EVENT_COLUMNS,
            (app, user),
            (limit, offset),
            event_row,
        )
        .await
    }

    async fn delete_event(&self, app: AppId, user: UserId, id: i64) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM push_events WHERE app_id = $1 AND user_id = $2 AND id = $3")
                .bind(app.0)
                .bind(user.0)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn due_events(&self, now: OffsetDateTime, limit: i64) -> StoreResult<Vec<PushEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM push_events WHERE next_at IS NOT NULL AND next_at <= $1 \
             ORDER BY next_at LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(millis(now))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(event_row).collect::<Result<_, _>>()?)
    }

    async fn claim_delivery(
        &self,
        app: AppId,
        id: i64,
        due: OffsetDateTime,
        next: Option<OffsetDateTime>,
    ) -> StoreResult<bool> {
        // Compare-and-set on next_at: of several nodes polling the same database, one wins.
        let done = sqlx::query(
            "UPDATE push_events SET next_at = $1, occurrences = occurrences + 1 \
             WHERE app_id = $2 AND id = $3 AND next_at = $4",
        )
        .bind(next.map(millis))
        .bind(app.0)
        .bind(id)
        .bind(millis(due))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_dialog_muted(
        &self,
        app: AppId,
        dialog: &str,
        user: UserId,
        muted: bool,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE chat_occupants SET muted = $1 WHERE app_id = $2 AND dialog_id = $3 AND user_id = $4",
        )
        .bind(i64::from(muted))
        .bind(app.0)
        .bind(dialog.to_string())
        .bind(user.0)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn dialog_muted(
        &self,
        app: AppId,
        dialog: &str,
        user: UserId,
    ) -> StoreResult<Option<bool>> {
        let row = sqlx::query(
            "SELECT muted FROM chat_occupants WHERE app_id = $1 AND dialog_id = $2 AND user_id = $3",
        )
        .bind(app.0)
        .bind(dialog.to_string())
        .bind(user.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| r.try_get::<i64, _>("muted"))
            .transpose()?
            .map(|m| m != 0))
    }

    async fn muted_among(
        &self,
        app: AppId,
        dialog: &str,
        users: &[UserId],
    ) -> StoreResult<Vec<UserId>> {
        let mut muted = Vec::new();
        for chunk in users.chunks(500) {
            let mut sql = Sql::default();
            sql.push("SELECT user_id FROM chat_occupants WHERE muted <> 0 AND app_id = ")
                .bind(Bind::Int(app.0))
                .push(" AND dialog_id = ")
                .bind(Bind::Text(dialog.to_string()))
                .push(" AND user_id IN ")
                .bind_list(chunk.iter().map(|u| Bind::Int(u.0)));
            for row in sql.query().fetch_all(&self.pool).await? {
                muted.push(UserId(row.try_get("user_id")?));
            }
        }
        Ok(muted)
    }
}
