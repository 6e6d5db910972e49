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
