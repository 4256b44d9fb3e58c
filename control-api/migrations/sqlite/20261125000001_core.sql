-- Applications, users and sessions. Timestamps are unix milliseconds (UTC).
CREATE TABLE apps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    auth_key TEXT NOT NULL UNIQUE,
    auth_secret TEXT NOT NULL,
    account_key TEXT NOT NULL UNIQUE,
    is_default INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    login TEXT,
    email TEXT,
    full_name TEXT,
    phone TEXT,
    website TEXT,
    external_user_id INTEGER,
    facebook_id TEXT,
    twitter_id TEXT,
    blob_id INTEGER,
    custom_data TEXT,
    tags TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_request_at INTEGER
);
CREATE UNIQUE INDEX users_app_login ON users (app_id, login);
CREATE UNIQUE INDEX users_app_email ON users (app_id, email);
CREATE UNIQUE INDEX users_app_external_user_id ON users (app_id, external_user_id);
CREATE INDEX users_app_facebook_id ON users (app_id, facebook_id);

CREATE TABLE user_tags (
    app_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (user_id, tag)
);
CREATE INDEX user_tags_app_tag ON user_tags (app_id, tag);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    oid TEXT NOT NULL,
    token TEXT NOT NULL UNIQUE,
    app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    user_id INTEGER REFERENCES users (id) ON DELETE CASCADE,
    nonce INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_user_id ON sessions (user_id);
