import DreamdCore
import Foundation
import Logging
import PostgresNIO

/// Bulk submissions: a batch row and its jobs, inserted in one transaction (all or nothing), and the
/// batch's progress as counts by state.
public struct BatchStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// A batch and how far its jobs got.
    public struct Summary: Sendable, Hashable, Encodable {
        public var id: UUID
        public var total: Int
        public var succeeded: Int
        public var failed: Int
        public var cancelled: Int
        public var pending: Int
        public var costUSD: Double
        public var createdAt: Date

        public var isFinished: Bool { pending == 0 }

        enum CodingKeys: String, CodingKey {
            case id, total, succeeded, failed, cancelled, pending
            case costUSD = "cost_usd"
            case createdAt = "created_at"
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id.uuidString.lowercased(), forKey: .id)
            try c.encode(total, forKey: .total)
            try c.encode(succeeded, forKey: .succeeded)
            try c.encode(failed, forKey: .failed)
            try c.encode(cancelled, forKey: .cancelled)
            try c.encode(pending, forKey: .pending)
            try c.encode(costUSD, forKey: .costUSD)
            try c.encode(createdAt, forKey: .createdAt)
        }
    }

    public enum InsertOutcome: Sendable {
        case created(Summary, jobIDs: [UUID])
        /// The same `Idempotency-Key` and body were sent before: that batch.
        case replayed(Summary)
        /// The same key was used before with another body.
        case conflict(batchID: UUID)
    }

    /// Rows per INSERT statement: each statement carries its rows as one `jsonb` array, unpacked by
    /// `jsonb_to_recordset`, so 10,000 jobs take a few dozen round trips in one transaction.
    static let rowsPerStatement = 1000
    static let bytesPerStatement = 8 << 20

    /// Inserts a batch and all its jobs in one transaction. The `jobs_write` trigger records each job's
    /// `api: → queued` audit row (detail `{"batch_id"}`), as for a single submission.
    public func insert(_ jobs: [JobStore.NewJob], batchID: UUID = UUID(), apiKeyID: UUID?, idempotencyKey: String?,
                       requestHash: String?) async throws -> InsertOutcome {
        if let idempotencyKey, let earlier = try await existing(apiKeyID: apiKeyID, key: idempotencyKey, requestHash: requestHash) {
            return earlier
        }
        let detail = try DreamdJSON.string(["batch_id": JSONValue.string(batchID.uuidString.lowercased())])
        var chunks: [String] = []
        var rows: [JSONValue] = []
        var bytes = 0
        func flush() throws {
            guard !rows.isEmpty else { return }
            chunks.append(JSONValue.array(rows).jsonText)
            rows.removeAll(keepingCapacity: true)
            bytes = 0
        }
        for job in jobs {
            let row: JSONValue = [
                "id": .string(job.id.uuidString.lowercased()), "kind": .string(job.kind.rawValue), "params": job.params,
                "max_attempts": .number(Double(job.maxAttempts)), "priority": .number(Double(job.priority)),
                "run_at": job.runAt.map { .string(DreamdJSON.formatDate($0)) } ?? .null, "metadata": job.metadata,
                "provider": job.provider.map(JSONValue.string) ?? .null, "archive_checkpoints": .bool(job.archiveCheckpoints),
            ]
            rows.append(row)
            bytes += Self.estimatedSize(job.params) + 200
            if rows.count >= Self.rowsPerStatement || bytes >= Self.bytesPerStatement { try flush() }
        }
        try flush()
        let chunkTexts = chunks
        do {
            let created = try await client.transaction(logger: logger) { connection -> Date in
                let rows = try await connection.query("""
                    INSERT INTO batches (id, api_key_id, total, idempotency_key, request_hash)
                    VALUES (\(batchID), \(apiKeyID), \(jobs.count), \(idempotencyKey), \(requestHash))
                    RETURNING created_at
                    """, logger: logger)
                var createdAt = Date()
                for try await at in rows.decode(Date.self) { createdAt = at }
                for chunk in chunkTexts {
                    try await connection.query("""
                        INSERT INTO jobs (id, kind, state, params, max_attempts, priority, run_at, metadata,
                                          upstream_provider, archive_checkpoints, batch_id, audit_actor, audit_detail)
                        SELECT r.id, r.kind, CASE WHEN r.run_at > now() THEN 'scheduled' ELSE 'queued' END,
                               r.params, r.max_attempts, r.priority, COALESCE(r.run_at, now()), r.metadata,
                               r.provider, COALESCE(r.archive_checkpoints, false), \(batchID), 'api', \(detail)::jsonb
                        FROM jsonb_to_recordset(\(chunk)::jsonb) AS r(id uuid, kind text, params jsonb, max_attempts integer,
                             priority integer, run_at timestamptz, metadata jsonb, provider text, archive_checkpoints boolean)
                        """, logger: logger)
                }
                return createdAt
            }
            let summary = Summary(id: batchID, total: jobs.count, succeeded: 0, failed: 0, cancelled: 0, pending: jobs.count,
                                  costUSD: 0, createdAt: created)
            return .created(summary, jobIDs: jobs.map(\.id))
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" && idempotencyKey != nil {
            guard let idempotencyKey, let earlier = try await existing(apiKeyID: apiKeyID, key: idempotencyKey, requestHash: requestHash) else {
                throw error
            }
            return earlier
        }
    }

    private func existing(apiKeyID: UUID?, key: String, requestHash: String?) async throws -> InsertOutcome? {
        let rows = try await client.rows("""
            SELECT id, request_hash FROM batches
            WHERE api_key_id IS NOT DISTINCT FROM \(apiKeyID)::uuid AND idempotency_key = \(key)
            """, logger: logger)
        for (id, hash) in try rows.decode((UUID, String?).self) {
            guard hash == requestHash, let summary = try await summary(id: id) else { return .conflict(batchID: id) }
            return .replayed(summary)
        }
        return nil
    }

    /// The batch's counts by state and the cost of its jobs so far; `nil` for an unknown id.
    public func summary(id: UUID) async throws -> Summary? {
        let rows = try await client.rows("""
            SELECT b.id, b.total, b.created_at,
                   count(j.id) FILTER (WHERE j.state = 'succeeded')::int,
                   count(j.id) FILTER (WHERE j.state = 'failed')::int,
                   count(j.id) FILTER (WHERE j.state = 'cancelled')::int,
                   count(j.id) FILTER (WHERE j.state NOT IN ('succeeded', 'failed', 'cancelled'))::int,
                   COALESCE(sum(j.cost_usd), 0)::float8
            FROM batches b LEFT JOIN jobs j ON j.batch_id = b.id
            WHERE b.id = \(id)
            GROUP BY b.id
            """, logger: logger)
        for (id, total, createdAt, succeeded, failed, cancelled, pending, cost)
            in try rows.decode((UUID, Int, Date, Int, Int, Int, Int, Double).self) {
            return Summary(id: id, total: total, succeeded: succeeded, failed: failed, cancelled: cancelled, pending: pending,
                           costUSD: cost, createdAt: createdAt)
        }
        return nil
    }

    /// A cheap upper bound of a value's JSON size, to keep statements under a few MB.
    static func estimatedSize(_ value: JSONValue) -> Int {
        switch value {
        case .null, .bool: 5
        case .number: 24
        case .string(let text): text.utf8.count + 2
        case .array(let items): items.reduce(2) { $0 + estimatedSize($1) + 1 }
        case .object(let object): object.reduce(2) { $0 + $1.key.utf8.count + 4 + estimatedSize($1.value) }
        }
    }
}
