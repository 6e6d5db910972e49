import DreamdCore
import Foundation
import Logging
import PostgresNIO

/// Schedules in PostgreSQL, and the one operation that turns their due ticks into jobs.
///
/// Exactly once per tick: the scheduler locks one due schedule (`FOR UPDATE SKIP LOCKED`), inserts the
/// jobs of its due ticks guarded by `NOT EXISTS` on `(schedule_id, scheduled_for)`, and advances
/// `next_fire_at`, all in one transaction. The unique index `jobs_schedule_tick_idx` is the last line:
/// a duplicate insert fails with 23505 and the whole transaction rolls back, nothing lost.
public struct ScheduleStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns = """
        id, name, cron, timezone, job::text, overlap, catch_up, enabled, next_fire_at, last_fired_at, created_at, updated_at
        """

    /// Inserts a schedule, as given (the caller validated it and computed `nextFireAt`).
    public func create(_ schedule: Schedule) async throws -> Schedule {
        let rows = try await client.rows("""
            INSERT INTO schedules (id, name, cron, timezone, job, overlap, catch_up, enabled, next_fire_at)
            VALUES (\(schedule.id), \(schedule.name), \(schedule.cron), \(schedule.timezone), \(try DreamdJSON.string(schedule.job))::jsonb,
                    \(schedule.overlap.rawValue), \(schedule.catchUp.rawValue), \(schedule.enabled), \(schedule.nextFireAt))
            RETURNING \(unescaped: Self.columns)
            """, logger: logger).rows
        guard let row = rows.first else { throw ScheduleStoreError.corruptRow("INSERT returned no row") }
        return try Self.decode(row)
    }

    /// One schedule by id.
    public func schedule(id: UUID) async throws -> Schedule? {
        let rows = try await client.rows("SELECT \(unescaped: Self.columns) FROM schedules WHERE id = \(id)", logger: logger).rows
        return try rows.first.map(Self.decode)
    }

    /// A page of schedules, newest first, optionally only enabled (or disabled) ones.
    public func list(enabled: Bool? = nil, limit: Int = 50, cursor: JobCursor? = nil) async throws -> (schedules: [Schedule], next: JobCursor?) {
        let micros = cursor?.createdAtMicros
        let rows = try await client.rows("""
            SELECT \(unescaped: Self.columns), (extract(epoch FROM created_at) * 1000000)::int8 FROM schedules
            WHERE (\(enabled)::boolean IS NULL OR enabled = \(enabled))
              AND (\(micros)::int8 IS NULL
                   OR (created_at, id) < (timestamptz 'epoch' + \(micros)::int8 * interval '1 microsecond', \(cursor?.id)::uuid))
            ORDER BY created_at DESC, id DESC LIMIT \(limit + 1)
            """, logger: logger).rows
        var schedules: [Schedule] = []
        var next: JobCursor?
        for (index, row) in rows.enumerated() {
            if index == limit {
                let last = schedules[index - 1]
                next = JobCursor(createdAtMicros: try rows[index - 1].makeRandomAccess()[12].decode(Int64.self), id: last.id)
                break
            }
            schedules.append(try Self.decode(row))
        }
        return (schedules, next)
    }

    /// Changes a schedule under its row lock: `change` sees the stored schedule and returns the new one
    /// (it may throw to refuse). The name, expression, zone, template, policies, `enabled` and
    /// `next_fire_at` are written. Returns `nil` if there is no such schedule.
    public func update(id: UUID, _ change: @escaping @Sendable (Schedule) throws -> Schedule) async throws -> Schedule? {
        try await client.transaction(logger: logger) { connection -> Schedule? in
            let rows = try await connection.query(
                "SELECT \(unescaped: Self.columns) FROM schedules WHERE id = \(id) FOR UPDATE", logger: logger).collect()
            guard let row = rows.first else { return nil }
            let updated = try change(try Self.decode(row))
            let written = try await connection.query("""
                UPDATE schedules SET name = \(updated.name), cron = \(updated.cron), timezone = \(updated.timezone),
                    job = \(try DreamdJSON.string(updated.job))::jsonb, overlap = \(updated.overlap.rawValue),
                    catch_up = \(updated.catchUp.rawValue), enabled = \(updated.enabled), next_fire_at = \(updated.nextFireAt),
                    updated_at = now()
                WHERE id = \(id)
                RETURNING \(unescaped: Self.columns)
                """, logger: logger).collect()
            guard let writtenRow = written.first else { throw ScheduleStoreError.corruptRow("UPDATE returned no row") }
            return try Self.decode(writtenRow)
        }
    }

    /// Deletes a schedule. Its jobs stay, with their `schedule_id`. Returns whether it existed.
    public func delete(id: UUID) async throws -> Bool {
        try await client.rows("DELETE FROM schedules WHERE id = \(id) RETURNING id", logger: logger).rows.count == 1
    }

    /// The latest jobs of a schedule, newest tick first.
    public func recentRuns(scheduleID: UUID, limit: Int = 20) async throws -> [ScheduleRun] {
        let rows = try await client.rows("""
            SELECT id, scheduled_for, state, cost_usd::float8, finished_at FROM jobs
            WHERE schedule_id = \(scheduleID) ORDER BY scheduled_for DESC LIMIT \(limit)
            """, logger: logger)
        var runs: [ScheduleRun] = []
        for (id, scheduledFor, state, cost, finishedAt) in try rows.decode((UUID, Date, String, Double?, Date?).self) {
            guard let state = JobState(rawValue: state) else { throw ScheduleStoreError.corruptRow("unknown job state \(state)") }
            runs.append(ScheduleRun(jobID: id, scheduledFor: scheduledFor, state: state, costUSD: cost, finishedAt: finishedAt))
        }
        return runs
    }

    /// Creates a job of the schedule now (`scheduled_for` = now), whatever its overlap policy or
    /// whether it is enabled. Returns `nil` if there is no such schedule. Throws
    /// `ScheduleStoreError.tickAlreadyFired` in the (microsecond) case that a job has that tick.
    public func trigger(id: UUID, actor: Actor = .api, provider: @escaping @Sendable (JobKind) -> String?) async throws -> Job? {
        do {
            return try await client.transaction(logger: logger) { connection -> Job? in
                let rows = try await connection.query(
                    "SELECT \(unescaped: Self.columns) FROM schedules WHERE id = \(id) FOR UPDATE", logger: logger).collect()
                guard let row = rows.first else { return nil }
                let schedule = try Self.decode(row)
                let detail: JSONValue = ["schedule_id": .string(id.uuidString.lowercased()), "trigger": "manual"]
                let inserted = try await connection.query("""
                    INSERT INTO jobs (id, kind, state, params, max_attempts, priority, run_at, metadata, upstream_provider,
                                      schedule_id, scheduled_for, audit_actor, audit_detail)
                    VALUES (\(UUID()), \(schedule.job.kind.rawValue), 'queued', \(try DreamdJSON.string(schedule.job.params))::jsonb,
                            \(schedule.job.maxAttempts), \(schedule.job.priority), now(), \(try DreamdJSON.string(schedule.job.metadata))::jsonb,
                            \(provider(schedule.job.kind)), \(id), now(), \(actor.rawValue), \(try DreamdJSON.string(detail))::jsonb)
                    RETURNING \(unescaped: JobColumns.list())
                    """, logger: logger).collect()
                guard let jobRow = inserted.first else { throw ScheduleStoreError.corruptRow("INSERT returned no row") }
                try await connection.query(
                    "UPDATE schedules SET last_fired_at = GREATEST(last_fired_at, now()) WHERE id = \(id)", logger: logger)
                return try JobRow(jobRow).job
            }
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw ScheduleStoreError.tickAlreadyFired(scheduleID: id, tick: nil)
        }
    }

    // MARK: - The scheduler's step

    /// What firing one due schedule did.
    public struct FireOutcome: Sendable, Hashable {
        public var scheduleID: UUID
        /// Jobs created, with their ticks.
        public var created: [(jobID: UUID, tick: Date)] { zip(createdJobs, createdTicks).map { ($0, $1) } }
        public var createdJobs: [UUID] = []
        public var createdTicks: [Date] = []
        /// Ticks skipped because the previous run had not finished (`overlap: skip`).
        public var skipped: [Date] = []
        /// Ticks that already had their job (another process fired them).
        public var alreadyFired: [Date] = []
        /// Missed ticks dropped by the catch-up policy.
        public var dropped: Int = 0
        /// The schedule's next tick after this step.
        public var next: Date?
        /// The step was rolled back because another process created a job of the same tick.
        public var conflict = false
        /// The stored expression or zone no longer parses; the schedule was stopped (`next_fire_at` NULL).
        public var invalid: String?

        public init(scheduleID: UUID) { self.scheduleID = scheduleID }
    }

    /// Fires the most overdue enabled schedule that no other process holds, in one transaction:
    /// plans its due ticks from `next_fire_at` and the database's clock, creates their jobs (actor
    /// `scheduler`, state `queued`, `schedule_id` and `scheduled_for` set), applies the overlap policy
    /// (recording `schedule.skipped` in the outbox), and advances `next_fire_at`.
    ///
    /// Returns `nil` when no schedule (outside `excluding`) is due.
    public func fireNextDue(
        excluding: [UUID] = [], misfireThreshold: Duration, catchUpCap: Int = TickPlanner.allCap,
        provider: @escaping @Sendable (JobKind) -> String?
    ) async throws -> FireOutcome? {
        do {
            return try await client.transaction(logger: logger) { connection -> FireOutcome? in
                let rows = try await connection.query("""
                    SELECT \(unescaped: Self.columns), now() FROM schedules
                    WHERE enabled AND next_fire_at <= now() AND NOT (id = ANY(\(excluding)::uuid[]))
                    ORDER BY next_fire_at LIMIT 1
                    FOR UPDATE SKIP LOCKED
                    """, logger: logger).collect()
                guard let row = rows.first else { return nil }
                let schedule = try Self.decode(row)
                let now = try row.makeRandomAccess()[12].decode(Date.self)
                return try await fire(schedule, now: now, misfireThreshold: misfireThreshold, catchUpCap: catchUpCap,
                                      provider: provider, on: connection)
            }
        } catch ScheduleStoreError.tickAlreadyFired(let scheduleID, _) {
            var outcome = FireOutcome(scheduleID: scheduleID)
            outcome.conflict = true
            return outcome
        }
    }

    private func fire(
        _ schedule: Schedule, now: Date, misfireThreshold: Duration, catchUpCap: Int,
        provider: @Sendable (JobKind) -> String?, on connection: PostgresConnection
    ) async throws -> FireOutcome {
        var outcome = FireOutcome(scheduleID: schedule.id)
        guard let nextFireAt = schedule.nextFireAt else { return outcome }
        let parsed: (spec: ScheduleSpec, timeZone: TimeZone)
        do throws(ScheduleSpec.ParseError) { parsed = try schedule.parsed() } catch {
            outcome.invalid = error.description
            try await connection.query("UPDATE schedules SET next_fire_at = NULL WHERE id = \(schedule.id)", logger: logger)
            return outcome
        }
        let plan = TickPlanner.plan(spec: parsed.spec, timeZone: parsed.timeZone, nextFireAt: nextFireAt, now: now,
                                    catchUp: schedule.catchUp, misfireThreshold: misfireThreshold, cap: catchUpCap)
        outcome.dropped = plan.dropped
        outcome.next = plan.next
        for tick in plan.fire {
            if schedule.overlap == .skip, let unfinished = try await unfinishedJob(of: schedule.id, on: connection) {
                try await recordSkipped(schedule, tick: tick, unfinished: unfinished, on: connection)
                outcome.skipped.append(tick)
                continue
            }
            var detail: [String: JSONValue] = [
                "schedule_id": .string(schedule.id.uuidString.lowercased()),
                "scheduled_for": .string(DreamdJSON.formatDate(tick)),
            ]
            if plan.missed {
                detail["catch_up"] = .string(schedule.catchUp.rawValue)
                detail["dropped_ticks"] = .number(Double(plan.dropped))
            }
            let jobID = UUID()
            do {
                let inserted = try await connection.query("""
                    INSERT INTO jobs (id, kind, state, params, max_attempts, priority, run_at, metadata, upstream_provider,
                                      schedule_id, scheduled_for, audit_actor, audit_detail)
                    SELECT \(jobID), \(schedule.job.kind.rawValue), 'queued', \(try DreamdJSON.string(schedule.job.params))::jsonb,
                           \(schedule.job.maxAttempts), \(schedule.job.priority), now(), \(try DreamdJSON.string(schedule.job.metadata))::jsonb,
                           \(provider(schedule.job.kind)), \(schedule.id), \(tick), \(Actor.scheduler.rawValue),
                           \(try DreamdJSON.string(JSONValue.object(detail)))::jsonb
                    WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE schedule_id = \(schedule.id) AND scheduled_for = \(tick))
                    RETURNING id
                    """, logger: logger).collect()
                if inserted.isEmpty {
                    outcome.alreadyFired.append(tick)
                } else {
                    outcome.createdJobs.append(jobID)
                    outcome.createdTicks.append(tick)
                }
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
                throw ScheduleStoreError.tickAlreadyFired(scheduleID: schedule.id, tick: tick)
            }
        }
        try await connection.query("""
            UPDATE schedules SET next_fire_at = \(plan.next),
                last_fired_at = GREATEST(last_fired_at, \(outcome.createdTicks.last))
            WHERE id = \(schedule.id)
            """, logger: logger)
        return outcome
    }

    /// How long until the soonest enabled schedule is due, by the database's clock (zero if one is
    /// overdue; `nil` if none will fire).
    public func timeUntilNextDue() async throws -> Duration? {
        let rows = try await client.rows("""
            SELECT (extract(epoch FROM min(next_fire_at) - clock_timestamp()) * 1000)::float8
            FROM schedules WHERE enabled AND next_fire_at IS NOT NULL
            """, logger: logger)
        for millis in try rows.decode(Double?.self) {
            guard let millis else { return nil }
            return .milliseconds(Int64(max(0, millis).rounded(.up)))
        }
        return nil
    }

    /// A job of the schedule that has not finished, if any.
    private func unfinishedJob(of scheduleID: UUID, on connection: PostgresConnection) async throws -> UUID? {
        let rows = try await connection.query("""
            SELECT id FROM jobs WHERE schedule_id = \(scheduleID) AND state NOT IN ('succeeded', 'failed', 'cancelled')
            ORDER BY scheduled_for LIMIT 1
            """, logger: logger)
        for try await id in rows.decode(UUID.self) { return id }
        return nil
    }

    /// Writes `schedule.skipped` to the outbox, in the caller's transaction.
    private func recordSkipped(_ schedule: Schedule, tick: Date, unfinished: UUID, on connection: PostgresConnection) async throws {
        let data: JSONValue = [
            "schedule": try DreamdJSON.value(schedule),
            "scheduled_for": .string(DreamdJSON.formatDate(tick)),
            "reason": "overlap",
            "unfinished_job_id": .string(unfinished.uuidString.lowercased()),
        ]
        try await connection.query("""
            INSERT INTO events (id, type, payload)
            VALUES (\(UUID()), 'schedule.skipped', jsonb_build_object(
                'type', 'schedule.skipped', 'timestamp', dreamd_time(clock_timestamp()), 'data', \(try DreamdJSON.string(data))::jsonb))
            """, logger: logger)
    }

    static func decode(_ row: PostgresRow) throws -> Schedule {
        let cells = row.makeRandomAccess()
        let jobText = try cells[4].decode(String.self)
        let overlapText = try cells[5].decode(String.self)
        let catchUpText = try cells[6].decode(String.self)
        guard let overlap = OverlapPolicy(rawValue: overlapText), let catchUp = CatchUpPolicy(rawValue: catchUpText) else {
            throw ScheduleStoreError.corruptRow("unknown overlap \(overlapText) or catch_up \(catchUpText)")
        }
        return Schedule(
            id: try cells[0].decode(UUID.self),
            name: try cells[1].decode(String.self),
            cron: try cells[2].decode(String.self),
            timezone: try cells[3].decode(String.self),
            job: try DreamdJSON.decode(JobTemplate.self, from: jobText),
            overlap: overlap,
            catchUp: catchUp,
            enabled: try cells[7].decode(Bool.self),
            nextFireAt: try cells[8].decode(Date?.self),
            lastFiredAt: try cells[9].decode(Date?.self),
            createdAt: try cells[10].decode(Date.self),
            updatedAt: try cells[11].decode(Date.self)
        )
    }
}

/// Errors of the schedule store that are not PostgreSQL's own.
public enum ScheduleStoreError: Error, Sendable, CustomStringConvertible {
    case corruptRow(String)
    /// A job of this schedule and tick exists already: another process fired it. Nothing was written.
    case tickAlreadyFired(scheduleID: UUID, tick: Date?)

    public var description: String {
        switch self {
        case .corruptRow(let why): "corrupt schedules row: \(why)"
        case .tickAlreadyFired(let id, let tick):
            "schedule \(id.uuidString.lowercased()) already has a job for tick \(tick.map(DreamdJSON.formatDate) ?? "now")"
        }
    }
}
