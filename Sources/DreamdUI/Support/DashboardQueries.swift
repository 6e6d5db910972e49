import DreamdCore
import DreamdStore
import Foundation
import Logging
import PostgresNIO

/// The dashboard's own reads: aggregate figures no API route serves. Every one goes through an index
/// (`jobs_state_created_idx` for unfinished states, `jobs_finished_idx` for finish times), so the
/// overview stays fast on a table of millions: nothing here counts the whole table.
public struct DashboardQueries: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Jobs per kind and state: every unfinished job, and jobs that finished in the last 24 h.
    public struct StateCount: Sendable, Hashable {
        public var kind: String
        public var state: String
        public var count: Int64
    }

    public func stateCounts() async throws -> [StateCount] {
        // Two index paths: unfinished states through (state, created_at), finished ones through finished_at.
        let rows = try await client.rows("""
            SELECT kind, state, count(*)::int8 FROM jobs
            WHERE state IN ('scheduled', 'queued', 'submitting', 'running') GROUP BY kind, state
            UNION ALL
            SELECT kind, state, count(*)::int8 FROM jobs
            WHERE finished_at > now() - interval '24 hours' GROUP BY kind, state
            """, logger: logger)
        return try rows.decode((String, String, Int64).self).map { StateCount(kind: $0, state: $1, count: $2) }
    }

    /// Jobs finished per minute over the last hour (60 buckets, oldest first), by final state.
    public struct Minute: Sendable, Hashable {
        public var succeeded: Int64 = 0
        public var failed: Int64 = 0
        public var cancelled: Int64 = 0
        public var total: Int64 { succeeded + failed + cancelled }
    }

    public func throughputLastHour() async throws -> [Minute] {
        let rows = try await client.rows("""
            SELECT (59 - floor(extract(epoch FROM now() - finished_at) / 60))::int, state, count(*)::int8
            FROM jobs WHERE finished_at > now() - interval '1 hour'
            GROUP BY 1, 2
            """, logger: logger)
        var minutes = Array(repeating: Minute(), count: 60)
        for (bucket, state, count) in try rows.decode((Int, String, Int64).self) where (0..<60).contains(bucket) {
            switch state {
            case "succeeded": minutes[bucket].succeeded += count
            case "failed": minutes[bucket].failed += count
            default: minutes[bucket].cancelled += count
            }
        }
        return minutes
    }

    /// When the oldest job still `queued` was submitted, if any is.
    public func oldestQueued() async throws -> Date? {
        let rows = try await client.rows("""
            SELECT created_at FROM jobs WHERE state = 'queued' ORDER BY created_at LIMIT 1
            """, logger: logger)
        return try rows.decode(Date.self).first
    }

    /// Failures of the last 24 h by error code, most frequent first.
    public func failuresByCode() async throws -> [(code: String, count: Int64)] {
        let rows = try await client.rows("""
            SELECT COALESCE(error->>'code', 'unknown'), count(*)::int8 FROM jobs
            WHERE finished_at > now() - interval '24 hours' AND state = 'failed'
            GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20
            """, logger: logger)
        return try rows.decode((String, Int64).self).map { (code: $0, count: $1) }
    }

    /// Ids of the jobs a search text names: a job id, an upstream job id, or `key=value` in metadata.
    public func search(_ text: String, providers: [String], limit: Int = 50) async throws -> [UUID] {
        let text = text.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { return [] }
        if let id = UUID(uuidString: text) { return [id] }
        var ids: [UUID] = []
        if let equals = text.firstIndex(of: "="), equals != text.startIndex {
            let key = String(text[..<equals]).trimmingCharacters(in: .whitespaces)
            let value = String(text[text.index(after: equals)...]).trimmingCharacters(in: .whitespaces)
            let containment = try DreamdJSON.string(JSONValue.object([key: .string(value)]))
            let rows = try await client.rows("""
                SELECT id FROM jobs WHERE metadata @> \(containment)::jsonb ORDER BY created_at DESC LIMIT \(limit)
                """, logger: logger)
            ids += try rows.decode(UUID.self)
        }
        // Upstream ids are indexed under their provider: naming the providers keeps to the index.
        let rows = try await client.rows("""
            SELECT id FROM jobs WHERE upstream_provider = ANY(\(providers)::text[]) AND upstream_job_id = \(text)
            ORDER BY created_at DESC LIMIT \(limit)
            """, logger: logger)
        ids += try rows.decode(UUID.self)
        return ids
    }

    /// Spend of finished jobs per UTC day and kind in `[from, to)`.
    public struct DailySpend: Sendable, Hashable {
        public var day: Date
        public var kind: String
        public var jobs: Int64
        public var costUSD: Double
    }

    public func spendPerDay(from: Date, to: Date) async throws -> [DailySpend] {
        let rows = try await client.rows("""
            SELECT date_trunc('day', finished_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', kind, count(*)::int8,
                   COALESCE(sum(cost_usd), 0)::float8
            FROM jobs WHERE finished_at >= \(from) AND finished_at < \(to) AND cost_usd IS NOT NULL
            GROUP BY 1, 2 ORDER BY 1, 2
            """, logger: logger)
        return try rows.decode((Date, String, Int64, Double).self).map { DailySpend(day: $0, kind: $1, jobs: $2, costUSD: $3) }
    }

    /// Spend of finished jobs per API key in `[from, to)` (the key's name, never its token).
    public struct KeySpend: Sendable, Hashable {
        public var keyName: String
        public var jobs: Int64
        public var costUSD: Double
    }

    public func spendPerKey(from: Date, to: Date) async throws -> [KeySpend] {
        let rows = try await client.rows("""
            SELECT COALESCE(k.name, CASE WHEN j.schedule_id IS NOT NULL THEN '(schedules)' ELSE '(no key)' END),
                   count(*)::int8, COALESCE(sum(j.cost_usd), 0)::float8
            FROM jobs j LEFT JOIN api_keys k ON k.id = j.api_key_id
            WHERE j.finished_at >= \(from) AND j.finished_at < \(to) AND j.cost_usd IS NOT NULL
            GROUP BY 1 ORDER BY 3 DESC
            """, logger: logger)
        return try rows.decode((String, Int64, Double).self).map { KeySpend(keyName: $0, jobs: $1, costUSD: $2) }
    }

    /// The webhook deliveries of the events a job caused (its `job.*` events carry its id).
    public struct JobDelivery: Sendable, Hashable {
        public var id: UUID
        public var eventType: String
        public var state: String
        public var attempts: Int
        public var lastStatus: Int?
        public var subscriptionURL: String
        public var createdAt: Date
    }

    public func deliveries(ofJob id: UUID, finishedAt: Date?) async throws -> [JobDelivery] {
        // A job's events are written when it finishes: look near that time (events_created_idx), not everywhere.
        guard let finishedAt else { return [] }
        let rows = try await client.rows("""
            SELECT d.id, e.type, d.state, d.attempts, d.last_status, s.url, d.created_at
            FROM events e JOIN deliveries d ON d.event_id = e.id JOIN subscriptions s ON s.id = d.subscription_id
            WHERE e.created_at > \(finishedAt) - interval '1 day'
              AND e.type LIKE 'job.%' AND e.payload->'data'->>'id' = \(id.uuidString.lowercased())
            ORDER BY d.created_at
            """, logger: logger)
        return try rows.decode((UUID, String, String, Int, Int?, String, Date).self).map {
            JobDelivery(id: $0, eventType: $1, state: $2, attempts: $3, lastStatus: $4, subscriptionURL: $5, createdAt: $6)
        }
    }
}
