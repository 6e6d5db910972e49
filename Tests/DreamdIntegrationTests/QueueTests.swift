import DreamdCore
import DreamdServices
import DreamdStore
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Testing

/// Runs `workers` until `body` returns, then shuts them down gracefully.
func withWorkers<T: Sendable>(_ workers: [JobWorker], logger: Logger, _ body: @Sendable () async throws -> T) async throws -> T {
    try await withServiceGroup(workers, logger: logger, body)
}

func fastWorker(_ database: TestDatabase, executor: any JobExecutor, owner: String, concurrency: Int = 8, lease: Duration = .seconds(3)) -> JobWorker {
    JobWorker(
        store: database.jobs,
        registry: ExecutorRegistry([executor]),
        configuration: WorkerConfiguration(
            concurrency: concurrency, batchSize: 20, leaseDuration: lease, heartbeatInterval: .milliseconds(500),
            idlePollInterval: .milliseconds(100), maintenanceInterval: .milliseconds(200),
            retryBackoff: BackoffPolicy(base: .milliseconds(20), cap: .milliseconds(100)), owner: owner
        ),
        logger: database.logger
    )
}

@Suite("Queue", .hangGuard)
struct QueueTests {
    @Test("three workers over 1,000 jobs run each exactly once")
    func thousandJobsExactlyOnce() async throws {
        try await TestDatabase.with { db in
            let executor = CountingExecutor()
            for _ in 0..<1000 {
                _ = try await db.jobs.insert(.init(kind: "test_noop", params: [:]))
            }
            let workers = (1...3).map { fastWorker(db, executor: executor, owner: "worker-\($0)") }
            try await withWorkers(workers, logger: db.logger) {
                let done = try await eventually(timeout: .seconds(60)) {
                    try await db.values("SELECT count(*)::int FROM jobs WHERE state = 'succeeded'", as: Int.self).first == 1000
                }
                #expect(done)
            }
            let submissions = executor.submissions
            #expect(submissions.count == 1000)
            #expect(submissions.values.allSatisfy { $0 == 1 })
            // The audit trail shows one claim per job, and the work was shared.
            let claims = try await db.values("SELECT count(*)::int FROM job_events WHERE to_state = 'submitting'", as: Int.self)
            #expect(claims == [1000])
            let owners = try await db.values("SELECT count(DISTINCT detail->>'owner')::int FROM job_events WHERE to_state = 'submitting'", as: Int.self)
            #expect((owners.first ?? 0) >= 2)
        }
    }

    @Test("a lease that runs out is taken over by another worker")
    func expiredLeaseTakenOver() async throws {
        try await TestDatabase.with { db in
            let inserted = try await db.jobs.insert(.init(kind: "test_noop", params: [:]))
            guard case .created(let job) = inserted else { Issue.record("not created"); return }
            // A process claims the job, then "crashes": it never records an outcome nor renews the lease.
            let claimed = try await db.jobs.claim(kinds: ["test_noop"], limit: 10, owner: "crashed", leaseDuration: .milliseconds(300))
            #expect(claimed.map(\.job.id) == [job.id])
            // While the lease holds, nobody else can claim it.
            let meanwhile = try await db.jobs.claim(kinds: ["test_noop"], limit: 10, owner: "other", leaseDuration: .seconds(3))
            #expect(meanwhile.isEmpty)
            let executor = CountingExecutor()
            try await withWorkers([fastWorker(db, executor: executor, owner: "survivor")], logger: db.logger) {
                let done = try await eventually { try await db.jobs.job(id: job.id)?.state == .succeeded }
                #expect(done)
            }
            let final = try #require(try await db.jobs.job(id: job.id))
            #expect(final.attempt == 2)
            let actors = try await db.jobs.events(jobID: job.id).map { "\($0.actor):\($0.toState.rawValue)" }
            #expect(actors == ["api:queued", "worker:submitting", "rescuer:queued", "worker:submitting", "worker:succeeded"])
        }
    }

    @Test("a heartbeat keeps a long step's lease alive")
    func heartbeatKeepsLease() async throws {
        try await TestDatabase.with { db in
            guard case .created(let job) = try await db.jobs.insert(.init(kind: "test_noop", params: [:])) else { return }
            let slow = CountingExecutor(behaviour: .hang(.seconds(3)))
            // Lease 1 s, heartbeat every 0.5 s, step 3 s: without the heartbeat a second worker would take it.
            let first = fastWorker(db, executor: slow, owner: "first", lease: .seconds(1))
            let second = fastWorker(db, executor: slow, owner: "second", lease: .seconds(1))
            try await withWorkers([first, second], logger: db.logger) {
                let done = try await eventually(timeout: .seconds(20)) { try await db.jobs.job(id: job.id)?.state == .succeeded }
                #expect(done)
            }
            #expect(slow.submissions[job.id] == 1)
        }
    }

    @Test("retryable failures back off and fail after max_attempts with the last error")
    func retriesThenFails() async throws {
        try await TestDatabase.with { db in
            guard case .created(let job) = try await db.jobs.insert(.init(kind: "test_noop", params: [:], maxAttempts: 3)) else { return }
            let executor = CountingExecutor(behaviour: .retry)
            try await withWorkers([fastWorker(db, executor: executor, owner: "w")], logger: db.logger) {
                let done = try await eventually { try await db.jobs.job(id: job.id)?.state == .failed }
                #expect(done)
            }
            let final = try #require(try await db.jobs.job(id: job.id))
            #expect(final.attempt == 3)
            #expect(final.error?.code == "test_transient")
            #expect(executor.submissions[job.id] == 3)
            let states = try await db.jobs.events(jobID: job.id).map(\.toState)
            #expect(states.filter { $0 == .scheduled }.count == 2)
            // The failure is in the outbox, written with the state change.
            let events = try await db.values("SELECT type FROM events WHERE payload->'data'->>'id' = \(job.id.uuidString.lowercased())", as: String.self)
            #expect(events == ["job.failed"])
        }
    }

    @Test("a job with run_at in the future is scheduled, then runs when due")
    func scheduledRunsWhenDue() async throws {
        try await TestDatabase.with { db in
            let runAt = Date().addingTimeInterval(1.0)
            guard case .created(let job) = try await db.jobs.insert(.init(kind: "test_noop", params: [:], runAt: runAt)) else { return }
            #expect(job.state == .scheduled)
            let executor = CountingExecutor()
            try await withWorkers([fastWorker(db, executor: executor, owner: "w")], logger: db.logger) {
                let done = try await eventually { try await db.jobs.job(id: job.id)?.state == .succeeded }
                #expect(done)
            }
            let events = try await db.jobs.events(jobID: job.id)
            let started = try #require(events.first { $0.toState == .submitting })
            #expect(started.at >= runAt.addingTimeInterval(-0.01))
            #expect(events.map(\.toState) == [.scheduled, .queued, .submitting, .succeeded])
        }
    }

    @Test("claims follow priority, then run_at")
    func claimOrder() async throws {
        try await TestDatabase.with { db in
            var ids: [UUID] = []
            for priority in [5, 0, -3, 0] {
                if case .created(let job) = try await db.jobs.insert(.init(kind: "test_noop", params: [:], priority: priority)) { ids.append(job.id) }
            }
            let claimed = try await db.jobs.claim(kinds: ["test_noop"], limit: 4, owner: "w", leaseDuration: .seconds(5))
            #expect(claimed.map(\.job.id) == [ids[2], ids[1], ids[3], ids[0]])
        }
    }

    @Test("a due poll is claimed before older queued submissions, whatever their priority")
    func duePollsFirst() async throws {
        try await TestDatabase.with { db in
            var queued: [UUID] = []
            for priority in [0, -5, 0] {
                if case .created(let job) = try await db.jobs.insert(.init(kind: "test_noop", params: [:], priority: priority)) { queued.append(job.id) }
            }
            // A job already submitted upstream, whose next poll a callback made due just now (after the
            // submissions above were queued), and one whose next poll is not due yet.
            var polls: [UUID] = []
            for _ in 0..<2 {
                if case .created(let job) = try await db.jobs.insert(.init(kind: "test_noop", params: [:], priority: 9)) { polls.append(job.id) }
            }
            try await db.client.query("UPDATE jobs SET state = 'submitting', attempt = 1 WHERE id = ANY(\(polls))", logger: db.logger)
            try await db.client.query("""
                UPDATE jobs SET state = 'running', upstream_job_id = 'up',
                    run_at = CASE WHEN id = \(polls[0]) THEN now() ELSE now() + interval '1 hour' END
                WHERE id = ANY(\(polls))
                """, logger: db.logger)
            let first = try await db.jobs.claim(kinds: ["test_noop"], limit: 1, owner: "w", leaseDuration: .seconds(5))
            #expect(first.map(\.job.id) == [polls[0]])
            #expect(first.first?.job.state == .running)
            // The rest of a claim is filled with submissions by priority; the poll not yet due stays.
            let rest = try await db.jobs.claim(kinds: ["test_noop"], limit: 5, owner: "w", leaseDuration: .seconds(5))
            #expect(rest.map(\.job.id) == [queued[1], queued[0], queued[2]])
            #expect(rest.allSatisfy { $0.job.state == .submitting })
        }
    }

    @Test("a callback that came while its job was being submitted is applied as soon as the submission is recorded")
    func earlyCallbackAppliedAfterStep() async throws {
        try await TestDatabase.with { db in
            guard case .created(let job) = try await db.jobs.insert(.init(kind: "test_callbacks", params: [:])) else {
                Issue.record("not created"); return
            }
            let executor = EarlyCallbackExecutor(client: db.client, logger: db.logger)
            // Maintenance (which would also apply it) runs only once, at start, before the callback exists.
            let worker = JobWorker(
                store: db.jobs, registry: ExecutorRegistry([executor]),
                configuration: WorkerConfiguration(concurrency: 2, idlePollInterval: .milliseconds(50), maintenanceInterval: .seconds(3600), owner: "w"),
                callbacks: CallbackEndpoint(store: CallbackStore(client: db.client, logger: db.logger), baseURL: "http://127.0.0.1:9"),
                logger: db.logger)
            let state = try await withWorkers([worker], logger: db.logger) { () async throws -> String in
                for _ in 0..<100 {
                    let state = try await db.values("SELECT state FROM jobs WHERE id = \(job.id)", as: String.self).first ?? ""
                    if state == "succeeded" { return state }
                    try await Task.sleep(for: .milliseconds(20))
                }
                return try await db.values("SELECT state FROM jobs WHERE id = \(job.id)", as: String.self).first ?? ""
            }
            #expect(state == "succeeded")
            #expect(try await db.values("SELECT outcome FROM callback_inbox WHERE job_id = \(job.id) AND processed_at IS NOT NULL", as: String.self)
                    == ["recorded succeeded"])
            #expect(try await db.values("SELECT actor FROM job_events WHERE job_id = \(job.id) AND to_state = 'succeeded'", as: String.self) == ["callback"])
        }
    }

    @Test("a person's own UPDATE in psql is audited with their role")
    func manualUpdateAudited() async throws {
        try await TestDatabase.with { db in
            guard case .created(let job) = try await db.jobs.insert(.init(kind: "test_noop", params: [:])) else { return }
            try await db.client.query("UPDATE jobs SET state = 'cancelled' WHERE id = \(job.id)", logger: db.logger)
            let last = try #require(try await db.jobs.events(jobID: job.id).last)
            #expect(last.actor == "sql:\(db.url.user)")
            #expect(last.fromState == .queued && last.toState == .cancelled)
            let finished = try #require(try await db.jobs.job(id: job.id))
            #expect(finished.finishedAt != nil)
            // The trail cannot be rewritten.
            await #expect(throws: (any Error).self) {
                try await db.client.query("DELETE FROM job_events WHERE job_id = \(job.id)", logger: db.logger)
            }
        }
    }
}
