import Crypto
import DreamdCore
import Foundation
import Testing

@Suite("Webhook signatures")
struct WebhookSignatureTests {
    // The known-answer vector of the Standard Webhooks reference libraries.
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    static let id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    static let timestamp: Int64 = 1_614_265_330
    static let body = #"{"test": 2432232314}"#
    static let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

    @Test("known-answer vector from the Standard Webhooks reference")
    func knownAnswer() throws {
        let secret = try WebhookSecret(Self.secret)
        #expect(WebhookSignature.sign(id: Self.id, timestamp: Self.timestamp, body: Array(Self.body.utf8), secret: secret) == Self.expected)
        // The same, computed straight from the spec with swift-crypto and nothing of ours.
        let key = try #require(Data(base64Encoded: String(Self.secret.dropFirst("whsec_".count))))
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(Self.id).\(Self.timestamp).\(Self.body)".utf8), using: SymmetricKey(data: key))
        #expect("v1," + Data(mac).base64EncodedString() == Self.expected)
    }

    @Test("verification accepts the right message and refuses tampering, stale timestamps and other secrets")
    func verify() throws {
        let secret = try WebhookSecret(Self.secret)
        let now = Date(timeIntervalSince1970: TimeInterval(Self.timestamp) + 10)
        try WebhookSignature.verify(id: Self.id, timestamp: Self.timestamp, body: Array(Self.body.utf8), header: Self.expected,
                                    secret: secret, now: now)
        #expect(throws: WebhookSignature.VerificationError.noMatchingSignature) {
            try WebhookSignature.verify(id: Self.id, timestamp: Self.timestamp, body: Array(#"{"test": 2432232315}"#.utf8),
                                        header: Self.expected, secret: secret, now: now)
        }
        #expect(throws: WebhookSignature.VerificationError.timestampOutOfTolerance) {
            try WebhookSignature.verify(id: Self.id, timestamp: Self.timestamp, body: Array(Self.body.utf8), header: Self.expected,
                                        secret: secret, now: now.addingTimeInterval(600))
        }
        #expect(throws: WebhookSignature.VerificationError.noMatchingSignature) {
            try WebhookSignature.verify(id: Self.id, timestamp: Self.timestamp, body: Array(Self.body.utf8), header: Self.expected,
                                        secret: WebhookSecret.generate(), now: now)
        }
    }

    @Test("during a rotation both secrets sign, space-separated, and either verifies")
    func rotation() throws {
        let old = try WebhookSecret(Self.secret)
        let new = WebhookSecret.generate()
        let header = WebhookSignature.header(id: Self.id, timestamp: Self.timestamp, body: Array(Self.body.utf8), secrets: [new, old])
        let parts = header.split(separator: " ")
        #expect(parts.count == 2)
        #expect(parts[1] == Self.expected[...])
        let now = Date(timeIntervalSince1970: TimeInterval(Self.timestamp))
        for secret in [old, new] {
            try WebhookSignature.verify(id: Self.id, timestamp: Self.timestamp, body: Array(Self.body.utf8), header: header, secret: secret, now: now)
        }
    }

    @Test("secrets: whsec_ + base64 of 24 to 64 bytes; generated ones are 32 random bytes; never printed")
    func secrets() throws {
        let generated = WebhookSecret.generate()
        #expect(generated.text.hasPrefix("whsec_"))
        #expect(generated.key.count == 32)
        #expect(try WebhookSecret(generated.text) == generated)
        #expect(WebhookSecret.generate() != generated)
        #expect(!"\(generated)".contains(String(generated.text.dropFirst(6).prefix(8))))
        #expect(throws: WebhookSecret.ParseError.missingPrefix) { try WebhookSecret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") }
        #expect(throws: WebhookSecret.ParseError.badLength(16)) { try WebhookSecret("whsec_" + Data(count: 16).base64EncodedString()) }
        #expect(throws: WebhookSecret.ParseError.badLength(65)) { try WebhookSecret("whsec_" + Data(count: 65).base64EncodedString()) }
        #expect(throws: WebhookSecret.ParseError.notBase64) { try WebhookSecret("whsec_!!!") }
    }
}

@Suite("Webhook event-type filters")
struct EventTypeFilterTests {
    @Test("wildcards and exact names", arguments: [
        ("job.succeeded", "job.succeeded", true),
        ("job.succeeded", "job.failed", false),
        ("job.*", "job.failed", true),
        ("job.*", "jobs.failed", false),
        ("*", "schedule.skipped", true),
        ("*.expired", "checkpoint.expired", true),
        ("checkpoint.*", "job.succeeded", false),
        ("job_x", "jobax", false),
        ("job*", "job", true),
    ])
    func matching(pattern: String, type: String, matches: Bool) throws {
        #expect(try EventTypeFilter(pattern).matches(type) == matches)
    }

    @Test("only a-z, _, . and * are accepted")
    func validation() {
        #expect(throws: EventTypeFilter.ParseError.empty) { try EventTypeFilter("") }
        #expect(throws: EventTypeFilter.ParseError.invalidCharacter("%")) { try EventTypeFilter("job.%") }
        #expect(throws: EventTypeFilter.ParseError.invalidCharacter("J")) { try EventTypeFilter("Job.succeeded") }
        #expect(throws: EventTypeFilter.ParseError.tooLong) { try EventTypeFilter(String(repeating: "a", count: 101)) }
    }
}

@Suite("Webhook retry schedule")
struct RetryScheduleTests {
    @Test("the default schedule, parsing, and bad values")
    func parsing() throws {
        let standard = try RetrySchedule.parse("5s,5m,30m,2h,5h,10h,10h")
        #expect(standard == RetrySchedule.standard)
        #expect(standard.maxAttempts == 8)
        #expect(standard.description == "5s,5m,30m,2h,5h,10h,10h")
        #expect(try RetrySchedule.parse(" 100ms , 1s ").waits == [.milliseconds(100), .seconds(1)])
        #expect(throws: RetrySchedule.ParseError.empty) { try RetrySchedule.parse("") }
        #expect(throws: RetrySchedule.ParseError.invalid("soon")) { try RetrySchedule.parse("5s,soon") }
        #expect(throws: RetrySchedule.ParseError.invalid("0s")) { try RetrySchedule.parse("0s") }
    }

    @Test("waits carry ±20 % jitter and stop after the last")
    func jitter() throws {
        let schedule = RetrySchedule.standard
        for _ in 0..<200 {
            let wait = try #require(schedule.wait(afterAttempt: 2)).seconds
            #expect(wait >= 240 && wait <= 360)
        }
        #expect(schedule.wait(afterAttempt: 7) != nil)
        #expect(schedule.wait(afterAttempt: 8) == nil)
        #expect(schedule.wait(afterAttempt: 0) == nil)
    }

    @Test("Retry-After is honoured: never before it asks, never before the schedule, never past the longest wait")
    func retryAfter() throws {
        let schedule = try RetrySchedule(waits: [.seconds(1), .seconds(60)], jitter: 0)
        #expect(schedule.wait(afterAttempt: 1, retryAfter: .seconds(30)) == .seconds(30))
        #expect(schedule.wait(afterAttempt: 1, retryAfter: .milliseconds(10)) == .seconds(1))
        #expect(schedule.wait(afterAttempt: 1, retryAfter: .seconds(86_400)) == .seconds(60))
        #expect(schedule.wait(afterAttempt: 2, retryAfter: .seconds(5)) == .seconds(60))
    }

    @Test("Retry-After values: seconds and HTTP dates")
    func retryAfterParsing() throws {
        #expect(RetryAfter.parse("120") == .seconds(120))
        #expect(RetryAfter.parse("-1") == nil)
        #expect(RetryAfter.parse("soon") == nil)
        let now = try #require(DreamdJSON.parseDate("2015-10-21T07:27:00Z"))
        #expect(RetryAfter.parse("Wed, 21 Oct 2015 07:28:00 GMT", now: now) == .seconds(60))
        #expect(RetryAfter.parse("Wed, 21 Oct 2015 07:26:00 GMT", now: now) == .zero)
    }
}

@Suite("Webhook destination policy (SSRF)")
struct DestinationPolicyTests {
    typealias Category = DestinationPolicy.Category

    @Test("classification of addresses", arguments: [
        ("8.8.8.8", Category.global),
        ("1.1.1.1", .global),
        ("0.0.0.0", .unspecified),
        ("0.1.2.3", .unspecified),
        ("127.0.0.1", .loopback),
        ("127.255.0.9", .loopback),
        ("10.1.2.3", .private),
        ("172.16.0.1", .private),
        ("172.31.255.255", .private),
        ("172.32.0.1", .global),
        ("192.168.1.1", .private),
        ("100.64.0.1", .sharedAddressSpace),
        ("100.127.255.254", .sharedAddressSpace),
        ("100.128.0.1", .global),
        ("169.254.1.1", .linkLocal),
        ("169.254.169.254", .cloudMetadata),
        ("169.254.170.2", .cloudMetadata),
        ("100.100.100.200", .cloudMetadata),
        ("168.63.129.16", .cloudMetadata),
        ("192.0.0.8", .reserved),
        ("192.0.2.1", .documentation),
        ("198.51.100.7", .documentation),
        ("203.0.113.9", .documentation),
        ("198.18.0.1", .reserved),
        ("198.19.255.1", .reserved),
        ("224.0.0.1", .multicast),
        ("239.255.255.250", .multicast),
        ("240.0.0.1", .reserved),
        ("255.255.255.255", .broadcast),
        ("::", .unspecified),
        ("::1", .loopback),
        ("fc00::1", .private),
        ("fd12:3456::1", .private),
        ("fe80::1", .linkLocal),
        ("fe80::1%eth0", .linkLocal),
        ("febf::1", .linkLocal),
        ("fec0::1", .reserved),
        ("ff02::1", .multicast),
        ("::ffff:127.0.0.1", .loopback),
        ("::ffff:10.0.0.1", .private),
        ("::ffff:169.254.169.254", .cloudMetadata),
        ("::ffff:8.8.8.8", .global),
        ("::ffff:7f00:1", .loopback),
        ("64:ff9b::7f00:1", .loopback),
        ("64:ff9b::8.8.8.8", .global),
        ("64:ff9b:1::1", .reserved),
        ("2002:7f00:1::1", .loopback),
        ("2002:0808:0808::1", .global),
        ("2001:db8::1", .documentation),
        ("2001::1", .reserved),
        ("::127.0.0.1", .reserved),
        ("fd00:ec2::254", .cloudMetadata),
        ("2606:4700:4700::1111", .global),
        ("2a00:1450:4001:81b::200e", .global),
        ("4000::1", .reserved),
    ])
    func classify(text: String, category: Category) throws {
        let address = try #require(IPAddress(text), "\(text) should parse")
        #expect(DestinationPolicy.classify(address) == category)
    }

    @Test("ALLOW_PRIVATE allows private, CGNAT and loopback only; link-local and metadata are always refused")
    func policy() throws {
        let strict = DestinationPolicy(allowPrivate: false)
        let relaxed = DestinationPolicy(allowPrivate: true)
        for category in Category.allCases {
            #expect(strict.isAllowed(category) == (category == .global), "\(category)")
        }
        let relaxedAllowed = Set(Category.allCases.filter(relaxed.isAllowed))
        #expect(relaxedAllowed == [.global, .loopback, .private, .sharedAddressSpace])
        let metadata = try #require(IPAddress("169.254.169.254"))
        #expect(throws: DestinationPolicy.Refusal.self) { try relaxed.check(metadata) }
        let loopback = try #require(IPAddress("127.0.0.1"))
        #expect(throws: Never.self) { try relaxed.check(loopback) }
        #expect(throws: DestinationPolicy.Refusal.self) { try strict.check(loopback) }
    }

    @Test("address text: parsing and canonical printing")
    func parsing() throws {
        #expect(IPAddress("010.0.0.1") == nil)  // octal-looking: not ours to guess
        #expect(IPAddress("1.2.3") == nil)
        #expect(IPAddress("256.1.1.1") == nil)
        #expect(IPAddress("1::2::3") == nil)
        #expect(IPAddress("12345::") == nil)
        #expect(IPAddress("example.com") == nil)
        #expect(IPAddress("[::1]")?.description == "::1")
        #expect(IPAddress("2001:0db8:0000:0000:0000:0000:0000:0001")?.description == "2001:db8::1")
        #expect(IPAddress("::ffff:1.2.3.4")?.description == "::ffff:102:304")
        #expect(IPAddress("10.0.0.1")?.description == "10.0.0.1")
        #expect(IPAddress("1:2:3:4:5:6:7:8")?.description == "1:2:3:4:5:6:7:8")
    }
}
