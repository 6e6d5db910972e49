-- Progress of a step that streams (DreamGen completions): the text so far and counters, updated while
-- the step runs and kept when it ends. The API shows the counters on the job; the text is served by
-- GET /v1/jobs/{id}/output.
ALTER TABLE jobs ADD COLUMN progress jsonb;
ALTER TABLE jobs ADD COLUMN partial_output text;

CREATE OR REPLACE FUNCTION dreamd_job_json(j jobs) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', j.id, 'kind', j.kind, 'state', j.state, 'params', j.params, 'attempt', j.attempt,
        'max_attempts', j.max_attempts, 'priority', j.priority, 'run_at', dreamd_time(j.run_at),
        'created_at', dreamd_time(j.created_at), 'updated_at', dreamd_time(j.updated_at),
        'finished_at', dreamd_time(j.finished_at),
        'upstream', CASE WHEN j.upstream_provider IS NULL THEN NULL ELSE jsonb_build_object(
            'provider', j.upstream_provider, 'job_id', j.upstream_job_id, 'state', j.upstream_state) END,
        'result', j.result, 'error', j.error, 'cost_usd', j.cost_usd, 'schedule_id', j.schedule_id,
        'metadata', j.metadata, 'progress', j.progress)
$$;
