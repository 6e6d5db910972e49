import DreamdAPI
import DreamdStore
import Foundation
import Hummingbird

/// Signing in and out.
extension Dashboard {
    /// The sign-in form. It is CSRF-protected too (a double-submit token: a fresh random value in a
    /// `SameSite=Strict` cookie and in the form), so another site cannot sign a browser in with its own key.
    @Sendable func loginPage(_ request: Request, context: APIRequestContext) async throws -> Response {
        if try await session(request) != nil { return Self.redirect("/ui") }
        return loginForm(request: request, status: .ok, flash: nil)
    }

    func loginForm(request: Request, status: HTTPResponse.Status, flash: Flash?) -> Response {
        let token = SessionStore.randomToken()
        var frame = frame(nil, request: request, nav: "")
        if let flash { frame["flash"] = ["message": flash.text, "kind": flash.isError ? "error" : "info"] as [String: Any] }
        let html = (try? PageRenderer.render("login", title: "Sign in", page: ["csrf": token], frame: frame)) ?? "sign-in page unavailable"
        var response = PageRenderer.html(html, status: status)
        response.setCookie(cookie(Self.loginCookie, token, maxAge: 3600))
        return response
    }

    @Sendable func login(_ request: Request, context: APIRequestContext) async throws -> Response {
        let address = context.clientAddress
        if let failures = options.authFailures, let wait = failures.wait(for: address) {
            return loginForm(request: request, status: .tooManyRequests,
                             flash: Flash(text: "Too many failed sign-ins from this address; try again in \(wait) s.", isError: true))
        }
        let form = try await FormBody.read(request, context: context)
        guard let expected = request.cookies[Self.loginCookie]?.value, let sent = form["csrf"], FormBody.constantTimeEqual(expected, sent) else {
            context.logger.notice("dashboard sign-in refused: missing or wrong CSRF token")
            return errorPage(.csrf, session: nil, request: request)
        }
        let token = (form["key"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard let key = try await stores.keys.authenticate(token: token) else {
            _ = options.authFailures?.admit(address)
            return loginForm(request: request, status: .unauthorized, flash: Flash(text: "Unknown or revoked API key.", isError: true))
        }
        let session = try await sessions.open(keyID: key.id)
        context.logger.info("dashboard session opened", metadata: ["api_key": "\(key.prefix)…", "scope": "\(key.scope.rawValue)"])
        let seconds = Int(options.sessionLifetime.components.seconds)
        return Self.redirect("/ui", cookies: [cookie(Self.sessionCookie, session, maxAge: seconds), cookie(Self.loginCookie, "", maxAge: 0)])
    }

    @Sendable func logout(_ request: Request, context: APIRequestContext) async throws -> Response {
        guard let token = request.cookies[Self.sessionCookie]?.value, let session = try await sessions.session(token: token) else {
            return Self.redirect("/ui/login", cookies: [cookie(Self.sessionCookie, "", maxAge: 0)])
        }
        let form = try await FormBody.read(request, context: context)
        guard let sent = form["csrf"], FormBody.constantTimeEqual(sent, session.csrfToken) else {
            return errorPage(.csrf, session: session, request: request)
        }
        try await sessions.close(token: token)
        return Self.redirect("/ui/login", cookies: [cookie(Self.sessionCookie, "", maxAge: 0)])
    }
}
