import DreamdCore
import DreamdStore
import Foundation

/// Parsing of query-string values, one way for every route: a bad value is 400 `invalid_parameter`
/// naming the parameter. The OpenAPI document states the same rules (`OpenAPIDocument.stateList`, ...).
enum QueryValue {
    static func invalid(_ message: String) -> APIError {
        APIError.badRequest(message, code: "invalid_parameter")
    }

    /// A comma-separated list of names from `allowed` (`state=failed,cancelled`); an empty item is
    /// refused like an unknown one.
    static func list(_ text: Substring?, name: String, allowed: [String]) throws -> [String]? {
        guard let text else { return nil }
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        if let unknown = items.first(where: { !allowed.contains($0) }) {
            throw invalid("\(name): unknown state \(unknown) (one of \(allowed.joined(separator: ", ")))")
        }
        return items
    }

    /// The same, for an enum's cases.
    static func list<Value: RawRepresentable & CaseIterable>(_ text: Substring?, name: String, of _: Value.Type) throws -> [Value]?
    where Value.RawValue == String {
        try list(text, name: name, allowed: Value.allCases.map(\.rawValue))?.compactMap(Value.init(rawValue:))
    }

    static func uuid(_ text: Substring?, name: String) throws -> UUID? {
        guard let text else { return nil }
        guard let id = UUID(uuidString: String(text)) else { throw invalid("\(name) must be a UUID") }
        return id
    }

    static func int(_ text: Substring?, name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let text else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw invalid("\(name) must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// `limit=`: 1 to 500 on every list.
    static func limit(_ text: Substring?) throws -> Int? { try int(text, name: "limit", in: 1...500) }

    static func date(_ text: Substring?, name: String) throws -> Date? {
        guard let text else { return nil }
        guard let date = DreamdJSON.parseDate(String(text)) else { throw invalid("\(name) must be an ISO-8601 date-time") }
        return date
    }

    static func cursor(_ text: Substring?) throws -> JobCursor? {
        guard let text else { return nil }
        guard let cursor = JobCursor(token: String(text)) else { throw invalid("cursor is not valid") }
        return cursor
    }
}
