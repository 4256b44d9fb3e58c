//! Implementations of [`BlobStorage`](crate::domain::content::BlobStorage): the bytes of
//! uploaded files. Local files by default; an S3-compatible object store for scale-out.

mod local;
mod object;

pub use local::LocalBlobStorage;
pub use object::ObjectBlobStorage;

use std::path::Path;
use std::sync::Arc;

use crate::domain::content::BlobStorage;

/// Opens the blob storage named by `spec`: `local` (the directory `blobs` in `data_dir`)
/// `local:PATH`, or `s3://BUCKET[/PREFIX]` (S3-compatible; see [`ObjectBlobStorage::s3`]).
pub fn open_blob_storage(spec: &str, data_dir: &Path) -> Result<Arc<dyn BlobStorage>, String> {
    if spec.is_empty() || spec == "local" {
        return Ok(Arc::new(LocalBlobStorage::new(data_dir.join("blobs"))));
    }
    if let Some(path) = spec.strip_prefix("local:") {
        return Ok(Arc::new(LocalBlobStorage::new(path)));
    }
    if spec.starts_with("s3://") {
        return Ok(Arc::new(ObjectBlobStorage::s3(spec)?));
    }
    Err(format!(
        "unsupported blob storage {spec:?} (expected local, local:PATH or s3://BUCKET[/PREFIX])"
    ))
}
