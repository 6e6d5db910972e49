import DreamdCore
import Foundation
import Logging
import PostgresNIO

/// The job queue and its audit trail in PostgreSQL.
///
/// Every state change runs in one transaction that sets the audit actor (recorded by the `jobs_audit`
/// trigger) and writes any outgoing event to the `events` outbox.
public struct JobStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger
    /// How long an upstream keeps a trained checkpoint: `expires_at = trained_at + checkpointRetention`.
    public let checkpointRetention: Duration
    /// Whether every trained checkpoint is archived, whatever its job asked (`DREAMD_ARCHIVE_CHECKPOINTS`).
    public let archiveAllCheckpoints: Bool

    public init(client: PostgresClient, logger: Logger, checkpointRetention: Duration = .seconds(48 * 3600), archiveAllCheckpoints: Bool = false) {
        self.client = client
        self.logger = logger
        self.checkpointRetention = checkpointRetention
        self.archiveAllCheckpoints = archiveAllCheckpoints
    }

    /// A job to insert.
    public struct NewJob: Sendable {
        public var id: UUID
        public var kind: JobKind
        public var params: JSONValue
        public var runAt: Date?
        public var priority: Int
        public var maxAttempts: Int
        public var metadata: JSONValue
        public var idempotencyKey: String?
        public var requestHash: String?
        public var apiKeyID: UUID?
        public var provider: String?
        /// Whether the checkpoints this (dreambooth) job trains are to be archived (`archive_checkpoints`).
        public var archiveCheckpoints: Bool

        public init(
            id: UUID = UUID(), kind: JobKind, params: JSONValue, runAt: Date? = nil, priority: Int = 0,
            maxAttempts: Int = 5, metadata: JSONValue = .object([:]), idempotencyKey: String? = nil,
            requestHash: String? = nil, apiKeyID: UUID? = nil, provider: String? = nil,
            archiveCheckpoints: Bool = false
        ) {
            self.archiveCheckpoints = archiveCheckpoints
            self.id = id
            self.kind = kind
            self.params = params
            self.runAt = runAt
            self.priority = priority
            self.maxAttempts = maxAttempts
            self.metadata = metadata
            self.idempotencyKey = idempotencyKey
            self.requestHash = requestHash
            self.apiKeyID = apiKeyID
            self.provider = provider
        }
    }

    /// What inserting with an idempotency key found.
    public enum InsertOutcome: Sendable {
        case created(Job)
        /// The same key was used before with the same body: the earlier job.
        case replayed(Job)
        /// The same key was used before with another body.
        case conflict(Job)
    }

    /// Inserts a job: `scheduled` when `runAt` is in the future, else `queued`.
    ///
    /// With an idempotency key, a second insert with the same key finds the first job: the same
    /// body replays it, another body is a conflict. Concurrent inserts with one key race safely on
    /// the unique index.
    public func insert(_ new: NewJob, actor: Actor = .api) async throws -> InsertOutcome {
        if new.idempotencyKey != nil, let earlier = try await existing(for: new) { return earlier }
        let paramsText = try DreamdJSON.string(new.params)
        let metadataText = try DreamdJSON.string(new.metadata)
        do {
            let rows = try await client.rows("""
                INSERT INTO jobs (id, kind, state, params, max_attempts, priority, run_at, metadata,
                                  idempotency_key, request_hash, api_key_id, upstream_provider, archive_checkpoints, audit_actor)
                VALUES (\(new.id), \(new.kind.rawValue),
                        CASE WHEN \(new.runAt)::timestamptz > now() THEN 'scheduled' ELSE 'queued' END,
                        \(paramsText)::jsonb, \(new.maxAttempts), \(new.priority), COALESCE(\(new.runAt)::timestamptz, now()),
                        \(metadataText)::jsonb, \(new.idempotencyKey), \(new.requestHash), \(new.apiKeyID), \(new.provider),
                        \(new.archiveCheckpoints), \(actor.rawValue))
                RETURNING \(unescaped: JobColumns.list())
                """, logger: logger).rows
            guard let row = rows.first else { throw JobStoreError.corruptRow("INSERT returned no row") }
            return .created(try JobRow(row).job)
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" && new.idempotencyKey != nil {
            // Another request with the same key won the race.
            guard let earlier = try await existing(for: new) else { throw error }
            return earlier
        }
    }

    private func existing(for new: NewJob) async throws -> InsertOutcome? {
        guard let key = new.idempotencyKey else { return nil }
        return try await existing(idempotencyKey: key, requestHash: new.requestHash, apiKeyID: new.apiKeyID)
    }

    /// The job an earlier request with `idempotencyKey` (by the same API key) created, if any: `.replayed`
    /// when its body had the same `requestHash`, else `.conflict`. The API looks this up before it
    /// validates a submission again, so a retried request gets its job even once its input (a presigned
    /// URL, a checkpoint) would no longer pass.
    public func existing(idempotencyKey: String, requestHash: String?, apiKeyID: UUID?) async throws -> InsertOutcome? {
        let rows = try await client.rows("""
            SELECT \(unescaped: JobColumns.list()) FROM jobs
            WHERE api_key_id IS NOT DISTINCT FROM \(apiKeyID)::uuid AND idempotency_key = \(idempotencyKey)
            """, logger: logger).rows
        guard let found = rows.first else { return nil }
        let row = try JobRow(found)
        return row.requestHash == requestHash ? .replayed(row.job) : .conflict(row.job)
    }

    /// One job by id.
    public func job(id: UUID) async throws -> Job? {
        let rows = try await client.rows("SELECT \(unescaped: JobColumns.list()) FROM jobs WHERE id = \(id)", logger: logger).rows
        return try rows.first.map { try JobRow($0).job }
    }

    /// Filters of `GET /v1/jobs`.
    public struct ListFilter: Sendable {
        public var states: [JobState] = []
        public var kinds: [JobKind] = []
        public var scheduleID: UUID?
        public var createdAfter: Date?
        public var createdBefore: Date?
        public var batchID: UUID?
        public var limit: Int = 50
        public var cursor: JobCursor?

        public init() {}
    }

    /// A page of jobs, newest first, and the cursor of the next page if there is one.
    public func list(_ filter: ListFilter) async throws -> (jobs: [Job], next: JobCursor?) {
        var conditions: [String] = []
        var binds = PostgresBindings()
        func bind<T: PostgresEncodable>(_ value: T) throws -> String {
            try binds.append(value)
            return "$\(binds.count)"
        }
        if !filter.states.isEmpty { conditions.append("state = ANY(\(try bind(filter.states.map(\.rawValue)))::text[])") }
        if !filter.kinds.isEmpty { conditions.append("kind = ANY(\(try bind(filter.kinds.map(\.rawValue)))::text[])") }
        if let scheduleID = filter.scheduleID { conditions.append("schedule_id = \(try bind(scheduleID))") }
        if let after = filter.createdAfter { conditions.append("created_at > \(try bind(after))") }
        if let before = filter.createdBefore { conditions.append("created_at < \(try bind(before))") }
        if let batchID = filter.batchID { conditions.append("batch_id = \(try bind(batchID))") }
        if let cursor = filter.cursor {
            conditions.append("(created_at, id) < (timestamptz 'epoch' + \(try bind(cursor.createdAtMicros)) * interval '1 microsecond', \(try bind(cursor.id)))")
        }
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let sql = """
            SELECT \(JobColumns.list()), (extract(epoch FROM created_at) * 1000000)::int8
            FROM jobs \(whereClause) ORDER BY created_at DESC, id DESC LIMIT \(try bind(filter.limit + 1))
            """
        let rows = try await client.rows(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger).rows
        var jobs: [Job] = []
        var next: JobCursor?
        for (index, row) in rows.enumerated() {
            if index == filter.limit {
                let last = rows[index - 1]
                next = JobCursor(createdAtMicros: try last.makeRandomAccess()[JobColumns.count].decode(Int64.self), id: jobs[index - 1].id)
                break
            }
            jobs.append(try JobRow(row).job)
        }
        return (jobs, next)
    }

    /// Publishes a running step's progress, if its claim still holds the job (the lease's epoch matches).
    public func updateProgress(lease: Lease, progress: StepProgress) async throws {
        try await client.rows("""
            UPDATE jobs SET progress = \(try DreamdJSON.string(progress.counters))::jsonb,
                partial_output = COALESCE(\(progress.partialOutput), partial_output)
            WHERE id = \(lease.id) AND lease_epoch = \(lease.epoch) AND lease_expires_at IS NOT NULL
            """, logger: logger)
    }

    /// The streamed output of a job from character `offset` on, and whether the job is final.
    public func output(id: UUID, from offset: Int) async throws -> (text: String, length: Int, state: JobState)? {
        let rows = try await client.rows("""
            SELECT COALESCE(substr(COALESCE(result->>'text', partial_output, ''), \(offset + 1)::int), ''),
                   length(COALESCE(result->>'text', partial_output, '')), state
            FROM jobs WHERE id = \(id)
            """, logger: logger)
        for (text, length, state) in try rows.decode((String, Int, String).self) {
            return (text, length, JobState(rawValue: state) ?? .failed)
        }
        return nil
    }

    /// The audit trail of a job, oldest first.
    public func events(jobID: UUID) async throws -> [JobEvent] {
        let rows = try await client.rows("""
            SELECT id, at, actor, from_state, to_state, detail::text FROM job_events WHERE job_id = \(jobID) ORDER BY id
            """, logger: logger)
        var events: [JobEvent] = []
        for (id, at, actor, from, to, detail) in try rows.decode((Int64, Date, String, String?, String, String).self) {
            events.append(JobEvent(
                id: id, at: at, actor: actor, fromState: from.flatMap(JobState.init(rawValue:)),
                toState: JobState(rawValue: to) ?? .failed,
                detail: (try? DreamdJSON.decode(JSONValue.self, from: detail)) ?? .object([:])
            ))
        }
        return events
    }

    /// What cancelling found.
    public enum CancelOutcome: Sendable {
        case cancelled(Job)
        case alreadyFinal(Job)
        case notFound
    }

    /// Cancels a job that is not yet final. A job running upstream is cancelled here; the upstream
    /// result, if it still comes, is ignored.
    public func cancel(id: UUID, actor: Actor = .api, reason: String = "cancelled by request") async throws -> CancelOutcome {
        let errorText = try DreamdJSON.string(JobError(code: "cancelled", message: reason))
        let detail = try DreamdJSON.string(["reason": JSONValue.string(reason)])
        let rows = try await client.rows("""
            UPDATE jobs SET state = 'cancelled', error = \(errorText)::jsonb,
                audit_actor = \(actor.rawValue), audit_detail = \(detail)::jsonb
            WHERE id = \(id) AND state NOT IN ('succeeded', 'failed', 'cancelled')
            RETURNING \(unescaped: JobColumns.list())
            """, logger: logger).rows
        if let row = rows.first { return .cancelled(try JobRow(row).job) }
        guard let job = try await job(id: id) else { return .notFound }
        return .alreadyFinal(job)
    }
}

/// One row of `job_events`.
public struct JobEvent: Sendable, Codable, Hashable {
    public var id: Int64
    public var at: Date
    public var actor: String
    public var fromState: JobState?
    public var toState: JobState
    public var detail: JSONValue

    enum CodingKeys: String, CodingKey {
        case id, at, actor, detail
        case fromState = "from_state"
        case toState = "to_state"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(at, forKey: .at)
        try c.encode(actor, forKey: .actor)
        try c.encode(fromState, forKey: .fromState)
        try c.encode(toState, forKey: .toState)
        try c.encode(detail, forKey: .detail)
    }
}

/// An opaque position in the newest-first job listing.
public struct JobCursor: Sendable, Hashable {
    public var createdAtMicros: Int64
    public var id: UUID

    public init(createdAtMicros: Int64, id: UUID) {
        self.createdAtMicros = createdAtMicros
        self.id = id
    }

    /// The pattern of `token` (the OpenAPI document states it): microseconds, `_`, the row's id.
    public static let tokenPattern = "^[0-9]{1,18}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

    /// The cursor as the API hands it out: `<created_at in µs>_<id>`.
    public var token: String { "\(createdAtMicros)_\(id.uuidString.lowercased())" }

    /// Reads a token `token` handed out.
    public init?(token: String) {
        let parts = token.split(separator: "_", maxSplits: 1)
        guard parts.count == 2, parts[0].utf8.count <= 18, parts[0].utf8.allSatisfy({ (0x30...0x39).contains($0) }),
              let micros = Int64(parts[0]), let id = UUID(uuidString: String(parts[1])) else { return nil }
        self.init(createdAtMicros: micros, id: id)
    }
}
