-- The audit triggers' plans (issue 14). Read with auto_explain under bench/queue.sh (docs/benchmarks.md,
-- "Where the time went, 2026-12-07"): the statement triggers of 0021 cost more than the writes they audit.
--
-- 1. The outbox payload is rendered inline. dreamd_time was declared IMMUTABLE around to_char (STABLE) and
--    dreamd_job_event STABLE around clock_timestamp() (VOLATILE); PostgreSQL never inlines a SQL function whose
--    body is more volatile than its label, so every event ran six nested function calls through the
--    SQL-function executor (0.13 ms an event, a fifth of the server's time draining no-op jobs).
--    With honest labels both are inlined into the trigger's INSERT. Nothing indexes on dreamd_time.
ALTER FUNCTION dreamd_time(timestamptz) STABLE;
ALTER FUNCTION dreamd_job_event(jobs) VOLATILE;

-- 2. Epoch-only fencing. The outcome write and the heartbeat matched `lease_epoch = <token> AND
--    lease_expires_at IS NOT NULL`. ANALYZE sees almost no live leases, so the planner estimated one
--    matching job, put jobs on the outer side of a nested loop and re-read the whole unnest() batch per
--    job: 256 x 256 pairs, 60 ms a statement, and a seq scan of jobs while the table was small. Now every
--    end of a lease moves the epoch on (the row trigger below), so (id, epoch) alone is the same fence,
--    and the planner drives the write from the batch through the primary key.
--
-- 3. No join of the transition tables. jobs_audit_update joined old_jobs to new_jobs by id three times (the
--    state-machine check, the audit rows, the outbox). A trigger's queries are planned before its
--    transition tables are filled, so the planner saw one row on each side and chose nested loops: 256 x 256
--    comparisons per join for a batch of 256, 12 ms a statement. The row trigger, which has OLD and NEW
--    anyway, now records the state a write moved the job from (`written_from`, NULL when the state was kept),
--    and the statement trigger reads new_jobs alone; the UPDATE trigger no longer asks for OLD TABLE, so the
--    old row versions are not copied into a tuplestore at all.
ALTER TABLE jobs ADD COLUMN written_from text;
COMMENT ON COLUMN jobs.written_from IS
    'the state the last write moved this job from; NULL when that write kept the state or inserted the job';

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
        NEW.written_from := CASE WHEN NEW.state IS DISTINCT FROM OLD.state THEN OLD.state END;
    ELSE
        NEW.written_from := NULL;
    END IF;
    IF NEW.state IN ('succeeded', 'failed', 'cancelled') THEN
        NEW.finished_at := COALESCE(NEW.finished_at, now());
        NEW.lease_owner := NULL;
        NEW.lease_expires_at := NULL;
    ELSE
        NEW.finished_at := NULL;
    END IF;
    -- A lease that ends (an outcome, a final state set by anyone, a release or a rescue) takes its epoch with
    -- it: no claim's token can match the row again, so heartbeats and outcome writes match (id, epoch) only.
    IF TG_OP = 'UPDATE' AND OLD.lease_expires_at IS NOT NULL AND NEW.lease_expires_at IS NULL
       AND NEW.lease_epoch = OLD.lease_epoch THEN
        NEW.lease_epoch := OLD.lease_epoch + 1;
    END IF;
    RETURN NEW;
END
$$;

-- After every UPDATE statement: refuses any move the state machine does not allow (the whole statement
-- fails), then writes one audit row per state change and one outbox event per job that became final.
-- The check is a hashed NOT IN over the 19 rows of job_transitions (both columns are NOT NULL).
CREATE OR REPLACE FUNCTION jobs_audit_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.id, n.written_from AS from_state, n.state AS to_state INTO bad
    FROM new_jobs n
    WHERE n.written_from IS NOT NULL
      AND (n.written_from, n.state) NOT IN (SELECT t.from_state, t.to_state FROM job_transitions t)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'illegal job state transition % -> % (job %)', bad.from_state, bad.to_state, bad.id
            USING ERRCODE = 'check_violation',
                  HINT = 'the allowed moves are the rows of job_transitions (JobState.transitions)';
    END IF;
    INSERT INTO job_events (job_id, actor, from_state, to_state, detail)
    SELECT n.id, n.written_by, n.written_from, n.state, n.written_detail
    FROM new_jobs n WHERE n.written_from IS NOT NULL;
    INSERT INTO events (id, type, payload)
    SELECT gen_random_uuid(), 'job.' || n.state, dreamd_job_event(n::jobs)
    FROM new_jobs n WHERE n.written_from IS NOT NULL AND n.state IN ('succeeded', 'failed', 'cancelled');
    RETURN NULL;
END
$$;

DROP TRIGGER jobs_audit_update ON jobs;
CREATE TRIGGER jobs_audit_update AFTER UPDATE ON jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_audit_update();
