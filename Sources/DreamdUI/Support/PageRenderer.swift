import Foundation
import Hummingbird
import Mustache

/// Renders the dashboard's pages: a page template into the layout, as an HTML response with the
/// dashboard's security headers. `{{ }}` HTML-escapes every value; only the layout's `{{{body}}}`
/// (the page, already rendered and escaped) is inserted raw.
struct PageRenderer: Sendable {
    /// The dashboard's templates by name.
    static let templates: [String: String] = [
        "layout": LayoutTemplates.layout, "login": LayoutTemplates.login, "error": LayoutTemplates.error,
        "overview": JobTemplates.overview, "jobs": JobTemplates.jobs, "job": JobTemplates.job,
        "costs": OperationsTemplates.costs, "schedules": OperationsTemplates.schedules,
        "deliveries": OperationsTemplates.deliveries, "delivery": OperationsTemplates.delivery,
        "checkpoints": OperationsTemplates.checkpoints,
    ]

    /// The compiled library, or why a template does not parse (a programmer's error, caught by the tests).
    static let library: Result<MustacheLibrary, DashboardError> = {
        var library = MustacheLibrary()
        for (name, text) in templates {
            do { try library.register(text, named: name) } catch {
                return .failure(.template(name: name, reason: String(describing: error)))
            }
        }
        return .success(library)
    }()

    /// The page's HTML inside the layout.
    static func render(_ template: String, title: String, page: [String: Any], frame: [String: Any]) throws(DashboardError) -> String {
        let library = try library.get()
        guard let body = library.render(page, withTemplate: template) else { throw .template(name: template, reason: "not registered") }
        var frame = frame
        frame["title"] = title
        frame["body"] = body
        guard let html = library.render(frame, withTemplate: "layout") else { throw .template(name: "layout", reason: "not registered") }
        return html
    }

    /// Headers of every dashboard page: no caching, no framing, scripts and styles from the daemon only.
    static func securityHeaders() -> HTTPFields {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers[.init("Content-Security-Policy")!] =
            "default-src 'self'; img-src 'self' data: https:; media-src 'self'; style-src 'self'; script-src 'self'; "
            + "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
        headers[.init("X-Content-Type-Options")!] = "nosniff"
        headers[.init("Referrer-Policy")!] = "same-origin"
        return headers
    }

    static func html(_ text: String, status: HTTPResponse.Status = .ok, extra: HTTPFields = [:]) -> Response {
        var headers = securityHeaders()
        for field in extra { headers.append(field) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// Errors of the dashboard that are not a request's fault.
public enum DashboardError: Error, CustomStringConvertible, Sendable {
    case template(name: String, reason: String)

    public var description: String {
        switch self {
        case .template(let name, let reason): "dashboard template \(name): \(reason)"
        }
    }
}
