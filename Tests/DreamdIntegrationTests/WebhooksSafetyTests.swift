import AsyncHTTPClient
import DreamdCore
import DreamdServices
import DreamdStore
import DreamdUpstreams
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// Answers fixed addresses for made-up names, as a DNS server under an attacker's control could.
struct FakeResolver: HostResolver {
    let answers: [String: [String]]

    func resolve(host: String, port: Int) async throws -> [IPAddress] {
        guard let texts = answers[host] else { throw HostResolutionError(host: host, message: "unknown host") }
        return texts.compactMap { IPAddress($0) }
    }
}

@Suite("Webhooks: SSRF, crash safety", .hangGuard, .serialized)
struct WebhooksSafetyTests {
    @Test("without ALLOW_PRIVATE: literal private, loopback, metadata and non-http URLs are refused when saved (422 naming url)")
    func refusedWhenSaved() async throws {
        try await TestDatabase.with { db in
            try await withWebhookDaemon(db, overrides: webhookOverrides(allowPrivate: false)) { daemon, receiver in
                for url in [
                    receiver.url("x"), "http://[::1]:8080/", "http://10.0.0.5/hook", "http://169.254.169.254/latest/meta-data",
                    "http://[fe80::1]/", "http://0.0.0.0:80/", "http://[::ffff:127.0.0.1]/", "ftp://example.com/hook",
                    "file:///etc/passwd", "http:///nohost", "https://user:pw@example.com/hook", "not a url",
                ] {
                    let answer = try await daemon.request(.POST, "/v1/subscriptions", body: #"{"url": "\#(url)", "event_types": ["*"]}"#)
                    #expect(answer.status == 422, "\(url)")
                    #expect(answer.json["error"]?["details"]?["field"]?.stringValue == "url", "\(url)")
                }
                let loopback = try await daemon.request(.POST, "/v1/subscriptions", body: #"{"url": "\#(receiver.url("x"))", "event_types": ["*"]}"#)
                #expect(loopback.json["error"]?["message"]?.stringValue?.contains("loopback") == true)
                // PATCH is checked the same way.
                let ok = try await daemon.request(.POST, "/v1/subscriptions", body: #"{"url": "https://example.com/hook", "event_types": ["*"]}"#)
                #expect(ok.status == 201)
                let id = try #require(ok.json["id"]?.stringValue)
                let patched = try await daemon.request(.PATCH, "/v1/subscriptions/\(id)", body: #"{"url": "http://192.168.1.1/"}"#)
                #expect(patched.status == 422)
            }
        }
    }

    @Test("without ALLOW_PRIVATE: a name that resolves to 127.0.0.1 (localhost) is refused at connect time, on every attempt")
    func refusedAtConnectTime() async throws {
        try await TestDatabase.with { db in
            try await withWebhookDaemon(db, overrides: webhookOverrides(allowPrivate: false, schedule: "100ms")) { daemon, receiver in
                let subscription = try await daemon.subscribe(receiver.url("local", host: "localhost"))
                try await db.emitJobEvent()
                #expect(try await eventually { try await db.deliveryStates(subscription: subscription.id) == ["failed"] })
                #expect(receiver.received().isEmpty)
                let errors = try await db.values("SELECT error FROM delivery_attempts ORDER BY id", as: String?.self)
                #expect(errors.count == 2)
                #expect(errors.allSatisfy { $0?.contains("loopback") == true && $0?.contains("refused") == true }, "\(errors)")
                let statuses = try await db.values("SELECT status_code FROM delivery_attempts", as: Int?.self)
                #expect(statuses == [nil, nil])
            }
        }
    }

    @Test("with ALLOW_PRIVATE: loopback is allowed, link-local and cloud metadata are still refused")
    func allowPrivateStillRefusesMetadata() async throws {
        try await TestDatabase.with { db in
            try await withWebhookDaemon(db, overrides: webhookOverrides(allowPrivate: true)) { daemon, receiver in
                for url in ["http://169.254.169.254/latest/meta-data", "http://[fd00:ec2::254]/", "http://[fe80::1]:80/", "http://100.100.100.200/"] {
                    let answer = try await daemon.request(.POST, "/v1/subscriptions", body: #"{"url": "\#(url)", "event_types": ["*"]}"#)
                    #expect(answer.status == 422, "\(url)")
                }
                let local = try await daemon.subscribe(receiver.url("ok", host: "localhost"))
                try await db.emitJobEvent()
                #expect(try await eventually { try await db.deliveryStates(subscription: local.id) == ["succeeded"] })
            }
        }
    }

    @Test("the connection goes to the vetted address with the original Host; one forbidden answer refuses all; no redirects")
    func pinnedConnection() async throws {
        try await withReceiver { receiver in
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: WebhookSender.clientConfiguration(timeout: .seconds(5)))
            let resolver = FakeResolver(answers: [
                "receiver.test": ["127.0.0.1"],
                "rebind.test": ["93.184.215.14", "127.0.0.1"],
                "metadata.test": ["169.254.169.254"],
                "mapped.test": ["::ffff:10.0.0.1"],
            ])
            let logger = testLogger()
            func delivery(_ url: String) -> ClaimedDelivery {
                ClaimedDelivery(id: UUID(), eventID: UUID(), subscriptionID: UUID(), eventType: "job.succeeded", previousAttempts: 0,
                                url: url, payload: #"{"type": "job.succeeded"}"#, secrets: [WebhookSecret.generate().text])
            }
            let relaxed = WebhookSender(httpClient: client, resolver: resolver, policy: DestinationPolicy(allowPrivate: true), timeout: .seconds(5))
            let strict = WebhookSender(httpClient: client, resolver: resolver, policy: DestinationPolicy(allowPrivate: false), timeout: .seconds(5))

            let pinned = await relaxed.send(delivery("http://receiver.test:\(receiver.port)/hooks/pinned?x=1"), logger: logger)
            #expect(pinned.statusCode == 200, "\(pinned.error ?? "")")
            #expect(receiver.received("pinned").first?.host == "receiver.test:\(receiver.port)")

            for (sender, host) in [(strict, "receiver.test"), (strict, "rebind.test"), (relaxed, "metadata.test"), (strict, "mapped.test")] {
                let refused = await sender.send(delivery("http://\(host):\(receiver.port)/hooks/refused"), logger: logger)
                #expect(refused.refused, "\(host)")
                #expect(refused.statusCode == nil)
            }
            #expect(receiver.received("refused").isEmpty)

            // https to a name goes through a request-scoped client pinned to the vetted address: a
            // made-up name, resolved only by our resolver, reaches a bare TCP listener on loopback.
            let accepted = Atomic<Int>(0)
            let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { channel in
                    accepted.add(1, ordering: .relaxed)
                    return channel.close()
                }
                .bind(host: "127.0.0.1", port: 0).get()
            let tlsPort = listener.localAddress?.port ?? 0
            // (The client keeps retrying a connection that closes at once until the attempt times out.)
            let quick = WebhookSender(httpClient: client, resolver: resolver, policy: DestinationPolicy(allowPrivate: true), timeout: .seconds(1))
            let tls = await quick.send(delivery("https://receiver.test:\(tlsPort)/hooks/tls"), logger: logger)
            try await listener.close()
            #expect(tls.statusCode == nil)
            #expect(!tls.refused)
            #expect(accepted.load(ordering: .relaxed) >= 1, "\(tls.error ?? "")")
            let unknown = await relaxed.send(delivery("http://nowhere.test/hooks/x"), logger: logger)
            #expect(unknown.error?.contains("could not resolve") == true)
            let unknownTLS = await relaxed.send(delivery("https://nowhere.test/hooks/x"), logger: logger)
            #expect(unknownTLS.error?.contains("could not resolve") == true)

            receiver.script("redirect", [], then: .status(302, ["Location": receiver.url("target")]))
            let redirected = await relaxed.send(delivery(receiver.url("redirect")), logger: logger)
            #expect(redirected.statusCode == 302)
            #expect(!redirected.succeeded)
            #expect(receiver.received("target").isEmpty)

            receiver.script("slow", [], then: .status(200, delay: .seconds(1)))
            let hurried = WebhookSender(httpClient: client, resolver: resolver, policy: DestinationPolicy(allowPrivate: true), timeout: .milliseconds(300))
            let timedOut = await hurried.send(delivery(receiver.url("slow")), logger: logger)
            #expect(timedOut.statusCode == nil)
            #expect(timedOut.error?.contains("timed out") == true, "\(timedOut.error ?? "")")
            #expect(timedOut.duration < .seconds(2))
            try await client.shutdown()
        }
    }

    @Test("a crash between claim and send loses nothing: the lease runs out and the same webhook-id is delivered")
    func crashBetweenClaimAndSend() async throws {
        try await TestDatabase.with { db in
            try await withReceiver { receiver in
                try await withSimulator { sim in
                    let store = DeliveryStore(client: db.client, logger: db.logger)
                    let subscriptions = SubscriptionStore(client: db.client, logger: db.logger)
                    let secret = WebhookSecret.generate()
                    let subscription = try await subscriptions.create(.init(url: receiver.url("crash"), eventTypes: ["job.*"], secret: secret))
                    let event = try await db.emitJobEvent()
                    // A process claims the delivery and dies before sending: no attempt, no renewal.
                    let claimed = try await store.claim(limit: 10, owner: "crashed", leaseDuration: .milliseconds(300), perSubscription: 4)
                    #expect(claimed.map(\.eventID.uuidString).map { $0.lowercased() } == [event])
                    #expect(try await db.deliveryStates(subscription: subscription.id.uuidString) == ["delivering"])
                    #expect(try await store.claim(limit: 10, owner: "other", leaseDuration: .seconds(30), perSubscription: 4).isEmpty)
                    try await withDaemon(database: db, simulator: sim, overrides: webhookOverrides()) { daemon in
                        #expect(try await eventually { try await db.deliveryStates(subscription: subscription.id.uuidString) == ["succeeded"] })
                        let received = receiver.received("crash")
                        #expect(received.count == 1)
                        #expect(received.first?.webhookID == event)
                        #expect(received.first.map { independentlyVerifies($0, secret: secret.text) } == true)
                        let attempts = try await db.values("SELECT attempts FROM deliveries", as: Int.self)
                        #expect(attempts == [1])
                        // The dead owner's late record is refused: the lease is gone.
                        let late = try await store.record(
                            .init(attemptedAt: Date(), statusCode: 500, durationMs: 1, responseBody: nil, error: nil),
                            decision: .retry(after: .seconds(1)), for: try #require(claimed.first), owner: "crashed", disableAfter: nil)
                        #expect(!late.recorded)
                        #expect(try await db.deliveryStates(subscription: subscription.id.uuidString) == ["succeeded"])
                    }
                }
            }
        }
    }
}

@Suite("Webhooks: secrets stay out of logs", .hangGuard, .serialized)
struct WebhooksLogTests {
    @Test("at trace level, no log line of a whole webhook flow (create, rotate, failures, redelivery) holds a secret")
    func secretsNeverLogged() async throws {
        try await TestDatabase.with { db in
            let capture = LogCapture()
            let traced = TestDatabase(url: db.url, client: db.client, logger: capture.logger())
            try await withReceiver { receiver in
                try await withSimulator { sim in
                    try await withDaemon(database: traced, simulator: sim, overrides: webhookOverrides()) { daemon in
                        receiver.script("logged", [.status(500), .status(410)], then: .status(200))
                        let subscription = try await daemon.subscribe(receiver.url("logged"))
                        let rotated = try await daemon.request(.POST, "/v1/subscriptions/\(subscription.id)/rotate-secret")
                        let newSecret = try #require(rotated.json["secret"]?.stringValue)
                        try await db.emitJobEvent()
                        #expect(try await eventually { try await db.deliveryStates(subscription: subscription.id) == ["failed"] })
                        _ = try await daemon.request(.PATCH, "/v1/subscriptions/\(subscription.id)", body: #"{"enabled": true}"#)
                        let id = try #require(try await daemon.request(.GET, "/v1/deliveries").json["data"]?.arrayValue?.first?["id"]?.stringValue)
                        _ = try await daemon.request(.POST, "/v1/deliveries/\(id)/redeliver")
                        #expect(try await eventually { receiver.received("logged").count == 3 })
                        let lines = capture.all
                        #expect(lines.count > 20)
                        for secret in [subscription.secret, newSecret] {
                            let key = String(secret.dropFirst("whsec_".count))
                            #expect(!lines.contains { $0.contains(key) }, "a log line holds a secret")
                        }
                    }
                }
            }
        }
    }
}
