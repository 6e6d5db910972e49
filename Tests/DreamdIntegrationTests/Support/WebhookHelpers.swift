import DreamdCore
import DreamdSim
import DreamdStore
import Foundation
import Testing

/// Daemon settings for webhook tests: fast retries, private addresses allowed (the receiver is on loopback).
func webhookOverrides(allowPrivate: Bool = true, schedule: String = "100ms,100ms,100ms", _ extra: [String: String] = [:]) -> [String: String] {
    var overrides = [
        "DREAMD_WEBHOOK_RETRY_SCHEDULE": schedule,
        "DREAMD_WEBHOOK_ALLOW_PRIVATE": allowPrivate ? "true" : "false",
        "DREAMD_WEBHOOK_TIMEOUT": "5s",
    ]
    overrides.merge(extra) { $1 }
    return overrides
}

/// A daemon (with simulator) and a receiver, for one test's database.
func withWebhookDaemon<T: Sendable>(
    _ db: TestDatabase, overrides: [String: String] = webhookOverrides(),
    _ body: @Sendable (RunningDaemon, WebhookReceiver) async throws -> T
) async throws -> T {
    try await withReceiver { receiver in
        try await withSimulator { sim in
            try await withDaemon(database: db, simulator: sim, overrides: overrides) { daemon in
                try await body(daemon, receiver)
            }
        }
    }
}

extension RunningDaemon {
    /// Creates a subscription through the API; returns its id and secret.
    func subscribe(_ url: String, types: [String] = ["job.*"], file: StaticString = #filePath, line: UInt = #line) async throws -> (id: String, secret: String) {
        let typesJSON = try DreamdJSON.string(types)
        let created = try await request(.POST, "/v1/subscriptions", body: #"{"url": "\#(url)", "event_types": \#(typesJSON)}"#)
        guard created.status == 201, let id = created.json["id"]?.stringValue, let secret = created.json["secret"]?.stringValue else {
            throw TestSetupError("subscription not created: \(created.status) \(created.json)")
        }
        return (id, secret)
    }
}

extension TestDatabase {
    /// Writes a real outbox event the way production does: a job's state change through the
    /// `jobs_write` trigger (a job of a kind no worker runs, cancelled). Returns the event id.
    @discardableResult
    func emitJobEvent() async throws -> String {
        guard case .created(let job) = try await jobs.insert(.init(kind: "test_idle", params: [:], runAt: Date().addingTimeInterval(3600))) else {
            throw TestSetupError("job not created")
        }
        _ = try await jobs.cancel(id: job.id)
        let ids = try await values("SELECT id::text FROM events WHERE payload->'data'->>'id' = \(job.id.uuidString.lowercased())", as: String.self)
        guard let id = ids.first else { throw TestSetupError("no event for job \(job.id)") }
        return id
    }

    /// Deliveries of one subscription as (state, attempts).
    func deliveryStates(subscription: String) async throws -> [String] {
        try await values("SELECT state FROM deliveries WHERE subscription_id = \(subscription)::uuid ORDER BY created_at, id", as: String.self)
    }
}
