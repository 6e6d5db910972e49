import Crypto
import DreamdCore
import Foundation
import Logging
import PostgresNIO

/// Callback tokens and the callback inbox.
///
/// Each submission attempt gets a fresh random token (32 bytes); only its SHA-256 is stored. A callback
/// is stored in `callback_inbox` before anything acts on it.
public struct CallbackStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Creates and records a token for the next submission of `jobID`; returns the token for the URL.
    public func newToken(jobID: UUID, provider: String) async throws -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let token = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        try await client.rows("""
            INSERT INTO callback_tokens (token_hash, provider, job_id) VALUES (\(Self.hash(token)), \(provider), \(jobID))
            """, logger: logger)
        return token
    }

    static func hash(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// A stored callback and the job it belongs to.
    public struct Received: Sendable {
        public var inboxID: Int64
        public var job: Job
    }

    /// Stores a callback whose token is known. Returns `nil` (and stores nothing) for an unknown token.
    public func receive(provider: String, token: String, payload: String, upstreamJobID: String?, upstreamState: String?) async throws -> Received? {
        guard token.count >= 40, token.count <= 100 else { return nil }
        let rows = try await client.rows("""
            WITH known AS (
                SELECT job_id FROM callback_tokens WHERE token_hash = \(Self.hash(token)) AND provider = \(provider)
            )
            INSERT INTO callback_inbox (provider, job_id, payload, upstream_job_id, upstream_state)
            SELECT \(provider), job_id, \(payload), \(upstreamJobID), \(upstreamState) FROM known
            RETURNING id, job_id
            """, logger: logger)
        var stored: (Int64, UUID)?
        for row in try rows.decode((Int64, UUID).self) { stored = row }
        guard let (inboxID, jobID) = stored else { return nil }
        guard let job = try await JobStore(client: client, logger: logger).job(id: jobID) else { return nil }
        return Received(inboxID: inboxID, job: job)
    }

    /// Makes a running job due for a poll now and wakes the workers. Returns whether it was moved.
    public func pollSoon(jobID: UUID) async throws -> Bool {
        let rows = try await client.rows("""
            WITH nudged AS (
                UPDATE jobs SET run_at = now()
                WHERE id = \(jobID) AND state = 'running' AND run_at > now()
                RETURNING kind
            )
            SELECT pg_notify('dreamd_jobs', kind) FROM nudged
            """, logger: logger).rows
        return !rows.isEmpty
    }

    /// Takes a short lease on a running job that nobody works on, so a trusted callback outcome can be
    /// recorded through the ordinary `JobStore.record` path. Returns the claimed job or `nil`.
    public func claimForCallback(jobID: UUID, owner: String) async throws -> ClaimedJob? {
        let rows = try await client.rows("""
            UPDATE jobs SET lease_owner = \(owner), lease_expires_at = now() + interval '30 seconds'
            WHERE id = \(jobID) AND state = 'running' AND lease_owner IS NULL
            RETURNING \(unescaped: JobColumns.list())
            """, logger: logger).rows
        return try rows.first.map { row in
            let decoded = try JobRow(row)
            return ClaimedJob(job: decoded.job, pollCount: decoded.pollCount)
        }
    }

    public func markProcessed(inboxID: Int64, outcome: String) async throws {
        try await client.rows("""
            UPDATE callback_inbox SET processed_at = now(), outcome = \(outcome) WHERE id = \(inboxID)
            """, logger: logger)
    }
}
