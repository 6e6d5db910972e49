import Foundation

/// A job as the API shows it and as webhook payloads carry it.
public struct Job: Sendable, Codable, Hashable {
    public var id: UUID
    public var kind: JobKind
    public var state: JobState
    public var params: JSONValue
    public var attempt: Int
    public var maxAttempts: Int
    public var priority: Int
    public var runAt: Date
    public var createdAt: Date
    public var updatedAt: Date
    public var finishedAt: Date?
    public var upstream: Upstream?
    public var result: JSONValue?
    public var error: JobError?
    public var costUSD: Double?
    public var scheduleID: UUID?
    public var metadata: JSONValue
    /// Counters of a step that streams (e.g. `{"output_length", "output_tokens"}`), while it runs and after.
    public var progress: JSONValue?

    /// Where the job lives upstream once accepted there.
    public struct Upstream: Sendable, Codable, Hashable {
        public var provider: String
        public var jobID: String?
        public var state: String?

        public init(provider: String, jobID: String?, state: String?) {
            self.provider = provider
            self.jobID = jobID
            self.state = state
        }

        enum CodingKeys: String, CodingKey {
            case provider
            case jobID = "job_id"
            case state
        }
    }

    public init(
        id: UUID, kind: JobKind, state: JobState, params: JSONValue, attempt: Int, maxAttempts: Int,
        priority: Int, runAt: Date, createdAt: Date, updatedAt: Date, finishedAt: Date?, upstream: Upstream?,
        result: JSONValue?, error: JobError?, costUSD: Double?, scheduleID: UUID?, metadata: JSONValue, progress: JSONValue? = nil
    ) {
        self.progress = progress
        self.id = id
        self.kind = kind
        self.state = state
        self.params = params
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.priority = priority
        self.runAt = runAt
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.finishedAt = finishedAt
        self.upstream = upstream
        self.result = result
        self.error = error
        self.costUSD = costUSD
        self.scheduleID = scheduleID
        self.metadata = metadata
    }

    enum CodingKeys: String, CodingKey {
        case id, kind, state, params, attempt, priority, upstream, result, error, metadata, progress
        case maxAttempts = "max_attempts"
        case runAt = "run_at"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case finishedAt = "finished_at"
        case costUSD = "cost_usd"
        case scheduleID = "schedule_id"
    }

    /// Encodes every key, `null` included, so clients see the full documented shape.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id.uuidString.lowercased(), forKey: .id)
        try c.encode(kind, forKey: .kind)
        try c.encode(state, forKey: .state)
        try c.encode(params, forKey: .params)
        try c.encode(attempt, forKey: .attempt)
        try c.encode(maxAttempts, forKey: .maxAttempts)
        try c.encode(priority, forKey: .priority)
        try c.encode(runAt, forKey: .runAt)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(updatedAt, forKey: .updatedAt)
        try c.encode(finishedAt, forKey: .finishedAt)
        try c.encode(upstream, forKey: .upstream)
        try c.encode(result, forKey: .result)
        try c.encode(error, forKey: .error)
        try c.encode(costUSD, forKey: .costUSD)
        try c.encode(scheduleID?.uuidString.lowercased(), forKey: .scheduleID)
        try c.encode(metadata, forKey: .metadata)
        try c.encode(progress, forKey: .progress)
    }
}
