import HTTPTypes
import Hummingbird

/// The `Idempotency-Key` request header of `POST /v1/jobs` and `POST /v1/jobs/bulk`.
enum IdempotencyKey {
    static let headerName = HTTPField.Name("Idempotency-Key")!
    /// The longest key (the OpenAPI document says the same).
    static let maxLength = 255

    /// The request's key, if it sent one: 1 to 255 visible ASCII characters, else 400.
    static func read(from request: Request) throws(APIError) -> String? {
        guard let key = request.headers[headerName] else { return nil }
        guard (1...maxLength).contains(key.utf8.count), key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw APIError.badRequest("Idempotency-Key must be 1 to \(maxLength) visible ASCII characters", code: "invalid_idempotency_key")
        }
        return key
    }
}
