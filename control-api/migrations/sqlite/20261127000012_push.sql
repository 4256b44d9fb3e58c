-- Push notifications: device subscriptions (one per user, device and channel) and the
-- events users sent. Timestamps are unix milliseconds (UTC).
CREATE TABLE push_subscriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    platform TEXT NOT NULL,
    udid TEXT NOT NULL,
    token TEXT NOT NULL,
    environment TEXT NOT NULL,
    bundle_id TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (app_id, user_id, udid, channel)
);

CREATE INDEX push_subscriptions_user ON push_subscriptions (app_id, user_id);

CREATE TABLE push_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    environment TEXT NOT NULL,
    push_type TEXT,
    message TEXT NOT NULL,
    recipients TEXT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE INDEX push_events_owner ON push_events (app_id, user_id, id);
