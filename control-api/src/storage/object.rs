//! Blob bytes in an object store: any S3-compatible service (AWS S3, MinIO, Ceph, R2...)
//! through the `object_store` crate, or its in-memory store in tests.
//!
//! Writes go through `object_store`'s `BufWriter`, which switches to a multipart upload
//! once the buffered bytes pass its threshold, so large files stream without being held
//! in memory; an object only appears when the upload completes. Reads stream the GET body.

use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::ObjectStore;
use tokio::io::AsyncWriteExt;
use tokio_util::io::StreamReader;

use crate::domain::content::{BlobReader, BlobStorage, BlobWriter};

pub struct ObjectBlobStorage {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    description: String,
}

impl ObjectBlobStorage {
    /// Keys are stored under `prefix/` (none when empty).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, description: String) -> Self {
        Self {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            description,
        }
    }

    /// `s3://BUCKET[/PREFIX]`, with the endpoint, region and credentials from the standard
    /// `AWS_*` environment variables (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP` for a plain-HTTP MinIO...).
    pub fn s3(spec: &str) -> Result<Self, String> {
        let rest = spec
            .strip_prefix("s3://")
            .ok_or_else(|| format!("not an s3:// URL: {spec:?}"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("no bucket in {spec:?}"));
        }
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| format!("configuring S3 storage {spec:?}: {e}"))?;
        Ok(Self::new(Arc::new(store), prefix, spec.to_string()))
    }

    fn path_of(&self, key: &str) -> io::Result<Path> {
        let full = if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        };
        Path::parse(full).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }
}

#[async_trait]
impl BlobStorage for ObjectBlobStorage {
    async fn writer(&self, key: &str) -> io::Result<Box<dyn BlobWriter>> {
        let path = self.path_of(key)?;
        Ok(Box::new(ObjectWriter(BufWriter::new(
            self.store.clone(),
            path,
        ))))
    }

    async fn open(&self, key: &str) -> io::Result<Option<BlobReader>> {
        let path = self.path_of(key)?;
        match self.store.get(&path).await {
            Ok(result) => Ok(Some(BlobReader {
                len: result.meta.size,
                body: Box::pin(StreamReader::new(result.into_stream())),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        match self.store.delete(&self.path_of(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

struct ObjectWriter(BufWriter);

#[async_trait]
impl BlobWriter for ObjectWriter {
    async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.0.write_all(chunk).await
    }

    async fn commit(mut self: Box<Self>) -> io::Result<()> {
        self.0.shutdown().await
    }

    async fn abort(mut self: Box<Self>) {
        if let Err(e) = self.0.abort().await {
            tracing::warn!(error = %e, "aborting an object store upload failed");
        }
    }
}
