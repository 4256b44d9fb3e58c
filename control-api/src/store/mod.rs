//! The SQL implementation of [`Store`]: SQLite (embedded default) or PostgreSQL (scale-out).
//!
//! One implementation over sqlx's `Any` driver serves both: queries use `$N` placeholders,
//! which both engines accept, and only portable SQL. The schemas differ only in id columns,
//! so each engine has its own migrations directory with the same history.

mod calls;
mod chat;
mod chat_cache;
mod chat_writer;
mod content;
mod data;
mod push;
mod query;
mod rows;
mod sql;

use std::path::Path;

pub use crate::domain::store::{Store, StoreError, StoreResult};
pub use sql::SqlStore;

/// Opens the store named by `spec`: `sqlite` (the file `switchboard.db` in `data_dir`),
/// `sqlite://PATH`, or `postgres://...`; runs pending migrations.
pub async fn open_store(spec: &str, data_dir: &Path) -> StoreResult<SqlStore> {
    if spec == "sqlite" || spec.is_empty() {
        let path = data_dir.join("switchboard.db");
        return SqlStore::open_sqlite(&path).await;
    }
    if let Some(path) = spec
        .strip_prefix("sqlite://")
        .or_else(|| spec.strip_prefix("sqlite:"))
    {
        return SqlStore::open_sqlite(Path::new(path)).await;
    }
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        return SqlStore::open_postgres(spec).await;
    }
    Err(StoreError::UnsupportedUrl(spec.to_string()))
}
