-- Checkpoint retention (issue 8): an audit trail of checkpoint state changes, outbox events for
-- checkpoint.expiring / checkpoint.expired / checkpoint.archived, and the bookkeeping of archiving.

-- Whether a dreambooth job asked for its checkpoints to be archived (`archive_checkpoints` in the body).
ALTER TABLE jobs ADD COLUMN archive_checkpoints boolean NOT NULL DEFAULT false;

ALTER TABLE checkpoints
    -- archiving: requested by the job (or DREAMD_ARCHIVE_CHECKPOINTS), claimed with a lease
    ADD COLUMN archive_requested        boolean     NOT NULL DEFAULT false,
    ADD COLUMN archive_state            text        CHECK (archive_state IN ('pending', 'archiving', 'archived', 'failed')),
    ADD COLUMN archive_attempts         integer     NOT NULL DEFAULT 0,
    ADD COLUMN archive_error            text,
    ADD COLUMN archive_lease_owner      text,
    ADD COLUMN archive_lease_expires_at timestamptz,
    ADD COLUMN archive_next_attempt_at  timestamptz,
    ADD COLUMN archived_at              timestamptz,
    -- transient: who is writing and why, consumed by the checkpoints_write trigger (always NULL at rest)
    ADD COLUMN audit_actor              text,
    ADD COLUMN audit_detail             jsonb;

-- The retention sweeper's path: checkpoints not yet expired, by expiry.
CREATE INDEX checkpoints_live_expiry_idx ON checkpoints (expires_at) WHERE state IN ('available', 'expiring');
-- The archiver's path: archives waiting for a worker.
CREATE INDEX checkpoints_archive_due_idx ON checkpoints (archive_next_attempt_at)
    WHERE archive_state IN ('pending', 'archiving');

-- Append-only audit trail of checkpoints: one row per state change (and per archive_state change).
CREATE TABLE checkpoint_events (
    id            bigserial   PRIMARY KEY,
    checkpoint_id uuid        NOT NULL REFERENCES checkpoints (id) DEFERRABLE INITIALLY DEFERRED,
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor         text        NOT NULL,
    from_state    text,
    to_state      text        NOT NULL,
    detail        jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX checkpoint_events_checkpoint_idx ON checkpoint_events (checkpoint_id, id);

CREATE FUNCTION checkpoint_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'checkpoint_events is append-only';
END
$$;

CREATE TRIGGER checkpoint_events_append_only BEFORE UPDATE OR DELETE ON checkpoint_events
    FOR EACH ROW EXECUTE FUNCTION checkpoint_events_append_only();

-- The checkpoint as the API shows it (GET /v1/checkpoints/{id}); webhook payloads carry the same object.
CREATE FUNCTION dreamd_checkpoint_json(c checkpoints) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', c.id, 'job_id', c.job_id, 'upstream_checkpoint_id', c.upstream_checkpoint_id, 'state', c.state,
        'trained_at', dreamd_time(c.trained_at), 'expires_at', dreamd_time(c.expires_at),
        'checkpoint_type', c.checkpoint_type, 'model_type', c.model_type, 'file_format', c.file_format,
        'is_extracted_lora', c.is_extracted_lora, 'training_step', c.training_step, 'size_bytes', c.size_bytes,
        'url', c.url, 'archived_path', c.archived_path, 'created_at', dreamd_time(c.created_at),
        'archive_requested', c.archive_requested, 'archive_state', c.archive_state,
        'archived_bytes', c.archived_bytes, 'archived_sha256', c.archived_sha256, 'archive_error', c.archive_error)
$$;

-- Every write of a checkpoint passes through checkpoints_write: it keeps updated_at true, records each
-- state (and archive_state) change in checkpoint_events, and writes checkpoint.expiring, checkpoint.expired
-- and checkpoint.archived to the outbox, inside the writer's own statement. The actor comes as for jobs.
CREATE FUNCTION checkpoints_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    actor    text    := COALESCE(NEW.audit_actor, dreamd_setting('dreamd.actor'), 'sql:' || session_user);
    detail   jsonb   := COALESCE(NEW.audit_detail, dreamd_setting('dreamd.detail')::jsonb, '{}'::jsonb);
    moved    boolean := TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state;
    archived boolean := NEW.archive_state = 'archived'
                        AND (TG_OP = 'INSERT' OR OLD.archive_state IS DISTINCT FROM 'archived');
    archive_moved boolean := TG_OP = 'UPDATE' AND NEW.archive_state IS DISTINCT FROM OLD.archive_state;
    event    text;
BEGIN
    NEW.audit_actor := NULL;
    NEW.audit_detail := NULL;
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
    END IF;
    IF moved OR archive_moved THEN
        IF archive_moved THEN
            detail := detail || jsonb_build_object('archive_state', NEW.archive_state, 'archive_from', OLD.archive_state);
        END IF;
        INSERT INTO checkpoint_events (checkpoint_id, actor, from_state, to_state, detail)
        VALUES (NEW.id, actor, CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.state END, NEW.state, detail);
    END IF;
    IF moved AND TG_OP = 'UPDATE' AND NEW.state IN ('expiring', 'expired') THEN
        event := 'checkpoint.' || NEW.state;
        INSERT INTO events (id, type, payload)
        VALUES (gen_random_uuid(), event, jsonb_build_object(
            'type', event, 'timestamp', dreamd_time(clock_timestamp()), 'data', dreamd_checkpoint_json(NEW)));
    END IF;
    IF archived THEN
        NEW.archived_at := COALESCE(NEW.archived_at, now());
        INSERT INTO events (id, type, payload)
        VALUES (gen_random_uuid(), 'checkpoint.archived', jsonb_build_object(
            'type', 'checkpoint.archived', 'timestamp', dreamd_time(clock_timestamp()), 'data', dreamd_checkpoint_json(NEW)));
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER checkpoints_write BEFORE INSERT OR UPDATE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION checkpoints_write();
