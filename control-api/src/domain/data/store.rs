//! The custom-object persistence boundary; `crate::store` implements it on the same
//! database. Records are stored as JSON text and handed back whole: filtering happens in
//! the domain (see [`super`]).

use async_trait::async_trait;

use super::model::{DataClass, Record};
use crate::domain::model::AppId;
use crate::domain::store::StoreResult;

#[async_trait]
pub trait DataStore: Send + Sync + 'static {
    /// A taken name is `StoreError::Conflict { field: "name" }`.
    async fn insert_class(&self, class: &DataClass) -> StoreResult<DataClass>;
    async fn class(&self, app: AppId, name: &str) -> StoreResult<Option<DataClass>>;
    async fn list_classes(&self, app: AppId) -> StoreResult<Vec<DataClass>>;
    /// Deletes the class with its records; false if there was none.
    async fn delete_class(&self, app: AppId, name: &str) -> StoreResult<bool>;

    async fn insert_record(&self, record: &Record) -> StoreResult<()>;
    /// Every record of a class, oldest first (or only `ids` when given).
    async fn records(
        &self,
        app: AppId,
        class_id: i64,
        ids: Option<&[String]>,
    ) -> StoreResult<Vec<Record>>;
    async fn update_record(&self, record: &Record) -> StoreResult<()>;
    /// Deletes the records and, in any class of the application, their children
    /// (`_parent_id` among `ids`); returns how many of `ids` were deleted.
    async fn delete_records(&self, app: AppId, ids: &[String]) -> StoreResult<u64>;
    async fn count_records(&self) -> StoreResult<i64>;
}
