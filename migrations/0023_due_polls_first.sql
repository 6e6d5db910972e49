-- Claims take due polls first, then submissions (docs/ARCHITECTURE.md, "Batched completion and claim batches").
--
-- One index served both until now: (priority, run_at, id) over queued and running jobs. Two things went wrong
-- with it under load (bench/e2e.sh, 5,000 jobs in bulk):
--   * a poll a callback made due now sorted behind every queued job older than now, so no job finished (and
--     no webhook went out) until the whole backlog of submissions had been sent: a 5 s wait per job;
--   * every claim that found fewer due rows than it asked for walked the index through all the running jobs
--     waiting for their next poll (run_at in the future) before it could stop.
-- A poll confirms work already paid for; it is cheap and frees an in-flight slot upstream. So polls are taken
-- first, in the order they fall due, and submissions fill the rest of the claim by priority. Each has its own
-- partial index, whose range scan stops at the first row not yet due.
CREATE INDEX jobs_due_polls_idx ON jobs (run_at, id) WHERE state = 'running';
CREATE INDEX jobs_due_submissions_idx ON jobs (priority, run_at, id) WHERE state = 'queued';
DROP INDEX jobs_claimable_idx;
