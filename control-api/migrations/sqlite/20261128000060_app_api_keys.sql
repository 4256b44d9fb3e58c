-- The application owner's API key for the server API (`Authorization: ApiKey <key>`, as
-- QuickBlox's): class management at /class.json. New applications get one from the
-- domain; existing ones get a random key here (192 bits from SQLite's CSPRNG-seeded
-- randomblob), shown by `switchboard app list`, replaced by `switchboard app rotate-key`.
ALTER TABLE apps ADD COLUMN api_key TEXT;
UPDATE apps SET api_key = lower(hex(randomblob(24))) WHERE api_key IS NULL;
CREATE UNIQUE INDEX apps_api_key ON apps (api_key);
