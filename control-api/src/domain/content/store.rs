//! The content persistence boundary (blob metadata), apart from
//! [`Store`](crate::domain::Store) like the chat tables; `crate::store` implements it.

use async_trait::async_trait;

use super::model::Blob;
use crate::domain::model::{AppId, UserId};
use crate::domain::store::StoreResult;

#[async_trait]
pub trait ContentStore: Send + Sync + 'static {
    /// Inserts `blob` (its `id` is ignored) and returns it with the assigned id.
    async fn insert_blob(&self, blob: &Blob) -> StoreResult<Blob>;
    async fn blob(&self, app: AppId, id: i64) -> StoreResult<Option<Blob>>;
    /// By download handle, in any application (the caller checks access).
    async fn blob_by_uid(&self, uid: &str) -> StoreResult<Option<Blob>>;
    /// One page of a user's blobs, newest first, and how many they have.
    async fn list_blobs(
        &self,
        app: AppId,
        user: UserId,
        limit: i64,
        offset: i64,
    ) -> StoreResult<(Vec<Blob>, i64)>;
    /// Writes every mutable column of `blob` (matched by app and id).
    async fn update_blob(&self, blob: &Blob) -> StoreResult<()>;
    async fn delete_blob(&self, app: AppId, id: i64) -> StoreResult<bool>;
    /// Uploaded blobs and their stored bytes, across applications (for the gauges).
    async fn blob_totals(&self) -> StoreResult<(i64, i64)>;
}
