//! [`ContentStore`] over the same `AnyPool`: the `blobs` table.

use async_trait::async_trait;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::Row;

use super::rows::{from_millis, millis};
use super::sql::SqlStore;
use crate::domain::content::{Blob, ContentStore};
use crate::domain::model::{AppId, UserId};
use crate::domain::store::StoreResult;

const BLOB_COLUMNS: &str = "id, app_id, user_id, uid, name, content_type, is_public, tags, size, \
     stored_size, checksum, upload_secret, upload_expires_at, completed_at, created_at, updated_at";

fn blob_row(row: &AnyRow) -> sqlx::Result<Blob> {
    let tags: String = row.try_get("tags")?;
    Ok(Blob {
        id: row.try_get("id")?,
        app_id: AppId(row.try_get("app_id")?),
        user_id: UserId(row.try_get("user_id")?),
        uid: row.try_get("uid")?,
        name: row.try_get("name")?,
        content_type: row.try_get("content_type")?,
        is_public: row.try_get::<i64, _>("is_public")? != 0,
        tags: tags
            .split(',')
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect(),
        size: row.try_get("size")?,
        stored_size: row.try_get("stored_size")?,
        checksum: row.try_get("checksum")?,
        upload_secret: row.try_get("upload_secret")?,
        upload_expires_at: row
            .try_get::<Option<i64>, _>("upload_expires_at")?
            .map(from_millis),
        completed_at: row
            .try_get::<Option<i64>, _>("completed_at")?
            .map(from_millis),
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

/// Binds the eleven mutable columns in the order both statements list them.
fn bind_mutable<'q>(
    query: Query<'q, sqlx::Any, AnyArguments<'q>>,
    b: &Blob,
) -> Query<'q, sqlx::Any, AnyArguments<'q>> {
    query
        .bind(b.name.clone())
        .bind(b.content_type.clone())
        .bind(i64::from(b.is_public))
        .bind(b.tags.join(","))
        .bind(b.size)
        .bind(b.stored_size)
        .bind(b.checksum.clone())
        .bind(b.upload_secret.clone())
        .bind(b.upload_expires_at.map(millis))
        .bind(b.completed_at.map(millis))
        .bind(millis(b.updated_at))
}

#[async_trait]
impl ContentStore for SqlStore {
    async fn insert_blob(&self, b: &Blob) -> StoreResult<Blob> {
        let sql = format!(
            "INSERT INTO blobs (name, content_type, is_public, tags, size, stored_size, checksum, \
             upload_secret, upload_expires_at, completed_at, updated_at, app_id, user_id, uid, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             RETURNING {BLOB_COLUMNS}"
        );
        let row = bind_mutable(sqlx::query(&sql), b)
            .bind(b.app_id.0)
            .bind(b.user_id.0)
            .bind(b.uid.clone())
            .bind(millis(b.created_at))
            .fetch_one(&self.pool)
            .await?;
        Ok(blob_row(&row)?)
    }

    async fn blob(&self, app: AppId, id: i64) -> StoreResult<Option<Blob>> {
        let sql = format!("SELECT {BLOB_COLUMNS} FROM blobs WHERE app_id = $1 AND id = $2");
        let row = sqlx::query(&sql)
            .bind(app.0)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(blob_row).transpose()?)
    }

    async fn blob_by_uid(&self, uid: &str) -> StoreResult<Option<Blob>> {
        let sql = format!("SELECT {BLOB_COLUMNS} FROM blobs WHERE uid = $1");
        let row = sqlx::query(&sql)
            .bind(uid.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(blob_row).transpose()?)
    }

    async fn list_blobs(
        &self,
        app: AppId,
        user: UserId,
        limit: i64,
        offset: i64,
    ) -> StoreResult<(Vec<Blob>, i64)> {
        super::query::owned_page(
            &self.pool,
            "blobs",
            BLOB_COLUMNS,
            (app, user),
            (limit, offset),
            blob_row,
        )
        .await
    }

    async fn update_blob(&self, b: &Blob) -> StoreResult<()> {
        let sql = "UPDATE blobs SET name = $1, content_type = $2, is_public = $3, tags = $4, \
             size = $5, stored_size = $6, checksum = $7, upload_secret = $8, upload_expires_at = $9, \
             completed_at = $10, updated_at = $11 WHERE app_id = $12 AND id = $13";
        bind_mutable(sqlx::query(sql), b)
            .bind(b.app_id.0)
            .bind(b.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_blob(&self, app: AppId, id: i64) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM blobs WHERE app_id = $1 AND id = $2")
            .bind(app.0)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn blob_totals(&self) -> StoreResult<(i64, i64)> {
        // CAST: PostgreSQL's SUM of BIGINT is NUMERIC, which the Any driver cannot decode.
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(stored_size), 0) AS BIGINT) AS bytes \
             FROM blobs WHERE stored_size IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("bytes")?))
    }
}
