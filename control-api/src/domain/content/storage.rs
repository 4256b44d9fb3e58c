//! Where blob bytes live: one trait, with local files (`crate::storage::LocalBlobStorage`)
//! by default and any S3-compatible store for scale-out.
//!
//! Bytes move as streams: a [`BlobWriter`] takes chunks as the request body arrives and a
//! [`BlobReader`] hands out an `AsyncRead`, so no file is ever held in memory whole.
//! Nothing written is visible under its key before [`BlobWriter::commit`].

use std::io;
use std::pin::Pin;

use async_trait::async_trait;
use tokio::io::AsyncRead;

#[async_trait]
pub trait BlobStorage: Send + Sync + 'static {
    /// Starts writing the bytes of `key` (replacing any earlier bytes on commit).
    async fn writer(&self, key: &str) -> io::Result<Box<dyn BlobWriter>>;
    /// The stored bytes of `key`, `None` if there are none.
    async fn open(&self, key: &str) -> io::Result<Option<BlobReader>>;
    /// Removes the bytes of `key`; removing what is not there is not an error.
    async fn delete(&self, key: &str) -> io::Result<()>;
    /// A short description for the banner and logs (`./data/blobs`, `s3://bucket`).
    fn describe(&self) -> String;
}

#[async_trait]
pub trait BlobWriter: Send {
    async fn write(&mut self, chunk: &[u8]) -> io::Result<()>;
    /// Makes the written bytes the content of the key.
    async fn commit(self: Box<Self>) -> io::Result<()>;
    /// Drops what was written; the key keeps its earlier content, if any.
    async fn abort(self: Box<Self>);
}

/// An open stored blob.
pub struct BlobReader {
    pub len: u64,
    pub body: Pin<Box<dyn AsyncRead + Send>>,
}

/// The storage of a control plane nobody gave one (the CLI's): every operation fails.
pub struct NoBlobStorage;

fn unconfigured() -> io::Error {
    io::Error::other("no blob storage configured")
}

#[async_trait]
impl BlobStorage for NoBlobStorage {
    async fn writer(&self, _key: &str) -> io::Result<Box<dyn BlobWriter>> {
        Err(unconfigured())
    }

    async fn open(&self, _key: &str) -> io::Result<Option<BlobReader>> {
        Err(unconfigured())
    }

    async fn delete(&self, _key: &str) -> io::Result<()> {
        Err(unconfigured())
    }

    fn describe(&self) -> String {
        "none".into()
    }
}
