//! Blob metadata as the domain sees it.

use time::OffsetDateTime;

use crate::domain::model::{AppId, UserId};

/// A file's metadata. Its bytes are in [`BlobStorage`](super::storage::BlobStorage) under
/// [`Blob::storage_key`] once uploaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub id: i64,
    pub app_id: AppId,
    pub user_id: UserId,
    /// 32 random hex digits: the download handle, unguessable.
    pub uid: String,
    pub name: String,
    pub content_type: String,
    pub is_public: bool,
    pub tags: Vec<String>,
    /// The size the owner declared when marking the upload complete.
    pub size: Option<i64>,
    /// Bytes the upload stored and their MD5 (hex); `None` until uploaded.
    pub stored_size: Option<i64>,
    pub checksum: Option<String>,
    /// The write grant of `blob_object_access`; cleared on completion.
    pub upload_secret: Option<String>,
    pub upload_expires_at: Option<OffsetDateTime>,
    pub completed_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Blob {
    /// Where the bytes are stored: `<app id>/<uid>` (the uid is ours, so the key is safe
    /// as a relative path).
    pub fn storage_key(&self) -> String {
        format!("{}/{}", self.app_id.0, self.uid)
    }

    pub fn is_complete(&self) -> bool {
        self.completed_at.is_some()
    }
}

/// A blob to create: the server fills ids, grant and timestamps.
#[derive(Clone, Debug, Default)]
pub struct NewBlob {
    pub name: String,
    pub content_type: String,
    pub is_public: bool,
    pub tags: Vec<String>,
}

/// Changes `PUT /blobs/{id}.json` (or the SDK's `GET ...?blob[name]=`) may make.
#[derive(Clone, Debug, Default)]
pub struct BlobUpdate {
    pub name: Option<String>,
    pub content_type: Option<String>,
    pub is_public: Option<bool>,
    pub tags: Option<Vec<String>>,
}
