import DreamdCore
import DreamdStore
import Foundation
import Testing

@Suite("Webhooks: delivery", .hangGuard, .serialized)
struct WebhooksDeliveryTests {
    @Test("a finished job reaches the receiver once, signed, with the outbox event as body and the event id as webhook-id")
    func endToEnd() async throws {
        try await TestDatabase.with { db in
            try await withWebhookDaemon(db) { daemon, receiver in
                let subscription = try await daemon.subscribe(receiver.url("all"), types: ["job.*"])
                // A real job through the simulator, to the end.
                let created = try await daemon.submit(imageGenBody())
                let jobID = try #require(created.json["id"]?.stringValue)
                let job = try await daemon.waitFinal(jobID)
                #expect(job["state"]?.stringValue == "succeeded")
                #expect(try await eventually { receiver.received("all").count >= 1 })
                try await Task.sleep(for: .milliseconds(300))
                let received = receiver.received("all")
                #expect(received.count == 1)
                let hook = try #require(received.first)
                // Signature computed in the test from the spec.
                #expect(independentlyVerifies(hook, secret: subscription.secret))
                #expect(hook.signature.split(separator: " ").count == 1)
                #expect(hook.contentType == "application/json")
                // webhook-id is the event id; the body is the outbox payload, byte for byte what was signed.
                let events = try await db.values("SELECT id::text FROM events WHERE payload->'data'->>'id' = \(jobID)", as: String.self)
                #expect([hook.webhookID] == events)
                let timestamp = try #require(Int64(hook.timestamp))
                #expect(abs(Double(timestamp) - hook.receivedAt.timeIntervalSince1970) < 5)
                let body = try DreamdJSON.decode(JSONValue.self, from: hook.body)
                #expect(body["type"]?.stringValue == "job.succeeded")
                #expect(body["data"] == job)
                #expect(body["timestamp"]?.stringValue != nil)
                // The delivery log.
                #expect(try await eventually {
                    try await daemon.request(.GET, "/v1/deliveries?subscription_id=\(subscription.id)").json["data"]?.arrayValue?.first?["state"]?.stringValue == "succeeded"
                })
                let list = try await daemon.request(.GET, "/v1/deliveries?event_id=\(hook.webhookID)")
                let delivery = try #require(list.json["data"]?.arrayValue?.first)
                #expect(delivery["event_type"]?.stringValue == "job.succeeded")
                #expect(delivery["attempts"]?.intValue == 1)
                #expect(delivery["last_status"]?.intValue == 200)
                #expect(delivery["delivered_at"]?.stringValue != nil)
                let id = try #require(delivery["id"]?.stringValue)
                let detail = try await daemon.request(.GET, "/v1/deliveries/\(id)")
                let attempts = try #require(detail.json["attempts_log"]?.arrayValue)
                #expect(attempts.count == 1)
                #expect(attempts.first?["status_code"]?.intValue == 200)
                #expect(attempts.first?["duration_ms"]?.intValue != nil)
            }
        }
    }

    @Test("event-type filters, wildcards and disabled subscriptions decide the fan-out")
    func filters() async throws {
        try await TestDatabase.with { db in
            try await withWebhookDaemon(db) { daemon, receiver in
                let exact = try await daemon.subscribe(receiver.url("exact"), types: ["job.cancelled"])
                let other = try await daemon.subscribe(receiver.url("other"), types: ["job.succeeded", "checkpoint.*"])
                let star = try await daemon.subscribe(receiver.url("star"), types: ["*"])
                let paused = try await daemon.subscribe(receiver.url("paused"), types: ["job.*"])
                #expect(try await daemon.request(.PATCH, "/v1/subscriptions/\(paused.id)", body: #"{"enabled": false}"#).status == 200)
                let event = try await db.emitJobEvent()
                #expect(try await eventually { receiver.received("exact").count == 1 && receiver.received("star").count == 1 })
                try await Task.sleep(for: .milliseconds(300))
                #expect(receiver.received("other").isEmpty)
                #expect(receiver.received("paused").isEmpty)
                #expect(receiver.received("exact").first?.webhookID == event)
                #expect(try await db.deliveryStates(subscription: other.id).isEmpty)
                #expect(try await db.deliveryStates(subscription: paused.id).isEmpty)
                #expect(try await db.deliveryStates(subscription: exact.id) == ["succeeded"])
                #expect(try await db.deliveryStates(subscription: star.id) == ["succeeded"])
                // `_` and `%` in a type are literal, not LIKE wildcards.
                let underscore = try await daemon.subscribe(receiver.url("underscore"), types: ["job_x"])
                try await db.client.query("INSERT INTO events (id, type, payload) VALUES (gen_random_uuid(), 'jobax', '{}')", logger: db.logger)
                try await db.client.query("INSERT INTO events (id, type, payload) VALUES (gen_random_uuid(), 'job_x', '{}')", logger: db.logger)
                #expect(try await db.values("SELECT event_type FROM deliveries WHERE subscription_id = \(underscore.id)::uuid", as: String.self) == ["job_x"])
            }
        }
    }

    @Test("failures are retried on the schedule with the same webhook-id until a 2xx, and every attempt is logged")
    func retriesThroughFailures() async throws {
        try await TestDatabase.with { db in
            try await withWebhookDaemon(db) { daemon, receiver in
                receiver.script("flaky", [.status(500, body: "boom"), .status(502, body: "bad gateway")], then: .status(204))
                let subscription = try await daemon.subscribe(receiver.url("flaky"))
                let event = try await db.emitJobEvent()
                #expect(try await eventually { try await db.deliveryStates(subscription: subscription.id) == ["succeeded"] })
                let received = receiver.received("flaky")
                #expect(received.count == 3)
                #expect(Set(received.map(\.webhookID)) == [event])
                #expect(received.allSatisfy { independentlyVerifies($0, secret: subscription.secret) })
                // Same body every time; waits follow the 100 ms schedule (±20 %).
                #expect(Set(received.map(\.body)).count == 1)
                for (earlier, later) in zip(received, received.dropFirst()) {
                    #expect(later.receivedAt.timeIntervalSince(earlier.receivedAt) >= 0.075)
                }
                let delivery = try #require(try await daemon.request(.GET, "/v1/deliveries?subscription_id=\(subscription.id)").json["data"]?.arrayValue?.first)
                #expect(delivery["attempts"]?.intValue == 3)
                #expect(delivery["last_status"]?.intValue == 204)
                let detail = try await daemon.request(.GET, "/v1/deliveries/\(delivery["id"]?.stringValue ?? "")").json
                let log = try #require(detail["attempts_log"]?.arrayValue)
                #expect(log.map { $0["status_code"]?.intValue } == [500, 502, 204])
                #expect(log.map { $0["response_body"]?.stringValue } == ["boom", "bad gateway", ""])
                #expect(log.map { $0["attempt"]?.intValue } == [1, 2, 3])
                // The subscription is healthy again.
                let after = try await daemon.request(.GET, "/v1/subscriptions/\(subscription.id)").json
                #expect(after["failing_since"] == .null)
                #expect(after["last_success_at"]?.stringValue != nil)
            }
        }
    }

    @Test("after the last wait of the schedule the delivery fails, with the error of each attempt logged")
    func exhausted() async throws {
        try await TestDatabase.with { db in
            try await withWebhookDaemon(db, overrides: webhookOverrides(schedule: "100ms,100ms")) { daemon, receiver in
                receiver.script("down", [], then: .status(500, body: String(repeating: "x", count: 40_000)))
                let subscription = try await daemon.subscribe(receiver.url("down"))
                try await db.emitJobEvent()
                #expect(try await eventually { try await db.deliveryStates(subscription: subscription.id) == ["failed"] })
                try await Task.sleep(for: .milliseconds(300))
                #expect(receiver.received("down").count == 3)
                let rows = try await db.values("SELECT octet_length(response_body) FROM delivery_attempts ORDER BY id", as: Int.self)
                #expect(rows == [16_384, 16_384, 16_384])
                let next = try await db.values("SELECT count(*)::int FROM deliveries WHERE next_attempt_at IS NULL AND state = 'failed'", as: Int.self)
                #expect(next == [1])
                let sub = try await daemon.request(.GET, "/v1/subscriptions/\(subscription.id)").json
                #expect(sub["enabled"]?.boolValue == true)
                #expect(sub["failing_since"]?.stringValue != nil)
            }
        }
    }

    @Test("410 Gone fails the delivery, disables the subscription, and stops its fan-out")
    func goneDisables() async throws {
        try await TestDatabase.with { db in
            try await withWebhookDaemon(db) { daemon, receiver in
                receiver.script("gone", [], then: .status(410))
                let subscription = try await daemon.subscribe(receiver.url("gone"))
                try await db.emitJobEvent()
                #expect(try await eventually { try await db.deliveryStates(subscription: subscription.id) == ["failed"] })
                #expect(receiver.received("gone").count == 1)
                let sub = try await daemon.request(.GET, "/v1/subscriptions/\(subscription.id)").json
                #expect(sub["enabled"]?.boolValue == false)
                #expect(sub["disabled_reason"]?.stringValue?.contains("410") == true)
                try await db.emitJobEvent()
                try await Task.sleep(for: .milliseconds(500))
                #expect(receiver.received("gone").count == 1)
                #expect(try await db.deliveryStates(subscription: subscription.id) == ["failed"])
                // Re-enabling clears the reason; new events flow again.
                receiver.script("gone", [], then: .status(200))
                let enabled = try await daemon.request(.PATCH, "/v1/subscriptions/\(subscription.id)", body: #"{"enabled": true}"#).json
                #expect(enabled["enabled"]?.boolValue == true)
                #expect(enabled["disabled_reason"] == .null)
                try await db.emitJobEvent()
                #expect(try await eventually { receiver.received("gone").count == 2 })
            }
        }
    }

    @Test("a subscription failing with no success for DREAMD_WEBHOOK_DISABLE_AFTER is disabled; its pending deliveries fail")
    func failingWindowDisables() async throws {
        try await TestDatabase.with { db in
            try await withWebhookDaemon(db, overrides: webhookOverrides(schedule: "100ms,10m")) { daemon, receiver in
                receiver.script("sick", [], then: .status(503))
                let subscription = try await daemon.subscribe(receiver.url("sick"))
                // Failing for six days already (default window: five).
                try await db.client.query(
                    "UPDATE subscriptions SET failing_since = now() - interval '6 days' WHERE id = \(subscription.id)::uuid", logger: db.logger)
                try await db.emitJobEvent()
                #expect(try await eventually {
                    try await daemon.request(.GET, "/v1/subscriptions/\(subscription.id)").json["enabled"]?.boolValue == false
                })
                let sub = try await daemon.request(.GET, "/v1/subscriptions/\(subscription.id)").json
                #expect(sub["disabled_reason"]?.stringValue?.hasPrefix("no successful delivery since") == true)
                // The attempt that found it was scheduled for a retry; the disabled subscription's pending delivery fails instead.
                #expect(try await eventually { try await db.deliveryStates(subscription: subscription.id) == ["failed"] })
                #expect(receiver.received("sick").count == 1)
            }
        }
    }

    @Test("Retry-After on 429 is honoured within the schedule")
    func retryAfter() async throws {
        try await TestDatabase.with { db in
            try await withWebhookDaemon(db, overrides: webhookOverrides(schedule: "100ms,3s")) { daemon, receiver in
                receiver.script("limited", [.status(429, ["Retry-After": "1"])], then: .status(200))
                let subscription = try await daemon.subscribe(receiver.url("limited"))
                try await db.emitJobEvent()
                #expect(try await eventually { try await db.deliveryStates(subscription: subscription.id) == ["succeeded"] })
                let received = receiver.received("limited")
                #expect(received.count == 2)
                if received.count == 2 {
                    let gap = received[1].receivedAt.timeIntervalSince(received[0].receivedAt)
                    #expect(gap >= 0.95, "waited \(gap)s, Retry-After asked 1s")
                    #expect(gap < 2.5, "waited \(gap)s")
                }
            }
        }
    }

    @Test("one slow subscriber holds at most its per-subscription cap and does not starve the others")
    func perSubscriptionCap() async throws {
        try await TestDatabase.with { db in
            let overrides = webhookOverrides(["DREAMD_WEBHOOK_PER_SUBSCRIPTION": "2", "DREAMD_WEBHOOK_CONCURRENCY": "6"])
            try await withWebhookDaemon(db, overrides: overrides) { daemon, receiver in
                receiver.script("slow", [], then: .status(200, delay: .milliseconds(700)))
                let slow = try await daemon.subscribe(receiver.url("slow"))
                let fast = try await daemon.subscribe(receiver.url("fast"))
                for _ in 0..<8 { try await db.emitJobEvent() }
                // 8 slow deliveries, 2 at a time, 700 ms each, take at least 2.8 s; the fast ones do not wait for them.
                #expect(try await eventually { receiver.received("fast").count == 8 })
                #expect(receiver.received("slow").count < 8)
                #expect(try await eventually(timeout: .seconds(20)) {
                    try await db.deliveryStates(subscription: slow.id).allSatisfy { $0 == "succeeded" }
                        && receiver.received("slow").count == 8
                })
                #expect(receiver.maxConcurrent("slow") <= 2)
                #expect(receiver.maxConcurrent("slow") == 2)
                #expect(try await db.deliveryStates(subscription: fast.id).count == 8)
            }
        }
    }
}
