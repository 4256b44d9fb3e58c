-- Scheduled push events (fixed_date, period_date) and per-dialog notification settings.
-- next_at: unix ms of the next delivery, NULL once nothing is pending (one-shot events
-- are delivered while created). period: seconds between deliveries of a period_date event.
ALTER TABLE push_events ADD COLUMN name TEXT;
ALTER TABLE push_events ADD COLUMN next_at INTEGER;
ALTER TABLE push_events ADD COLUMN period INTEGER;
ALTER TABLE push_events ADD COLUMN end_at INTEGER;
ALTER TABLE push_events ADD COLUMN occurrences INTEGER NOT NULL DEFAULT 0;
CREATE INDEX push_events_due ON push_events (next_at);

-- A user who switched a dialog's notifications off (PUT /chat/Dialog/{id}/notifications.json)
-- gets no offline-message pushes for it.
ALTER TABLE chat_occupants ADD COLUMN muted INTEGER NOT NULL DEFAULT 0;
