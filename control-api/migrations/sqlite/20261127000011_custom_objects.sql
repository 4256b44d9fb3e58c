-- Custom objects: classes (typed field list and default permissions as JSON) and their
-- records (field values and permission overrides as JSON; queries are evaluated by the
-- domain, see control-api/src/domain/data). Timestamps are unix milliseconds (UTC).
CREATE TABLE data_classes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    fields TEXT NOT NULL,
    permissions TEXT NOT NULL,
    create_allowed INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    UNIQUE (app_id, name)
);

CREATE TABLE data_records (
    id TEXT PRIMARY KEY,
    app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    class_id INTEGER NOT NULL REFERENCES data_classes (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL,
    parent_id TEXT,
    fields TEXT NOT NULL,
    permissions TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE INDEX data_records_class ON data_records (class_id, created_at);
CREATE INDEX data_records_parent ON data_records (app_id, parent_id);
