import Crypto
import Foundation

/// Standard Webhooks 1.0 signatures: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
///
/// Pure functions, no I/O. During a secret rotation the header carries one signature per secret,
/// space-separated; a receiver accepts the message if any of them verifies.
public enum WebhookSignature {
    /// The signature scheme version written before each signature.
    public static let version = "v1"

    /// The bytes that are signed: `"{id}.{timestamp}.{body}"`.
    public static func signedContent(id: String, timestamp: Int64, body: some DataProtocol) -> [UInt8] {
        var content = Array("\(id).\(timestamp).".utf8)
        content.append(contentsOf: body)
        return content
    }

    /// One signature, `v1,<base64>`.
    public static func sign(id: String, timestamp: Int64, body: some DataProtocol, secret: WebhookSecret) -> String {
        let mac = HMAC<SHA256>.authenticationCode(
            for: signedContent(id: id, timestamp: timestamp, body: body), using: SymmetricKey(data: secret.key))
        return "\(version),\(Data(mac).base64EncodedString())"
    }

    /// The `webhook-signature` header: one signature per secret, space-separated, in the given order.
    public static func header(id: String, timestamp: Int64, body: some DataProtocol, secrets: [WebhookSecret]) -> String {
        secrets.map { sign(id: id, timestamp: timestamp, body: body, secret: $0) }.joined(separator: " ")
    }

    /// Why a message did not verify.
    public enum VerificationError: Error, Equatable {
        case timestampOutOfTolerance
        case noMatchingSignature
    }

    /// Verifies a received message the way a receiver should: the timestamp within `tolerance`
    /// of `now`, and any `v1` signature of the header matching in constant time.
    public static func verify(
        id: String, timestamp: Int64, body: some DataProtocol, header: String, secret: WebhookSecret,
        now: Date = Date(), tolerance: TimeInterval = 300
    ) throws(VerificationError) {
        guard abs(now.timeIntervalSince1970 - Double(timestamp)) <= tolerance else { throw .timestampOutOfTolerance }
        let content = signedContent(id: id, timestamp: timestamp, body: body)
        let key = SymmetricKey(data: secret.key)
        for candidate in header.split(separator: " ") {
            let parts = candidate.split(separator: ",", maxSplits: 1)
            guard parts.count == 2, parts[0] == version, let received = Data(base64Encoded: String(parts[1])) else { continue }
            // Constant-time comparison inside swift-crypto.
            if HMAC<SHA256>.isValidAuthenticationCode(received, authenticating: content, using: key) { return }
        }
        throw .noMatchingSignature
    }
}
