import DreamdCore
import Foundation
import Hummingbird

/// An error answer of the API: `{"error": {"code", "message", "details"?}}` with an HTTP status.
public struct APIError: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var details: JSONValue?
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, code: String, message: String, details: JSONValue? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.details = details
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var error: [String: JSONValue] = ["code": .string(code), "message": .string(message)]
        if let details { error["details"] = details }
        var response = try JSONResponse.make(["error": .object(error)] as JSONValue, status: status)
        for field in headers { response.headers.append(field) }
        return response
    }

    public static func badRequest(_ message: String, code: String = "bad_request") -> APIError {
        APIError(.badRequest, code: code, message: message)
    }

    public static func notFound(_ message: String) -> APIError {
        APIError(.notFound, code: "not_found", message: message)
    }

    /// 429 with `Retry-After: <seconds>`.
    public static func rateLimited(_ message: String, retryAfter seconds: Int) -> APIError {
        var error = APIError(.tooManyRequests, code: "rate_limited", message: message)
        error.headers[.retryAfter] = "\(seconds)"
        return error
    }

    public static func invalid(_ error: ValidationError, code: String = "invalid_job") -> APIError {
        APIError(.unprocessableContent, code: code, message: error.description, details: ["field": .string(error.field)])
    }
}

/// Builds JSON responses with dreamd's encoder.
public enum JSONResponse {
    public static func make<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        var data = try DreamdJSON.encoder().encode(value)
        data.append(UInt8(ascii: "\n"))
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }
}
