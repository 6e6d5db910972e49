-- Callback tokens stay secret and bounded (issue 13).
--
-- * Each token counts the callbacks it stored; past DREAMD_CALLBACK_MAX_PER_TOKEN the inbox takes no more.
-- * A body PostgreSQL's text cannot hold (a NUL byte, bytes that are not UTF-8) is still kept: base64 in
--   `payload`, with `payload_encoding = 'base64'`.
-- * Tokens already written into stored payloads (dreamlook echoes the callback URL in `config.callback`)
--   are replaced by a marker; from now on dreamd strips them before storing.
ALTER TABLE callback_tokens ADD COLUMN callbacks_received integer NOT NULL DEFAULT 0;

ALTER TABLE callback_inbox ADD COLUMN payload_encoding text NOT NULL DEFAULT 'text'
    CHECK (payload_encoding IN ('text', 'base64'));

UPDATE callback_inbox
SET payload = regexp_replace(payload, '/callbacks/([A-Za-z0-9_-]+)/[A-Za-z0-9_-]{16,}', '/callbacks/\1/[redacted]', 'g')
WHERE payload ~ '/callbacks/[A-Za-z0-9_-]+/[A-Za-z0-9_-]{16,}';
