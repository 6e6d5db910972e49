import DreamdAPI
import DreamdCore
import DreamdStore
import Foundation
import Hummingbird

/// Schedules, webhook deliveries and checkpoints, with their actions.
extension Dashboard {
    func uuid(_ context: APIRequestContext, _ what: String) throws -> UUID {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text) else { throw PageError.notFound("No such \(what).") }
        return id
    }

    // MARK: Schedules

    @Sendable func schedulesPage(_ request: Request, context: APIRequestContext) async throws -> Response {
        try await page(request, nav: "navSchedules", title: "Schedules", template: "schedules") { session in
            let (schedules, _) = try await stores.schedules.list(limit: 100)
            var rows: [[String: Any]] = []
            for schedule in schedules {
                let runs = try await stores.schedules.recentRuns(scheduleID: schedule.id, limit: 5)
                let zone = TimeZone(identifier: schedule.timezone) ?? TimeZone(identifier: "UTC") ?? .current
                rows.append([
                    "id": Format.id(schedule.id), "name": schedule.name, "cron": schedule.cron, "timezone": schedule.timezone,
                    "kind": schedule.job.kind.rawValue, "enabled": schedule.enabled,
                    "stateText": schedule.enabled ? "enabled" : "disabled", "stateClass": schedule.enabled ? "enabled" : "disabled",
                    "nextLocal": Format.time(schedule.nextFireAt, in: zone), "nextUTC": Format.time(schedule.nextFireAt),
                    "lastFired": Format.time(schedule.lastFiredAt), "overlap": schedule.overlap.rawValue, "catchUp": schedule.catchUp.rawValue,
                    "canChange": session.allows(.submit), "csrf": session.csrfToken,
                    "runs": runs.map { run -> [String: Any] in
                        ["scheduledFor": Format.time(run.scheduledFor), "jobID": Format.id(run.jobID), "shortID": Format.shortID(run.jobID),
                         "state": run.state.rawValue, "cost": Format.money(run.costUSD), "finishedAt": Format.time(run.finishedAt)]
                    },
                ])
            }
            return ["schedules": rows]
        }
    }

    /// `enable`, `disable` or `trigger` a schedule (submit scope).
    @Sendable func scheduleAction(_ request: Request, context: APIRequestContext) async throws -> Response {
        try await action(request, context: context, scope: .submit) { _, _ in
            let id = try uuid(context, "schedule")
            let verb = context.parameters.get("action") ?? ""
            switch verb {
            case "enable", "disable":
                let enable = verb == "enable"
                let now = Date()
                let updated = try await stores.schedules.update(id: id) { current in
                    var next = current
                    next.enabled = enable
                    if !enable {
                        next.nextFireAt = nil
                    } else if !current.enabled || current.nextFireAt == nil {
                        // As PATCH does: ticks missed while disabled are not caught up.
                        let parsed = try next.parsed()
                        next.nextFireAt = parsed.spec.next(after: now, in: parsed.timeZone)
                    }
                    return next
                }
                guard updated != nil else { throw PageError.notFound("No schedule \(Format.id(id)).") }
                return ("/ui/schedules", Flash(text: enable ? "Schedule enabled." : "Schedule disabled."))
            case "trigger":
                let registry = stores.registry
                do {
                    guard let job = try await stores.schedules.trigger(id: id, actor: "ui", provider: { registry.executor(for: $0)?.provider }) else {
                        throw PageError.notFound("No schedule \(Format.id(id)).")
                    }
                    return ("/ui/jobs/\(Format.id(job.id))", Flash(text: "Schedule triggered: this is its job."))
                } catch ScheduleStoreError.tickAlreadyFired {
                    throw PageError.conflict("A job of this schedule for this instant exists; try again.")
                }
            default:
                throw PageError.notFound("No such schedule action.")
            }
        }
    }

    // MARK: Deliveries

    @Sendable func deliveriesPage(_ request: Request, context: APIRequestContext) async throws -> Response {
        try await page(request, nav: "navDeliveries", title: "Deliveries", template: "deliveries") { session in
            let state = request.uri.queryParameters["state"].map(String.init) ?? ""
            var filter = DeliveryStore.ListFilter()
            if let value = DeliveryState(rawValue: state) { filter.states = [value] }
            filter.limit = 100
            let (deliveries, _) = try await stores.deliveries.list(filter)
            let subscriptions = try await stores.subscriptions.list().sorted { a, b in
                // Failing first (longest failing first), then disabled, then the rest by URL.
                func rank(_ s: Subscription) -> Int { s.failingSince != nil ? 0 : (!s.enabled ? 1 : 2) }
                if rank(a) != rank(b) { return rank(a) < rank(b) }
                if let x = a.failingSince, let y = b.failingSince, x != y { return x < y }
                return a.url < b.url
            }
            let admin = session.allows(.admin)
            return [
                "stateOptions": ["pending", "delivering", "succeeded", "failed"].map { ["value": $0, "selected": $0 == state] as [String: Any] },
                "subscriptions": subscriptions.map { s -> [String: Any] in
                    var row: [String: Any] = [
                        "id": Format.id(s.id), "url": Format.safeURL(s.url), "events": s.eventTypes.joined(separator: ", "),
                        "stateText": !s.enabled ? "disabled" + (s.disabledReason.map { ": \($0)" } ?? "") : (s.failingSince != nil ? "failing" : "active"),
                        "stateClass": !s.enabled ? "disabled" : (s.failingSince != nil ? "failing" : "active"),
                        "failingSince": Format.time(s.failingSince), "lastSuccess": Format.time(s.lastSuccessAt),
                        "canAct": admin && s.enabled, "csrf": session.csrfToken,
                    ]
                    if !s.description.isEmpty { row["description"] = s.description }
                    return row
                },
                "deliveries": deliveries.map { d -> [String: Any] in
                    ["id": Format.id(d.id), "shortID": Format.shortID(d.id), "eventType": d.eventType, "state": d.state.rawValue,
                     "attempts": d.attempts, "lastStatus": d.lastStatus.map(String.init) ?? "—", "nextAttempt": Format.time(d.nextAttemptAt),
                     "createdAt": Format.time(d.createdAt), "redelivery": d.redeliveryOf != nil, "canAct": admin, "csrf": session.csrfToken]
                },
            ]
        }
    }

    @Sendable func deliveryPage(_ request: Request, context: APIRequestContext) async throws -> Response {
        try await page(request, nav: "navDeliveries", title: "Delivery", template: "delivery") { session in
            let id = try uuid(context, "delivery")
            guard let delivery = try await stores.deliveries.delivery(id: id) else { throw PageError.notFound("No delivery \(Format.id(id)).") }
            let attempts = try await stores.deliveries.attempts(deliveryID: id)
            let subscription = try await stores.subscriptions.subscription(id: delivery.subscriptionID)
            var data: [String: Any] = [
                "id": Format.id(delivery.id), "eventType": delivery.eventType, "state": delivery.state.rawValue,
                "eventID": Format.id(delivery.eventID), "attempts": attempts.map { a -> [String: Any] in
                    ["attempt": a.attempt, "at": Format.time(a.attemptedAt), "status": a.statusCode.map(String.init) ?? "—", "ms": a.durationMs,
                     "error": a.error ?? "", "body": String((a.responseBody ?? "").prefix(300))]
                },
                "url": subscription.map { Format.safeURL($0.url) } ?? "(deleted subscription)",
                "nextAttempt": Format.time(delivery.nextAttemptAt), "lastError": delivery.lastError ?? "—",
                "canAct": session.allows(.admin),
            ]
            if let of = delivery.redeliveryOf { data["redeliveryOf"] = Format.id(of) }
            return data
        }
    }

    @Sendable func redeliver(_ request: Request, context: APIRequestContext) async throws -> Response {
        try await action(request, context: context, scope: .admin) { _, _ in
            let id = try uuid(context, "delivery")
            switch try await stores.deliveries.redeliver(id: id) {
            case .created(let delivery): return ("/ui/deliveries/\(Format.id(delivery.id))", Flash(text: "Redelivery queued."))
            case .notFound: throw PageError.notFound("No delivery \(Format.id(id)).")
            case .subscriptionDisabled: throw PageError.conflict("The subscription is disabled; enable it first.")
            }
        }
    }

    @Sendable func recover(_ request: Request, context: APIRequestContext) async throws -> Response {
        try await action(request, context: context, scope: .admin) { _, _ in
            let id = try uuid(context, "subscription")
            switch try await stores.deliveries.recover(subscriptionID: id, since: Date().addingTimeInterval(-86_400)) {
            case .redelivered(let count): return ("/ui/deliveries", Flash(text: "\(count) failed deliveries of the last 24 h queued again."))
            case .notFound: throw PageError.notFound("No subscription \(Format.id(id)).")
            case .subscriptionDisabled: throw PageError.conflict("The subscription is disabled; enable it first.")
            }
        }
    }

    // MARK: Checkpoints

    @Sendable func checkpointsPage(_ request: Request, context: APIRequestContext) async throws -> Response {
        try await page(request, nav: "navCheckpoints", title: "Checkpoints", template: "checkpoints") { session in
            let checkpoints = try await stores.checkpoints.list(limit: 200).sorted { $0.expiresAt < $1.expiresAt }
            let now = Date()
            return ["checkpoints": checkpoints.map { c -> [String: Any] in
                var archive = c.archiveState ?? (c.archiveRequested ? "requested" : "not archived")
                if let bytes = c.archivedBytes, c.archiveState == "archived" { archive += " (\(bytes / 1_000_000) MB)" }
                var row: [String: Any] = [
                    "id": Format.id(c.id), "jobID": Format.id(c.jobID), "shortJobID": Format.shortID(c.jobID),
                    "upstreamID": c.upstreamCheckpointID, "modelType": c.modelType ?? "", "state": c.state,
                    "expiresAt": Format.time(c.expiresAt),
                    "timeLeft": c.state == "expired" ? "expired" : Format.duration(seconds: c.expiresAt.timeIntervalSince(now)),
                    "archive": archive, "canExtend": session.allows(.submit) && c.state != "expired", "csrf": session.csrfToken,
                ]
                if let error = c.archiveError { row["archiveError"] = error }
                return row
            }]
        }
    }

    @Sendable func extendCheckpoint(_ request: Request, context: APIRequestContext) async throws -> Response {
        try await action(request, context: context, scope: .submit) { _, form in
            let id = try uuid(context, "checkpoint")
            guard let hours = form["by"].flatMap(Int.init), (1...24 * 30).contains(hours) else { throw PageError.invalid("Extend by 1 hour to 30 days.") }
            guard let current = try await stores.checkpoints.checkpoint(id: id) else { throw PageError.notFound("No checkpoint \(Format.id(id)).") }
            do {
                _ = try await stores.checkpoints.setExpiry(id: id, expiresAt: current.expiresAt.addingTimeInterval(Double(hours) * 3600), actor: "ui")
            } catch CheckpointStoreError.alreadyExpired {
                throw PageError.conflict("The checkpoint has expired; dreamlook has deleted it.")
            }
            return ("/ui/checkpoints", Flash(text: "Expiry extended by \(hours) h (dreamlook's own retention may still apply)."))
        }
    }
}
