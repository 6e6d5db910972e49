import DreamdCore
import DreamdStore
import Hummingbird
import Logging
import NIOCore

/// Turns every error into the contract's JSON error shape. Bad input never becomes a 500; an
/// unexpected failure is logged and answered 500 without internals. Logs name the matched route's
/// pattern (`/callbacks/{provider}/{token}`), never the request's path, which may carry a credential.
public struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return try error.response(from: request, context: context)
        } catch let error as ValidationError {
            return try APIError.invalid(error).response(from: request, context: context)
        } catch is NIOTooManyBytesError {
            return try APIError(.contentTooLarge, code: "payload_too_large", message: "request body exceeds \(context.maxUploadSize) bytes")
                .response(from: request, context: context)
        } catch let error as HTTPError {
            let code: String = switch error.status {
            case .notFound: "not_found"
            case .methodNotAllowed: "method_not_allowed"
            case .contentTooLarge: "payload_too_large"
            case .unauthorized: "unauthorized"
            default: error.status.code < 500 ? "bad_request" : "internal_error"
            }
            let message = error.body ?? (error.status == .notFound ? "no route for \(request.method) \(CallbackRedaction.redact(request.uri.path))" : error.status.reasonPhrase)
            return try APIError(error.status, code: code, message: message).response(from: request, context: context)
        } catch let error as any HTTPResponseError where error.status.code < 500 {
            return try APIError(error.status, code: "bad_request", message: error.status.reasonPhrase).response(from: request, context: context)
        } catch where UnstorableValue.sqlState(of: error) != nil {
            context.logger.notice("request refused: the database cannot store a value",
                                  metadata: ["sqlstate": "\(UnstorableValue.sqlState(of: error) ?? "")", "route": "\(Self.route(context))"])
            return try APIError(.unprocessableContent, code: "unstorable_value",
                                message: "the request holds a value the database cannot store (a NUL character, an invalid character, or a value past a size or nesting limit)")
                .response(from: request, context: context)
        } catch where DatabaseAvailability.isUnavailable(error) {
            context.logger.warning("request failed: database unavailable", metadata: ["error": "\(LogSafe.describe(error))", "route": "\(Self.route(context))"])
            var answer = APIError(.serviceUnavailable, code: "database_unavailable", message: "the database cannot be reached; retry shortly")
            answer.headers[.retryAfter] = "5"
            return try answer.response(from: request, context: context)
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(LogSafe.describe(error))", "route": "\(Self.route(context))"])
            return try APIError(.internalServerError, code: "internal_error", message: "internal error; see the daemon's log")
                .response(from: request, context: context)
        }
    }

    /// The matched route's pattern, for logs.
    static func route(_ context: Context) -> String {
        context.endpointPath ?? "(no route)"
    }
}
