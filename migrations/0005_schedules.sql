-- Recurring jobs: cron schedules that fire exactly once per tick, however many daemons run.

CREATE TABLE schedules (
    id            uuid        PRIMARY KEY,
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- five cron fields, a macro (@daily, ...), or "@every <duration>"; validated by dreamd
    cron          text        NOT NULL,
    -- IANA zone the cron fields are read in
    timezone      text        NOT NULL DEFAULT 'UTC',
    -- the job template: {"kind", "params", "priority", "max_attempts", "metadata"}
    job           jsonb       NOT NULL CHECK (jsonb_typeof(job) = 'object' AND job ? 'kind' AND job ? 'params'),
    overlap       text        NOT NULL DEFAULT 'skip' CHECK (overlap IN ('skip', 'allow')),
    catch_up      text        NOT NULL DEFAULT 'one' CHECK (catch_up IN ('none', 'one', 'all')),
    enabled       boolean     NOT NULL DEFAULT true,
    -- the first tick not yet handled; NULL while disabled or when the expression never fires again
    next_fire_at  timestamptz,
    -- the tick of the latest job the schedule created
    last_fired_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The scheduler's path: enabled schedules that are due.
CREATE INDEX schedules_due_idx ON schedules (next_fire_at) WHERE enabled AND next_fire_at IS NOT NULL;
-- Listing: newest first with cursor paging.
CREATE INDEX schedules_created_idx ON schedules (created_at DESC, id DESC);

-- Exactly once per tick: a second attempt to create the job of a tick (another daemon, a retry) fails
-- here instead of creating a duplicate. It also serves "every run of this schedule" queries.
-- There is deliberately no foreign key to schedules: deleting a schedule keeps its past jobs and
-- their schedule_id, so their audit trail still says where they came from.
DROP INDEX jobs_schedule_idx;
CREATE UNIQUE INDEX jobs_schedule_tick_idx ON jobs (schedule_id, scheduled_for) WHERE schedule_id IS NOT NULL;
ALTER TABLE jobs ADD CONSTRAINT jobs_schedule_tick_check CHECK (schedule_id IS NULL OR scheduled_for IS NOT NULL);
