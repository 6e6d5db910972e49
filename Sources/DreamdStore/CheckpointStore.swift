import DreamdCore
import Foundation
import Logging
import PostgresNIO

/// A trained checkpoint as the API shows it (and as `dreamd_checkpoint_json` renders it in webhook payloads).
public struct CheckpointView: Sendable, Codable, Hashable {
    public var id: UUID
    public var jobID: UUID
    public var upstreamCheckpointID: String
    public var state: String
    public var trainedAt: Date
    public var expiresAt: Date
    public var checkpointType: String?
    public var modelType: String?
    public var fileFormat: String?
    public var isExtractedLora: Bool
    public var trainingStep: Int?
    public var sizeBytes: Int64?
    public var url: String?
    public var archivedPath: String?
    public var createdAt: Date
    /// Whether the checkpoint is to be copied to `DREAMD_DATA_DIR/checkpoints/` before it expires.
    public var archiveRequested: Bool
    /// `nil` (not requested), `pending`, `archiving`, `archived` or `failed`.
    public var archiveState: String?
    public var archivedBytes: Int64?
    public var archivedSHA256: String?
    public var archiveError: String?

    enum CodingKeys: String, CodingKey {
        case id, state, url
        case jobID = "job_id"
        case upstreamCheckpointID = "upstream_checkpoint_id"
        case trainedAt = "trained_at"
        case expiresAt = "expires_at"
        case checkpointType = "checkpoint_type"
        case modelType = "model_type"
        case fileFormat = "file_format"
        case isExtractedLora = "is_extracted_lora"
        case trainingStep = "training_step"
        case sizeBytes = "size_bytes"
        case archivedPath = "archived_path"
        case createdAt = "created_at"
        case archiveRequested = "archive_requested"
        case archiveState = "archive_state"
        case archivedBytes = "archived_bytes"
        case archivedSHA256 = "archived_sha256"
        case archiveError = "archive_error"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id.uuidString.lowercased(), forKey: .id)
        try c.encode(jobID.uuidString.lowercased(), forKey: .jobID)
        try c.encode(upstreamCheckpointID, forKey: .upstreamCheckpointID)
        try c.encode(state, forKey: .state)
        try c.encode(trainedAt, forKey: .trainedAt)
        try c.encode(expiresAt, forKey: .expiresAt)
        try c.encode(checkpointType, forKey: .checkpointType)
        try c.encode(modelType, forKey: .modelType)
        try c.encode(fileFormat, forKey: .fileFormat)
        try c.encode(isExtractedLora, forKey: .isExtractedLora)
        try c.encode(trainingStep, forKey: .trainingStep)
        try c.encode(sizeBytes, forKey: .sizeBytes)
        try c.encode(url, forKey: .url)
        try c.encode(archivedPath, forKey: .archivedPath)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(archiveRequested, forKey: .archiveRequested)
        try c.encode(archiveState, forKey: .archiveState)
        try c.encode(archivedBytes, forKey: .archivedBytes)
        try c.encode(archivedSHA256, forKey: .archivedSHA256)
        try c.encode(archiveError, forKey: .archiveError)
    }
}

/// A checkpoint a job names that is (or will be, by its `expires_at`) gone upstream.
public struct ExpiredCheckpoint: Sendable, Hashable {
    public var upstreamCheckpointID: String
    public var expiredAt: Date
}

/// Errors of checkpoint writes that the API maps to answers.
public enum CheckpointStoreError: Error, Sendable, Equatable {
    /// The checkpoint is already expired: dreamlook has deleted it, its expiry cannot move.
    case alreadyExpired(expiredAt: Date)
}

/// Reads trained checkpoints and writes the changes the API and the retention sweeper make.
///
/// Every write goes through the `checkpoints_write` trigger (migration 0008): it records the audit row in
/// `checkpoint_events` and any `checkpoint.*` event in the outbox, inside the writer's own statement.
public struct CheckpointStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger
    /// How long before `expires_at` a checkpoint is `expiring` (`DREAMD_CHECKPOINT_EXPIRY_WARNING`).
    public let expiryWarning: Duration

    public init(client: PostgresClient, logger: Logger, expiryWarning: Duration = .seconds(6 * 3600)) {
        self.client = client
        self.logger = logger
        self.expiryWarning = expiryWarning
    }

    static let columns = """
        id, job_id, upstream_checkpoint_id, state, trained_at, expires_at, checkpoint_type, model_type, file_format,
        is_extracted_lora, training_step, size_bytes, url, archived_path, created_at,
        archive_requested, archive_state, archived_bytes, archived_sha256, archive_error
        """

    /// Checkpoints, soonest expiry first, optionally of some states, of one job, and/or expiring within `within`
    /// (not yet expired, `expires_at <= now() + within`).
    public func list(states: [String] = [], jobID: UUID? = nil, expiringWithin within: Duration? = nil, limit: Int = 100) async throws -> [CheckpointView] {
        let withinMillis = within.map(JobStore.millis)
        let rows = try await client.rows("""
            SELECT \(unescaped: Self.columns) FROM checkpoints
            WHERE (cardinality(\(states)::text[]) = 0 OR state = ANY(\(states)::text[]))
              AND (\(jobID)::uuid IS NULL OR job_id = \(jobID)::uuid)
              AND (\(withinMillis)::int8 IS NULL OR (state <> 'expired'
                   AND expires_at <= now() + \(withinMillis)::int8 * interval '1 millisecond'))
            ORDER BY expires_at, id LIMIT \(limit)
            """, logger: logger).rows
        return try rows.map(Self.decode)
    }

    public func checkpoint(id: UUID) async throws -> CheckpointView? {
        let rows = try await client.rows("SELECT \(unescaped: Self.columns) FROM checkpoints WHERE id = \(id)", logger: logger).rows
        return try rows.first.map(Self.decode)
    }

    /// Among upstream checkpoint ids, those dreamd knows to be expired (`state = 'expired'` or past `expires_at`).
    /// Ids dreamd does not know (trained outside it) are never reported.
    public func expired(among upstreamIDs: [String]) async throws -> [ExpiredCheckpoint] {
        try await Self.expired(among: upstreamIDs, client: client, logger: logger)
    }

    static func expired(among upstreamIDs: [String], client: PostgresClient, logger: Logger) async throws -> [ExpiredCheckpoint] {
        guard !upstreamIDs.isEmpty else { return [] }
        let rows = try await client.rows("""
            SELECT upstream_checkpoint_id, expires_at FROM checkpoints
            WHERE upstream_checkpoint_id = ANY(\(upstreamIDs)::text[]) AND (state = 'expired' OR expires_at <= now())
            """, logger: logger)
        var found: [ExpiredCheckpoint] = []
        for (id, at) in try rows.decode((String, Date).self) { found.append(ExpiredCheckpoint(upstreamCheckpointID: id, expiredAt: at)) }
        return found
    }

    /// Sets a checkpoint's `expires_at` (the per-checkpoint retention override).
    ///
    /// Moving expiry later brings an `expiring` checkpoint back to `available` when the new time is outside
    /// the warning window (a later `checkpoint.expiring` fires again); moving it earlier is acted on by the
    /// sweeper's next pass. An expired checkpoint cannot be changed: it is gone upstream.
    /// Returns `nil` when there is no such checkpoint.
    public func setExpiry(id: UUID, expiresAt: Date, actor: Actor = .api) async throws -> CheckpointView? {
        let detail = try DreamdJSON.string(["expires_at": JSONValue.string(DreamdJSON.formatDate(expiresAt)), "reason": "retention override"] as JSONValue)
        let rows = try await client.rows("""
            UPDATE checkpoints SET expires_at = \(expiresAt),
                state = CASE WHEN state = 'expiring'
                              AND \(expiresAt)::timestamptz - \(JobStore.millis(expiryWarning)) * interval '1 millisecond' > now()
                         THEN 'available' ELSE state END,
                audit_actor = \(actor.rawValue), audit_detail = \(detail)::jsonb
            WHERE id = \(id) AND state <> 'expired'
            RETURNING \(unescaped: Self.columns)
            """, logger: logger).rows
        if let row = rows.first { return try Self.decode(row) }
        guard let existing = try await checkpoint(id: id) else { return nil }
        throw CheckpointStoreError.alreadyExpired(expiredAt: existing.expiresAt)
    }

    /// One audit row of `checkpoint_events`.
    public struct Event: Sendable, Hashable {
        public var at: Date
        public var actor: String
        public var fromState: String?
        public var toState: String
        public var detail: String
    }

    /// The audit trail of a checkpoint, oldest first.
    public func events(checkpointID: UUID) async throws -> [Event] {
        let rows = try await client.rows("""
            SELECT at, actor, from_state, to_state, detail::text FROM checkpoint_events WHERE checkpoint_id = \(checkpointID) ORDER BY id
            """, logger: logger)
        var events: [Event] = []
        for (at, actor, from, to, detail) in try rows.decode((Date, String, String?, String, String).self) {
            events.append(Event(at: at, actor: actor, fromState: from, toState: to, detail: detail))
        }
        return events
    }

    static func decode(_ row: PostgresRow) throws -> CheckpointView {
        let c = row.makeRandomAccess()
        return CheckpointView(
            id: try c[0].decode(UUID.self), jobID: try c[1].decode(UUID.self), upstreamCheckpointID: try c[2].decode(String.self),
            state: try c[3].decode(String.self), trainedAt: try c[4].decode(Date.self), expiresAt: try c[5].decode(Date.self),
            checkpointType: try c[6].decode(String?.self), modelType: try c[7].decode(String?.self), fileFormat: try c[8].decode(String?.self),
            isExtractedLora: try c[9].decode(Bool.self), trainingStep: try c[10].decode(Int?.self), sizeBytes: try c[11].decode(Int64?.self),
            url: try c[12].decode(String?.self), archivedPath: try c[13].decode(String?.self), createdAt: try c[14].decode(Date.self),
            archiveRequested: try c[15].decode(Bool.self), archiveState: try c[16].decode(String?.self),
            archivedBytes: try c[17].decode(Int64?.self), archivedSHA256: try c[18].decode(String?.self), archiveError: try c[19].decode(String?.self)
        )
    }
}

extension JobStore {
    /// Among upstream checkpoint ids a job names, those dreamd knows to be expired (see `CheckpointStore.expired(among:)`).
    public func expiredCheckpoints(among upstreamIDs: [String]) async throws -> [ExpiredCheckpoint] {
        try await CheckpointStore.expired(among: upstreamIDs, client: client, logger: logger)
    }
}
