//! Implementations of [`BlobStorage`](crate::domain::content::BlobStorage): the bytes of
//! uploaded files. Local files by default; an S3-compatible object store for scale-out.

mod local;

pub use local::LocalBlobStorage;

use std::path::Path;
use std::sync::Arc;

use crate::domain::content::BlobStorage;

/// Opens the blob storage named by `spec`: `local` (the directory `blobs` in `data_dir`)
/// or `local:PATH`.
pub fn open_blob_storage(spec: &str, data_dir: &Path) -> Result<Arc<dyn BlobStorage>, String> {
    if spec.is_empty() || spec == "local" {
        return Ok(Arc::new(LocalBlobStorage::new(data_dir.join("blobs"))));
    }
    if let Some(path) = spec.strip_prefix("local:") {
        return Ok(Arc::new(LocalBlobStorage::new(path)));
    }
    Err(format!(
        "unsupported blob storage {spec:?} (expected local or local:PATH)"
    ))
}
