import Foundation

/// A Standard Webhooks signing secret: `whsec_` followed by the base64 of 24–64 random bytes.
///
/// The key bytes are what HMAC uses. The secret's `description` is redacted so that it never
/// reaches a log by accident; `text` is the only way to the full value.
public struct WebhookSecret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The prefix every secret carries.
    public static let prefix = "whsec_"
    /// Accepted key lengths in bytes (Standard Webhooks 1.0).
    public static let keyLengths = 24...64
    /// Length of generated keys.
    public static let generatedKeyLength = 32

    /// The secret as users see it: `whsec_<base64>`.
    public let text: String
    /// The HMAC key: the base64-decoded part after `whsec_`.
    public let key: [UInt8]

    /// Why a secret was refused.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case missingPrefix
        case notBase64
        case badLength(Int)

        public var description: String {
            switch self {
            case .missingPrefix: "must start with whsec_"
            case .notBase64: "the part after whsec_ must be base64"
            case .badLength(let count):
                "the part after whsec_ must decode to \(WebhookSecret.keyLengths.lowerBound) to \(WebhookSecret.keyLengths.upperBound) bytes, got \(count)"
            }
        }
    }

    /// Parses `whsec_<base64>`.
    public init(_ text: String) throws(ParseError) {
        guard text.hasPrefix(Self.prefix) else { throw .missingPrefix }
        let encoded = String(text.dropFirst(Self.prefix.count))
        guard let data = Data(base64Encoded: encoded) else { throw .notBase64 }
        guard Self.keyLengths.contains(data.count) else { throw .badLength(data.count) }
        self.text = text
        self.key = Array(data)
    }

    /// Wraps key bytes (24–64 of them).
    public init(key: [UInt8]) throws(ParseError) {
        guard Self.keyLengths.contains(key.count) else { throw .badLength(key.count) }
        self.key = key
        self.text = Self.prefix + Data(key).base64EncodedString()
    }

    /// A new secret of `generatedKeyLength` bytes from the system's secure random generator.
    public static func generate() -> WebhookSecret {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<generatedKeyLength).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        // 32 bytes is within keyLengths, so this cannot fail.
        return (try? WebhookSecret(key: bytes)) ?? WebhookSecret(unchecked: bytes)
    }

    private init(unchecked key: [UInt8]) {
        self.key = key
        self.text = Self.prefix + Data(key).base64EncodedString()
    }

    public var description: String { "whsec_…(redacted)" }
    public var debugDescription: String { description }
}
