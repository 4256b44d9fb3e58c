-- Mesh call history: one summary per finished call, and who took part (for per-user
-- reads). Timestamps are unix milliseconds (UTC).
CREATE TABLE call_sessions (
    app_id BIGINT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    -- The SDK's sessionID (UUID v4 picked by the caller).
    session_id TEXT NOT NULL,
    caller_id BIGINT NOT NULL,
    -- Opponent user ids, comma-separated, in the caller's order.
    opponents TEXT NOT NULL,
    call_type BIGINT NOT NULL,
    -- ended | rejected | missed
    outcome TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    answered_at BIGINT,
    ended_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, session_id)
);

CREATE TABLE call_participants (
    app_id BIGINT NOT NULL,
    session_id TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, session_id, user_id),
    FOREIGN KEY (app_id, session_id) REFERENCES call_sessions (app_id, session_id) ON DELETE CASCADE
);
CREATE INDEX call_participants_user ON call_participants (app_id, user_id, started_at);
