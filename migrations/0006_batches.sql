-- Bulk submissions (POST /v1/jobs/bulk): one batch row per request, its jobs point back at it.

CREATE TABLE batches (
    id              uuid        PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    api_key_id      uuid,
    total           integer     NOT NULL CHECK (total >= 0),
    -- Idempotency-Key of the bulk request and the SHA-256 of its body: a retried upload finds its batch.
    idempotency_key text,
    request_hash    text
);
CREATE UNIQUE INDEX batches_idempotency_idx ON batches (api_key_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

ALTER TABLE jobs ADD COLUMN batch_id uuid REFERENCES batches (id);
CREATE INDEX jobs_batch_idx ON jobs (batch_id, state) WHERE batch_id IS NOT NULL;
