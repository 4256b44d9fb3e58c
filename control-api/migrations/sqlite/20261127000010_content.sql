-- Content: blob metadata. The bytes live in blob storage (local files or S3) under
-- "<app_id>/<uid>". Timestamps are unix milliseconds (UTC).
CREATE TABLE blobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL,
    uid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    is_public INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL DEFAULT '',
    -- The size the client declared when marking the upload complete.
    size INTEGER,
    -- What the upload stored: byte count and MD5 (hex); NULL until uploaded.
    stored_size INTEGER,
    checksum TEXT,
    -- The write grant handed out in blob_object_access; NULL once complete.
    upload_secret TEXT,
    upload_expires_at INTEGER,
    completed_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE INDEX blobs_owner ON blobs (app_id, user_id, id);
