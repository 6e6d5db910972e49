import DreamdAPI
import DreamdCore
import DreamdStore
import Foundation
import Hummingbird
import Logging

/// The web dashboard at `/ui`: server-rendered pages over the daemon's stores, signed in with an API key.
///
/// Access: `POST /ui/login` checks a key once and opens a session (`SessionStore`); the browser keeps
/// only an httpOnly, `SameSite=Strict` cookie (`Secure` when the daemon is reached over TLS). Every page
/// reads the session, and the key's scope decides which buttons are drawn and which forms are obeyed
/// (read looks; submit cancels, retries, changes schedules and checkpoints; admin resumes upstreams and
/// redelivers). Every state-changing form carries the session's CSRF token and is refused without it.
public struct Dashboard: Sendable {
    /// The stores the pages read and the actions write through.
    public struct Stores: Sendable {
        public var jobs: JobStore
        public var schedules: ScheduleStore
        public var checkpoints: CheckpointStore
        public var keys: APIKeyStore
        public var deliveries: DeliveryStore
        public var subscriptions: SubscriptionStore
        public var pauses: UpstreamPauseStore
        public var registry: ExecutorRegistry

        public init(jobs: JobStore, schedules: ScheduleStore, checkpoints: CheckpointStore, keys: APIKeyStore,
                    deliveries: DeliveryStore, subscriptions: SubscriptionStore, pauses: UpstreamPauseStore, registry: ExecutorRegistry) {
            self.jobs = jobs
            self.schedules = schedules
            self.checkpoints = checkpoints
            self.keys = keys
            self.deliveries = deliveries
            self.subscriptions = subscriptions
            self.pauses = pauses
            self.registry = registry
        }
    }

    /// Settings of the dashboard.
    public struct Options: Sendable {
        /// Mark cookies `Secure` (the daemon's public URL is `https://`).
        public var secureCookies: Bool
        /// Where rollout videos live (`DREAMD_DATA_DIR`): the job page plays `rollouts/<id>.mp4` from there.
        public var dataDirectory: String
        /// How long a session lasts from sign-in.
        public var sessionLifetime: Duration
        /// Failed sign-ins per client address (shared with the API's bearer-key failures).
        public var authFailures: AddressRateLimiter?

        public init(secureCookies: Bool = false, dataDirectory: String = "/var/lib/dreamd", sessionLifetime: Duration = .seconds(8 * 3600),
                    authFailures: AddressRateLimiter? = nil) {
            self.secureCookies = secureCookies
            self.dataDirectory = dataDirectory
            self.sessionLifetime = sessionLifetime
            self.authFailures = authFailures
        }
    }

    let stores: Stores
    let options: Options
    let sessions: SessionStore
    let queries: DashboardQueries
    let logger: Logger

    static let sessionCookie = "dreamd_session"
    static let loginCookie = "dreamd_login"
    static let flashCookie = "dreamd_flash"

    public init(stores: Stores, options: Options = Options()) {
        self.stores = stores
        self.options = options
        self.logger = stores.jobs.logger
        self.sessions = SessionStore(client: stores.jobs.client, logger: stores.jobs.logger, lifetime: options.sessionLifetime)
        self.queries = DashboardQueries(client: stores.jobs.client, logger: stores.jobs.logger)
    }

    /// Registers every `/ui` route. They sit beside `/v1`, outside its bearer-key middleware: a page's
    /// credential is the session cookie.
    public func register(on router: Router<APIRequestContext>) {
        let ui = router.group("ui")
        ui.get("assets/app.css") { _, _ in Self.asset(Assets.css, type: "text/css; charset=utf-8") }
        ui.get("assets/app.js") { _, _ in Self.asset(Assets.js, type: "text/javascript; charset=utf-8") }
        ui.get("login", use: loginPage)
        ui.post("login", use: login)
        ui.post("logout", use: logout)
        ui.get(use: overview)
        ui.get("jobs", use: jobsPage)
        ui.get("jobs/:id", use: jobPage)
        ui.get("jobs/:id/video", use: jobVideo)
        ui.post("jobs/:id/cancel", use: cancelJob)
        ui.post("jobs/:id/retry", use: retryJob)
        ui.post("upstreams/:name/resume", use: resumeUpstream)
        ui.get("costs", use: costsPage)
        ui.get("costs.csv", use: costsCSV)
        ui.get("schedules", use: schedulesPage)
        ui.post("schedules/:id/:action", use: scheduleAction)
        ui.get("deliveries", use: deliveriesPage)
        ui.get("deliveries/:id", use: deliveryPage)
        ui.post("deliveries/:id/redeliver", use: redeliver)
        ui.post("subscriptions/:id/recover", use: recover)
        ui.get("checkpoints", use: checkpointsPage)
        ui.post("checkpoints/:id/extend", use: extendCheckpoint)
    }

    static func asset(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "public, max-age=300", .init("X-Content-Type-Options")!: "nosniff"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    // MARK: Sessions

    /// The session of this request's cookie, if it is live.
    func session(_ request: Request) async throws -> DashboardSession? {
        guard let token = request.cookies[Self.sessionCookie]?.value else { return nil }
        return try await sessions.session(token: token)
    }

    func cookie(_ name: String, _ value: String, maxAge: Int) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: "/ui", secure: options.secureCookies, httpOnly: true, sameSite: .strict)
    }

    static func redirect(_ location: String, cookies: [Cookie] = []) -> Response {
        var response = Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
        for cookie in cookies { response.setCookie(cookie) }
        return response
    }

    /// The frame every page shares: who is signed in, the CSRF token, the flash message, the tab.
    func frame(_ session: DashboardSession?, request: Request, nav: String) -> [String: Any] {
        var frame: [String: Any] = [nav: true]
        if let session {
            frame["session"] = ["keyName": session.key.name, "scope": session.key.scope.rawValue, "csrf": session.csrfToken] as [String: Any]
        }
        if let flash = request.cookies[Self.flashCookie]?.value, let message = Self.decodeFlash(flash) {
            frame["flash"] = ["message": message.text, "kind": message.isError ? "error" : "info"] as [String: Any]
        }
        return frame
    }

    /// Renders a page for a signed-in session (else sends the browser to sign in).
    func page(
        _ request: Request, nav: String, title: String, template: String,
        build: (DashboardSession) async throws -> [String: Any]
    ) async throws -> Response {
        guard let session = try await session(request) else { return Self.redirect("/ui/login") }
        do {
            var data = try await build(session)
            data["csrf"] = session.csrfToken
            let html = try PageRenderer.render(template, title: title, page: data, frame: frame(session, request: request, nav: nav))
            var response = PageRenderer.html(html)
            // A flash is shown once (a live refresh carries the cookie too, so only full loads clear it).
            if request.cookies[Self.flashCookie] != nil, request.headers[.init("X-Dreamd-Live")!] == nil {
                response.setCookie(cookie(Self.flashCookie, "", maxAge: 0))
            }
            return response
        } catch let error as PageError {
            return errorPage(error, session: session, request: request)
        }
    }

    /// Runs a state-changing form: a live session, its CSRF token, and a key of `scope`; then
    /// redirects (`303`) where `perform` says, with its message shown once.
    func action(
        _ request: Request, context: APIRequestContext, scope: APIKeyScope,
        perform: (DashboardSession, FormBody) async throws -> (location: String, message: Flash)
    ) async throws -> Response {
        guard let session = try await session(request) else { return Self.redirect("/ui/login") }
        let form = try await FormBody.read(request, context: context)
        guard let token = form["csrf"], FormBody.constantTimeEqual(token, session.csrfToken) else {
            context.logger.notice("dashboard form refused: missing or wrong CSRF token", metadata: ["path": "\(request.uri.path)"])
            return errorPage(.csrf, session: session, request: request)
        }
        guard session.allows(scope) else {
            return errorPage(.forbidden(scope: session.key.scope, needed: scope), session: session, request: request)
        }
        do {
            let (location, message) = try await perform(session, form)
            return Self.redirect(location, cookies: [cookie(Self.flashCookie, Self.encodeFlash(message), maxAge: 60)])
        } catch let error as PageError {
            return errorPage(error, session: session, request: request)
        }
    }

    func errorPage(_ error: PageError, session: DashboardSession?, request: Request) -> Response {
        let page: [String: Any] = ["status": Int(error.status.code), "heading": error.status.reasonPhrase, "message": error.message]
        let html = (try? PageRenderer.render("error", title: error.status.reasonPhrase, page: page, frame: frame(session, request: request, nav: "")))
            ?? "<!doctype html><title>error</title><p>\(error.status.code)</p>"
        return PageRenderer.html(html, status: error.status)
    }

    // MARK: Flash messages

    /// A message shown once after an action.
    struct Flash: Sendable {
        var text: String
        var isError = false
    }

    static func encodeFlash(_ flash: Flash) -> String {
        Data(((flash.isError ? "!" : "") + flash.text).utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func decodeFlash(_ value: String) -> Flash? {
        var base64 = value.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard !value.isEmpty, let data = Data(base64Encoded: base64), var text = String(data: data, encoding: .utf8) else { return nil }
        let isError = text.hasPrefix("!")
        if isError { text.removeFirst() }
        return Flash(text: String(text.prefix(300)), isError: isError)
    }
}

/// A page or form that cannot be served, shown as an error page.
enum PageError: Error {
    case notFound(String)
    case csrf
    case forbidden(scope: APIKeyScope, needed: APIKeyScope)
    case conflict(String)
    case invalid(String)

    var status: HTTPResponse.Status {
        switch self {
        case .notFound: .notFound
        case .csrf, .forbidden: .forbidden
        case .conflict: .conflict
        case .invalid: .unprocessableContent
        }
    }

    var message: String {
        switch self {
        case .notFound(let what): what
        case .csrf: "This form was refused: it did not carry this session's CSRF token. Reload the page and try again."
        case .forbidden(let scope, let needed): "This session's key has scope \(scope.rawValue); this needs \(needed.rawValue)."
        case .conflict(let why), .invalid(let why): why
        }
    }
}
