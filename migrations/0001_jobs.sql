-- The job queue, its append-only audit trail, and the transactional outbox.

CREATE TABLE jobs (
    id                uuid PRIMARY KEY,
    kind              text        NOT NULL,
    state             text        NOT NULL CHECK (state IN ('scheduled','queued','submitting','running','succeeded','failed','cancelled')),
    params            jsonb       NOT NULL,
    result            jsonb,
    error             jsonb,
    attempt           integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts      integer     NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    priority          integer     NOT NULL DEFAULT 0,
    run_at            timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    upstream_provider text,
    upstream_job_id   text,
    upstream_state    text,
    cost_usd          numeric(14, 6),
    schedule_id       uuid,
    scheduled_for     timestamptz,
    idempotency_key   text,
    request_hash      text,
    api_key_id        uuid,
    metadata          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- queue bookkeeping: who holds the job now, until when, and how often it was polled
    lease_owner       text,
    lease_expires_at  timestamptz,
    poll_count        integer     NOT NULL DEFAULT 0,
    -- transient: who is writing and why, consumed by the jobs_write trigger (always NULL at rest)
    audit_actor       text,
    audit_detail      jsonb,
    CHECK ((state IN ('succeeded','failed','cancelled')) = (finished_at IS NOT NULL))
);

-- The claim query's path: due work by priority, then run_at.
CREATE INDEX jobs_claimable_idx ON jobs (priority, run_at, id) WHERE state IN ('queued','running');
-- Promotion of due scheduled jobs and rescue of expired leases.
CREATE INDEX jobs_scheduled_idx ON jobs (run_at) WHERE state = 'scheduled';
CREATE INDEX jobs_leased_idx ON jobs (lease_expires_at) WHERE lease_owner IS NOT NULL;
-- Listing: newest first with cursor paging.
CREATE INDEX jobs_created_idx ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_state_created_idx ON jobs (state, created_at DESC, id DESC);
CREATE INDEX jobs_schedule_idx ON jobs (schedule_id, scheduled_for) WHERE schedule_id IS NOT NULL;
CREATE UNIQUE INDEX jobs_idempotency_idx ON jobs (api_key_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_upstream_idx ON jobs (upstream_provider, upstream_job_id) WHERE upstream_job_id IS NOT NULL;

-- Append-only audit trail: one row per state change, however it was made.
CREATE TABLE job_events (
    id         bigserial   PRIMARY KEY,
    job_id     uuid        NOT NULL REFERENCES jobs (id) DEFERRABLE INITIALLY DEFERRED,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor      text        NOT NULL,
    from_state text,
    to_state   text        NOT NULL,
    detail     jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX job_events_job_idx ON job_events (job_id, id);

-- The transactional outbox: events written in the same transaction as the change that causes them.
CREATE TABLE events (
    id         uuid        PRIMARY KEY,
    type       text        NOT NULL,
    payload    jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_created_idx ON events (created_at);

-- Every write of a job passes through jobs_write: it keeps updated_at/finished_at true, records
-- each state change in job_events, and, when a job becomes final, writes its event to the outbox,
-- all inside the writer's own statement and transaction. The actor comes from the write itself
-- (the transient columns audit_actor/audit_detail, never stored), else from the transaction-local
-- settings dreamd.actor/dreamd.detail, else it is a person: `sql:<role>`.
CREATE FUNCTION dreamd_setting(name text) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT NULLIF(current_setting(name, true), '')
$$;

CREATE FUNCTION dreamd_time(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- The job as the API shows it (GET /v1/jobs/{id}); webhook payloads carry the same object.
CREATE FUNCTION dreamd_job_json(j jobs) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', j.id, 'kind', j.kind, 'state', j.state, 'params', j.params, 'attempt', j.attempt,
        'max_attempts', j.max_attempts, 'priority', j.priority, 'run_at', dreamd_time(j.run_at),
        'created_at', dreamd_time(j.created_at), 'updated_at', dreamd_time(j.updated_at),
        'finished_at', dreamd_time(j.finished_at),
        'upstream', CASE WHEN j.upstream_provider IS NULL THEN NULL ELSE jsonb_build_object(
            'provider', j.upstream_provider, 'job_id', j.upstream_job_id, 'state', j.upstream_state) END,
        'result', j.result, 'error', j.error, 'cost_usd', j.cost_usd, 'schedule_id', j.schedule_id,
        'metadata', j.metadata)
$$;

CREATE FUNCTION jobs_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    actor  text  := COALESCE(NEW.audit_actor, dreamd_setting('dreamd.actor'), 'sql:' || session_user);
    detail jsonb := COALESCE(NEW.audit_detail, dreamd_setting('dreamd.detail')::jsonb, '{}'::jsonb);
    moved  boolean := TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state;
BEGIN
    NEW.audit_actor := NULL;
    NEW.audit_detail := NULL;
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
    END IF;
    IF NEW.state IN ('succeeded', 'failed', 'cancelled') THEN
        NEW.finished_at := COALESCE(NEW.finished_at, now());
        NEW.lease_owner := NULL;
        NEW.lease_expires_at := NULL;
    ELSE
        NEW.finished_at := NULL;
    END IF;
    IF moved THEN
        INSERT INTO job_events (job_id, actor, from_state, to_state, detail)
        VALUES (NEW.id, actor, CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.state END, NEW.state, detail);
        IF NEW.state IN ('succeeded', 'failed', 'cancelled') THEN
            INSERT INTO events (id, type, payload)
            VALUES (gen_random_uuid(), 'job.' || NEW.state, jsonb_build_object(
                'type', 'job.' || NEW.state, 'timestamp', dreamd_time(clock_timestamp()), 'data', dreamd_job_json(NEW)));
        END IF;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER jobs_write BEFORE INSERT OR UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION jobs_write();

-- Wake idle workers when work becomes available (debounced by the listener).
CREATE FUNCTION jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dreamd_jobs', NEW.kind);
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.state = 'queued') EXECUTE FUNCTION jobs_notify();

-- job_events is append-only.
CREATE FUNCTION job_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'job_events is append-only';
END
$$;

CREATE TRIGGER job_events_append_only BEFORE UPDATE OR DELETE ON job_events
    FOR EACH ROW EXECUTE FUNCTION job_events_append_only();

