//! Content: files (blobs) uploaded by users, QuickBlox's S3-style flow served by Switchboard.
//!
//! The flow the SDKs follow: create the blob (metadata plus a write grant) → upload the bytes
//! with the grant (no session needed, as with a pre-signed S3 POST) → the owner marks it
//! complete with the size. Only complete blobs can be downloaded: public ones by anyone who
//! has the uid, private ones with a session of the same application.
//!
//! Rules: metadata writes (complete, update, delete) are the owner's; any session of the
//! application may read a blob's metadata; listing shows the caller's own blobs. Bytes are
//! streamed through [`BlobUpload`] with the size limit and the MD5 checked as they arrive.

pub mod model;
pub mod storage;
pub mod store;

use md5::{Digest, Md5};
use sha2::Sha256;

pub use model::{Blob, BlobUpdate, NewBlob};
pub use storage::{BlobReader, BlobStorage, BlobWriter};
pub use store::ContentStore;

use super::error::DomainError;
use super::ids;
use super::model::{AppId, UserId};
use super::ControlPlane;

/// Longest blob name and content type accepted (QuickBlox's string columns).
const MAX_TEXT: usize = 255;
/// Blobs per page of `GET /blobs.json`: QuickBlox's default and maximum.
pub const DEFAULT_PER_PAGE: i64 = 10;
pub const MAX_PER_PAGE: i64 = 100;

/// How a blob is addressed in `/blobs/{key}`: its numeric id or its uid.
pub enum BlobKey<'a> {
    Id(i64),
    Uid(&'a str),
}

impl<'a> BlobKey<'a> {
    pub fn parse(raw: &'a str) -> Self {
        match raw.parse::<i64>() {
            Ok(id) => BlobKey::Id(id),
            Err(_) => BlobKey::Uid(raw),
        }
    }
}

/// A page of blobs.
pub struct BlobPage {
    pub blobs: Vec<Blob>,
    pub total: i64,
}

impl ControlPlane {
    pub fn blob_storage(&self) -> &dyn BlobStorage {
        self.blobs.as_ref()
    }

    /// `POST /blobs.json`: the blob's metadata and a write grant valid for the configured
    /// upload window.
    pub async fn create_blob(
        &self,
        app: AppId,
        user: UserId,
        new: NewBlob,
    ) -> Result<Blob, DomainError> {
        let name = checked_text("name", &new.name)?;
        let content_type = if new.content_type.trim().is_empty() {
            "application/octet-stream".to_string()
        } else {
            checked_content_type(&new.content_type)?
        };
        let now = self.now();
        let blob = Blob {
            id: 0,
            app_id: app,
            user_id: user,
            uid: ids::session_token()[..32].to_string(),
            name,
            content_type,
            is_public: new.is_public,
            tags: new.tags,
            size: None,
            stored_size: None,
            checksum: None,
            upload_secret: Some(ids::session_token()),
            upload_expires_at: Some(now + self.config.content.upload_ttl),
            completed_at: None,
            created_at: now,
            updated_at: now,
        };
        Ok(self.content.insert_blob(&blob).await?)
    }

    /// Starts receiving the bytes of the blob `uid` under its write grant `policy`.
    pub async fn begin_upload(&self, uid: &str, policy: &str) -> Result<BlobUpload, DomainError> {
        let blob = self
            .content
            .blob_by_uid(uid)
            .await?
            .ok_or(DomainError::NotFound)?;
        let granted = blob
            .upload_secret
            .as_deref()
            .is_some_and(|secret| same_secret(secret, policy));
        if !granted {
            return Err(DomainError::Forbidden("Invalid or used upload policy"));
        }
        if blob.upload_expires_at.is_some_and(|t| t <= self.now()) {
            return Err(DomainError::Forbidden("Upload policy expired"));
        }
        let writer = self
            .blobs
            .writer(&blob.storage_key())
            .await
            .map_err(storage_failed)?;
        Ok(BlobUpload {
            control: self.clone(),
            blob,
            writer,
            md5: Md5::new(),
            written: 0,
            limit: self.config.content.max_blob_bytes,
        })
    }

    /// `PUT /blobs/{id}/complete.json`: the owner confirms the upload; a declared `size`
    /// must match what was stored.
    pub async fn complete_blob(
        &self,
        app: AppId,
        user: UserId,
        id: i64,
        size: Option<i64>,
    ) -> Result<Blob, DomainError> {
        let mut blob = self.own_blob(app, user, id).await?;
        let Some(stored) = blob.stored_size else {
            return Err(DomainError::invalid(
                "base",
                "The file has not been uploaded",
            ));
        };
        if size.is_some_and(|s| s != stored) {
            return Err(DomainError::invalid(
                "size",
                format!("does not match the uploaded file ({stored} bytes)"),
            ));
        }
        let now = self.now();
        blob.size = Some(stored);
        blob.completed_at.get_or_insert(now);
        blob.upload_secret = None;
        blob.upload_expires_at = None;
        blob.updated_at = now;
        self.content.update_blob(&blob).await?;
        Ok(blob)
    }

    /// A blob's metadata by id or uid, for any session of its application.
    pub async fn blob_info(&self, app: AppId, key: BlobKey<'_>) -> Result<Blob, DomainError> {
        let blob = match key {
            BlobKey::Id(id) => self.content.blob(app, id).await?,
            BlobKey::Uid(uid) => self
                .content
                .blob_by_uid(uid)
                .await?
                .filter(|b| b.app_id == app),
        };
        blob.ok_or(DomainError::NotFound)
    }

    pub async fn update_blob(
        &self,
        app: AppId,
        user: UserId,
        id: i64,
        update: BlobUpdate,
    ) -> Result<Blob, DomainError> {
        let mut blob = self.own_blob(app, user, id).await?;
        if let Some(name) = update.name {
            blob.name = checked_text("name", &name)?;
        }
        if let Some(content_type) = update.content_type {
            blob.content_type = checked_content_type(&content_type)?;
        }
        if let Some(public) = update.is_public {
            blob.is_public = public;
        }
        if let Some(tags) = update.tags {
            blob.tags = tags;
        }
        blob.updated_at = self.now();
        self.content.update_blob(&blob).await?;
        Ok(blob)
    }

    /// Deletes the blob and its stored bytes.
    pub async fn delete_blob(&self, app: AppId, user: UserId, id: i64) -> Result<(), DomainError> {
        let blob = self.own_blob(app, user, id).await?;
        self.content.delete_blob(app, id).await?;
        if let Err(e) = self.blobs.delete(&blob.storage_key()).await {
            // The row is gone, so the bytes are unreachable; log for the operator.
            tracing::warn!(error = %e, uid = %blob.uid, "deleting stored blob bytes failed");
        }
        Ok(())
    }

    pub async fn list_blobs(
        &self,
        app: AppId,
        user: UserId,
        page: i64,
        per_page: i64,
    ) -> Result<BlobPage, DomainError> {
        let per_page = per_page.clamp(1, MAX_PER_PAGE);
        let offset = (page.max(1) - 1).saturating_mul(per_page);
        let (blobs, total) = self.content.list_blobs(app, user, per_page, offset).await?;
        Ok(BlobPage { blobs, total })
    }

    /// Opens a complete blob for download. `caller_app` is the application of the
    /// session presented (header or `?token=`), if any: public blobs need none, private
    /// ones one of their own application.
    pub async fn open_download(
        &self,
        uid: &str,
        caller_app: Option<AppId>,
    ) -> Result<(Blob, BlobReader), DomainError> {
        let blob = self
            .content
            .blob_by_uid(uid)
            .await?
            .filter(Blob::is_complete)
            .ok_or(DomainError::NotFound)?;
        if !blob.is_public {
            match caller_app {
                None => return Err(DomainError::TokenRequired),
                Some(app) if app != blob.app_id => {
                    return Err(DomainError::Forbidden("This file is private"))
                }
                Some(_) => {}
            }
        }
        let reader = self
            .blobs
            .open(&blob.storage_key())
            .await
            .map_err(storage_failed)?
            .ok_or(DomainError::NotFound)?;
        Ok((blob, reader))
    }

    /// Uploaded blobs and their bytes, for the gauges.
    pub async fn blob_totals(&self) -> Result<(i64, i64), DomainError> {
        Ok(self.content.blob_totals().await?)
    }

    async fn own_blob(&self, app: AppId, user: UserId, id: i64) -> Result<Blob, DomainError> {
        let blob = self
            .content
            .blob(app, id)
            .await?
            .ok_or(DomainError::NotFound)?;
        if blob.user_id != user {
            return Err(DomainError::Forbidden("You are not the owner of this file"));
        }
        Ok(blob)
    }
}

/// An upload in progress: bytes go to storage as they arrive, counted against the limit
/// and hashed. Dropping it without [`BlobUpload::finish`] leaves nothing visible.
pub struct BlobUpload {
    control: ControlPlane,
    blob: Blob,
    writer: Box<dyn BlobWriter>,
    md5: Md5,
    written: u64,
    limit: u64,
}

impl BlobUpload {
    pub fn blob(&self) -> &Blob {
        &self.blob
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), DomainError> {
        self.written += chunk.len() as u64;
        if self.written > self.limit {
            return Err(DomainError::TooLarge(self.limit));
        }
        self.md5.update(chunk);
        self.writer.write(chunk).await.map_err(storage_failed)
    }

    /// Drops the bytes written so far.
    pub async fn abort(self) {
        self.writer.abort().await;
    }

    /// Verifies `expected_md5` (S3's `Content-MD5`: base64, or hex) when the client sent
    /// one, commits the bytes and records their size and checksum.
    pub async fn finish(self, expected_md5: Option<&str>) -> Result<Blob, DomainError> {
        let digest = self.md5.finalize();
        if let Some(expected) = expected_md5.map(str::trim).filter(|e| !e.is_empty()) {
            if !md5_matches(expected, &digest) {
                self.writer.abort().await;
                return Err(DomainError::invalid(
                    "Content-MD5",
                    "does not match the uploaded bytes",
                ));
            }
        }
        self.writer.commit().await.map_err(storage_failed)?;
        let mut blob = self.blob;
        blob.stored_size = Some(self.written as i64);
        blob.checksum = Some(hex::encode(digest));
        blob.updated_at = self.control.now();
        self.control.content.update_blob(&blob).await?;
        Ok(blob)
    }
}

fn md5_matches(expected: &str, digest: &[u8]) -> bool {
    use base64::Engine;
    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(expected) {
        if bytes == digest {
            return true;
        }
    }
    expected.eq_ignore_ascii_case(&hex::encode(digest))
}

/// Compares secrets by their hashes, so timing says nothing about the stored one.
fn same_secret(stored: &str, presented: &str) -> bool {
    Sha256::digest(stored.as_bytes()) == Sha256::digest(presented.as_bytes())
}

fn storage_failed(e: std::io::Error) -> DomainError {
    tracing::error!(error = %e, "blob storage failed");
    DomainError::Unavailable
}

fn checked_text(field: &str, value: &str) -> Result<String, DomainError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(DomainError::invalid(field, "can't be blank"));
    }
    if value.len() > MAX_TEXT {
        return Err(DomainError::invalid(
            field,
            format!("is too long (maximum is {MAX_TEXT} characters)"),
        ));
    }
    Ok(value.to_string())
}

fn checked_content_type(value: &str) -> Result<String, DomainError> {
    let value = checked_text("content_type", value)?;
    let valid = value.split_once('/').is_some_and(|(kind, sub)| {
        !kind.is_empty() && !sub.is_empty() && !value.chars().any(|c| c.is_control())
    });
    if !valid {
        return Err(DomainError::invalid(
            "content_type",
            "must be a MIME type such as text/plain",
        ));
    }
    Ok(value)
}
