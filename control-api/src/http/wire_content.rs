//! QuickBlox content JSON shapes: blobs, their write grant, pages of them.

use serde_json::{json, Value};

use super::wire::iso;
use crate::domain::content::{Blob, BlobPage};

pub fn blob(b: &Blob) -> Value {
    json!({
        "id": b.id,
        "uid": b.uid,
        "content_type": b.content_type,
        "name": b.name,
        "size": b.size,
        "public": b.is_public,
        "blob_status": b.is_complete().then_some("complete"),
        "set_completed_at": b.completed_at.map(iso),
        "created_at": iso(b.created_at),
        "updated_at": iso(b.updated_at),
        "tag_list": (!b.tags.is_empty()).then(|| b.tags.join(",")),
        "account_id": b.app_id,
        "app_id": b.app_id,
    })
}

pub fn wrapped(b: &Blob) -> Value {
    json!({ "blob": blob(b) })
}

/// The create answer: the blob with `blob_object_access`, whose `params` is the upload
/// URL with the form fields to post as its query (what an S3 pre-signed POST looks like).
pub fn created(b: &Blob, public_api_url: &str) -> Value {
    let mut object = blob(b);
    object["blob_object_access"] = json!({
        "id": b.id,
        "blob_id": b.id,
        "expires": b.upload_expires_at.map(iso),
        "object_access_type": "Write",
        "params": upload_url(b, public_api_url),
    });
    json!({ "blob": object })
}

fn upload_url(b: &Blob, public_api_url: &str) -> String {
    let mut fields = vec![
        ("Content-Type", b.content_type.clone()),
        ("key", b.uid.clone()),
        ("policy", b.upload_secret.clone().unwrap_or_default()),
        ("success_action_status", "201".to_string()),
    ];
    if let Some(expires) = b.upload_expires_at {
        fields.push(("expires", iso(expires)));
    }
    let query: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", percent(v)))
        .collect();
    format!(
        "{}/blobs/upload?{}",
        public_api_url.trim_end_matches('/'),
        query.join("&")
    )
}

/// Form encoding with `%20` for spaces: the SDK decodes each value with
/// `decodeURIComponent`, which leaves a `+` as is.
fn percent(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

pub fn page(p: &BlobPage, page: i64, per_page: i64) -> Value {
    json!({
        "current_page": page,
        "per_page": per_page,
        "total_entries": p.total,
        "items": p.blobs.iter().map(wrapped).collect::<Vec<_>>(),
    })
}

/// S3's answer to a POST upload with `success_action_status=201`.
pub fn post_response(b: &Blob, location: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{location}</Location>\
         <Bucket>blobs</Bucket><Key>{}</Key><ETag>\"{}\"</ETag></PostResponse>",
        b.uid,
        b.checksum.as_deref().unwrap_or_default()
    )
}
