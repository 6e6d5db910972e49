-- Never pay twice: settling a submission whose answer was lost (docs/ARCHITECTURE.md, "Reconciliation").
--
-- submitted_at     when the current attempt's submission began (set by the claim, queued -> submitting).
-- reconcile_since  set while a submission's outcome is unknown: the start of that submission. The next
--                  attempt looks for it upstream before anything is sent again.
-- reconcile_hold   while true, no dreamd process submits fresh jobs of this kind: dreamlook lists only its
--                  50 most recent jobs, so dreamd's own traffic must not push the lost one out of sight.
-- reconcile_anchor an upstream job id accepted before the lost submission began: a listing that still
--                  shows it covers every job created since, so the lost one's absence is conclusive.
ALTER TABLE jobs
    ADD COLUMN submitted_at     timestamptz,
    ADD COLUMN reconcile_since  timestamptz,
    ADD COLUMN reconcile_hold   boolean NOT NULL DEFAULT false,
    ADD COLUMN reconcile_anchor text;

-- The claim's hold check reads only held jobs; it is empty nearly always.
CREATE INDEX jobs_reconcile_hold_idx ON jobs (kind) WHERE reconcile_hold;
-- Jobs waiting on a reconciliation, for operators (docs/scaling.md) and the dashboard.
CREATE INDEX jobs_reconciling_idx ON jobs (reconcile_since) WHERE reconcile_since IS NOT NULL;
