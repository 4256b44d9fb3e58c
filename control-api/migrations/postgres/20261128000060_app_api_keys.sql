-- The application owner's API key for the server API (`Authorization: ApiKey <key>`, as
-- QuickBlox's): class management at /class.json. New applications get one from the
-- domain; existing ones get a random key here (two v4 UUIDs, 244 bits from
-- pg_strong_random), shown by `switchboard app list`, replaced by `switchboard app rotate-key`.
ALTER TABLE apps ADD COLUMN api_key TEXT;
UPDATE apps SET api_key = replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '')
    WHERE api_key IS NULL;
CREATE UNIQUE INDEX apps_api_key ON apps (api_key);
