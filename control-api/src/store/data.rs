//! [`DataStore`] over the same `AnyPool`: custom-object classes and records, their typed
//! values and permissions kept as JSON text.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::query::{Bind, Sql};
use super::rows::{from_millis, millis};
use super::sql::SqlStore;
use crate::domain::data::{DataClass, DataStore, Record};
use crate::domain::model::{AppId, UserId};
use crate::domain::store::{StoreError, StoreResult};

const CLASS_COLUMNS: &str = "id, app_id, name, fields, permissions, create_allowed, created_at";
const RECORD_COLUMNS: &str =
    "id, app_id, class_id, user_id, parent_id, fields, permissions, created_at, updated_at";

fn json<T: serde::de::DeserializeOwned>(text: &str) -> sqlx::Result<T> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn text<T: serde::Serialize>(value: &T) -> String {
    // Serializing plain data structs and JSON maps cannot fail.
    serde_json::to_string(value).expect("serializable")
}

fn class_row(row: &AnyRow) -> sqlx::Result<DataClass> {
    Ok(DataClass {
        id: row.try_get("id")?,
        app_id: AppId(row.try_get("app_id")?),
        name: row.try_get("name")?,
        fields: json(&row.try_get::<String, _>("fields")?)?,
        permissions: json(&row.try_get::<String, _>("permissions")?)?,
        create_allowed: row.try_get::<i64, _>("create_allowed")? != 0,
        created_at: from_millis(row.try_get("created_at")?),
    })
}

fn record_row(row: &AnyRow) -> sqlx::Result<Record> {
    let permissions: Option<String> = row.try_get("permissions")?;
    Ok(Record {
        id: row.try_get("id")?,
        app_id: AppId(row.try_get("app_id")?),
        class_id: row.try_get("class_id")?,
        user_id: UserId(row.try_get("user_id")?),
        parent_id: row.try_get("parent_id")?,
        fields: json(&row.try_get::<String, _>("fields")?)?,
        permissions: permissions.as_deref().map(json).transpose()?,
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

/// Ids per statement: keeps the bind count far below PostgreSQL's 65535 (and SQLite's
/// 32766).
const CHUNK: usize = 500;

/// Records of `app` whose `column` (`id` or `parent_id`) is among `ids`.
async fn records_where(
    tx: &mut Transaction<'_, Any>,
    app: AppId,
    column: &str,
    ids: &[String],
) -> StoreResult<Vec<Record>> {
    let mut found = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let mut sql = Sql::default();
        sql.push(&format!(
            "SELECT {RECORD_COLUMNS} FROM data_records WHERE app_id = "
        ))
        .bind(Bind::Int(app.0))
        .push(&format!(" AND {column} IN ("));
        push_ids(&mut sql, chunk);
        sql.push(")");
        let rows = sql.query().fetch_all(&mut **tx).await?;
        for row in &rows {
            found.push(record_row(row)?);
        }
    }
    Ok(found)
}

/// Deletes `ids` and every record below them through `_parent_id`, level by level. Each
/// record is taken once (`seen`), so a cycle ends and the number of levels is bounded by
/// the number of records; a parent id that names no record still takes its orphans.
async fn delete_with_descendants(
    tx: &mut Transaction<'_, Any>,
    app: AppId,
    ids: &[String],
) -> StoreResult<Vec<Record>> {
    let mut deleted = records_where(tx, app, "id", ids).await?;
    let mut seen: HashSet<String> = ids.iter().cloned().collect();
    let mut level: Vec<String> = ids.to_vec();
    while !level.is_empty() {
        let children = records_where(tx, app, "parent_id", &level).await?;
        level.clear();
        for child in children {
            if seen.insert(child.id.clone()) {
                level.push(child.id.clone());
                deleted.push(child);
            }
        }
    }
    let doomed: Vec<String> = deleted.iter().map(|r| r.id.clone()).collect();
    for chunk in doomed.chunks(CHUNK) {
        let mut sql = Sql::default();
        sql.push("DELETE FROM data_records WHERE app_id = ")
            .bind(Bind::Int(app.0))
            .push(" AND id IN (");
        push_ids(&mut sql, chunk);
        sql.push(")");
        sql.query().execute(&mut **tx).await?;
    }
    Ok(deleted)
}

fn push_ids(sql: &mut Sql, ids: &[String]) {
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(Bind::Text(id.clone()));
    }
}

#[async_trait]
impl DataStore for SqlStore {
    async fn insert_class(&self, c: &DataClass) -> StoreResult<DataClass> {
        let sql = format!(
            "INSERT INTO data_classes (app_id, name, fields, permissions, create_allowed, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {CLASS_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(c.app_id.0)
            .bind(c.name.clone())
            .bind(text(&c.fields))
            .bind(text(&c.permissions))
            .bind(i64::from(c.create_allowed))
            .bind(millis(c.created_at))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| match e.as_database_error() {
                Some(db) if db.is_unique_violation() => StoreError::Conflict { field: "name" },
                _ => StoreError::Database(e),
            })?;
        Ok(class_row(&row)?)
    }

    async fn class(&self, app: AppId, name: &str) -> StoreResult<Option<DataClass>> {
        let sql =
            format!("SELECT {CLASS_COLUMNS} FROM data_classes WHERE app_id = $1 AND name = $2");
        let row = sqlx::query(&sql)
            .bind(app.0)
            .bind(name.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(class_row).transpose()?)
    }

    async fn list_classes(&self, app: AppId) -> StoreResult<Vec<DataClass>> {
        let sql =
            format!("SELECT {CLASS_COLUMNS} FROM data_classes WHERE app_id = $1 ORDER BY name");
        let rows = sqlx::query(&sql).bind(app.0).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(class_row).collect::<Result<_, _>>()?)
    }

    async fn update_class(&self, c: &DataClass) -> StoreResult<()> {
        sqlx::query(
            "UPDATE data_classes SET fields = $1, permissions = $2, create_allowed = $3 \
             WHERE app_id = $4 AND id = $5",
        )
        .bind(text(&c.fields))
        .bind(text(&c.permissions))
        .bind(i64::from(c.create_allowed))
        .bind(c.app_id.0)
        .bind(c.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_class(&self, app: AppId, name: &str) -> StoreResult<Option<Vec<Record>>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT id FROM data_classes WHERE app_id = $1 AND name = $2")
            .bind(app.0)
            .bind(name.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let class_id: i64 = row.try_get("id")?;
        let ids: Vec<String> = sqlx::query("SELECT id FROM data_records WHERE class_id = $1")
            .bind(class_id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        let deleted = delete_with_descendants(&mut tx, app, &ids).await?;
        sqlx::query("DELETE FROM data_classes WHERE id = $1")
            .bind(class_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(deleted))
    }

    async fn insert_record(&self, r: &Record) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO data_records (id, app_id, class_id, user_id, parent_id, fields, \
             permissions, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(r.id.clone())
        .bind(r.app_id.0)
        .bind(r.class_id)
        .bind(r.user_id.0)
        .bind(r.parent_id.clone())
        .bind(text(&r.fields))
        .bind(r.permissions.as_ref().map(text))
        .bind(millis(r.created_at))
        .bind(millis(r.updated_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn records(
        &self,
        app: AppId,
        class_id: i64,
        ids: Option<&[String]>,
    ) -> StoreResult<Vec<Record>> {
        let mut sql = Sql::default();
        sql.push(&format!(
            "SELECT {RECORD_COLUMNS} FROM data_records WHERE app_id = "
        ))
        .bind(Bind::Int(app.0))
        .push(" AND class_id = ")
        .bind(Bind::Int(class_id));
        if let Some(ids) = ids {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            sql.push(" AND id IN (");
            push_ids(&mut sql, ids);
            sql.push(")");
        }
        sql.push(" ORDER BY created_at, id");
        let rows = sql.query().fetch_all(&self.pool).await?;
        Ok(rows.iter().map(record_row).collect::<Result<_, _>>()?)
    }

    async fn update_record(&self, r: &Record) -> StoreResult<()> {
        sqlx::query(
            "UPDATE data_records SET parent_id = $1, fields = $2, permissions = $3, updated_at = $4 \
             WHERE app_id = $5 AND id = $6",
        )
        .bind(r.parent_id.clone())
        .bind(text(&r.fields))
        .bind(r.permissions.as_ref().map(text))
        .bind(millis(r.updated_at))
        .bind(r.app_id.0)
        .bind(r.id.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_records(&self, app: AppId, ids: &[String]) -> StoreResult<Vec<Record>> {
        let mut tx = self.pool.begin().await?;
        let deleted = delete_with_descendants(&mut tx, app, ids).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn count_records(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM data_records")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}
