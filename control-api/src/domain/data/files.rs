//! File fields of records: `POST|GET|DELETE /data/{Class}/{id}/file.json`.
//!
//! A field declared `file` holds a [`FileRef`] (id, name, size, content type); the bytes
//! live in the application's blob storage under [`FileRef::storage_key`], streamed in
//! through [`RecordFileUpload`] against the content size limit. Uploading needs the
//! record's update permission, downloading its read permission. Replacing a file deletes
//! the old bytes once the record names the new ones; deleting the record (or its class, or
//! an ancestor) deletes its files after the rows are gone.

use std::io;

use super::model::{Action, DataClass, FileRef, Record, Scalar};
use super::{allowed, Viewer};
use crate::domain::content::{BlobReader, BlobWriter};
use crate::domain::error::DomainError;
use crate::domain::ids;
use crate::domain::model::AppId;
use crate::domain::ControlPlane;

/// Longest file name kept (QuickBlox's blob names are limited alike).
const MAX_NAME: usize = 255;
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

impl ControlPlane {
    /// Starts receiving a file for record `id`, after checking that `viewer` may update it
    /// (and, when the form named it before the file, that `field` is a file field).
    pub async fn begin_record_file(
        &self,
        class: &DataClass,
        viewer: &Viewer,
        id: &str,
        field: Option<&str>,
    ) -> Result<RecordFileUpload, DomainError> {
        let record = self.updatable_record(class, viewer, id).await?;
        if let Some(field) = field {
            file_field(class, field)?;
        }
        let file_id = ids::object_id(self.now());
        let key = format!("{}/data/{file_id}", class.app_id.0);
        let writer = self.blobs.writer(&key).await.map_err(storage_failed)?;
        Ok(RecordFileUpload {
            control: self.clone(),
            class: class.clone(),
            viewer: viewer.clone(),
            record_id: record.id,
            file_id,
            writer,
            written: 0,
            limit: self.config.content.max_blob_bytes,
        })
    }

    /// The file in `field` of record `id`, opened for reading.
    pub async fn open_record_file(
        &self,
        class: &DataClass,
        viewer: &Viewer,
        id: &str,
        field: &str,
    ) -> Result<(FileRef, BlobReader), DomainError> {
        let record = self.record(class, viewer, id).await?;
        file_field(class, field)?;
        let file = held_file(&record, field)?;
        let reader = self
            .blobs
            .open(&file.storage_key(class.app_id))
            .await
            .map_err(storage_failed)?
            .ok_or(DomainError::NotFound)?;
        Ok((file, reader))
    }

    /// Empties `field` of record `id` and deletes the file's bytes.
    pub async fn delete_record_file(
        &self,
        class: &DataClass,
        viewer: &Viewer,
        id: &str,
        field: &str,
    ) -> Result<(), DomainError> {
        let mut record = self.updatable_record(class, viewer, id).await?;
        file_field(class, field)?;
        let file = held_file(&record, field)?;
        record.fields.remove(field);
        record.updated_at = self.now();
        self.data.update_record(&record).await?;
        self.remove_file(class.app_id, &file).await;
        Ok(())
    }

    /// Deletes the bytes of every file the deleted `records` held. Their rows are gone, so
    /// a failure only leaves unreachable bytes: logged for the operator, not an error.
    pub(crate) async fn remove_files(&self, app: AppId, records: &[Record]) {
        for file in records.iter().flat_map(Record::files) {
            self.remove_file(app, &file).await;
        }
    }

    async fn remove_file(&self, app: AppId, file: &FileRef) {
        if let Err(e) = self.blobs.delete(&file.storage_key(app)).await {
            tracing::warn!(error = %e, file_id = %file.file_id, "deleting a record file failed");
        }
    }

    async fn updatable_record(
        &self,
        class: &DataClass,
        viewer: &Viewer,
        id: &str,
    ) -> Result<Record, DomainError> {
        let record = self.record(class, viewer, id).await?;
        if !allowed(class, &record, viewer, Action::Update) {
            return Err(DomainError::Forbidden(
                "You have no permission to update this record",
            ));
        }
        Ok(record)
    }
}

/// A file arriving for a record: bytes go to storage as they come, counted against the
/// limit. Nothing is visible until [`RecordFileUpload::finish`]; dropping it or
/// [`RecordFileUpload::abort`] leaves the record as it was.
pub struct RecordFileUpload {
    control: ControlPlane,
    class: DataClass,
    viewer: Viewer,
    record_id: String,
    file_id: String,
    writer: Box<dyn BlobWriter>,
    written: u64,
    limit: u64,
}

impl RecordFileUpload {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), DomainError> {
        self.written += chunk.len() as u64;
        if self.written > self.limit {
            return Err(DomainError::TooLarge(self.limit));
        }
        self.writer.write(chunk).await.map_err(storage_failed)
    }

    pub async fn abort(self) {
        self.writer.abort().await;
    }

    /// Stores the bytes as the file in `field` (named `name`, of `content_type` as the
    /// client sent them), replacing and deleting any earlier file there.
    pub async fn finish(
        self,
        field: &str,
        name: Option<&str>,
        content_type: Option<&str>,
    ) -> Result<FileRef, DomainError> {
        if let Err(e) = file_field(&self.class, field) {
            self.writer.abort().await;
            return Err(e);
        }
        let control = self.control;
        let file = FileRef {
            file_id: self.file_id,
            name: file_name(name),
            size: self.written,
            content_type: content_type
                .map(str::trim)
                .filter(|t| is_mime_type(t))
                .unwrap_or(DEFAULT_CONTENT_TYPE)
                .to_string(),
        };
        self.writer.commit().await.map_err(storage_failed)?;
        // The record is read again: it may have changed (or gone) while the bytes came.
        let record = control
            .updatable_record(&self.class, &self.viewer, &self.record_id)
            .await;
        let mut record = match record {
            Ok(record) => record,
            Err(e) => {
                control.remove_file(self.class.app_id, &file).await;
                return Err(e);
            }
        };
        let earlier = record
            .fields
            .insert(field.to_string(), file.to_value())
            .as_ref()
            .and_then(FileRef::from_value);
        record.updated_at = control.now();
        if let Err(e) = control.data.update_record(&record).await {
            control.remove_file(self.class.app_id, &file).await;
            return Err(e.into());
        }
        if let Some(earlier) = earlier {
            control.remove_file(self.class.app_id, &earlier).await;
        }
        Ok(file)
    }
}

/// `field` must be declared in the class with type `file`.
pub fn file_field(class: &DataClass, field: &str) -> Result<(), DomainError> {
    match class.field(field) {
        Some(def) if def.kind.scalar == Scalar::File && !def.kind.array => Ok(()),
        Some(def) => Err(DomainError::invalid(
            "field_name",
            format!("{field} is a {} field, not a file field", def.kind.name()),
        )),
        None if field.is_empty() => Err(DomainError::invalid("field_name", "is required")),
        None => Err(DomainError::invalid(
            "field_name",
            format!("{field} is not a field of {}", class.name),
        )),
    }
}

fn held_file(record: &Record, field: &str) -> Result<FileRef, DomainError> {
    record
        .fields
        .get(field)
        .and_then(FileRef::from_value)
        .ok_or(DomainError::NotFound)
}

/// The client's file name without path or control characters, capped; `file` if none.
fn file_name(name: Option<&str>) -> String {
    let base = name
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let clean: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    match clean.trim() {
        "" => "file".to_string(),
        trimmed => trimmed.to_string(),
    }
}

/// `type/subtype` (parameters allowed), no controls: what a `Content-Type` header takes.
fn is_mime_type(value: &str) -> bool {
    value.len() <= MAX_NAME
        && !value.chars().any(char::is_control)
        && value
            .split(';')
            .next()
            .and_then(|m| m.split_once('/'))
            .is_some_and(|(kind, sub)| !kind.trim().is_empty() && !sub.trim().is_empty())
}

fn storage_failed(e: io::Error) -> DomainError {
    tracing::error!(error = %e, "blob storage failed");
    DomainError::Unavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_paths_and_controls() {
        assert_eq!(file_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(file_name(Some("C:\\photos\\cat.png")), "cat.png");
        assert_eq!(file_name(Some("a\u{0}b\n.txt")), "ab.txt");
        assert_eq!(file_name(None), "file");
        assert_eq!(file_name(Some("  ")), "file");
    }

    #[test]
    fn content_types_must_look_like_mime_types() {
        assert!(is_mime_type("image/png"));
        assert!(is_mime_type("text/plain; charset=utf-8"));
        assert!(!is_mime_type("png"));
        assert!(!is_mime_type("text/\r\nX-Evil: 1"));
    }
}
