-- The queue engine (issue 14): fenced leases, the job state machine in the database, and the audit trail,
-- outbox and webhook fan-out written set-based by statement-level triggers with transition tables.

-- 1. Fencing. Every claim (and every rescue or release) moves a job's lease_epoch on by one. A claim carries
--    the epoch it set; heartbeats and outcome writes match `lease_epoch = <the claim's epoch>`, never the
--    process name, so a step whose lease was rescued and claimed again (even by the same process) can no
--    longer write anything. The same for webhook deliveries and checkpoint archives.
ALTER TABLE jobs ADD COLUMN lease_epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN lease_epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE checkpoints ADD COLUMN archive_lease_epoch bigint NOT NULL DEFAULT 0;

-- 2. The state machine. One row per allowed move of `jobs.state`; the rows are JobState.transitions
--    (Sources/DreamdCore/JobState.swift), checked against it by a test (JobStateMachineTests).
--    Who moves each one is in docs/ARCHITECTURE.md ("Job states").
CREATE TABLE job_transitions (
    from_state text NOT NULL,
    to_state   text NOT NULL,
    PRIMARY KEY (from_state, to_state)
);
INSERT INTO job_transitions (from_state, to_state) VALUES
    ('scheduled', 'queued'), ('scheduled', 'submitting'), ('scheduled', 'cancelled'),
    ('queued', 'submitting'), ('queued', 'scheduled'), ('queued', 'cancelled'),
    ('submitting', 'running'), ('submitting', 'scheduled'), ('submitting', 'queued'),
    ('submitting', 'succeeded'), ('submitting', 'failed'), ('submitting', 'cancelled'),
    ('running', 'succeeded'), ('running', 'failed'), ('running', 'scheduled'), ('running', 'queued'),
    ('running', 'cancelled'),
    ('failed', 'queued'), ('cancelled', 'queued');

-- 3. Who wrote a row last, and why: the row trigger moves the transient audit_actor/audit_detail (set by the
--    writer, never stored) here, where the statement trigger reads them from the transition table.
ALTER TABLE jobs ADD COLUMN written_by text, ADD COLUMN written_detail jsonb;

-- The row trigger keeps only what must be per row and costs no I/O: timestamps, the lease of final jobs,
-- and the writer's name. Everything that writes to another table moved to the statement triggers below.
CREATE OR REPLACE FUNCTION jobs_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.audit_actor IS NOT NULL THEN
        NEW.written_by := NEW.audit_actor;
        NEW.written_detail := COALESCE(NEW.audit_detail, '{}'::jsonb);
        NEW.audit_actor := NULL;
        NEW.audit_detail := NULL;
    ELSE
        NEW.written_by := COALESCE(dreamd_setting('dreamd.actor'), 'sql:' || session_user);
        NEW.written_detail := COALESCE(NEW.audit_detail, dreamd_setting('dreamd.detail')::jsonb, '{}'::jsonb);
        NEW.audit_detail := NULL;
    END IF;
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
    RETURN NEW;
END
$$;

-- The outbox event of a job that became final, as the API shows the job.
CREATE FUNCTION dreamd_job_event(j jobs) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('type', 'job.' || j.state, 'timestamp', dreamd_time(clock_timestamp()), 'data', dreamd_job_json(j))
$$;

-- After every INSERT statement: one audit row per job, the outbox event of any job inserted final, and one
-- NOTIFY per kind that has queued work.
CREATE FUNCTION jobs_audit_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_events (job_id, actor, from_state, to_state, detail)
    SELECT n.id, n.written_by, NULL, n.state, n.written_detail FROM new_jobs n;
    INSERT INTO events (id, type, payload)
    SELECT gen_random_uuid(), 'job.' || n.state, dreamd_job_event(n::jobs)
    FROM new_jobs n WHERE n.state IN ('succeeded', 'failed', 'cancelled');
    PERFORM pg_notify('dreamd_jobs', k.kind) FROM (SELECT DISTINCT kind FROM new_jobs WHERE state = 'queued') k;
    RETURN NULL;
END
$$;

-- After every UPDATE statement: refuses any move the state machine does not allow (the whole statement
-- fails), then writes one audit row per state change and one outbox event per job that became final.
CREATE FUNCTION jobs_audit_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.id, o.state AS from_state, n.state AS to_state INTO bad
    FROM old_jobs o JOIN new_jobs n ON n.id = o.id
    WHERE n.state <> o.state
      AND NOT EXISTS (SELECT 1 FROM job_transitions t WHERE t.from_state = o.state AND t.to_state = n.state)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'illegal job state transition % -> % (job %)', bad.from_state, bad.to_state, bad.id
            USING ERRCODE = 'check_violation',
                  HINT = 'the allowed moves are the rows of job_transitions (JobState.transitions)';
    END IF;
    INSERT INTO job_events (job_id, actor, from_state, to_state, detail)
    SELECT n.id, n.written_by, o.state, n.state, n.written_detail
    FROM old_jobs o JOIN new_jobs n ON n.id = o.id
    WHERE n.state <> o.state;
    INSERT INTO events (id, type, payload)
    SELECT gen_random_uuid(), 'job.' || n.state, dreamd_job_event(n::jobs)
    FROM old_jobs o JOIN new_jobs n ON n.id = o.id
    WHERE n.state <> o.state AND n.state IN ('succeeded', 'failed', 'cancelled');
    RETURN NULL;
END
$$;

DROP TRIGGER jobs_notify ON jobs;
DROP FUNCTION jobs_notify();
CREATE TRIGGER jobs_audit_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_audit_insert();
CREATE TRIGGER jobs_audit_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_audit_update();

-- 4. Webhook fan-out, set-based: one statement per statement that wrote events, not one per event.
CREATE OR REPLACE FUNCTION events_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO deliveries (id, event_id, subscription_id, event_type, state, next_attempt_at)
    SELECT gen_random_uuid(), e.id, s.id, e.type, 'pending', now()
    FROM new_events e JOIN subscriptions s ON s.enabled AND dreamd_event_type_matches(s.event_types, e.type);
    RETURN NULL;
END
$$;
DROP TRIGGER events_fan_out ON events;
CREATE TRIGGER events_fan_out AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION events_fan_out();

-- 5. The hot path lean (each choice is explained in docs/ARCHITECTURE.md, "The hot path").
-- job_events rows are written only by the jobs triggers, for rows of jobs in the same statement, and jobs
-- are never deleted: the deferred foreign key re-checked at every commit what the trigger guarantees.
ALTER TABLE job_events DROP CONSTRAINT job_events_job_id_fkey;
-- deliveries are written by the fan-out for events of the same statement (and by redelivery/recovery for
-- events read in the same statement); events are never deleted, so the per-row check (a row lock on the
-- event, which dirties the event's page) gave nothing.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_id_fkey;
-- Queue tables are rewritten all day: vacuum them early, and leave room on each page for new versions.
ALTER TABLE jobs SET (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE deliveries SET (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
