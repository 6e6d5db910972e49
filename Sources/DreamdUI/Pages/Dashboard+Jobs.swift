import DreamdAPI
import DreamdCore
import DreamdStore
import Foundation
import Hummingbird

/// The overview, the job list, one job, and the job and upstream actions.
extension Dashboard {
    static let allStates = JobState.allCases.map(\.rawValue)

    // MARK: Overview

    @Sendable func overview(_ request: Request, context: APIRequestContext) async throws -> Response {
        try await page(request, nav: "navOverview", title: "Overview", template: "overview") { session in
            try await overviewData(session)
        }
    }

    func overviewData(_ session: DashboardSession) async throws -> [String: Any] {
        async let countsQuery = queries.stateCounts()
        async let minutesQuery = queries.throughputLastHour()
        async let oldestQuery = queries.oldestQueued()
        async let failuresQuery = queries.failuresByCode()
        let (counts, minutes, oldest, failures) = try await (countsQuery, minutesQuery, oldestQuery, failuresQuery)

        var byKind: [String: [String: Int64]] = [:]
        for kind in stores.registry.kinds { byKind[kind.rawValue] = [:] }
        for count in counts { byKind[count.kind, default: [:]][count.state, default: 0] += count.count }
        let kindRows: [[String: Any]] = byKind.keys.sorted().map { kind in
            ["kind": kind, "cells": Self.allStates.map { state -> [String: Any] in
                let count = byKind[kind]?[state] ?? 0
                return ["kind": kind, "state": state, "count": count, "nonzero": count > 0]
            }]
        }

        let peak = max(minutes.map(\.total).max() ?? 0, 1)
        let scale = 100.0 / Double(peak)
        let bars: [[String: Any]] = minutes.enumerated().map { index, minute in
            let hSucceeded = Double(minute.succeeded) * scale, hFailed = Double(minute.failed) * scale, hCancelled = Double(minute.cancelled) * scale
            let base = 110.0
            return [
                "x": index * 10, "label": "\(60 - index) min ago",
                "succeeded": minute.succeeded, "failed": minute.failed, "cancelled": minute.cancelled,
                "ySucceeded": base - hSucceeded, "hSucceeded": hSucceeded,
                "yFailed": base - hSucceeded - hFailed, "hFailed": hFailed,
                "yCancelled": base - hSucceeded - hFailed - hCancelled, "hCancelled": hCancelled,
            ]
        }

        let canResume = session.allows(.admin)
        let upstreams: [[String: Any]] = stores.registry.executors.map { executor in
            let kinds = executor.kinds.map(\.rawValue).sorted().joined(separator: ", ")
            guard let status = executor.health?.status else {
                return ["name": executor.provider, "state": "healthy", "pausedUntil": "—", "reason": "", "inFlight": "—", "kinds": kinds, "canResume": false]
            }
            var row: [String: Any] = [
                "name": status.name, "state": status.state.rawValue, "pausedUntil": Format.time(status.pausedUntil),
                "reason": status.reason ?? "", "inFlight": status.inFlight, "kinds": kinds,
                "canResume": canResume && status.state == .paused,
            ]
            if let cap = status.maxInFlight { row["maxInFlight"] = cap }
            return row
        }

        let failed24h = failures.reduce(0) { $0 + $1.count }
        return [
            "states": Self.allStates, "kindRows": kindRows, "bars": bars, "maxPerMinute": peak,
            "oldestQueued": oldest.map { Format.duration(seconds: Date().timeIntervalSince($0)) } ?? "none queued",
            "finishedLastHour": minutes.reduce(0) { $0 + $1.total }, "failed24h": failed24h,
            "failures": failures.map { ["code": $0.code, "count": $0.count] as [String: Any] },
            "upstreams": upstreams, "renderedAt": Format.time(Date()),
        ]
    }

    // MARK: Jobs

    @Sendable func jobsPage(_ request: Request, context: APIRequestContext) async throws -> Response {
        try await page(request, nav: "navJobs", title: "Jobs", template: "jobs") { _ in
            try await jobsData(request.uri.queryParameters)
        }
    }

    func jobsData(_ query: Parameters) async throws -> [String: Any] {
        func text(_ name: String) -> String { query[Substring(name)].map(String.init)?.trimmingCharacters(in: .whitespaces) ?? "" }
        var filter = JobStore.ListFilter()
        filter.limit = 50
        let state = text("state"), kind = text("kind"), schedule = text("schedule_id"), batch = text("batch_id")
        let after = text("after"), before = text("before"), q = text("q")
        if let value = JobState(rawValue: state) { filter.states = [value] }
        if !kind.isEmpty { filter.kinds = [JobKind(rawValue: kind)] }
        if !schedule.isEmpty {
            guard let id = UUID(uuidString: schedule) else { throw PageError.invalid("schedule must be a schedule's id (a UUID)") }
            filter.scheduleID = id
        }
        if !batch.isEmpty {
            guard let id = UUID(uuidString: batch) else { throw PageError.invalid("batch must be a batch's id (a UUID)") }
            filter.batchID = id
        }
        filter.createdAfter = Self.localDateTime(after)
        filter.createdBefore = Self.localDateTime(before)
        if let cursor = query["cursor"] { filter.cursor = JobCursor(token: String(cursor)) }

        var jobs: [Job]
        var next: JobCursor?
        var searchNote = ""
        if !q.isEmpty {
            let ids = try await queries.search(q, providers: stores.registry.executors.map(\.provider))
            var found: [Job] = []
            for id in ids { if let job = try await stores.jobs.job(id: id) { found.append(job) } }
            jobs = found
            searchNote = "\(found.count) job\(found.count == 1 ? "" : "s") match “\(q)” (a job id, an upstream job id, or key=value in metadata); the other filters do not apply to a search."
        } else {
            (jobs, next) = try await stores.jobs.list(filter)
        }

        func link(cursor: String?) -> String {
            var items: [URLQueryItem] = []
            for (name, value) in [("state", state), ("kind", kind), ("schedule_id", schedule), ("batch_id", batch), ("after", after), ("before", before)]
            where !value.isEmpty { items.append(URLQueryItem(name: name, value: value)) }
            if let cursor { items.append(URLQueryItem(name: "cursor", value: cursor)) }
            var components = URLComponents()
            components.path = "/ui/jobs"
            components.queryItems = items.isEmpty ? nil : items
            return components.string ?? "/ui/jobs"
        }
        var data: [String: Any] = [
            "q": q, "scheduleID": schedule, "batchID": batch, "after": after, "before": before,
            "stateOptions": Self.allStates.map { ["value": $0, "selected": $0 == state] as [String: Any] },
            "kindOptions": stores.registry.kinds.map(\.rawValue).map { ["value": $0, "selected": $0 == kind] as [String: Any] },
            "rows": jobs.map(Self.jobRow),
            "searched": !q.isEmpty, "searchNote": searchNote,
        ]
        if let next { data["next"] = link(cursor: next.token) }
        if filter.cursor != nil { data["first"] = link(cursor: nil) }
        return data
    }

    static func jobRow(_ job: Job) -> [String: Any] {
        [
            "id": Format.id(job.id), "shortID": Format.shortID(job.id), "kind": job.kind.rawValue, "state": job.state.rawValue,
            "attempt": job.attempt, "maxAttempts": job.maxAttempts, "createdAt": Format.time(job.createdAt),
            "finishedAt": Format.time(job.finishedAt), "cost": Format.money(job.costUSD), "errorCode": job.error?.code ?? "",
        ]
    }

    /// A `datetime-local` value (`2026-12-04T15:04`), read as UTC.
    static func localDateTime(_ text: String) -> Date? {
        guard !text.isEmpty else { return nil }
        return DreamdJSON.parseDate(text.count == 16 ? text + ":00Z" : text + (text.hasSuffix("Z") ? "" : "Z"))
    }

    // MARK: One job

    func jobID(_ context: APIRequestContext) throws -> UUID {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text) else { throw PageError.notFound("No such job (ids are UUIDs).") }
        return id
    }

    @Sendable func jobPage(_ request: Request, context: APIRequestContext) async throws -> Response {
        try await page(request, nav: "navJobs", title: "Job", template: "job") { session in
            let id = try jobID(context)
            guard let job = try await stores.jobs.job(id: id) else { throw PageError.notFound("No job \(Format.id(id)).") }
            async let eventsQuery = stores.jobs.events(jobID: id)
            async let deliveriesQuery = queries.deliveries(ofJob: id, finishedAt: job.finishedAt)
            let (events, deliveries) = try await (eventsQuery, deliveriesQuery)
            return jobData(job, events: events, deliveries: deliveries, session: session)
        }
    }

    func jobData(_ job: Job, events: [JobEvent], deliveries: [DashboardQueries.JobDelivery], session: DashboardSession) -> [String: Any] {
        var data: [String: Any] = [
            "id": Format.id(job.id), "kind": job.kind.rawValue, "state": job.state.rawValue, "live": !job.state.isFinal,
            "attempt": job.attempt, "maxAttempts": job.maxAttempts, "priority": job.priority, "runAt": Format.time(job.runAt),
            "createdAt": Format.time(job.createdAt), "finishedAt": Format.time(job.finishedAt), "cost": Format.money(job.costUSD),
            "upstream": job.upstream.map { [$0.provider, $0.jobID ?? "", $0.state ?? ""].filter { !$0.isEmpty }.joined(separator: " · ") } ?? "—",
            "canCancel": session.allows(.submit) && !job.state.isFinal,
            "canRetry": session.allows(.submit) && (job.state == .failed || job.state == .cancelled),
            "params": Format.json(job.params) ?? "{}",
            "events": events.map { event -> [String: Any] in
                var row: [String: Any] = ["at": Format.time(event.at), "from": event.fromState?.rawValue ?? "∅", "to": event.toState.rawValue, "actor": event.actor]
                if let detail = Format.compactJSON(event.detail) { row["detail"] = detail }
                return row
            },
            "deliveries": deliveries.map { delivery -> [String: Any] in
                ["id": Format.id(delivery.id), "shortID": Format.shortID(delivery.id), "eventType": delivery.eventType, "state": delivery.state,
                 "attempts": delivery.attempts, "lastStatus": delivery.lastStatus.map(String.init) ?? "—", "url": Format.safeURL(delivery.subscriptionURL)]
            },
        ]
        if let scheduleID = job.scheduleID { data["scheduleID"] = Format.id(scheduleID) }
        if let progress = job.progress, let text = Format.compactJSON(progress) { data["progress"] = text }
        if let error = job.error { data["error"] = ["code": error.code, "message": error.message] as [String: Any] }
        if let metadata = Format.json(job.metadata) { data["metadata"] = metadata }
        if let result = job.result {
            data["result"] = Format.json(result) ?? ""
            let images = Self.imageLinks(in: result)
            if !images.isEmpty { data["images"] = images; data["hasImages"] = true }
            if result["path"]?.stringValue != nil { data["video"] = true }
            if let text = result["text"]?.stringValue { data["text"] = text }
        } else if let partial = job.progress?["text"]?.stringValue {
            data["text"] = partial
        }
        return data
    }

    /// The http(s) URLs of images in a result (dreamlook answers with image URLs under several keys).
    static func imageLinks(in value: JSONValue) -> [String] {
        var links: [String] = []
        func walk(_ value: JSONValue, key: String) {
            switch value {
            case .string(let text):
                let lower = text.lowercased()
                let looksLikeImage = [".png", ".jpg", ".jpeg", ".webp"].contains { lower.split(separator: "?").first?.hasSuffix($0) == true }
                if (lower.hasPrefix("https://") || lower.hasPrefix("http://")), looksLikeImage || key.contains("image") { links.append(text) }
            case .array(let items): for item in items { walk(item, key: key) }
            case .object(let object): for (name, item) in object { walk(item, key: name.lowercased()) }
            default: break
            }
        }
        walk(value, key: "")
        return Array(links.prefix(100))
    }

    /// The rollout video of a predict job, from `DREAMD_DATA_DIR/rollouts/<id>.mp4` (never a path from the request).
    @Sendable func jobVideo(_ request: Request, context: APIRequestContext) async throws -> Response {
        guard let session = try await session(request) else { return Self.redirect("/ui/login") }
        do {
            let id = try jobID(context)
            let path = "\(options.dataDirectory)/rollouts/\(Format.id(id)).mp4"
            guard FileManager.default.fileExists(atPath: path) else { throw PageError.notFound("This job has no rollout video here.") }
            let body = try await FileIO().loadFile(path: path, context: context)
            return Response(status: .ok, headers: [.contentType: "video/mp4", .cacheControl: "private, max-age=3600"], body: body)
        } catch let error as PageError {
            return errorPage(error, session: session, request: request)
        }
    }

    // MARK: Actions

    @Sendable func cancelJob(_ request: Request, context: APIRequestContext) async throws -> Response {
        try await action(request, context: context, scope: .submit) { session, _ in
            let id = try jobID(context)
            switch try await stores.jobs.cancel(id: id, actor: "ui", reason: "cancelled from the dashboard by key \(session.key.name)") {
            case .cancelled: return ("/ui/jobs/\(Format.id(id))", Flash(text: "Job cancelled."))
            case .alreadyFinal(let job): throw PageError.conflict("The job is already \(job.state.rawValue).")
            case .notFound: throw PageError.notFound("No job \(Format.id(id)).")
            }
        }
    }

    @Sendable func retryJob(_ request: Request, context: APIRequestContext) async throws -> Response {
        try await action(request, context: context, scope: .submit) { session, _ in
            let id = try jobID(context)
            let requester = JobStore.Requester(keyID: session.key.id, keyName: session.key.name)
            switch try await stores.jobs.retry(id: id, actor: "ui", requester: requester) {
            case .retried: return ("/ui/jobs/\(Format.id(id))", Flash(text: "Job queued again."))
            case .notRetryable(let job): throw PageError.conflict("Only a failed or cancelled job can be retried; this one is \(job.state.rawValue).")
            case .notFound: throw PageError.notFound("No job \(Format.id(id)).")
            }
        }
    }

    @Sendable func resumeUpstream(_ request: Request, context: APIRequestContext) async throws -> Response {
        try await action(request, context: context, scope: .admin) { session, _ in
            let name = context.parameters.get("name") ?? ""
            guard let executor = stores.registry.executors.first(where: { $0.provider == name }) else { throw PageError.notFound("No upstream \(name).") }
            guard let health = executor.health else { throw PageError.conflict("Upstream \(name) has no dispatch pause to lift.") }
            let here = health.resume()
            let shared = try await stores.pauses.resume(upstream: name)
            context.logger.notice("upstream dispatch resumed from the dashboard", metadata: ["upstream": "\(name)", "key": "\(session.key.name)"])
            return ("/ui", Flash(text: here || shared ? "Dispatch to \(name) resumed in every daemon." : "\(name) was not paused."))
        }
    }
}
