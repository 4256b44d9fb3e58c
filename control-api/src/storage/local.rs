//! Blob bytes as files under one directory (`DATA_DIR/blobs` by default).
//!
//! A write goes to a uniquely named `.part` file beside its target and is renamed into
//! place on commit, so readers never see a half-written file and an aborted or crashed
//! upload leaves at most a `.part` file behind.

use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::fs;
use tokio::io::AsyncWriteExt;

use crate::domain::content::{BlobReader, BlobStorage, BlobWriter};
use crate::domain::ids;

/// Write buffer per upload: large enough that a disk write is rarely smaller than a page
/// of the body stream's chunks (arbitrary; hyper hands out chunks of up to 16 KiB).
const WRITE_BUFFER: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct LocalBlobStorage {
    root: PathBuf,
}

impl LocalBlobStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Keys are ours (`<app id>/<uid>`); anything that could leave the root is refused.
    fn path_of(&self, key: &str) -> io::Result<PathBuf> {
        let safe = !key.is_empty()
            && key.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
        if !safe {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid blob key {key:?}"),
            ));
        }
        Ok(self.root.join(key))
    }
}

#[async_trait]
impl BlobStorage for LocalBlobStorage {
    async fn writer(&self, key: &str) -> io::Result<Box<dyn BlobWriter>> {
        let target = self.path_of(key)?;
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir).await?;
        }
        let mut part = target.clone().into_os_string();
        part.push(format!(".{}.part", &ids::session_token()[..12]));
        let part = PathBuf::from(part);
        let file = fs::File::create(&part).await?;
        Ok(Box::new(LocalWriter {
            file: tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file),
            part,
            target,
        }))
    }

    async fn open(&self, key: &str) -> io::Result<Option<BlobReader>> {
        let path = self.path_of(key)?;
        let file = match fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.metadata().await?.len();
        Ok(Some(BlobReader {
            len,
            body: Box::pin(file),
        }))
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        match fs::remove_file(self.path_of(key)?).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

struct LocalWriter {
    file: tokio::io::BufWriter<fs::File>,
    part: PathBuf,
    target: PathBuf,
}

#[async_trait]
impl BlobWriter for LocalWriter {
    async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.file.write_all(chunk).await
    }

    async fn commit(mut self: Box<Self>) -> io::Result<()> {
        self.file.flush().await?;
        self.file.get_mut().sync_all().await?;
        fs::rename(&self.part, &self.target).await
    }

    async fn abort(self: Box<Self>) {
        drop(self.file);
        if let Err(e) = fs::remove_file(&self.part).await {
            tracing::warn!(error = %e, part = %self.part.display(), "removing aborted upload failed");
        }
    }
}
