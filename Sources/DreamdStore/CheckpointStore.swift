import DreamdCore
import Foundation
import Logging
import PostgresNIO

/// A trained checkpoint as the API shows it.
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
    }
}

/// Reads trained checkpoints.
public struct CheckpointStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns = """
        id, job_id, upstream_checkpoint_id, state, trained_at, expires_at, checkpoint_type, model_type, file_format,
        is_extracted_lora, training_step, size_bytes, url, archived_path, created_at
        """

    /// Checkpoints, soonest expiry first, optionally of some states and/or of one job.
    public func list(states: [String] = [], jobID: UUID? = nil, limit: Int = 100) async throws -> [CheckpointView] {
        let rows = try await client.query("""
            SELECT \(unescaped: Self.columns) FROM checkpoints
            WHERE (cardinality(\(states)::text[]) = 0 OR state = ANY(\(states)::text[]))
              AND (\(jobID)::uuid IS NULL OR job_id = \(jobID)::uuid)
            ORDER BY expires_at, id LIMIT \(limit)
            """, logger: logger).collect()
        return try rows.map(Self.decode)
    }

    public func checkpoint(id: UUID) async throws -> CheckpointView? {
        let rows = try await client.query("SELECT \(unescaped: Self.columns) FROM checkpoints WHERE id = \(id)", logger: logger).collect()
        return try rows.first.map(Self.decode)
    }

    static func decode(_ row: PostgresRow) throws -> CheckpointView {
        let c = row.makeRandomAccess()
        return CheckpointView(
            id: try c[0].decode(UUID.self), jobID: try c[1].decode(UUID.self), upstreamCheckpointID: try c[2].decode(String.self),
            state: try c[3].decode(String.self), trainedAt: try c[4].decode(Date.self), expiresAt: try c[5].decode(Date.self),
            checkpointType: try c[6].decode(String?.self), modelType: try c[7].decode(String?.self), fileFormat: try c[8].decode(String?.self),
            isExtractedLora: try c[9].decode(Bool.self), trainingStep: try c[10].decode(Int?.self), sizeBytes: try c[11].decode(Int64?.self),
            url: try c[12].decode(String?.self), archivedPath: try c[13].decode(String?.self), createdAt: try c[14].decode(Date.self)
        )
    }
}
