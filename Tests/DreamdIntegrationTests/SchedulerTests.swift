import DreamdCore
import DreamdServices
import DreamdStore
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Testing

extension TestDatabase {
    var schedules: ScheduleStore { ScheduleStore(client: client, logger: logger) }

    /// Stores a schedule of `test_noop` jobs directly (the API validates; these tests exercise the scheduler).
    func makeSchedule(
        cron: String, timezone: String = "UTC", overlap: OverlapPolicy = .allow, catchUp: CatchUpPolicy = .one,
        nextFireAt: Date?, enabled: Bool = true, name: String = "test"
    ) async throws -> Schedule {
        let now = Date()
        return try await schedules.create(Schedule(
            id: UUID(), name: name, cron: cron, timezone: timezone,
            job: JobTemplate(kind: "test_noop", params: ["n": 1], priority: 3, maxAttempts: 2, metadata: ["team": "rollouts"]),
            overlap: overlap, catchUp: catchUp, enabled: enabled, nextFireAt: nextFireAt, lastFiredAt: nil, createdAt: now, updatedAt: now
        ))
    }

    /// The ticks of a schedule's jobs, oldest first.
    func ticks(of scheduleID: UUID) async throws -> [Date] {
        try await values("SELECT scheduled_for FROM jobs WHERE schedule_id = \(scheduleID) ORDER BY scheduled_for", as: Date.self)
    }
}

func testScheduler(_ db: TestDatabase, interval: Duration = .milliseconds(200), catchUpCap: Int = TickPlanner.allCap) -> SchedulerService {
    SchedulerService(
        store: db.schedules, registry: ExecutorRegistry([CountingExecutor()]),
        configuration: SchedulerConfiguration(interval: interval, misfireThreshold: .seconds(60), catchUpCap: catchUpCap),
        logger: db.logger
    )
}

// Serialized: these tests measure ticks against the clock, and a dozen of them at once on a small
// machine also slows every other suite's timing.
@Suite("Schedules: the scheduler", .hangGuard, .serialized)
struct SchedulerTests {
    @Test("three schedulers on one database fire an @every 1s schedule once per tick")
    func threeSchedulersExactlyOnce() async throws {
        try await TestDatabase.with { db in
            let spec = try ScheduleSpec(parsing: "@every 1s")
            let first = try #require(spec.next(after: Date(), in: .gmt))
            let schedule = try await db.makeSchedule(cron: "@every 1s", overlap: .allow, nextFireAt: first)
            let schedulers = (1...3).map { _ in testScheduler(db, interval: .milliseconds(100)) }
            let stopping = try await withServiceGroup(schedulers, logger: db.logger) {
                try await Task.sleep(for: .milliseconds(4000))
                return Date()
            }
            let stopped = Date()
            let ticks = try await db.ticks(of: schedule.id)
            // No tick twice: the pair is unique and the ticks are the schedule's, consecutive, none missing.
            #expect(Set(ticks).count == ticks.count)
            #expect(ticks.first == first)
            for (index, tick) in ticks.enumerated() {
                #expect(tick == first.addingTimeInterval(Double(index)))
            }
            // Every tick due two seconds or more before shutdown began fired (a loaded machine may delay a
            // pass), and none due after shutdown.
            let atLeast = Int(stopping.timeIntervalSince(first).rounded(.down)) - 1
            let atMost = Int(stopped.timeIntervalSince(first).rounded(.down)) + 1
            #expect(ticks.count >= 3)
            #expect((atLeast...atMost).contains(ticks.count), "\(ticks.count) ticks, expected \(atLeast) to \(atMost)")
            let actors = try await db.values("""
                SELECT DISTINCT e.actor FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE j.schedule_id = \(schedule.id)
                """, as: String.self)
            #expect(actors == ["scheduler"])
            let stored = try #require(try await db.schedules.schedule(id: schedule.id))
            #expect(stored.lastFiredAt == ticks.last)
            #expect(stored.nextFireAt == ticks.last.map { $0.addingTimeInterval(1) })
        }
    }

    @Test("between passes the scheduler sleeps until the soonest tick, at most its interval")
    func sleepsUntilTheTick() async throws {
        try await TestDatabase.with { db in
            let scheduler = testScheduler(db, interval: .seconds(60))
            // Nothing scheduled: the interval.
            #expect(try await scheduler.pauseAfterPass() == .seconds(60))
            // A tick in 30 s: wake for it (a loop sleeping a fixed interval would fire up to an interval late).
            let soon = try await db.makeSchedule(cron: "@every 1h", nextFireAt: Date().addingTimeInterval(30))
            let pause = try await scheduler.pauseAfterPass()
            #expect(pause > .seconds(20) && pause <= .milliseconds(30_010), "\(pause)")
            // Overdue but held elsewhere: look again soon, without spinning.
            _ = try await db.schedules.update(id: soon.id) { var s = $0; s.nextFireAt = Date().addingTimeInterval(-5); return s }
            #expect(try await scheduler.pauseAfterPass() == .milliseconds(50))
            // Far away: the interval bounds the sleep, so new schedules are seen.
            _ = try await db.schedules.update(id: soon.id) { var s = $0; s.nextFireAt = Date().addingTimeInterval(3600); return s }
            #expect(try await scheduler.pauseAfterPass() == .seconds(60))
        }
    }

    @Test("jobs carry the template, schedule_id and scheduled_for, queued, with the audit row")
    func jobShape() async throws {
        try await TestDatabase.with { db in
            let tick = try #require(try ScheduleSpec(parsing: "@every 1s").next(after: Date().addingTimeInterval(-1.5), in: .gmt))
            let schedule = try await db.makeSchedule(cron: "@every 1s", nextFireAt: tick)
            let outcomes = try await testScheduler(db).firePass()
            #expect(outcomes.map(\.scheduleID) == [schedule.id])
            let jobID = try #require(outcomes.first?.createdJobs.first)
            let job = try #require(try await db.jobs.job(id: jobID))
            #expect(job.kind == "test_noop")
            #expect(job.state == .queued)
            #expect(job.scheduleID == schedule.id)
            #expect(job.priority == 3)
            #expect(job.maxAttempts == 2)
            #expect(job.params == ["n": 1])
            #expect(job.metadata == ["team": "rollouts"])
            #expect(try await db.values("SELECT scheduled_for FROM jobs WHERE id = \(jobID)", as: Date.self) == [tick])
            let events = try await db.jobs.events(jobID: jobID)
            #expect(events.map(\.actor) == ["scheduler"])
            #expect(events.first?.detail["schedule_id"]?.stringValue == schedule.id.uuidString.lowercased())
            #expect(events.first?.detail["scheduled_for"]?.stringValue == DreamdJSON.formatDate(tick))
        }
    }

    @Test("the unique index refuses a second job for a tick, and a tick that has its job is not fired again")
    func uniqueTick() async throws {
        try await TestDatabase.with { db in
            let tick = try #require(try ScheduleSpec(parsing: "@every 1s").next(after: Date().addingTimeInterval(-1.2), in: .gmt))
            let schedule = try await db.makeSchedule(cron: "@every 1s", nextFireAt: tick)
            // Another process already created the job of this tick (here: by hand).
            try await db.client.query("""
                INSERT INTO jobs (id, kind, state, params, schedule_id, scheduled_for)
                VALUES (\(UUID()), 'test_noop', 'queued', '{}', \(schedule.id), \(tick))
                """, logger: db.logger)
            await #expect {
                try await db.client.query("""
                    INSERT INTO jobs (id, kind, state, params, schedule_id, scheduled_for)
                    VALUES (\(UUID()), 'test_noop', 'queued', '{}', \(schedule.id), \(tick))
                    """, logger: db.logger)
            } throws: { error in
                (error as? PSQLError)?.serverInfo?[.sqlState] == "23505"
            }
            let outcome = try #require(try await testScheduler(db).firePass().first)
            #expect(outcome.alreadyFired.contains(tick))
            #expect(!outcome.createdTicks.contains(tick))
            let ticks = try await db.ticks(of: schedule.id)
            #expect(Set(ticks).count == ticks.count)
            // No orphan audit rows from the refused insert.
            #expect(try await db.values("SELECT count(*)::int FROM job_events e WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = e.job_id)", as: Int.self) == [0])
        }
    }

    @Test("a tick inserted concurrently behind the scheduler's back: the unique index wins, the pass rolls back, the next pass moves on")
    func concurrentDuplicateRollsBack() async throws {
        try await TestDatabase.with { db in
            let tick = try #require(try ScheduleSpec(parsing: "@every 1s").next(after: Date().addingTimeInterval(-1.2), in: .gmt))
            let schedule = try await db.makeSchedule(cron: "@every 1s", nextFireAt: tick)
            let scheduler = testScheduler(db)
            try await db.client.withConnection { other in
                // Another writer (not taking the schedule's lock) inserts the tick's job and has not committed:
                // the scheduler's NOT EXISTS guard cannot see it, so its insert waits on the unique index.
                try await other.query("BEGIN", logger: db.logger)
                try await other.query("""
                    INSERT INTO jobs (id, kind, state, params, schedule_id, scheduled_for)
                    VALUES (\(UUID()), 'test_noop', 'queued', '{}', \(schedule.id), \(tick))
                    """, logger: db.logger)
                async let pass = scheduler.firePass()
                // Commit only once the scheduler's insert waits on the unique index behind our row.
                let blocked = try await eventually(timeout: .seconds(30)) {
                    try await db.values("""
                        SELECT count(*)::int FROM pg_stat_activity
                        WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO jobs%'
                        """, as: Int.self) == [1]
                }
                #expect(blocked)
                try await other.query("COMMIT", logger: db.logger)
                let outcomes = try await pass
                #expect(outcomes.map(\.scheduleID) == [schedule.id])
                #expect(outcomes.first?.conflict == true)
            }
            // Rolled back whole: only the other writer's job, and next_fire_at not advanced.
            #expect(try await db.ticks(of: schedule.id) == [tick])
            #expect(try await db.schedules.schedule(id: schedule.id)?.nextFireAt == tick)
            // The next pass sees the tick's job and fires the ticks after it.
            let next = try #require(try await scheduler.firePass().first)
            #expect(!next.conflict)
            #expect(next.alreadyFired == [tick])
            let ticks = try await db.ticks(of: schedule.id)
            #expect(Set(ticks).count == ticks.count)
            #expect(try #require(try await db.schedules.schedule(id: schedule.id)?.nextFireAt) > tick)
        }
    }

    @Test("overlap skip: no new job while the previous run is unfinished, and schedule.skipped in the outbox")
    func overlapSkip() async throws {
        try await TestDatabase.with { db in
            let spec = try ScheduleSpec(parsing: "@every 1s")
            // Three on-time ticks are due (the scheduler woke 2.x s after the first).
            let first = try #require(spec.next(after: Date().addingTimeInterval(-3), in: .gmt))
            let schedule = try await db.makeSchedule(cron: "@every 1s", overlap: .skip, nextFireAt: first)
            let scheduler = testScheduler(db)
            let outcome = try #require(try await scheduler.firePass().first)
            #expect(outcome.createdTicks == [first])
            #expect(outcome.skipped.count >= 2)
            #expect(try await db.ticks(of: schedule.id) == [first])

            let payloads = try await db.values("SELECT payload::text FROM events WHERE type = 'schedule.skipped' ORDER BY payload->'data'->>'scheduled_for'", as: String.self)
            #expect(payloads.count == outcome.skipped.count)
            let event = try DreamdJSON.decode(JSONValue.self, from: try #require(payloads.first))
            #expect(event["type"]?.stringValue == "schedule.skipped")
            #expect(event["timestamp"]?.stringValue.flatMap(DreamdJSON.parseDate) != nil)
            #expect(event["data"]?["schedule"]?["id"]?.stringValue == schedule.id.uuidString.lowercased())
            #expect(event["data"]?["schedule"]?["overlap"]?.stringValue == "skip")
            #expect(event["data"]?["scheduled_for"]?.stringValue == DreamdJSON.formatDate(first.addingTimeInterval(1)))
            #expect(event["data"]?["unfinished_job_id"]?.stringValue == outcome.createdJobs.first?.uuidString.lowercased())

            // Once the run finishes, the next tick creates a job again.
            let executor = CountingExecutor()
            try await withWorkers([fastWorker(db, executor: executor, owner: "w")], logger: db.logger) {
                let finished = try await eventually(timeout: .seconds(10)) {
                    try await db.values("SELECT count(*)::int FROM jobs WHERE schedule_id = \(schedule.id) AND state = 'succeeded'", as: Int.self) == [1]
                }
                #expect(finished)
            }
            try await Task.sleep(for: .milliseconds(1100))
            let later = try #require(try await scheduler.firePass().first)
            #expect(later.createdTicks.count == 1)
            #expect(try await db.ticks(of: schedule.id).count == 2)
        }
    }

    @Test("overlap allow: a job per tick even while earlier ones are unfinished")
    func overlapAllow() async throws {
        try await TestDatabase.with { db in
            let spec = try ScheduleSpec(parsing: "@every 1s")
            let first = try #require(spec.next(after: Date().addingTimeInterval(-3), in: .gmt))
            let schedule = try await db.makeSchedule(cron: "@every 1s", overlap: .allow, nextFireAt: first)
            let outcome = try #require(try await testScheduler(db).firePass().first)
            #expect(outcome.createdTicks.count >= 3)
            #expect(outcome.skipped.isEmpty)
            #expect(try await db.ticks(of: schedule.id).count == outcome.createdTicks.count)
            #expect(try await db.values("SELECT count(*)::int FROM events WHERE type = 'schedule.skipped'", as: Int.self) == [0])
        }
    }

    /// A daily schedule at an hour about 12 h from now, whose daemons were all down for three days.
    func outageSchedule(_ db: TestDatabase, catchUp: CatchUpPolicy) async throws -> (Schedule, [Date]) {
        let hour = Int(Date().timeIntervalSince1970 / 3600) % 24
        let cron = "0 \((hour + 12) % 24) * * *"
        let spec = try ScheduleSpec(parsing: cron)
        let missed = spec.upcoming(after: Date().addingTimeInterval(-3 * 86_400 - 1), in: .gmt, count: 4).filter { $0 <= Date() }
        let schedule = try await db.makeSchedule(cron: cron, overlap: .allow, catchUp: catchUp, nextFireAt: missed.first)
        return (schedule, missed)
    }

    @Test("catch-up none after an outage: no job for the missed ticks, resumes at the next tick")
    func catchUpNone() async throws {
        try await TestDatabase.with { db in
            let (schedule, missed) = try await outageSchedule(db, catchUp: .none)
            #expect(missed.count == 3)
            let outcome = try #require(try await testScheduler(db).firePass().first)
            #expect(outcome.createdTicks.isEmpty)
            #expect(outcome.dropped == 3)
            #expect(try await db.ticks(of: schedule.id).isEmpty)
            let stored = try #require(try await db.schedules.schedule(id: schedule.id))
            #expect(stored.nextFireAt == missed.last?.addingTimeInterval(86_400))
            #expect(try #require(stored.nextFireAt) > Date())
        }
    }

    @Test("catch-up one after an outage: one job, for the latest missed tick")
    func catchUpOne() async throws {
        try await TestDatabase.with { db in
            let (schedule, missed) = try await outageSchedule(db, catchUp: .one)
            let outcome = try #require(try await testScheduler(db).firePass().first)
            #expect(outcome.createdTicks == [try #require(missed.last)])
            #expect(outcome.dropped == 2)
            #expect(try await db.ticks(of: schedule.id) == Array(missed.suffix(1)))
            let detail = try await db.values("""
                SELECT e.detail::text FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE j.schedule_id = \(schedule.id)
                """, as: String.self)
            let audit = try DreamdJSON.decode(JSONValue.self, from: try #require(detail.first))
            #expect(audit["catch_up"]?.stringValue == "one")
            #expect(audit["dropped_ticks"]?.intValue == 2)
            // A second pass finds nothing due.
            #expect(try await testScheduler(db).firePass().isEmpty)
        }
    }

    @Test("catch-up all after an outage: a job per missed tick")
    func catchUpAll() async throws {
        try await TestDatabase.with { db in
            let (schedule, missed) = try await outageSchedule(db, catchUp: .all)
            let outcome = try #require(try await testScheduler(db).firePass().first)
            #expect(outcome.createdTicks == missed)
            #expect(try await db.ticks(of: schedule.id) == missed)
            let stored = try #require(try await db.schedules.schedule(id: schedule.id))
            #expect(stored.lastFiredAt == missed.last)
        }
    }

    @Test("catch-up all is capped: only the most recent ticks of a long outage fire")
    func catchUpAllCapped() async throws {
        try await TestDatabase.with { db in
            let spec = try ScheduleSpec(parsing: "@every 1s")
            let first = try #require(spec.next(after: Date().addingTimeInterval(-3600), in: .gmt))
            let schedule = try await db.makeSchedule(cron: "@every 1s", overlap: .allow, catchUp: .all, nextFireAt: first)
            let before = Date()
            let outcome = try #require(try await testScheduler(db, catchUpCap: 10).firePass().first)
            #expect(outcome.createdTicks.count == 10)
            #expect(outcome.dropped >= 3590)
            // The ten most recent of the hour's ticks (a tick that came due during a slow pass may follow).
            let ticks = try await db.ticks(of: schedule.id)
            #expect(Array(ticks.prefix(10)) == outcome.createdTicks)
            #expect(ticks.count <= 13)
            #expect(zip(ticks, ticks.dropFirst()).allSatisfy { $1.timeIntervalSince($0) == 1 })
            #expect(try #require(outcome.createdTicks.last) >= before.addingTimeInterval(-1))
        }
    }

    @Test("disabled schedules do not fire; a deleted schedule's jobs stay with their schedule_id")
    func disabledAndDeleted() async throws {
        try await TestDatabase.with { db in
            let past = Date().addingTimeInterval(-10).timeIntervalSince1970.rounded(.down)
            let disabled = try await db.makeSchedule(cron: "@every 1s", nextFireAt: Date(timeIntervalSince1970: past), enabled: false)
            let active = try await db.makeSchedule(cron: "@every 1s", nextFireAt: Date(timeIntervalSince1970: past))
            let outcomes = try await testScheduler(db).firePass()
            #expect(outcomes.map(\.scheduleID) == [active.id])
            #expect(try await db.ticks(of: disabled.id).isEmpty)
            let ticks = try await db.ticks(of: active.id)
            #expect(!ticks.isEmpty)
            #expect(try await db.schedules.delete(id: active.id))
            #expect(try await db.ticks(of: active.id) == ticks)
            #expect(try await db.schedules.schedule(id: active.id) == nil)
        }
    }

    @Test("recent runs list each run with its outcome and cost")
    func recentRuns() async throws {
        try await TestDatabase.with { db in
            let spec = try ScheduleSpec(parsing: "@every 1s")
            let first = try #require(spec.next(after: Date().addingTimeInterval(-2.5), in: .gmt))
            let schedule = try await db.makeSchedule(cron: "@every 1s", overlap: .allow, nextFireAt: first)
            _ = try await testScheduler(db).firePass()
            let created = try await db.ticks(of: schedule.id)
            let executor = CountingExecutor()
            try await withWorkers([fastWorker(db, executor: executor, owner: "w")], logger: db.logger) {
                let finished = try await eventually(timeout: .seconds(10)) {
                    try await db.values("SELECT count(*)::int FROM jobs WHERE schedule_id = \(schedule.id) AND state = 'succeeded'", as: Int.self) == [created.count]
                }
                #expect(finished)
            }
            let runs = try await db.schedules.recentRuns(scheduleID: schedule.id)
            #expect(runs.map(\.scheduledFor) == Array(created.reversed()))
            #expect(runs.allSatisfy { $0.state == .succeeded && $0.costUSD == 0.01 && $0.finishedAt != nil })
        }
    }
}
