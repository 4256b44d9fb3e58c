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
    /// Saves a class's fields, permissions and `create_allowed`.
    async fn update_class(&self, class: &DataClass) -> StoreResult<()>;
    /// Deletes the class with its records and their descendants (as
    /// [`DataStore::delete_records`]), in one transaction; `None` if there was no class,
    /// else every record deleted.
    async fn delete_class(&self, app: AppId, name: &str) -> StoreResult<Option<Vec<Record>>>;

    async fn insert_record(&self, record: &Record) -> StoreResult<()>;
    /// Every record of a class, oldest first (or only `ids` when given).
    async fn records(
        &self,
        app: AppId,
        class_id: i64,
        ids: Option<&[String]>,
    ) -> StoreResult<Vec<Record>>;
    async fn update_record(&self, record: &Record) -> StoreResult<()>;
    /// Deletes the records and, in any class of the application, their descendants
    /// (`_parent_id` chains at any depth; a cycle ends where it meets a record already
    /// taken), in one transaction; returns every record deleted.
    async fn delete_records(&self, app: AppId, ids: &[String]) -> StoreResult<Vec<Record>>;
    async fn count_records(&self) -> StoreResult<i64>;
}
