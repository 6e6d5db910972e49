/// Event-type filters of a subscription: `job.succeeded`, `job.*`, `*`.
///
/// A filter is made of `[a-z_.*]`; `*` matches any run of characters (including dots and none).
/// The database does the fan-out with the same rule (`dreamd_event_type_matches` turns `*` into a
/// `LIKE` `%` after escaping `%` and `_`); this type validates filters and mirrors the rule for tests.
public struct EventTypeFilter: Sendable, Hashable, CustomStringConvertible {
    public let pattern: String

    /// Event types dreamd emits (api.md). Filters may name others: later issues add types.
    public static let knownTypes = [
        "job.succeeded", "job.failed", "job.cancelled",
        "checkpoint.expiring", "checkpoint.expired", "checkpoint.archived", "schedule.skipped",
    ]
    /// Longest accepted filter.
    public static let maxLength = 100

    /// Why a filter was refused.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case empty
        case tooLong
        case invalidCharacter(Character)

        public var description: String {
            switch self {
            case .empty: "must not be empty"
            case .tooLong: "must be at most \(EventTypeFilter.maxLength) characters"
            case .invalidCharacter(let c): "may contain only a-z, _, . and * (got \"\(c)\")"
            }
        }
    }

    public init(_ pattern: String) throws(ParseError) {
        guard !pattern.isEmpty else { throw .empty }
        guard pattern.count <= Self.maxLength else { throw .tooLong }
        for character in pattern where !(("a"..."z").contains(character) || character == "_" || character == "." || character == "*") {
            throw .invalidCharacter(character)
        }
        self.pattern = pattern
    }

    /// Whether `type` matches: `*` stands for any run of characters.
    public func matches(_ type: String) -> Bool {
        Self.glob(Array(pattern.utf8)[...], Array(type.utf8)[...])
    }

    private static func glob(_ pattern: ArraySlice<UInt8>, _ text: ArraySlice<UInt8>) -> Bool {
        guard let first = pattern.first else { return text.isEmpty }
        if first == UInt8(ascii: "*") {
            let rest = pattern.dropFirst()
            var suffix = text
            while true {
                if glob(rest, suffix) { return true }
                guard !suffix.isEmpty else { return false }
                suffix = suffix.dropFirst()
            }
        }
        guard let head = text.first, head == first else { return false }
        return glob(pattern.dropFirst(), text.dropFirst())
    }

    public var description: String { pattern }
}
