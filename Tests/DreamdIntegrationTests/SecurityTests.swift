import AsyncHTTPClient
import DreamdCore
import DreamdStore
import Foundation
import NIOCore
import NIOHTTP1
import PostgresNIO
import Testing

/// The scope each `/v1` route needs, written out here independently of the router's own declarations.
private func expectedScope(method: String, pattern: String) -> APIKeyScope {
    if pattern == "/v1/estimate" || method == "GET" { return .read }
    if ["/v1/subscriptions", "/v1/deliveries", "/v1/upstreams"].contains(where: { pattern.hasPrefix($0) }) { return .admin }
    return .submit
}

/// Spellings of `path` that a lenient router may treat as the same route.
private func spellings(of path: String) -> [String] {
    let segments = path.split(separator: "/").map(String.init)
    var result = [path, "/" + path, path + "/", path.replacingOccurrences(of: "/", with: "//")]
    if segments.count >= 2 {
        result.append("/" + segments[0] + "/./" + segments.dropFirst().joined(separator: "/"))
        // Percent-encode the first letter of the second segment (`/v1/%73ubscriptions`).
        var encoded = segments
        if let first = encoded[1].unicodeScalars.first, first.isASCII {
            encoded[1] = String(format: "%%%02X", first.value) + String(encoded[1].dropFirst())
        }
        result.append("/" + encoded.joined(separator: "/"))
        result.append("/" + segments[0] + "/../" + segments.joined(separator: "/"))
    }
    return result
}

/// One request with a raw status and headers (for `Retry-After`).
private func rawRequest(_ method: HTTPMethod, _ url: String, token: String?, body: [UInt8]? = nil,
                        contentType: String = "application/json") async throws -> (status: Int, headers: HTTPHeaders, json: JSONValue) {
    var request = HTTPClientRequest(url: url)
    request.method = method
    if let token { request.headers.add(name: "authorization", value: "Bearer \(token)") }
    if let body {
        request.headers.add(name: "content-type", value: contentType)
        request.body = .bytes(ByteBuffer(bytes: body))
    }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
    let buffer = try await response.body.collect(upTo: 1 << 20)
    let json = (try? JSONValue.parse(String(buffer: buffer))) ?? .null
    return (Int(response.status.code), response.headers, json)
}

@Suite("Security", .hangGuard, .serialized)
struct SecurityTests {
    @Test("every /v1 route refuses a key below its scope, however the path is spelled")
    func scopesCannotBeSidestepped() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim, overrides: ["DREAMD_API_RATE_LIMIT": "0"]) { daemon in
                    var keys: [APIKeyScope: String] = [:]
                    for scope in APIKeyScope.allCases { keys[scope] = try await db.keys.create(name: "scope-\(scope.rawValue)", scope: scope).token }
                    let routes = daemon.daemon.router().routes.compactMap { route -> (method: String, pattern: String)? in
                        let pattern = "/" + route.path.description.split(separator: "/")
                            .map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }.joined(separator: "/")
                        return pattern.hasPrefix("/v1/") ? (route.method.rawValue, pattern) : nil
                    }
                    #expect(routes.count >= 30, "the router lists its /v1 routes (\(routes.count))")
                    var checked = 0
                    var sidestepped: [String] = []
                    for (method, pattern) in routes {
                        let required = expectedScope(method: method, pattern: pattern)
                        let path = pattern.replacingOccurrences(of: "{name}", with: "dreamlook")
                            .replacingOccurrences(of: "{slug}", with: "some-model")
                            .replacingOccurrences(of: "{id}", with: UUID().uuidString.lowercased())
                        for scope in APIKeyScope.allCases {
                            let token = try #require(keys[scope])
                            for (index, spelled) in spellings(of: path).enumerated() {
                                let answer = try await rawRequest(HTTPMethod(rawValue: method), daemon.baseURL + spelled, token: token,
                                                                  body: method == "GET" || method == "DELETE" ? nil : Array("{}".utf8))
                                checked += 1
                                if scope < required {
                                    if (200..<300).contains(answer.status) { sidestepped.append("\(method) \(spelled) with \(scope): \(answer.status)") }
                                    if index == 0 {
                                        #expect(answer.status == 403, "\(method) \(spelled) with a \(scope) key: \(answer.status) \(answer.json)")
                                        #expect(answer.json["error"]?["code"]?.stringValue == "forbidden")
                                    }
                                } else if index == 0 {
                                    #expect(![401, 403].contains(answer.status), "\(method) \(spelled) with a \(scope) key: \(answer.status) \(answer.json)")
                                }
                                #expect(answer.status < 500, "\(method) \(spelled): \(answer.status) \(answer.json)")
                            }
                        }
                    }
                    #expect(sidestepped.isEmpty, "a lower scope got a 2xx: \(sidestepped)")
                    #expect(checked > 500)
                    // The spellings the issue reported reach the route (so the check above is meaningful) and are refused.
                    let submitKey = try #require(keys[.submit])
                    let body = Array(#"{"url": "https://93.184.215.14/x", "event_types": ["job.*"]}"#.utf8)
                    #expect(try await rawRequest(.POST, daemon.baseURL + "/v1//subscriptions", token: submitKey, body: body).status == 403)
                    #expect(try await rawRequest(.POST, daemon.baseURL + "/v1//subscriptions", token: keys[.admin]!, body: body).status == 201)
                    #expect(try await db.values("SELECT count(*)::int FROM subscriptions", as: Int.self) == [1])
                }
            }
        }
    }

    /// A body-taking route, a body with `BAD` where a hostile JSON value goes, and the field it names.
    struct BodyCase: Sendable {
        var method: HTTPMethod
        var path: String
        var template: String
        var field: String
    }

    @Test("NUL characters, lone surrogates, 1 MB strings and deep nesting get a 4xx with the JSON error body on every body route")
    func hostileInputIsRefused() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim, overrides: ["DREAMD_API_RATE_LIMIT": "0"]) { daemon in
                    let job = #"{"kind": "image_gen", "params": {"prompt": "fox", "num_samples": 1, "width": 512, "height": 512, "base_model": "sd-1.5"}}"#
                    let schedule = try await daemon.request(.POST, "/v1/schedules", body: #"{"name": "hourly", "cron": "0 * * * *", "job": \#(job)}"#)
                    let scheduleID = try #require(schedule.json["id"]?.stringValue, "\(schedule.json)")
                    let subscription = try await daemon.request(.POST, "/v1/subscriptions", body: #"{"url": "https://93.184.215.14/x", "event_types": ["job.*"]}"#)
                    let subscriptionID = try #require(subscription.json["id"]?.stringValue, "\(subscription.json)")
                    let prompt = #"{"kind": "image_gen", "params": {"prompt": BAD, "num_samples": 1, "width": 512, "height": 512, "base_model": "sd-1.5"}}"#
                    let cases = [
                        BodyCase(method: .POST, path: "/v1/jobs", template: prompt, field: "params.prompt"),
                        BodyCase(method: .POST, path: "/v1/jobs", template: String(job.dropLast()) + #", "metadata": {"note": BAD}}"#, field: "metadata.note"),
                        BodyCase(method: .POST, path: "/v1/estimate", template: prompt, field: "params.prompt"),
                        BodyCase(method: .POST, path: "/v1/schedules", template: #"{"name": BAD, "cron": "0 * * * *", "job": \#(job)}"#, field: "name"),
                        BodyCase(method: .POST, path: "/v1/schedules", template: #"{"name": "n", "cron": "0 * * * *", "job": \#(prompt)}"#, field: "job.params.prompt"),
                        BodyCase(method: .PATCH, path: "/v1/schedules/\(scheduleID)", template: #"{"name": BAD}"#, field: "name"),
                        BodyCase(method: .POST, path: "/v1/subscriptions", template: #"{"url": "https://93.184.215.14/y", "event_types": ["job.*"], "description": BAD}"#, field: "description"),
                        BodyCase(method: .PATCH, path: "/v1/subscriptions/\(subscriptionID)", template: #"{"description": BAD}"#, field: "description"),
                        BodyCase(method: .POST, path: "/v1/subscriptions/\(subscriptionID)/recover", template: #"{"since": BAD}"#, field: "since"),
                        BodyCase(method: .PATCH, path: "/v1/checkpoints/\(UUID().uuidString.lowercased())", template: #"{"expires_at": BAD}"#, field: "expires_at"),
                    ]
                    let hostile: [(name: String, json: String)] = [
                        ("NUL", #""a\u0000b""#),
                        ("lone surrogate", #""a\ud800b""#),
                        ("1 MB string", "\"" + String(repeating: "x", count: 1 << 20) + "\""),
                        ("deep nesting", String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)),
                    ]
                    for item in cases {
                        for (name, json) in hostile {
                            let body = item.template.replacingOccurrences(of: "BAD", with: json)
                            let answer = try await rawRequest(item.method, daemon.baseURL + item.path, token: daemon.token, body: Array(body.utf8))
                            let what = "\(item.method) \(item.path) with a \(name) in \(item.field)"
                            #expect((400..<500).contains(answer.status), "\(what): \(answer.status) \(answer.json)")
                            #expect(answer.json["error"]?["code"]?.stringValue != nil, "\(what): no JSON error body")
                            #expect(answer.json["error"]?["message"]?.stringValue != nil, "\(what): no message")
                            if name == "NUL" {
                                #expect(answer.status == 422, "\(what): \(answer.status)")
                                #expect(answer.json["error"]?["details"]?["field"]?.stringValue == item.field, "\(what): \(answer.json)")
                            }
                        }
                    }
                    // Bulk: the row with the bad string is named by its line; nothing is stored.
                    for (name, json) in hostile {
                        let body = job + "\n" + prompt.replacingOccurrences(of: "BAD", with: json) + "\n"
                        let answer = try await rawRequest(.POST, daemon.baseURL + "/v1/jobs/bulk", token: daemon.token, body: Array(body.utf8),
                                                        contentType: "application/x-ndjson")
                        #expect((400..<500).contains(answer.status), "bulk with a \(name): \(answer.status) \(answer.json)")
                        #expect(answer.json["error"]?["code"]?.stringValue != nil, "bulk with a \(name): \(answer.json)")
                        if name == "NUL" {
                            let row = answer.json["error"]?["details"]?["rows"]?.arrayValue?.first
                            #expect(row?["line"]?.intValue == 2, "\(answer.json)")
                            #expect(row?["field"]?.stringValue == "params.prompt", "\(answer.json)")
                        }
                    }
                    // A bulk line that is not UTF-8 is refused by its line, not stored with U+FFFD in its place.
                    let notUTF8 = Array((job + "\n").utf8) + Array(#"{"kind": "image_gen", "params": {"prompt": "a "#.utf8) + [0xFF, 0xFE]
                        + Array(#"", "num_samples": 1, "width": 512, "height": 512, "base_model": "sd-1.5"}}"#.utf8) + [0x0A]
                    let notUTF8Answer = try await rawRequest(.POST, daemon.baseURL + "/v1/jobs/bulk", token: daemon.token, body: notUTF8,
                                                             contentType: "application/x-ndjson")
                    #expect(notUTF8Answer.status == 422, "bulk with bytes that are not UTF-8: \(notUTF8Answer.status) \(notUTF8Answer.json)")
                    let notUTF8Row = notUTF8Answer.json["error"]?["details"]?["rows"]?.arrayValue?.first
                    #expect(notUTF8Row?["line"]?.intValue == 2, "\(notUTF8Answer.json)")
                    #expect(notUTF8Row?["code"]?.stringValue == "invalid_json", "\(notUTF8Answer.json)")
                    // A NUL in a query string or a path segment is a 4xx too.
                    for path in ["/v1/jobs?state=%00", "/v1/models/a%00b", "/v1/jobs?metadata.note=%00", "/v1/checkpoints?job_id=%00"] {
                        let answer = try await rawRequest(.GET, daemon.baseURL + path, token: daemon.token)
                        #expect((400..<500).contains(answer.status), "GET \(path): \(answer.status) \(answer.json)")
                    }
                    #expect(try await db.values("SELECT count(*)::int FROM jobs", as: Int.self) == [0], "no job was stored")
                }
            }
        }
    }

    @Test("callback tokens: redacted in storage, bounded per token, dead once the job is final past the grace, NUL bodies kept")
    func callbackTokensStaySecret() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                let overrides = ["DREAMD_CALLBACKS": "on", "DREAMD_POLL_INTERVAL": "10m", "DREAMD_POLL_INTERVAL_MAX": "10m",
                                 "DREAMD_CALLBACK_GRACE": "1s", "DREAMD_CALLBACK_MAX_PER_TOKEN": "3"]
                try await withDaemon(database: db, simulator: sim, overrides: overrides) { daemon in
                    // A job that finishes by its callback.
                    let first = try #require(try await daemon.submit(imageGenBody()).json["id"]?.stringValue)
                    #expect(try await daemon.waitFinal(first, timeout: .seconds(30))["state"]?.stringValue == "succeeded")
                    let firstURL = try #require(await sim.dreamlook.callbackURL(taggedWith: "dreamd_job_id", value: first))
                    let firstToken = String(firstURL.split(separator: "/").last ?? "")
                    #expect(firstToken.count >= 43)
                    let stored = try await db.values("SELECT payload FROM callback_inbox WHERE job_id = \(UUID(uuidString: first)!)", as: String.self)
                    #expect(!stored.isEmpty && stored.allSatisfy { $0.contains("/callbacks/dreamlook/\(CallbackRedaction.marker)") }, "\(stored)")

                    // A job still running upstream: its token stores at most 3 callbacks.
                    await sim.dreamlook.setTiming(queue: .milliseconds(50), run: .seconds(120))
                    let second = try #require(try await daemon.submit(imageGenBody(prompt: "slow")).json["id"]?.stringValue)
                    _ = try await eventually(timeout: .seconds(20)) { try await daemon.job(second)["state"]?.stringValue == "running" }
                    let secondURL = try #require(await sim.dreamlook.callbackURL(taggedWith: "dreamd_job_id", value: second))
                    // A JSON NUL escape, and a raw NUL byte: both kept and acted on.
                    let escaped = Array(#"{"job_id": "x\u0000y", "state": "running", "failure_reason": "a\u0000b"}"#.utf8)
                    let rawNUL: [UInt8] = Array(#"{"state": "running", "note": "a"#.utf8) + [0] + Array(#"b"}"#.utf8)
                    #expect(try await rawRequest(.POST, secondURL, token: nil, body: escaped).status == 202)
                    #expect(try await rawRequest(.POST, secondURL, token: nil, body: rawNUL).status == 202)
                    #expect(try await rawRequest(.POST, secondURL, token: nil, body: Array("{}".utf8)).status == 202)
                    let over = try await rawRequest(.POST, secondURL, token: nil, body: Array("{}".utf8))
                    #expect(over.status == 429 && over.json["error"]?["code"]?.stringValue == "callback_limit", "\(over.json)")
                    let inbox = try await db.values("""
                        SELECT payload_encoding || ':' || (processed_at IS NOT NULL)::text FROM callback_inbox
                        WHERE job_id = \(UUID(uuidString: second)!) ORDER BY id
                        """, as: String.self)
                    #expect(inbox == ["text:true", "base64:true", "text:true"], "\(inbox)")

                    // The first job has been final for longer than the 1 s grace: its token is dead.
                    try await Task.sleep(for: .milliseconds(1500))
                    let late = try await rawRequest(.POST, firstURL, token: nil, body: Array("{}".utf8))
                    #expect(late.status == 404, "\(late.json)")

                    // No table holds either token in plain text (only hashes, and the marker).
                    let secondToken = String(secondURL.split(separator: "/").last ?? "")
                    let tables = try await db.values("""
                        SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
                        """, as: String.self)
                    #expect(tables.contains("callback_inbox") && tables.contains("jobs"))
                    for table in tables {
                        for token in [firstToken, secondToken] {
                            let hits = try await db.values("SELECT count(*)::int FROM \(unescaped: table) t WHERE t::text LIKE \("%" + token + "%")", as: Int.self)
                            #expect(hits == [0], "the callback token is stored in plain text in \(table)")
                        }
                    }
                }
            }
        }
    }

    @Test("failed authentications from one address get 429 with Retry-After, for bad keys and unknown callback tokens")
    func unauthenticatedRequestsAreLimited() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim, overrides: ["DREAMD_AUTH_FAILURE_BURST": "5", "DREAMD_AUTH_FAILURE_RATE": "0.2"]) { daemon in
                    #expect(try await rawRequest(.GET, daemon.baseURL + "/v1/jobs", token: daemon.token).status == 200)
                    var statuses: [Int] = []
                    var retryAfter: String?
                    for attempt in 0..<8 {
                        let answer = try await rawRequest(.GET, daemon.baseURL + "/v1/jobs", token: "dreamd_guess_\(attempt)")
                        statuses.append(answer.status)
                        if answer.status == 429 { retryAfter = answer.headers.first(name: "retry-after") }
                    }
                    #expect(statuses == [401, 401, 401, 401, 401, 429, 429, 429], "\(statuses)")
                    #expect(Int(retryAfter ?? "") ?? 0 >= 1, "Retry-After: \(retryAfter ?? "none")")
                    // The address is held off before any lookup, so unknown callback tokens are refused the same way.
                    let token = String(repeating: "a", count: 43)
                    let callback = try await rawRequest(.POST, daemon.baseURL + "/callbacks/dreamlook/\(token)", token: nil, body: Array("{}".utf8))
                    #expect(callback.status == 429, "\(callback.json)")
                    #expect(callback.json["error"]?["code"]?.stringValue == "rate_limited")
                }
            }
        }
    }

    @Test("a dreamlook 401/403 while polling a running job marks the upstream unhealthy and the job keeps waiting")
    func authFaultWhilePollingDoesNotFailThePaidJob() async throws {
        try await TestDatabase.with { db in
            try await withSimulator(runTime: .seconds(5)) { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let id = try #require(try await daemon.submit(imageGenBody()).json["id"]?.stringValue)
                    #expect(try await eventually(timeout: .seconds(20)) { try await daemon.job(id)["state"]?.stringValue == "running" })
                    let before = await sim.dreamlook.requestCount
                    await sim.dreamlook.forceNext(statuses: [401, 403, 401, 403, 401, 401])
                    let dreamlookState: @Sendable () async throws -> String? = {
                        let upstreams = try await daemon.request(.GET, "/v1/upstreams").json["data"]?.arrayValue ?? []
                        return upstreams.first { $0["name"]?.stringValue == "dreamlook" }?["state"]?.stringValue
                    }
                    #expect(try await eventually(timeout: .seconds(10), interval: .milliseconds(20)) { try await dreamlookState() == "unhealthy" })
                    #expect(try await eventually(timeout: .seconds(20)) { await sim.dreamlook.requestCount >= before + 6 })
                    #expect(try await daemon.job(id)["state"]?.stringValue == "running", "the refused polls did not end the job")
                    let final = try await daemon.waitFinal(id, timeout: .seconds(30))
                    #expect(final["state"]?.stringValue == "succeeded", "\(final)")
                    #expect(try await dreamlookState() == "healthy", "cleared by the next answer")
                }
            }
        }
    }

    @Test("past DREAMD_DREAMLOOK_AUTH_DEADLINE a refused poll fails the job with the upstream's code")
    func authFaultPastTheDeadlineFails() async throws {
        try await TestDatabase.with { db in
            try await withSimulator(runTime: .seconds(60)) { sim in
                try await withDaemon(database: db, simulator: sim, overrides: ["DREAMD_DREAMLOOK_AUTH_DEADLINE": "1s"]) { daemon in
                    let id = try #require(try await daemon.submit(imageGenBody()).json["id"]?.stringValue)
                    #expect(try await eventually(timeout: .seconds(20)) { try await daemon.job(id)["state"]?.stringValue == "running" })
                    try await Task.sleep(for: .milliseconds(1100))
                    await sim.dreamlook.forceNext(statuses: Array(repeating: 401, count: 3))
                    let final = try await daemon.waitFinal(id, timeout: .seconds(30))
                    #expect(final["state"]?.stringValue == "failed")
                    #expect(final["error"]?["code"]?.stringValue == "upstream_unauthorized", "\(final)")
                }
            }
        }
    }
}
