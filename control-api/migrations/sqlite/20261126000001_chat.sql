-- Chat: dialogs, their occupants, message history, per-recipient message state
-- (delivered / read / deleted for me) and the offline stanza queue.
-- Timestamps are unix milliseconds (UTC) except date_sent columns, unix seconds as on the wire.
CREATE TABLE chat_dialogs (
    id TEXT PRIMARY KEY,
    app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    dialog_type INTEGER NOT NULL,
    name TEXT,
    photo TEXT,
    user_id INTEGER NOT NULL,
    data TEXT,
    is_join_required INTEGER,
    -- "low:high" user ids of a private dialog, so each pair has one; NULL otherwise.
    private_pair TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_message TEXT,
    last_message_date_sent INTEGER,
    last_message_user_id INTEGER,
    last_message_id TEXT
);
CREATE UNIQUE INDEX chat_dialogs_private_pair ON chat_dialogs (app_id, private_pair);
CREATE INDEX chat_dialogs_app_type ON chat_dialogs (app_id, dialog_type);

CREATE TABLE chat_occupants (
    dialog_id TEXT NOT NULL REFERENCES chat_dialogs (id) ON DELETE CASCADE,
    app_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    -- A private dialog the user deleted for themself; a new message shows it again.
    hidden INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (dialog_id, user_id)
);
CREATE INDEX chat_occupants_user ON chat_occupants (app_id, user_id);

CREATE TABLE chat_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    dialog_id TEXT NOT NULL REFERENCES chat_dialogs (id) ON DELETE CASCADE,
    sender_id INTEGER NOT NULL,
    recipient_id INTEGER,
    body TEXT NOT NULL,
    attachments TEXT NOT NULL,
    custom TEXT NOT NULL,
    markable INTEGER NOT NULL,
    date_sent INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX chat_messages_app_id ON chat_messages (app_id, id);
CREATE INDEX chat_messages_dialog ON chat_messages (dialog_id, date_sent, seq);

CREATE TABLE chat_message_states (
    message_seq INTEGER NOT NULL REFERENCES chat_messages (seq) ON DELETE CASCADE,
    app_id INTEGER NOT NULL,
    dialog_id TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    is_read INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (message_seq, user_id)
);
CREATE INDEX chat_message_states_unread ON chat_message_states (app_id, user_id, is_read, dialog_id);
CREATE INDEX chat_message_states_dialog ON chat_message_states (dialog_id, user_id);

CREATE TABLE chat_offline (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL,
    stanza TEXT NOT NULL,
    stored_at INTEGER NOT NULL
);
CREATE INDEX chat_offline_user ON chat_offline (app_id, user_id, id);
