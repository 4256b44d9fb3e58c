//! [`DataStore`] over the same `AnyPool`: custom-object classes and records, their typed
//! values and permissions kept as JSON text.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

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

    async fn delete_class(&self, app: AppId, name: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM data_records WHERE class_id IN \
             (SELECT id FROM data_classes WHERE app_id = $1 AND name = $2)",
        )
        .bind(app.0)
        .bind(name.to_string())
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("DELETE FROM data_classes WHERE app_id = $1 AND name = $2")
            .bind(app.0)
            .bind(name.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
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

    async fn delete_records(&self, app: AppId, ids: &[String]) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let mut deleted = 0;
        // Chunks keep the bind count far below PostgreSQL's 65535.
        for chunk in ids.chunks(500) {
            let mut children = Sql::default();
            children
                .push("DELETE FROM data_records WHERE app_id = ")
                .bind(Bind::Int(app.0))
                .push(" AND parent_id IN (");
            push_ids(&mut children, chunk);
            children.push(")");
            children.query().execute(&mut *tx).await?;
            let mut own = Sql::default();
            own.push("DELETE FROM data_records WHERE app_id = ")
                .bind(Bind::Int(app.0))
                .push(" AND id IN (");
            push_ids(&mut own, chunk);
            own.push(")");
            deleted += own.query().execute(&mut *tx).await?.rows_affected();
        }
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
