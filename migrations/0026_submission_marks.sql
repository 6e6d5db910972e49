-- Never pay twice, and never fail a job that was never sent (issue 15; docs/ARCHITECTURE.md, "Reconciliation").
--
-- A process killed mid-submission leaves its job `submitting`; until now the rescuer could not tell a
-- submission that reached the upstream from one that never left, so every such job went back unsettled and,
-- when dreamlook's 50-job listing could no longer be conclusive, failed `submission_unknown` (14 of the 15 such
-- jobs of a 600-job chaos run had never reached the simulator).
--
-- dreamlook submissions already record a durable mark before anything is sent: the attempt's callback token
-- (callback_tokens.created_at, written after the claim committed). The claim now says, per job, whether its
-- process makes that mark (`marks_submission`: the kind's executor takes callbacks and this daemon has them on).
-- A rescued or released job whose claim promised a mark and whose attempt has none was never sent: it goes
-- back to `queued` with its attempt given back and nothing to settle. Any other job caught mid-submission is
-- settled as before. A process that cannot write the mark does not send.
ALTER TABLE jobs ADD COLUMN marks_submission boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN jobs.marks_submission IS
    'the claim of the current attempt records a callback token before the submission is sent: no token since submitted_at means it was never sent';
