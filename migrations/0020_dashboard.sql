-- The web dashboard (issue 16): sessions, and the indexes its pages read through.
--
-- A session is created by signing in with an API key. Only a SHA-256 of the session token (the cookie's
-- value) is kept; the key's scope is read through api_keys on every request, so revoking a key ends its
-- sessions at once. Sessions live in the database so that any daemon behind a load balancer knows them.
CREATE TABLE ui_sessions (
    token_hash   text        PRIMARY KEY,
    api_key_id   uuid        NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX ui_sessions_expires_idx ON ui_sessions (expires_at);

-- Throughput of the last hour, jobs finished in the last 24 h and spend per day read finished jobs by
-- finish time; without this index each would scan the whole table. It carries the columns those
-- aggregates group and sum, so they are index-only scans on a vacuumed table.
CREATE INDEX jobs_finished_idx ON jobs (finished_at) INCLUDE (kind, state, cost_usd, api_key_id)
    WHERE finished_at IS NOT NULL;
-- The jobs page's search by a metadata value (`key=value`: containment).
CREATE INDEX jobs_metadata_idx ON jobs USING gin (metadata jsonb_path_ops);
