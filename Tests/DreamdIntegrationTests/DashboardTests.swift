import AsyncHTTPClient
import DreamdCore
import DreamdSim
import DreamdStore
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// One HTTP answer of the dashboard, read as a browser would: status, headers, body text.
struct PageAnswer: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: String

    var location: String? { headers.first(name: "location") }
    /// `name=value` of each `Set-Cookie`, by name.
    var cookies: [String: String] {
        var cookies: [String: String] = [:]
        for header in headers["set-cookie"] {
            let pair = header.split(separator: ";").first.map(String.init) ?? ""
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2 { cookies[String(parts[0])] = String(parts[1]) }
        }
        return cookies
    }

    /// The value of the first hidden `csrf` field.
    var csrf: String? {
        guard let range = body.range(of: #"name="csrf" value=""#) else { return nil }
        return String(body[range.upperBound...].prefix { $0 != "\"" })
    }
}

/// A browser without JavaScript: no redirects followed, cookies sent by hand.
struct PageClient: Sendable {
    let http: HTTPClient
    let baseURL: String

    func send(_ method: HTTPMethod, _ path: String, cookies: [String: String] = [:], form: [String: String]? = nil) async throws -> PageAnswer {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if !cookies.isEmpty { request.headers.add(name: "cookie", value: cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")) }
        if let form {
            request.headers.add(name: "content-type", value: "application/x-www-form-urlencoded")
            let body = form.map { key, value in
                "\(key)=\(value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
            }.joined(separator: "&")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await http.execute(request, timeout: .seconds(30))
        let buffer = try await response.body.collect(upTo: 8 << 20)
        return PageAnswer(status: Int(response.status.code), headers: response.headers, body: String(buffer: buffer))
    }

    /// Signs in with `token`; returns the session cookie.
    func signIn(_ token: String) async throws -> [String: String] {
        let form = try await send(.GET, "/ui/login")
        let loginCookie = try #require(form.cookies["dreamd_login"])
        let csrf = try #require(form.csrf)
        let answer = try await send(.POST, "/ui/login", cookies: ["dreamd_login": loginCookie], form: ["csrf": csrf, "key": token])
        #expect(answer.status == 303)
        let session = try #require(answer.cookies["dreamd_session"])
        return ["dreamd_session": session]
    }

    static func with<T: Sendable>(_ baseURL: String, _ body: @Sendable (PageClient) async throws -> T) async throws -> T {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let result = try await body(PageClient(http: http, baseURL: baseURL))
            try await http.shutdown()
            return result
        } catch {
            try? await http.shutdown()
            throw error
        }
    }
}

/// A job that waits an hour: something to cancel.
private let laterBody = imageGenBody(extra: #", "run_at": "2099-01-01T00:00:00Z""#)

@Suite("Dashboard", .hangGuard)
struct DashboardTests {
    @Test("POST /v1/jobs/{id}/retry runs a failed job again, audited with the key that asked; other states are 409, read keys 403")
    func retryEndpoint() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    var faults = SimulatorFaults()
                    faults.jobFailureRate = 1
                    await sim.dreamlook.setFaults(faults)
                    let id = try #require(try await daemon.submit(imageGenBody()).json["id"]?.stringValue)
                    #expect(try await daemon.waitFinal(id)["state"]?.stringValue == "failed")

                    let reader = try await db.keys.create(name: "reader", scope: .read).token
                    #expect(try await daemon.request(.POST, "/v1/jobs/\(id)/retry", token: reader).status == 403)

                    await sim.dreamlook.setFaults(SimulatorFaults())
                    let submitter = try await db.keys.create(name: "ops-submitter", scope: .submit).token
                    let retried = try await daemon.request(.POST, "/v1/jobs/\(id)/retry", token: submitter)
                    #expect(retried.status == 200)
                    #expect(retried.json["state"]?.stringValue == "queued")
                    #expect(retried.json["error"] == .null)
                    let job = try await daemon.waitFinal(id)
                    #expect(job["state"]?.stringValue == "succeeded")
                    #expect(job["attempt"]?.intValue == 1)

                    let events = try await daemon.request(.GET, "/v1/jobs/\(id)/events").json["data"]?.arrayValue ?? []
                    let retry = try #require(events.first { $0["from_state"]?.stringValue == "failed" })
                    #expect(retry["to_state"]?.stringValue == "queued")
                    #expect(retry["actor"]?.stringValue == "api")
                    #expect(retry["detail"]?["api_key_name"]?.stringValue == "ops-submitter")
                    #expect(retry["detail"]?["previous_error"]?["code"]?.stringValue == "upstream_job_failed")

                    let again = try await daemon.request(.POST, "/v1/jobs/\(id)/retry", token: submitter)
                    #expect(again.status == 409)
                    #expect(again.json["error"]?["code"]?.stringValue == "not_retryable")
                    #expect(try await daemon.request(.POST, "/v1/jobs/\(UUID())/retry", token: submitter).status == 404)
                }
            }
        }
    }

    @Test("signing in opens an httpOnly SameSite=Strict session; pages need it; signing out and revoking the key end it")
    func sessions() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    try await PageClient.with(daemon.baseURL) { browser in
                        let anonymous = try await browser.send(.GET, "/ui")
                        #expect(anonymous.status == 303)
                        #expect(anonymous.location == "/ui/login")

                        let form = try await browser.send(.GET, "/ui/login")
                        #expect(form.status == 200)
                        let loginCookie = try #require(form.cookies["dreamd_login"])
                        let csrf = try #require(form.csrf)
                        // The sign-in form has its own CSRF token.
                        let forged = try await browser.send(.POST, "/ui/login", form: ["csrf": csrf, "key": daemon.token])
                        #expect(forged.status == 403)
                        #expect(forged.cookies["dreamd_session"] == nil)
                        let wrongKey = try await browser.send(.POST, "/ui/login", cookies: ["dreamd_login": loginCookie],
                                                              form: ["csrf": csrf, "key": "dmd_not-a-key"])
                        #expect(wrongKey.status == 401)

                        let (key, token) = try await db.keys.create(name: "viewer", scope: .admin)
                        let signedIn = try await browser.send(.POST, "/ui/login", cookies: ["dreamd_login": loginCookie], form: ["csrf": csrf, "key": token])
                        #expect(signedIn.status == 303)
                        let setCookie = try #require(signedIn.headers["set-cookie"].first { $0.hasPrefix("dreamd_session=") })
                        #expect(setCookie.contains("HttpOnly"))
                        #expect(setCookie.contains("SameSite=Strict"))
                        #expect(setCookie.contains("Path=/ui"))
                        #expect(!setCookie.contains("Secure"), "plain HTTP: no Secure flag")
                        let cookie = ["dreamd_session": try #require(signedIn.cookies["dreamd_session"])]
                        // Only a hash of the session token is stored.
                        #expect(try await db.values("SELECT count(*)::int FROM ui_sessions WHERE token_hash = \(cookie["dreamd_session"]!)", as: Int.self) == [0])

                        let overview = try await browser.send(.GET, "/ui", cookies: cookie)
                        #expect(overview.status == 200)
                        #expect(overview.body.contains("Jobs by kind and state"))
                        #expect(overview.body.contains("viewer"))
                        #expect(!overview.body.contains(token), "the key is never rendered")
                        #expect(overview.headers.first(name: "content-security-policy")?.contains("script-src 'self'") == true)

                        // Signing out needs the CSRF token too.
                        let session = try #require(overview.csrf)
                        #expect(try await browser.send(.POST, "/ui/logout", cookies: cookie, form: [:]).status == 403)
                        #expect(try await browser.send(.GET, "/ui", cookies: cookie).status == 200)
                        #expect(try await browser.send(.POST, "/ui/logout", cookies: cookie, form: ["csrf": session]).status == 303)
                        #expect(try await browser.send(.GET, "/ui", cookies: cookie).location == "/ui/login")

                        // Revoking the key ends its sessions at once.
                        let second = try await browser.signIn(token)
                        #expect(try await browser.send(.GET, "/ui/jobs", cookies: second).status == 200)
                        #expect(try await db.keys.revoke(idOrName: key.id.uuidString) == 1)
                        #expect(try await browser.send(.GET, "/ui/jobs", cookies: second).location == "/ui/login")
                    }
                }
            }
        }
    }

    @Test("a form without its CSRF token is refused; with it, cancel works and is audited as the dashboard")
    func csrfAndCancel() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let id = try #require(try await daemon.submit(laterBody).json["id"]?.stringValue)
                    try await PageClient.with(daemon.baseURL) { browser in
                        let cookie = try await browser.signIn(daemon.token)
                        let page = try await browser.send(.GET, "/ui/jobs/\(id)", cookies: cookie)
                        #expect(page.status == 200)
                        #expect(page.body.contains("/ui/jobs/\(id)/cancel"))
                        let csrf = try #require(page.csrf)

                        let noToken = try await browser.send(.POST, "/ui/jobs/\(id)/cancel", cookies: cookie, form: [:])
                        #expect(noToken.status == 403)
                        let wrongToken = try await browser.send(.POST, "/ui/jobs/\(id)/cancel", cookies: cookie, form: ["csrf": String(csrf.reversed())])
                        #expect(wrongToken.status == 403)
                        #expect(try await daemon.job(id)["state"]?.stringValue == "scheduled")

                        let cancelled = try await browser.send(.POST, "/ui/jobs/\(id)/cancel", cookies: cookie, form: ["csrf": csrf])
                        #expect(cancelled.status == 303)
                        #expect(cancelled.location == "/ui/jobs/\(id)")
                        #expect(try await daemon.job(id)["state"]?.stringValue == "cancelled")
                        let actors = try await db.values("SELECT actor FROM job_events WHERE job_id = \(UUID(uuidString: id)!) ORDER BY id", as: String.self)
                        #expect(actors.last == "ui")

                        // The page now offers a retry, and the retry works.
                        let after = try await browser.send(.GET, "/ui/jobs/\(id)", cookies: cookie.merging(cancelled.cookies) { $1 })
                        #expect(after.body.contains("Job cancelled."))
                        #expect(after.body.contains("/ui/jobs/\(id)/retry"))
                        let retried = try await browser.send(.POST, "/ui/jobs/\(id)/retry", cookies: cookie, form: ["csrf": csrf])
                        #expect(retried.status == 303)
                        // Queued again now (a worker may already have it): the audit trail says who asked.
                        #expect(try await daemon.job(id)["state"]?.stringValue != "cancelled")
                        let moves = try await db.values("SELECT actor || ':' || from_state || '>' || to_state FROM job_events WHERE job_id = \(UUID(uuidString: id)!) AND from_state = 'cancelled'", as: String.self)
                        #expect(moves == ["ui:cancelled>queued"])
                    }
                }
            }
        }
    }

    @Test("a read key's session sees no action buttons and its forms are refused; admin-only actions refuse submit keys")
    func scopes() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let id = try #require(try await daemon.submit(laterBody).json["id"]?.stringValue)
                    let reader = try await db.keys.create(name: "reader", scope: .read).token
                    let submitter = try await db.keys.create(name: "submitter", scope: .submit).token
                    try await PageClient.with(daemon.baseURL) { browser in
                        let cookie = try await browser.signIn(reader)
                        let page = try await browser.send(.GET, "/ui/jobs/\(id)", cookies: cookie)
                        #expect(page.status == 200)
                        #expect(page.body.components(separatedBy: "<button").count == 2, "no button but sign-out for a read key")
                        #expect(!page.body.contains("/cancel"))
                        let csrf = try #require(page.csrf)
                        let refused = try await browser.send(.POST, "/ui/jobs/\(id)/cancel", cookies: cookie, form: ["csrf": csrf])
                        #expect(refused.status == 403)
                        #expect(refused.body.contains("scope read"))
                        #expect(try await daemon.job(id)["state"]?.stringValue == "scheduled")

                        let submitCookie = try await browser.signIn(submitter)
                        let submitPage = try await browser.send(.GET, "/ui/jobs/\(id)", cookies: submitCookie)
                        let submitCSRF = try #require(submitPage.csrf)
                        let resume = try await browser.send(.POST, "/ui/upstreams/dreamlook/resume", cookies: submitCookie, form: ["csrf": submitCSRF])
                        #expect(resume.status == 403)
                        let redeliver = try await browser.send(.POST, "/ui/deliveries/\(UUID())/redeliver", cookies: submitCookie, form: ["csrf": submitCSRF])
                        #expect(redeliver.status == 403)
                    }
                }
            }
        }
    }

    @Test("every page renders for a signed-in key, escapes what it shows, and the costs CSV downloads")
    func everyPageRenders() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let body = imageGenBody(prompt: "<script>alert(1)</script>", extra: #", "metadata": {"team": "<b>vision</b>"}"#)
                    let id = try #require(try await daemon.submit(body).json["id"]?.stringValue)
                    _ = try await daemon.waitFinal(id)
                    try await PageClient.with(daemon.baseURL) { browser in
                        let cookie = try await browser.signIn(daemon.token)
                        for path in ["/ui", "/ui/jobs", "/ui/jobs?state=succeeded&kind=image_gen", "/ui/jobs?q=team%3D%3Cb%3Evision%3C%2Fb%3E",
                                     "/ui/jobs/\(id)", "/ui/costs", "/ui/schedules", "/ui/deliveries", "/ui/checkpoints",
                                     "/ui/assets/app.css", "/ui/assets/app.js"] {
                            let page = try await browser.send(.GET, path, cookies: cookie)
                            #expect(page.status == 200, "\(path): \(page.status) \(page.body.prefix(300))")
                            #expect(!page.body.contains("<script>alert"), "\(path) escapes user text")
                        }
                        let search = try await browser.send(.GET, "/ui/jobs?q=team%3D%3Cb%3Evision%3C%2Fb%3E", cookies: cookie)
                        #expect(search.body.contains("/ui/jobs/\(id)"), "search by a metadata value finds the job")
                        let job = try await browser.send(.GET, "/ui/jobs/\(id)", cookies: cookie)
                        #expect(job.body.contains("&lt;script&gt;"))
                        #expect(job.body.contains("Audit timeline"))
                        let csv = try await browser.send(.GET, "/ui/costs.csv", cookies: cookie)
                        #expect(csv.status == 200)
                        #expect(csv.headers.first(name: "content-type")?.hasPrefix("text/csv") == true)
                        #expect(csv.body.hasPrefix("day,kind,api_key,jobs,cost_usd"))
                        #expect(try await browser.send(.GET, "/ui/jobs/\(UUID())", cookies: cookie).status == 404)
                        #expect(try await browser.send(.GET, "/ui/costs?from=2026-13-45", cookies: cookie).status == 422)
                    }
                }
            }
        }
    }
}
