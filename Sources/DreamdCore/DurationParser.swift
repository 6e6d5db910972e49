/// Parses durations written as in the configuration contract: `500ms`, `5s`, `10m`, `48h`, `2d`,
/// and sums such as `1h30m`.
public enum DurationParser {
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case empty
        case invalid(String)

        public var description: String {
            switch self {
            case .empty: "empty duration"
            case .invalid(let text): "invalid duration \"\(text)\" (expected e.g. 500ms, 5s, 10m, 48h)"
            }
        }
    }

    public static func parse(_ text: String) throws(ParseError) -> Duration {
        let trimmed = text.trimmingSpaces()
        guard !trimmed.isEmpty else { throw .empty }
        var total: Duration = .zero
        var index = trimmed.startIndex
        var sawComponent = false
        while index < trimmed.endIndex {
            let numberStart = index
            while index < trimmed.endIndex, trimmed[index].isNumber || trimmed[index] == "." { index = trimmed.index(after: index) }
            guard numberStart < index, let value = Double(trimmed[numberStart..<index]), value.isFinite else {
                throw .invalid(text)
            }
            let unitStart = index
            while index < trimmed.endIndex, trimmed[index].isLetter { index = trimmed.index(after: index) }
            let multiplier: Double
            switch trimmed[unitStart..<index] {
            case "ms": multiplier = 0.001
            case "s": multiplier = 1
            case "m": multiplier = 60
            case "h": multiplier = 3600
            case "d": multiplier = 86_400
            default: throw .invalid(text)
            }
            let seconds = value * multiplier
            guard seconds < 1e10 else { throw .invalid(text) }
            total += .milliseconds(Int64((seconds * 1000).rounded()))
            sawComponent = true
        }
        guard sawComponent else { throw .invalid(text) }
        return total
    }

    /// Formats a duration the way it is parsed, using the largest exact unit.
    public static func format(_ duration: Duration) -> String {
        let ms = Int64((duration.seconds * 1000).rounded())
        if ms == 0 { return "0s" }
        for (unit, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] where ms % size == 0 {
            return "\(ms / size)\(unit)"
        }
        return "\(ms)ms"
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var text = Substring(self)
        while text.first?.isWhitespace == true { text.removeFirst() }
        while text.last?.isWhitespace == true { text.removeLast() }
        return String(text)
    }
}
