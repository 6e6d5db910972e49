import Foundation

/// The job a schedule creates at each tick.
public struct JobTemplate: Sendable, Codable, Hashable {
    public var kind: JobKind
    public var params: JSONValue
    public var priority: Int
    public var maxAttempts: Int
    public var metadata: JSONValue

    public init(kind: JobKind, params: JSONValue, priority: Int = 0, maxAttempts: Int = 5, metadata: JSONValue = .object([:])) {
        self.kind = kind
        self.params = params
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.metadata = metadata
    }

    enum CodingKeys: String, CodingKey {
        case kind, params, priority, metadata
        case maxAttempts = "max_attempts"
    }
}

/// A recurring job, as the API shows it (`GET /v1/schedules/{id}`).
public struct Schedule: Sendable, Codable, Hashable {
    public var id: UUID
    public var name: String
    /// The expression as written: five cron fields, a macro, or `@every <duration>`.
    public var cron: String
    /// IANA time zone the cron fields are read in.
    public var timezone: String
    public var job: JobTemplate
    public var overlap: OverlapPolicy
    public var catchUp: CatchUpPolicy
    public var enabled: Bool
    /// The next tick not yet handled; `nil` while disabled or when the expression never fires again.
    public var nextFireAt: Date?
    /// The tick of the latest job this schedule created.
    public var lastFiredAt: Date?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: UUID, name: String, cron: String, timezone: String, job: JobTemplate, overlap: OverlapPolicy,
        catchUp: CatchUpPolicy, enabled: Bool, nextFireAt: Date?, lastFiredAt: Date?, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.name = name
        self.cron = cron
        self.timezone = timezone
        self.job = job
        self.overlap = overlap
        self.catchUp = catchUp
        self.enabled = enabled
        self.nextFireAt = nextFireAt
        self.lastFiredAt = lastFiredAt
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name, cron, timezone, job, overlap, enabled
        case catchUp = "catch_up"
        case nextFireAt = "next_fire_at"
        case lastFiredAt = "last_fired_at"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

    /// Encodes every key, `null` included, so clients see the full documented shape.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id.uuidString.lowercased(), forKey: .id)
        try c.encode(name, forKey: .name)
        try c.encode(cron, forKey: .cron)
        try c.encode(timezone, forKey: .timezone)
        try c.encode(job, forKey: .job)
        try c.encode(overlap, forKey: .overlap)
        try c.encode(catchUp, forKey: .catchUp)
        try c.encode(enabled, forKey: .enabled)
        try c.encode(nextFireAt, forKey: .nextFireAt)
        try c.encode(lastFiredAt, forKey: .lastFiredAt)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(updatedAt, forKey: .updatedAt)
    }

    /// The parsed expression and zone. Stored schedules were validated when written.
    public func parsed() throws(ScheduleSpec.ParseError) -> (spec: ScheduleSpec, timeZone: TimeZone) {
        (try ScheduleSpec(parsing: cron), try ScheduleSpec.timeZone(named: timezone))
    }
}

/// One job a schedule created, for its audit (`recent_runs`).
public struct ScheduleRun: Sendable, Codable, Hashable {
    public var jobID: UUID
    public var scheduledFor: Date
    public var state: JobState
    public var costUSD: Double?
    public var finishedAt: Date?

    public init(jobID: UUID, scheduledFor: Date, state: JobState, costUSD: Double?, finishedAt: Date?) {
        self.jobID = jobID
        self.scheduledFor = scheduledFor
        self.state = state
        self.costUSD = costUSD
        self.finishedAt = finishedAt
    }

    enum CodingKeys: String, CodingKey {
        case state
        case jobID = "job_id"
        case scheduledFor = "scheduled_for"
        case costUSD = "cost_usd"
        case finishedAt = "finished_at"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(jobID.uuidString.lowercased(), forKey: .jobID)
        try c.encode(scheduledFor, forKey: .scheduledFor)
        try c.encode(state, forKey: .state)
        try c.encode(costUSD, forKey: .costUSD)
        try c.encode(finishedAt, forKey: .finishedAt)
    }
}
