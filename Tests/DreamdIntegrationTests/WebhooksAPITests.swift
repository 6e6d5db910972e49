import DreamdCore
import DreamdStore
import Foundation
import Testing

@Suite("Webhooks: API, rotation, redelivery", .hangGuard, .serialized)
struct WebhooksAPITests {
    @Test("subscriptions: create shows the secret once; get, list, patch, delete; validation names the field")
    func subscriptionsCRUD() async throws {
        try await TestDatabase.with { db in
            try await withWebhookDaemon(db) { daemon, receiver in
                let created = try await daemon.request(.POST, "/v1/subscriptions", body: """
                    {"url": "\(receiver.url("a"))", "event_types": ["job.succeeded", "job.*", "job.succeeded"], "description": "ops"}
                    """)
                #expect(created.status == 201)
                let id = try #require(created.json["id"]?.stringValue)
                let secret = try #require(created.json["secret"]?.stringValue)
                #expect(secret.hasPrefix("whsec_"))
                #expect(try WebhookSecret(secret).key.count == 32)
                #expect(created.json["event_types"] == ["job.succeeded", "job.*"])
                #expect(created.json["enabled"] == true)
                #expect(created.json["disabled_reason"] == .null)
                for key in ["id", "url", "event_types", "description", "enabled", "created_at", "updated_at", "disabled_reason"] {
                    #expect(created.json[key] != nil, "\(key)")
                }
                // The secret is never shown again.
                let fetched = try await daemon.request(.GET, "/v1/subscriptions/\(id)")
                #expect(fetched.status == 200)
                #expect(fetched.json["secret"] == nil)
                #expect(fetched.json["description"]?.stringValue == "ops")
                let list = try await daemon.request(.GET, "/v1/subscriptions")
                #expect(list.json["data"]?.arrayValue?.count == 1)
                #expect(list.json["data"]?.arrayValue?.first?["secret"] == nil)
                // A secret of one's own is accepted.
                let own = "whsec_" + Data(repeating: 7, count: 24).base64EncodedString()
                let withOwn = try await daemon.request(.POST, "/v1/subscriptions", body: #"{"url": "https://example.com/h", "event_types": ["*"], "secret": "\#(own)", "enabled": false}"#)
                #expect(withOwn.status == 201)
                #expect(withOwn.json["secret"]?.stringValue == own)
                #expect(withOwn.json["enabled"] == false)
                // PATCH.
                let patched = try await daemon.request(.PATCH, "/v1/subscriptions/\(id)", body: #"{"event_types": ["job.failed"], "description": "changed"}"#)
                #expect(patched.status == 200)
                #expect(patched.json["event_types"] == ["job.failed"])
                #expect(patched.json["description"]?.stringValue == "changed")
                #expect(patched.json["url"]?.stringValue == receiver.url("a"))
                // Validation: 422 with the field.
                let cases: [(String, String)] = [
                    (#"{"event_types": ["*"]}"#, "url"),
                    (#"{"url": "https://example.com"}"#, "event_types"),
                    (#"{"url": "https://example.com", "event_types": []}"#, "event_types"),
                    (#"{"url": "https://example.com", "event_types": "job.*"}"#, "event_types"),
                    (#"{"url": "https://example.com", "event_types": ["Job.Succeeded"]}"#, "event_types[0]"),
                    (#"{"url": "https://example.com", "event_types": ["job.*", 3]}"#, "event_types[1]"),
                    (#"{"url": 42, "event_types": ["*"]}"#, "url"),
                    (#"{"url": "https://example.com", "event_types": ["*"], "enabled": "yes"}"#, "enabled"),
                    (#"{"url": "https://example.com", "event_types": ["*"], "secret": "hunter2"}"#, "secret"),
                    (#"{"url": "https://example.com", "event_types": ["*"], "colour": "red"}"#, "colour"),
                    (#"{"url": "http://[0]/hook", "event_types": ["*"]}"#, "url"),
                ]
                for (body, field) in cases {
                    let answer = try await daemon.request(.POST, "/v1/subscriptions", body: body)
                    #expect(answer.status == 422, "\(body)")
                    #expect(answer.json["error"]?["details"]?["field"]?.stringValue == field, "\(body)")
                }
                let bracketed = try await daemon.request(.POST, "/v1/subscriptions", body: #"{"url": "https://[2606:4700::1111]/hook", "event_types": ["*"]}"#)
                #expect(bracketed.status == 201, "a bracketed IPv6 host is a host: \(bracketed.json)")
                #expect(try await daemon.request(.POST, "/v1/subscriptions", body: "{not json").status == 400)
                #expect(try await daemon.request(.POST, "/v1/subscriptions", body: "[]").status == 400)
                #expect(try await daemon.request(.PATCH, "/v1/subscriptions/\(id)", body: #"{"secret": "x"}"#).status == 422)
                #expect(try await daemon.request(.GET, "/v1/subscriptions/\(UUID())").status == 404)
                #expect(try await daemon.request(.GET, "/v1/subscriptions/not-a-uuid").status == 404)
                #expect(try await daemon.request(.PATCH, "/v1/subscriptions/\(UUID())", body: "{}").status == 404)
                #expect(try await daemon.request(.GET, "/v1/subscriptions", token: "dmd_wrong").status == 401)
                // DELETE removes it and its deliveries.
                try await db.emitJobEvent()
                let deleted = try await daemon.request(.DELETE, "/v1/subscriptions/\(id)")
                #expect(deleted.status == 204)
                #expect(try await daemon.request(.GET, "/v1/subscriptions/\(id)").status == 404)
                #expect(try await daemon.request(.DELETE, "/v1/subscriptions/\(id)").status == 404)
                #expect(try await db.deliveryStates(subscription: id).isEmpty)
            }
        }
    }

    @Test("rotation: the new secret is shown once; both old and new sign during the overlap, then only the new")
    func rotation() async throws {
        try await TestDatabase.with { db in
            try await withWebhookDaemon(db) { daemon, receiver in
                let subscription = try await daemon.subscribe(receiver.url("rot"))
                let rotated = try await daemon.request(.POST, "/v1/subscriptions/\(subscription.id)/rotate-secret")
                #expect(rotated.status == 200)
                let newSecret = try #require(rotated.json["secret"]?.stringValue)
                #expect(newSecret != subscription.secret)
                // The old secret keeps signing for DREAMD_WEBHOOK_SECRET_OVERLAP (default 24 h).
                let expires = try #require(rotated.json["previous_secret_expires_at"]?.stringValue.flatMap(DreamdJSON.parseDate))
                #expect(abs(expires.timeIntervalSinceNow - 86_400) < 60)
                #expect(try await daemon.request(.GET, "/v1/subscriptions/\(subscription.id)").json["secret"] == nil)
                try await db.emitJobEvent()
                #expect(try await eventually { receiver.received("rot").count == 1 })
                let during = try #require(receiver.received("rot").first)
                #expect(during.signature.split(separator: " ").count == 2)
                #expect(independentlyVerifies(during, secret: subscription.secret))
                #expect(independentlyVerifies(during, secret: newSecret))
                // After the overlap only the new secret signs (the overlap ends now rather than in 24 h).
                try await db.client.query(
                    "UPDATE subscriptions SET previous_secret_expires_at = now() WHERE id = \(subscription.id)::uuid", logger: db.logger)
                try await db.emitJobEvent()
                #expect(try await eventually { receiver.received("rot").count == 2 })
                let after = receiver.received("rot")[1]
                #expect(after.signature.split(separator: " ").count == 1)
                #expect(independentlyVerifies(after, secret: newSecret))
                #expect(!independentlyVerifies(after, secret: subscription.secret))
                #expect(try await daemon.request(.POST, "/v1/subscriptions/\(UUID())/rotate-secret").status == 404)
            }
        }
    }

    @Test("redelivery sends the same event again with the same webhook-id, as a new delivery in the log")
    func redeliver() async throws {
        try await TestDatabase.with { db in
            try await withWebhookDaemon(db) { daemon, receiver in
                let subscription = try await daemon.subscribe(receiver.url("again"))
                let event = try await db.emitJobEvent()
                #expect(try await eventually { try await db.deliveryStates(subscription: subscription.id) == ["succeeded"] })
                let original = try #require(try await daemon.request(.GET, "/v1/deliveries?event_id=\(event)").json["data"]?.arrayValue?.first)
                let originalID = try #require(original["id"]?.stringValue)
                let again = try await daemon.request(.POST, "/v1/deliveries/\(originalID)/redeliver")
                #expect(again.status == 201)
                #expect(again.json["redelivery_of"]?.stringValue == originalID)
                #expect(again.json["event_id"]?.stringValue == event)
                #expect(again.json["state"]?.stringValue == "pending")
                #expect(try await eventually { receiver.received("again").count == 2 })
                let received = receiver.received("again")
                #expect(received.map(\.webhookID) == [event, event])
                #expect(received.allSatisfy { independentlyVerifies($0, secret: subscription.secret) })
                #expect(try await eventually { try await db.deliveryStates(subscription: subscription.id) == ["succeeded", "succeeded"] })
                // The original row's log is untouched.
                let detail = try await daemon.request(.GET, "/v1/deliveries/\(originalID)").json
                #expect(detail["attempts_log"]?.arrayValue?.count == 1)
                #expect(try await daemon.request(.POST, "/v1/deliveries/\(UUID())/redeliver").status == 404)
                #expect(try await daemon.request(.POST, "/v1/deliveries/nope/redeliver").status == 404)
                // A disabled subscription cannot be redelivered to.
                _ = try await daemon.request(.PATCH, "/v1/subscriptions/\(subscription.id)", body: #"{"enabled": false}"#)
                let refused = try await daemon.request(.POST, "/v1/deliveries/\(originalID)/redeliver")
                #expect(refused.status == 409)
                #expect(refused.json["error"]?["code"]?.stringValue == "subscription_disabled")
            }
        }
    }

    @Test("bulk recovery redelivers the failed deliveries of a subscription since a time, once")
    func recover() async throws {
        try await TestDatabase.with { db in
            try await withWebhookDaemon(db, overrides: webhookOverrides(schedule: "100ms")) { daemon, receiver in
                receiver.script("outage", [], then: .status(500))
                let subscription = try await daemon.subscribe(receiver.url("outage"))
                let since = DreamdJSON.formatDate(Date().addingTimeInterval(-60))
                let events = [try await db.emitJobEvent(), try await db.emitJobEvent()]
                #expect(try await eventually { try await db.deliveryStates(subscription: subscription.id) == ["failed", "failed"] })
                // The receiver is back.
                receiver.script("outage", [], then: .status(200))
                let future = DreamdJSON.formatDate(Date().addingTimeInterval(60))
                let none = try await daemon.request(.POST, "/v1/subscriptions/\(subscription.id)/recover", body: #"{"since": "\#(future)"}"#)
                #expect(none.json["redelivered"]?.intValue == 0)
                let recovered = try await daemon.request(.POST, "/v1/subscriptions/\(subscription.id)/recover", body: #"{"since": "\#(since)"}"#)
                #expect(recovered.status == 200)
                #expect(recovered.json["redelivered"]?.intValue == 2)
                #expect(try await eventually {
                    try await db.deliveryStates(subscription: subscription.id).filter { $0 == "succeeded" }.count == 2
                })
                let succeeded = receiver.received("outage").suffix(2).map(\.webhookID)
                #expect(Set(succeeded) == Set(events))
                let twice = try await daemon.request(.POST, "/v1/subscriptions/\(subscription.id)/recover", body: #"{"since": "\#(since)"}"#)
                #expect(twice.json["redelivered"]?.intValue == 0)
                // Filters of the log.
                let failed = try await daemon.request(.GET, "/v1/deliveries?subscription_id=\(subscription.id)&state=failed")
                #expect(failed.json["data"]?.arrayValue?.count == 2)
                let page = try await daemon.request(.GET, "/v1/deliveries?limit=3")
                #expect(page.json["data"]?.arrayValue?.count == 3)
                let cursor = try #require(page.json["next_cursor"]?.stringValue)
                let rest = try await daemon.request(.GET, "/v1/deliveries?limit=3&cursor=\(cursor)")
                #expect(rest.json["data"]?.arrayValue?.count == 1)
                #expect(rest.json["next_cursor"] == .null)
                // Bad input.
                let bad = try await daemon.request(.POST, "/v1/subscriptions/\(subscription.id)/recover", body: #"{"since": "yesterday"}"#)
                #expect(bad.status == 422)
                #expect(bad.json["error"]?["details"]?["field"]?.stringValue == "since")
                #expect(try await daemon.request(.POST, "/v1/subscriptions/\(UUID())/recover", body: #"{"since": "\#(since)"}"#).status == 404)
                for query in ["state=bogus", "subscription_id=x", "event_id=1", "limit=0", "limit=501", "cursor=%%%"] {
                    #expect(try await daemon.request(.GET, "/v1/deliveries?\(query)").status == 400, "\(query)")
                }
                #expect(try await daemon.request(.GET, "/v1/deliveries/\(UUID())").status == 404)
            }
        }
    }
}
