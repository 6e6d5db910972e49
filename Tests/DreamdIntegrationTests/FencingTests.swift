import DreamdCore
import DreamdServices
import DreamdStore
import Foundation
import Logging
import Testing

/// Leases are fenced by the claim's token (`lease_epoch`), not by the process's name.
@Suite("Fencing", .hangGuard)
struct FencingTests {
    @Test("after a rescue and a new claim in the same process, the first claim can write nothing; the second keeps working")
    func staleClaimRefused() async throws {
        try await TestDatabase.with { db in
            guard case .created(let job) = try await db.jobs.insert(.init(kind: "test_noop", params: [:])) else {
                Issue.record("not created")
                return
            }
            // One process ("same") claims, stalls past its lease, and the rescuer takes the job back.
            let first = try #require(try await db.jobs.claim(kinds: ["test_noop"], limit: 1, owner: "same", leaseDuration: .milliseconds(200)).first)
            try await Task.sleep(for: .milliseconds(400))
            #expect(try await db.jobs.rescueExpiredLeases() == 1)
            // The same process claims the job again.
            let second = try #require(try await db.jobs.claim(kinds: ["test_noop"], limit: 1, owner: "same", leaseDuration: .seconds(30)).first)
            #expect(second.job.id == job.id)
            #expect(second.leaseEpoch > first.leaseEpoch)

            // The first claim's heartbeat, progress and outcomes (one or batched) are refused.
            let staleLease = Lease(id: job.id, epoch: first.leaseEpoch)
            #expect(try await db.jobs.heartbeat(leases: [staleLease], leaseDuration: .seconds(30)).isEmpty)
            let stale = try await db.jobs.record(.succeeded(result: ["from": "first"], costUSD: nil, upstreamState: nil),
                                                 for: first, provider: "test", owner: "same", backoff: .jobRetry)
            #expect(stale == nil)
            let staleWrite = try db.jobs.outcomeWrite(.failed(JobError(code: "stale", message: "from the first claim"), upstreamState: nil),
                                                      for: first, provider: "test", backoff: .jobRetry)
            #expect(try await db.jobs.recordBatch([staleWrite]).isEmpty)
            #expect(try await db.jobs.job(id: job.id)?.state == .submitting)

            // The second claim's heartbeats keep working, and its outcome is the one recorded.
            let lease = Lease(id: job.id, epoch: second.leaseEpoch)
            #expect(try await db.jobs.heartbeat(leases: [lease], leaseDuration: .seconds(30)) == [job.id])
            #expect(try await db.jobs.heartbeat(leases: [lease, staleLease], leaseDuration: .seconds(30)) == [job.id])
            let write = try db.jobs.outcomeWrite(.succeeded(result: ["from": "second"], costUSD: 0.5, upstreamState: "done"),
                                                 for: second, provider: "test", backoff: .jobRetry)
            #expect(try await db.jobs.recordBatch([write, staleWrite]) == [job.id: .succeeded])
            let final = try #require(try await db.jobs.job(id: job.id))
            #expect(final.result == ["from": "second"])
            #expect(final.costUSD == 0.5)
            #expect(final.attempt == 2)
            let trail = try await db.jobs.events(jobID: job.id).map { "\($0.actor):\($0.toState.rawValue)" }
            #expect(trail == ["api:queued", "worker:submitting", "rescuer:queued", "worker:submitting", "worker:succeeded"])
        }
    }

    @Test("a step whose lease is lost is cancelled at once and records nothing")
    func lostLeaseCancelsStep() async throws {
        try await TestDatabase.with { db in
            guard case .created(let job) = try await db.jobs.insert(.init(kind: "test_noop", params: [:])) else { return }
            let slow = CountingExecutor(behaviour: .hang(.seconds(60)))
            let worker = JobWorker(
                store: db.jobs, registry: ExecutorRegistry([slow]),
                configuration: WorkerConfiguration(
                    concurrency: 4, batchSize: 4, leaseDuration: .seconds(5), heartbeatInterval: .milliseconds(200),
                    idlePollInterval: .milliseconds(100), maintenanceInterval: .milliseconds(200), owner: "w"),
                logger: db.logger)
            try await withWorkers([worker], logger: db.logger) {
                #expect(try await eventually { worker.inFlightCount == 1 })
                // Cancelling the job ends its lease (the trigger clears it): the next heartbeat finds it lost.
                _ = try await db.jobs.cancel(id: job.id)
                let started = ContinuousClock.now
                #expect(try await eventually(timeout: .seconds(5)) { worker.inFlightCount == 0 })
                #expect(ContinuousClock.now - started < .seconds(3))
            }
            let final = try #require(try await db.jobs.job(id: job.id))
            #expect(final.state == .cancelled)
            #expect(slow.submissions[job.id] == 1)
        }
    }

    @Test("a person's UPDATE that ends a lease moves its epoch on: the step's heartbeat and outcome are refused, not tried as an illegal move")
    func leaseEndedInSQLFencesTheStep() async throws {
        try await TestDatabase.with { db in
            guard case .created(let job) = try await db.jobs.insert(.init(kind: "test_noop", params: [:])) else {
                Issue.record("not created")
                return
            }
            let claimed = try #require(try await db.jobs.claim(kinds: ["test_noop"], limit: 1, owner: "w", leaseDuration: .seconds(30)).first)
            // A write that keeps the lease keeps the epoch.
            try await db.client.query("UPDATE jobs SET metadata = '{\"k\": \"v\"}' WHERE id = \(job.id)", logger: db.logger)
            #expect(try await db.values("SELECT lease_epoch FROM jobs WHERE id = \(job.id)", as: Int64.self) == [claimed.leaseEpoch])
            // Someone cancels the job by hand while its step runs; the row trigger ends the lease and its epoch.
            try await db.client.query("UPDATE jobs SET state = 'cancelled' WHERE id = \(job.id)", logger: db.logger)
            #expect(try await db.values("SELECT lease_epoch FROM jobs WHERE id = \(job.id)", as: Int64.self) == [claimed.leaseEpoch + 1])
            let lease = Lease(id: job.id, epoch: claimed.leaseEpoch)
            #expect(try await db.jobs.heartbeat(leases: [lease], leaseDuration: .seconds(30)).isEmpty)
            // The outcome matches nothing, so the batch is not refused as `cancelled -> succeeded`: it records nothing.
            let write = try db.jobs.outcomeWrite(.succeeded(result: [:], costUSD: nil, upstreamState: nil),
                                                 for: claimed, provider: "test", backoff: .jobRetry)
            #expect(try await db.jobs.recordBatch([write]).isEmpty)
            #expect(try await db.jobs.job(id: job.id)?.state == .cancelled)
        }
    }

    @Test("outcomes written in one batch are each audited and fenced")
    func batchedOutcomes() async throws {
        try await TestDatabase.with { db in
            for _ in 0..<5 { _ = try await db.jobs.insert(.init(kind: "test_noop", params: [:], maxAttempts: 1)) }
            let claimed = try await db.jobs.claim(kinds: ["test_noop"], limit: 5, owner: "w", leaseDuration: .seconds(30))
            #expect(claimed.count == 5)
            let outcomes: [StepOutcome] = [
                .succeeded(result: ["n": 1], costUSD: nil, upstreamState: nil),
                .failed(JobError(code: "bad", message: "refused"), upstreamState: "error"),
                .retry(JobError(code: "later", message: "try again"), retryAfter: nil),
                .running(upstreamJobID: "up-1", upstreamState: "queued", nextCheck: Date().addingTimeInterval(60), detail: nil),
                .deferred(until: nil, reason: JobError(code: "paused", message: "out of credits")),
            ]
            let writes = try zip(claimed, outcomes).map { job, outcome in
                try db.jobs.outcomeWrite(outcome, for: job, provider: "test", backoff: .jobRetry)
            }
            let states = try await db.jobs.recordBatch(writes)
            // The retry was the job's last attempt (max_attempts 1): it fails with the last error.
            #expect(claimed.map { states[$0.job.id] } == [.succeeded, .failed, .failed, .running, .queued])
            let deferred = try #require(try await db.jobs.job(id: claimed[4].job.id))
            #expect(deferred.attempt == 0)
            let running = try #require(try await db.jobs.job(id: claimed[3].job.id))
            #expect(running.upstream?.jobID == "up-1")
            let audited = try await db.values("SELECT count(*)::int FROM job_events WHERE actor = 'worker' AND from_state = 'submitting'", as: Int.self)
            #expect(audited == [5])
            let outbox = try await db.values("SELECT count(*)::int FROM events WHERE type IN ('job.succeeded', 'job.failed')", as: Int.self)
            #expect(outbox == [3])
            // Written once, the claims hold no lease any more: writing again changes nothing.
            #expect(try await db.jobs.recordBatch(writes).isEmpty)
        }
    }

    @Test("a delivery's lease is renewed and given back by its claim's token only")
    func deliveryLeasesFenced() async throws {
        try await TestDatabase.with { db in
            let deliveries = DeliveryStore(client: db.client, logger: db.logger)
            _ = try await SubscriptionStore(client: db.client, logger: db.logger)
                .create(.init(url: "http://127.0.0.1:9/hook", eventTypes: ["job.*"]))
            try await db.client.query("INSERT INTO events (id, type, payload) VALUES (gen_random_uuid(), 'job.succeeded', '{}')", logger: db.logger)
            let first = try #require(try await deliveries.claim(limit: 1, owner: "same", leaseDuration: .milliseconds(200), perSubscription: 4).first)
            try await Task.sleep(for: .milliseconds(400))
            #expect(try await deliveries.maintain().rescued == 1)
            let second = try #require(try await deliveries.claim(limit: 1, owner: "same", leaseDuration: .seconds(30), perSubscription: 4).first)
            #expect(second.id == first.id)
            let stale = Lease(id: first.id, epoch: first.leaseEpoch)
            let current = Lease(id: second.id, epoch: second.leaseEpoch)
            #expect(try await deliveries.renew(leases: [stale], leaseDuration: .seconds(30)).isEmpty)
            #expect(try await deliveries.renew(leases: [current], leaseDuration: .seconds(30)) == [second.id])
            // The stale claim's attempt is not recorded, nor can it give the lease back.
            let attempt = DeliveryStore.AttemptRecord(attemptedAt: Date(), statusCode: 200, durationMs: 1, responseBody: nil, error: nil)
            #expect(try await deliveries.record(attempt, decision: .succeeded, for: first, owner: "same", disableAfter: nil).recorded == false)
            try await deliveries.release(leases: [stale])
            #expect(try await db.values("SELECT state FROM deliveries", as: String.self) == ["delivering"])
            // The current one gives it back: due again at once, and its own token no longer holds.
            try await deliveries.release(leases: [current])
            #expect(try await db.values("SELECT state FROM deliveries WHERE next_attempt_at <= now()", as: String.self) == ["pending"])
            #expect(try await deliveries.renew(leases: [current], leaseDuration: .seconds(30)).isEmpty)
        }
    }

    @Test("successful attempts recorded in one batch: each with its attempt row, stale claims refused")
    func deliverySuccessBatchFenced() async throws {
        try await TestDatabase.with { db in
            let deliveries = DeliveryStore(client: db.client, logger: db.logger)
            let subscription = try await SubscriptionStore(client: db.client, logger: db.logger)
                .create(.init(url: "http://127.0.0.1:9/hook", eventTypes: ["job.*"]))
            try await db.client.query("""
                INSERT INTO events (id, type, payload) SELECT gen_random_uuid(), 'job.succeeded', '{}' FROM generate_series(1, 3)
                """, logger: db.logger)
            try await db.client.query("UPDATE subscriptions SET failing_since = now() - interval '1 hour'", logger: db.logger)
            let claimed = try await deliveries.claim(limit: 3, owner: "w", leaseDuration: .seconds(30), perSubscription: 4)
            #expect(claimed.count == 3)
            // The third claim's token is stale: its delivery was taken back and claimed again meanwhile.
            try await deliveries.release(leases: [Lease(id: claimed[2].id, epoch: claimed[2].leaseEpoch)])
            let again = try #require(try await deliveries.claim(limit: 1, owner: "w", leaseDuration: .seconds(30), perSubscription: 4).first)
            #expect(again.id == claimed[2].id)
            let records = claimed.enumerated().map { index, delivery in
                DeliveryStore.SuccessRecord(delivery: delivery, attempt: .init(
                    attemptedAt: Date(), statusCode: 200 + index, durationMs: 3, responseBody: index == 0 ? "ok" : nil, error: nil))
            }
            let recorded = try await deliveries.recordSucceeded(records)
            #expect(recorded == [claimed[0].id, claimed[1].id])
            #expect(try await db.values("SELECT state FROM deliveries WHERE id = \(again.id)", as: String.self) == ["delivering"])
            #expect(try await db.values("SELECT count(*)::int FROM deliveries WHERE state = 'succeeded' AND delivered_at IS NOT NULL AND attempts = 1",
                                        as: Int.self) == [2])
            #expect(try await db.values("SELECT status_code FROM delivery_attempts ORDER BY status_code", as: Int.self) == [200, 201])
            #expect(try await db.values("SELECT coalesce(response_body, '-') FROM delivery_attempts ORDER BY status_code", as: String.self) == ["ok", "-"])
            // A success clears the subscription's failing streak.
            #expect(try await db.values("SELECT (failing_since IS NULL AND last_success_at IS NOT NULL)::text FROM subscriptions WHERE id = \(subscription.id)",
                                        as: String.self) == ["true"])
            // Recorded once, the claims hold nothing any more.
            #expect(try await deliveries.recordSucceeded(Array(records.dropLast())).isEmpty)
        }
    }

    @Test("a graceful stop past the drain timeout cancels the step and gives its lease back")
    func drainReleasesLeases() async throws {
        try await TestDatabase.with { db in
            guard case .created(let job) = try await db.jobs.insert(.init(kind: "test_noop", params: [:])) else { return }
            let slow = CountingExecutor(behaviour: .hang(.seconds(60)))
            var configuration = WorkerConfiguration(
                concurrency: 4, batchSize: 4, leaseDuration: .seconds(60), heartbeatInterval: .seconds(10),
                idlePollInterval: .milliseconds(100), maintenanceInterval: .milliseconds(200), owner: "w")
            configuration.drainTimeout = .milliseconds(300)
            let worker = JobWorker(store: db.jobs, registry: ExecutorRegistry([slow]), configuration: configuration, logger: db.logger)
            let started = ContinuousClock.now
            try await withWorkers([worker], logger: db.logger) { () async throws in
                #expect(try await eventually { worker.inFlightCount == 1 })
            }
            // The service group's graceful stop returned well before the step's 60 s or the lease's 60 s.
            #expect(ContinuousClock.now - started < .seconds(15))
            let released = try #require(try await db.jobs.job(id: job.id))
            // Caught mid-submission: back to queued, its attempt kept, claimable at once by anyone.
            #expect(released.state == .queued)
            #expect(released.attempt == 1)
            let trail = try await db.jobs.events(jobID: job.id).map { "\($0.actor):\($0.toState.rawValue)" }
            #expect(trail == ["api:queued", "worker:submitting", "worker:queued"])
            let again = try await db.jobs.claim(kinds: ["test_noop"], limit: 1, owner: "other", leaseDuration: .seconds(30))
            #expect(again.map(\.job.id) == [job.id])
        }
    }
}
