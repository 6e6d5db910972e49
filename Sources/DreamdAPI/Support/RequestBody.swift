import DreamdCore
import Foundation
import Hummingbird

/// Reads request bodies within the context's limit and parses them as JSON with clear errors.
///
/// Every JSON body goes through here, so no route can store what PostgreSQL refuses: text that is not
/// UTF-8, a lone surrogate (`\ud800`) or nesting past 512 levels is 400 `invalid_json`; a string holding
/// U+0000 is 422 naming its field.
enum RequestBody {
    static func json(_ request: Request, context: some RequestContext) async throws -> JSONValue {
        var request = request
        let buffer = try await request.collectBody(upTo: context.maxUploadSize)
        guard buffer.readableBytes > 0 else { throw APIError.badRequest("the request body is empty; send a JSON object", code: "invalid_json") }
        let value = try parse(Array(buffer.readableBytesView))
        do { try value.requireStorable() } catch { throw APIError.invalid(error, code: "invalid_value") }
        return value
    }

    /// Parses one JSON document; the error says where and why it is not JSON.
    static func parse(_ bytes: [UInt8]) throws(APIError) -> JSONValue {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw APIError.badRequest("the request body is not valid UTF-8", code: "invalid_json")
        }
        do {
            return try JSONValue.parse(text)
        } catch {
            throw APIError.badRequest("the request body is not valid JSON: \(error.description)", code: "invalid_json")
        }
    }
}
