-- The delivery claim takes each open subscription's oldest due deliveries (docs/ARCHITECTURE.md, "The hot path").
--
-- It used to scan deliveries_due_idx (next_attempt_at, id) over all subscriptions and rank the rows per
-- subscription. With statistics taken while few deliveries were pending (the usual case), the planner read
-- and sorted every due row instead of walking the index to the window: 5-11 ms a claim behind a 20,000-row
-- burst (bench/webhooks.sh, auto_explain), 86 % of the server's time. Now the claim visits each enabled
-- subscription with free slots and reads at most that many of its due rows from this index, in order, which
-- costs the rows taken whatever the backlog or the statistics; a subscriber at its cap cannot hold the others up.
CREATE INDEX deliveries_due_by_subscription_idx ON deliveries (subscription_id, next_attempt_at, id) WHERE state = 'pending';
DROP INDEX deliveries_due_idx;
