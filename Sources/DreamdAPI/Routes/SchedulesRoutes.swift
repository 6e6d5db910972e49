import DreamdCore
import DreamdStore
import Foundation
import Hummingbird

/// `/v1/schedules`: recurring jobs. Create, list, get (with recent runs), update, delete, trigger now,
/// and preview the next fire times.
public struct SchedulesRoutes: Sendable {
    let schedules: ScheduleStore
    let registry: ExecutorRegistry

    /// Runs listed by `GET /v1/schedules/{id}`.
    static let recentRunsLimit = 20

    public init(schedules: ScheduleStore, registry: ExecutorRegistry) {
        self.schedules = schedules
        self.registry = registry
    }

    public func register(on routes: ScopedRoutes) {
        routes.submit.post("schedules", use: create)
        routes.read.get("schedules", use: list)
        routes.read.get("schedules/:id", use: get)
        routes.submit.patch("schedules/:id", use: update)
        routes.submit.delete("schedules/:id", use: delete)
        routes.submit.post("schedules/:id/trigger", use: trigger)
        routes.read.get("schedules/:id/preview", use: preview)
    }

    @Sendable func create(_ request: Request, context: APIRequestContext) async throws -> Response {
        let body = try await ScheduleBody(try await RequestBody.json(request, context: context), registry: registry)
        guard let name = body.name else { throw APIError.invalid(ValidationError(field: "name", message: "is required"), code: "invalid_schedule") }
        guard let cron = body.cron else { throw APIError.invalid(ValidationError(field: "cron", message: "is required"), code: "invalid_schedule") }
        guard let job = body.job else { throw APIError.invalid(ValidationError(field: "job", message: "is required"), code: "invalid_schedule") }
        let timezone = body.timezone ?? ScheduleBody.defaultTimeZone
        let enabled = body.enabled ?? true
        let now = Date()
        let draft = Schedule(
            id: UUID(), name: name, cron: cron.text, timezone: timezone.name, job: job,
            overlap: body.overlap ?? ScheduleBody.defaultOverlap, catchUp: body.catchUp ?? ScheduleBody.defaultCatchUp,
            enabled: enabled, nextFireAt: enabled ? cron.spec.next(after: now, in: timezone.zone) : nil,
            lastFiredAt: nil, createdAt: now, updatedAt: now
        )
        let schedule = try await schedules.create(draft)
        context.logger.info("schedule created", metadata: ["schedule_id": "\(schedule.id)", "cron": "\(schedule.cron)"])
        var response = try JSONResponse.make(schedule, status: .created)
        response.headers[.location] = "/v1/schedules/\(schedule.id.uuidString.lowercased())"
        return response
    }

    @Sendable func list(_ request: Request, context: APIRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        var enabled: Bool?
        if let text = query["enabled"] {
            guard let value = Bool(String(text)) else { throw APIError.badRequest("enabled must be true or false", code: "invalid_parameter") }
            enabled = value
        }
        let limit = try QueryValue.limit(query["limit"]) ?? 50
        let cursor = try QueryValue.cursor(query["cursor"])
        let page = try await schedules.list(enabled: enabled, limit: limit, cursor: cursor)
        let data = try page.schedules.map { try DreamdJSON.value($0) }
        return try JSONResponse.make(["data": .array(data), "next_cursor": page.next.map { .string($0.token) } ?? .null] as JSONValue)
    }

    @Sendable func get(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.scheduleID(context)
        guard let schedule = try await schedules.schedule(id: id) else { throw Self.notFound(id) }
        let runs = try await schedules.recentRuns(scheduleID: id, limit: Self.recentRunsLimit)
        guard case .object(var object) = try DreamdJSON.value(schedule) else { throw APIError.notFound("no schedule") }
        object["recent_runs"] = try DreamdJSON.value(runs)
        return try JSONResponse.make(JSONValue.object(object))
    }

    @Sendable func update(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.scheduleID(context)
        let body = try await ScheduleBody(try await RequestBody.json(request, context: context), registry: registry)
        let now = Date()
        let updated = try await schedules.update(id: id) { current in
            var next = current
            if let name = body.name { next.name = name }
            if let cron = body.cron { next.cron = cron.text }
            if let timezone = body.timezone { next.timezone = timezone.name }
            if let job = body.job { next.job = job }
            if let overlap = body.overlap { next.overlap = overlap }
            if let catchUp = body.catchUp { next.catchUp = catchUp }
            if let enabled = body.enabled { next.enabled = enabled }
            let timingChanged = next.cron != current.cron || next.timezone != current.timezone
                || (next.enabled && !current.enabled) || (next.enabled && current.nextFireAt == nil)
            if !next.enabled {
                next.nextFireAt = nil
            } else if timingChanged {
                // Ticks missed under the old expression, or while disabled, are not caught up.
                do throws(ScheduleSpec.ParseError) {
                    let parsed = try next.parsed()
                    next.nextFireAt = parsed.spec.next(after: now, in: parsed.timeZone)
                } catch {
                    throw ScheduleBody.invalid(error.field, error.description)
                }
            }
            return next
        }
        guard let updated else { throw Self.notFound(id) }
        context.logger.info("schedule updated", metadata: ["schedule_id": "\(id)"])
        return try JSONResponse.make(updated)
    }

    @Sendable func delete(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.scheduleID(context)
        guard try await schedules.delete(id: id) else { throw Self.notFound(id) }
        context.logger.info("schedule deleted", metadata: ["schedule_id": "\(id)"])
        return Response(status: .noContent)
    }

    @Sendable func trigger(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.scheduleID(context)
        let registry = self.registry
        let job: Job?
        do {
            job = try await schedules.trigger(id: id, provider: { registry.executor(for: $0)?.provider })
        } catch let error as ScheduleStoreError {
            guard case .tickAlreadyFired = error else { throw error }
            throw APIError(.conflict, code: "tick_already_fired", message: "a job of this schedule for this instant exists; try again")
        }
        guard let job else { throw Self.notFound(id) }
        context.logger.info("schedule triggered", metadata: ["schedule_id": "\(id)", "job_id": "\(job.id)"])
        var response = try JSONResponse.make(job, status: .created)
        response.headers[.location] = "/v1/jobs/\(job.id.uuidString.lowercased())"
        return response
    }

    @Sendable func preview(_ request: Request, context: APIRequestContext) async throws -> Response {
        let id = try Self.scheduleID(context)
        let count = try QueryValue.int(request.uri.queryParameters["count"], name: "count", in: 1...100) ?? 5
        guard let schedule = try await schedules.schedule(id: id) else { throw Self.notFound(id) }
        let parsed: (spec: ScheduleSpec, timeZone: TimeZone)
        do throws(ScheduleSpec.ParseError) { parsed = try schedule.parsed() } catch {
            throw APIError(.conflict, code: "invalid_schedule", message: "the stored schedule no longer parses: \(error.description)")
        }
        let times = parsed.spec.upcoming(after: Date(), in: parsed.timeZone, count: count)
        let data: [JSONValue] = times.map { time in
            ["at": .string(DreamdJSON.formatDate(time)), "local": .string(ScheduleSpec.localTime(time, in: parsed.timeZone))]
        }
        return try JSONResponse.make([
            "schedule_id": .string(id.uuidString.lowercased()), "cron": .string(schedule.cron),
            "timezone": .string(schedule.timezone), "data": .array(data),
        ] as JSONValue)
    }

    static func scheduleID(_ context: APIRequestContext) throws -> UUID {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text) else {
            throw APIError.notFound("no such schedule (ids are UUIDs)")
        }
        return id
    }

    static func notFound(_ id: UUID) -> APIError {
        APIError.notFound("no schedule \(id.uuidString.lowercased())")
    }
}

/// A parsed and validated schedule body (`POST` or `PATCH /v1/schedules`): every field optional here;
/// `create` checks the required ones.
struct ScheduleBody: Sendable {
    static let allowedKeys: Set<String> = ["name", "cron", "timezone", "job", "overlap", "catch_up", "enabled"]
    static let maxNameLength = 200
    static let templateKeys: Set<String> = ["kind", "params", "priority", "max_attempts", "metadata"]
    static let defaultTimeZone = (name: "UTC", zone: TimeZone.gmt)
    /// Paid jobs should not pile up behind a slow one: skip unless told otherwise.
    static let defaultOverlap = OverlapPolicy.skip
    static let defaultCatchUp = CatchUpPolicy.one

    var name: String?
    var cron: (text: String, spec: ScheduleSpec)?
    var timezone: (name: String, zone: TimeZone)?
    var job: JobTemplate?
    var overlap: OverlapPolicy?
    var catchUp: CatchUpPolicy?
    var enabled: Bool?

    init(_ body: JSONValue, registry: ExecutorRegistry) async throws {
        guard let object = body.objectValue else { throw APIError.badRequest("the body must be a JSON object", code: "invalid_json") }
        if let unknown = object.keys.sorted().first(where: { !Self.allowedKeys.contains($0) }) {
            throw Self.invalid(unknown, "is not a known field")
        }
        for (key, value) in object where value.isNull { throw Self.invalid(key, "must not be null") }
        if let value = object["name"] {
            guard let text = value.stringValue else { throw Self.invalid("name", "must be a string, got \(value.typeName)") }
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty, text.unicodeScalars.count <= Self.maxNameLength else {
                throw Self.invalid("name", "must be 1 to \(Self.maxNameLength) characters, not only spaces")
            }
            name = trimmed
        }
        if let value = object["timezone"] {
            guard let text = value.stringValue else { throw Self.invalid("timezone", "must be a string, got \(value.typeName)") }
            do throws(ScheduleSpec.ParseError) { timezone = (text, try ScheduleSpec.timeZone(named: text)) } catch {
                throw Self.invalid(error.field, error.description)
            }
        }
        if let value = object["cron"] {
            guard let text = value.stringValue else { throw Self.invalid("cron", "must be a string, got \(value.typeName)") }
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            do throws(ScheduleSpec.ParseError) { cron = (trimmed, try ScheduleSpec(parsing: trimmed)) } catch {
                throw Self.invalid(error.field, error.description)
            }
        }
        if let value = object["job"] { job = try await Self.template(value, registry: registry) }
        if let value = object["overlap"] {
            guard let policy = value.stringValue.flatMap(OverlapPolicy.init(rawValue:)) else {
                throw Self.invalid("overlap", "must be one of \(OverlapPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            overlap = policy
        }
        if let value = object["catch_up"] {
            guard let policy = value.stringValue.flatMap(CatchUpPolicy.init(rawValue:)) else {
                throw Self.invalid("catch_up", "must be one of \(CatchUpPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            catchUp = policy
        }
        if let value = object["enabled"] {
            guard let bool = value.boolValue else { throw Self.invalid("enabled", "must be a boolean, got \(value.typeName)") }
            enabled = bool
        }
    }

    /// Validates the job template exactly as `POST /v1/jobs` validates a job (kind enabled, params
    /// checked by its executor), with fields named `job.<field>`.
    static func template(_ value: JSONValue, registry: ExecutorRegistry) async throws -> JobTemplate {
        guard let object = value.objectValue else { throw invalid("job", "must be an object, got \(value.typeName)") }
        if let unknown = object.keys.sorted().first(where: { !templateKeys.contains($0) }) {
            throw invalid("job.\(unknown)", "is not a known field (a job template has \(templateKeys.sorted().joined(separator: ", ")))")
        }
        let submission: JobSubmission
        do {
            submission = try JobSubmission(body: value, registry: registry)
            try await submission.validateParams()
        } catch var error as APIError {
            if let field = error.details?["field"]?.stringValue {
                var details = error.details?.objectValue ?? [:]
                details["field"] = .string("job.\(field)")
                error.details = .object(details)
                if error.message.hasPrefix("\(field):") { error.message = "job.\(error.message)" }
            }
            throw error
        }
        return JobTemplate(kind: submission.kind, params: submission.params, priority: submission.priority,
                           maxAttempts: submission.maxAttempts, metadata: submission.metadata)
    }

    static func invalid(_ field: String, _ message: String) -> APIError {
        APIError.invalid(ValidationError(field: field, message: message), code: "invalid_schedule")
    }
}
