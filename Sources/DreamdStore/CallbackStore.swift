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

    /// What asking for an early poll found.
    public enum PollNudge: Sendable, Hashable {
        /// The running job was made due now (and the workers woken).
        case nudged
        /// A poll is due already and nobody works on the job: it will see what the callback reported.
        case alreadyDue
        /// The job is being submitted or polled right now: the callback waits until that step is recorded.
        case busy
        /// The job is not running (waiting, or final).
        case notRunning
    }

    /// Makes a running job due for a poll now and wakes the workers, unless a worker holds it.
    public func pollSoon(jobID: UUID) async throws -> PollNudge {
        let rows = try await client.rows("""
            WITH target AS (
                SELECT id, kind, state, lease_owner IS NOT NULL AS busy, run_at > now() AS later FROM jobs WHERE id = \(jobID)
            ), nudged AS (
                UPDATE jobs j SET run_at = now()
                FROM target t WHERE j.id = t.id AND t.state = 'running' AND NOT t.busy AND t.later
                RETURNING j.kind
            ), woken AS (
                SELECT pg_notify('dreamd_jobs', kind) FROM nudged
            )
            SELECT t.state, t.busy, (SELECT count(*) FROM woken) > 0 FROM target t
            """, logger: logger)
        for (state, busy, nudged) in try rows.decode((String, Bool, Bool).self) {
            if nudged { return .nudged }
            if busy || state == JobState.submitting.rawValue { return .busy }
            return state == JobState.running.rawValue ? .alreadyDue : .notRunning
        }
        return .notRunning
    }

    /// Takes a short lease on a job that nobody works on, so a trusted callback outcome can be recorded
    /// through the ordinary `JobStore.record` path. A running job keeps its state; a waiting one whose
    /// submission the callback settles (`scheduled`, `queued`) moves to `submitting`, as a claim would.
    /// Returns the claimed job or `nil`.
    public func claimForCallback(jobID: UUID, owner: String) async throws -> ClaimedJob? {
        let rows = try await client.rows("""
            UPDATE jobs SET lease_owner = \(owner), lease_expires_at = now() + interval '30 seconds',
                lease_epoch = lease_epoch + 1,
                state = CASE WHEN state = 'running' THEN state ELSE 'submitting' END,
                audit_actor = 'callback'
            WHERE id = \(jobID) AND state IN ('running', 'scheduled', 'queued') AND lease_owner IS NULL
            RETURNING \(unescaped: JobColumns.list())
            """, logger: logger).rows
        return try rows.first.map { try JobRow($0).claimed }
    }

    /// A stored callback not acted on yet, with its job.
    public struct Pending: Sendable {
        public var inboxID: Int64
        public var job: Job
        public var payload: JSONValue?
    }

    /// Callbacks stored more than a second ago and not processed yet (they came while their job was
    /// being submitted or polled, or their processing failed) whose job nobody works on now, oldest first.
    public func pending(limit: Int = 100) async throws -> [Pending] {
        try decodePending(try await client.rows("""
            -- The inbox's unprocessed rows first (its partial index), then their jobs by key: a plan that starts
            -- from jobs reads the whole table (it took 225 ms a pass under bench/e2e.sh).
            WITH waiting AS MATERIALIZED (
                SELECT id, job_id, payload, payload_encoding FROM callback_inbox
                WHERE processed_at IS NULL AND received_at < now() - interval '1 second'
                ORDER BY id LIMIT \(limit * 10)
            )
            SELECT i.id, i.payload, i.payload_encoding, \(unescaped: JobColumns.list("j"))
            FROM waiting i JOIN jobs j ON j.id = i.job_id
            WHERE j.lease_owner IS NULL AND j.state <> 'submitting'
            ORDER BY i.id LIMIT \(limit)
            """, logger: logger).rows)
    }

    /// The callbacks of one job not processed yet, oldest first, if nobody works on the job now: what a
    /// worker applies right after recording a step during which they came.
    public func pending(jobID: UUID) async throws -> [Pending] {
        try decodePending(try await client.rows("""
            SELECT i.id, i.payload, i.payload_encoding, \(unescaped: JobColumns.list("j"))
            FROM callback_inbox i JOIN jobs j ON j.id = i.job_id
            WHERE i.job_id = \(jobID) AND i.processed_at IS NULL AND j.lease_owner IS NULL AND j.state <> 'submitting'
            ORDER BY i.id LIMIT 20
            """, logger: logger).rows)
    }

    private func decodePending(_ rows: [PostgresRow]) throws -> [Pending] {
        return try rows.map { row in
            let cells = row.makeRandomAccess()
            let text = try cells[1].decode(String.self)
            let encoding = try cells[2].decode(String.self)
            let body = encoding == "base64" ? Data(base64Encoded: text).map { String(decoding: $0, as: UTF8.self) } : text
            let job = try JobRow(row, offset: 3).job
            return Pending(inboxID: try cells[0].decode(Int64.self), job: job, payload: body.flatMap { try? JSONValue.parse($0) })
        }
    }

    /// Records what processing found so far, leaving the callback to be processed again later.
    public func markWaiting(inboxID: Int64, note: String) async throws {
        try await client.rows("""
            UPDATE callback_inbox SET outcome = \(Self.textSafe(note)) WHERE id = \(inboxID) AND processed_at IS NULL
            """, logger: logger)
    }

    public func markProcessed(inboxID: Int64, outcome: String) async throws {
        try await client.rows("""
            UPDATE callback_inbox SET processed_at = now(), outcome = \(Self.textSafe(outcome)) WHERE id = \(inboxID)
            """, logger: logger)
    }
}
