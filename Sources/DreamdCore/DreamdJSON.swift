import Foundation

/// The JSON coders used on every wire dreamd speaks: ISO-8601 dates with fractional seconds, sorted keys.
public enum DreamdJSON {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(formatDate(date))
        }
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = parseDate(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected an ISO-8601 date-time, got \"\(text)\"")
            }
            return date
        }
        return decoder
    }

    /// `2026-11-23T13:23:30.123456Z`: UTC, microseconds.
    public static func formatDate(_ date: Date) -> String {
        ISO8601.format(date)
    }

    /// Parses ISO-8601 date-times with or without fractional seconds and zone (no zone means UTC).
    public static func parseDate(_ text: String) -> Date? {
        ISO8601.parse(text)
    }

    /// Encodes a value to a UTF-8 JSON string.
    public static func string<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encoder().encode(value), as: UTF8.self)
    }

    /// Decodes a value from JSON text.
    public static func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        try decoder().decode(type, from: Data(text.utf8))
    }
}

extension DreamdJSON {
    /// Converts any encodable value to a `JSONValue` tree.
    public static func value<T: Encodable>(_ value: T) throws -> JSONValue {
        try decoder().decode(JSONValue.self, from: encoder().encode(value))
    }
}
