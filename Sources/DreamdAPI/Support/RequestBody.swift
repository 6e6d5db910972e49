import DreamdCore
import Foundation
import Hummingbird

/// Reads request bodies within the context's limit and parses them as JSON with clear errors.
enum RequestBody {
    static func json(_ request: Request, context: some RequestContext) async throws -> JSONValue {
        var request = request
        let buffer = try await request.collectBody(upTo: context.maxUploadSize)
        guard buffer.readableBytes > 0 else { throw APIError.badRequest("the request body is empty; send a JSON object", code: "invalid_json") }
        do {
            return try JSONValue.parse(String(decoding: buffer.readableBytesView, as: UTF8.self))
        } catch {
            throw APIError.badRequest("the request body is not valid JSON", code: "invalid_json")
        }
    }
}
