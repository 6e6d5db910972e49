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

    /// What became of a callback.
    public enum Receipt: Sendable {
        /// Stored in the inbox.
        case stored(Received)
        /// The token is unknown, or its job is final and the grace period has passed: nothing stored.
        case unknownToken
        /// The token has stored its `limit` callbacks already: nothing stored.
        case limitReached(limit: Int)
    }

    /// How long a token outlives its job's final state, and how many callbacks it may store.
    public struct TokenPolicy: Sendable {
        public var grace: Duration
        public var maxCallbacks: Int

        public init(grace: Duration = .seconds(3600), maxCallbacks: Int = 20) {
            self.grace = grace
            self.maxCallbacks = maxCallbacks
        }
    }

    /// Stores a callback whose token is live, with every callback token in it replaced by a marker
    /// (`CallbackRedaction`). A body PostgreSQL's `text` cannot hold is kept as base64.
    public func receive(provider: String, token: String, body: [UInt8], upstreamJobID: String?, upstreamState: String?,
                        policy: TokenPolicy = TokenPolicy()) async throws -> Receipt {
        guard token.count >= 40, token.count <= 100 else { return .unknownToken }
        let (payload, encoding) = Self.storable(body, token: token)
        let graceSeconds = Double(policy.grace.components.seconds)
        let rows = try await client.rows("""
            WITH known AS (
                UPDATE callback_tokens t SET callbacks_received = LEAST(t.callbacks_received + 1, \(policy.maxCallbacks) + 1)
                FROM jobs j
                WHERE t.token_hash = \(Self.hash(token)) AND t.provider = \(provider) AND j.id = t.job_id
                  AND (j.finished_at IS NULL OR j.finished_at > now() - make_interval(secs => \(graceSeconds)))
                RETURNING t.job_id, t.callbacks_received
            ), stored AS (
                INSERT INTO callback_inbox (provider, job_id, payload, payload_encoding, upstream_job_id, upstream_state)
                SELECT \(provider), job_id, \(payload), \(encoding), \(upstreamJobID.map(Self.textSafe)), \(upstreamState.map(Self.textSafe))
                FROM known WHERE callbacks_received <= \(policy.maxCallbacks)
                RETURNING id, job_id
            )
            SELECT known.job_id, stored.id FROM known LEFT JOIN stored ON true
            """, logger: logger)
        var found: (UUID, Int64?)?
        for row in try rows.decode((UUID, Int64?).self) { found = row }
        guard let (jobID, inboxID) = found else { return .unknownToken }
        guard let inboxID else { return .limitReached(limit: policy.maxCallbacks) }
        guard let job = try await JobStore(client: client, logger: logger).job(id: jobID) else { return .unknownToken }
        return .stored(Received(inboxID: inboxID, job: job))
    }

    /// The body as stored: redacted UTF-8 text, or base64 when it holds a NUL or is not UTF-8.
    static func storable(_ body: [UInt8], token: String) -> (payload: String, encoding: String) {
        if !body.contains(0), let text = String(validating: body, as: UTF8.self) {
            return (CallbackRedaction.redact(text.replacingOccurrences(of: token, with: CallbackRedaction.marker)), "text")
        }
        var bytes = body
        let tokenBytes = Array(token.utf8)
        let marker = Array(CallbackRedaction.marker.utf8)
        var index = 0
        while index + tokenBytes.count <= bytes.count {
            if bytes[index..<(index + tokenBytes.count)].elementsEqual(tokenBytes) {
                bytes.replaceSubrange(index..<(index + tokenBytes.count), with: marker)
                index += marker.count
            } else {
                index += 1
            }
        }
        return (Data(bytes).base64EncodedString(), "base64")
    }

    /// `text` without the NUL characters PostgreSQL's `text` refuses.
    static func textSafe(_ text: String) -> String {
        text.contains("\u{0}") ? text.replacingOccurrences(of: "\u{0}", with: "") : text
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
            UPDATE jobs SET lease_owner = \(owner), lease_expires_at = now() + interval '30 seconds',
                lease_epoch = lease_epoch + 1
            WHERE id = \(jobID) AND state = 'running' AND lease_owner IS NULL
            RETURNING \(unescaped: JobColumns.list())
            """, logger: logger).rows
        return try rows.first.map { row in
            let decoded = try JobRow(row)
            return ClaimedJob(job: decoded.job, pollCount: decoded.pollCount, leaseEpoch: decoded.leaseEpoch)
        }
    }

    public func markProcessed(inboxID: Int64, outcome: String) async throws {
        try await client.rows("""
            UPDATE callback_inbox SET processed_at = now(), outcome = \(Self.textSafe(outcome)) WHERE id = \(inboxID)
            """, logger: logger)
    }
}
