-- dreamlook.ai: callback tokens, the callback inbox, and trained checkpoints.

-- One random token per submission attempt; only its SHA-256 is kept. A callback URL carries the token.
CREATE TABLE callback_tokens (
    token_hash text        PRIMARY KEY,
    provider   text        NOT NULL,
    job_id     uuid        NOT NULL REFERENCES jobs (id),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX callback_tokens_job_idx ON callback_tokens (job_id);

-- Every callback received for a known token, stored before it is acted on.
CREATE TABLE callback_inbox (
    id           bigserial   PRIMARY KEY,
    provider     text        NOT NULL,
    job_id       uuid        NOT NULL REFERENCES jobs (id),
    received_at  timestamptz NOT NULL DEFAULT now(),
    payload      text        NOT NULL,
    upstream_job_id text,
    upstream_state  text,
    processed_at timestamptz,
    outcome      text
);
CREATE INDEX callback_inbox_job_idx ON callback_inbox (job_id, id);
CREATE INDEX callback_inbox_unprocessed_idx ON callback_inbox (id) WHERE processed_at IS NULL;

-- Checkpoints trained by dreambooth jobs. dreamlook deletes them after a retention period.
CREATE TABLE checkpoints (
    id                     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id                 uuid        NOT NULL REFERENCES jobs (id),
    upstream_checkpoint_id text        NOT NULL UNIQUE,
    state                  text        NOT NULL DEFAULT 'available'
                                       CHECK (state IN ('available', 'expiring', 'expired')),
    trained_at             timestamptz NOT NULL,
    expires_at             timestamptz NOT NULL,
    checkpoint_type        text,
    model_type             text,
    file_format            text,
    is_extracted_lora      boolean     NOT NULL DEFAULT false,
    training_step          integer,
    size_bytes             bigint,
    url                    text,
    archived_path          text,
    archived_bytes         bigint,
    archived_sha256        text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX checkpoints_job_idx ON checkpoints (job_id);
CREATE INDEX checkpoints_state_expiry_idx ON checkpoints (state, expires_at);
