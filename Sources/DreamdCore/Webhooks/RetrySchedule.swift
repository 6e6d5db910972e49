import Foundation

/// The waits between webhook attempts (`DREAMD_WEBHOOK_RETRY_SCHEDULE`), with jitter and
/// `Retry-After` handling.
///
/// With the default `5s,5m,30m,2h,5h,10h,10h` a delivery is tried up to 8 times: at once, then after
/// each wait in turn (±20 %). A `Retry-After` on 429/503 is honoured: the next try is not earlier than
/// it asks, but never earlier than the schedule's own wait, and never later than the schedule's
/// longest wait, so a receiver cannot park a delivery for ever.
public struct RetrySchedule: Sendable, Hashable, CustomStringConvertible {
    public let waits: [Duration]
    /// Fraction of each wait added or removed at random (`0.2` = ±20 %).
    public let jitter: Double

    /// Standard Webhooks / Svix: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    public static let standard = RetrySchedule(unchecked: [
        .seconds(5), .seconds(300), .seconds(1800), .seconds(7200), .seconds(18_000), .seconds(36_000), .seconds(36_000),
    ])

    /// Why a schedule was refused.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case empty
        case tooMany(Int)
        case invalid(String)

        public var description: String {
            switch self {
            case .empty: "must list at least one wait, e.g. 5s,5m,30m"
            case .tooMany(let count): "may list at most 50 waits, got \(count)"
            case .invalid(let item): "\"\(item)\" is not a positive duration (e.g. 500ms, 5s, 10m, 2h)"
            }
        }
    }

    public init(waits: [Duration], jitter: Double = 0.2) throws(ParseError) {
        guard !waits.isEmpty else { throw .empty }
        guard waits.count <= 50 else { throw .tooMany(waits.count) }
        if let bad = waits.first(where: { $0 <= .zero }) { throw .invalid(DurationParser.format(bad)) }
        self.waits = waits
        self.jitter = min(max(jitter, 0), 0.9)
    }

    private init(unchecked waits: [Duration], jitter: Double = 0.2) {
        self.waits = waits
        self.jitter = jitter
    }

    /// Parses a comma list such as `5s,5m,30m,2h,5h,10h,10h`.
    public static func parse(_ text: String, jitter: Double = 0.2) throws(ParseError) -> RetrySchedule {
        let items = text.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
        var waits: [Duration] = []
        for item in items {
            guard let wait = try? DurationParser.parse(item), wait > .zero else { throw .invalid(item) }
            waits.append(wait)
        }
        return try RetrySchedule(waits: waits, jitter: jitter)
    }

    /// How many attempts a delivery gets in all: the first, then one after each wait.
    public var maxAttempts: Int { waits.count + 1 }

    /// The longest wait: the bound on a `Retry-After`.
    public var longestWait: Duration { waits.max() ?? .zero }

    /// The wait after failed attempt number `attempt` (1-based), without jitter; `nil` when that was the last.
    public func nominalWait(afterAttempt attempt: Int) -> Duration? {
        guard attempt >= 1, attempt <= waits.count else { return nil }
        return waits[attempt - 1]
    }

    /// The wait before the next try after failed attempt `attempt`, or `nil` when no try is left.
    ///
    /// - Parameter retryAfter: the receiver's `Retry-After` (429/503 only), honoured within the bounds
    ///   described on the type.
    public func wait<G: RandomNumberGenerator>(afterAttempt attempt: Int, retryAfter: Duration? = nil, using generator: inout G) -> Duration? {
        guard let nominal = nominalWait(afterAttempt: attempt) else { return nil }
        let spread = jitter > 0 ? Double.random(in: -jitter...jitter, using: &generator) : 0
        let scheduled = Duration.milliseconds(Int64((nominal.seconds * (1 + spread) * 1000).rounded()))
        guard let retryAfter else { return scheduled }
        return max(scheduled, min(retryAfter, longestWait))
    }

    public func wait(afterAttempt attempt: Int, retryAfter: Duration? = nil) -> Duration? {
        var generator = SystemRandomNumberGenerator()
        return wait(afterAttempt: attempt, retryAfter: retryAfter, using: &generator)
    }

    public var description: String { waits.map(DurationParser.format).joined(separator: ",") }
}

/// Parses an HTTP `Retry-After` value: delta-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`).
public enum RetryAfter {
    public static func parse(_ value: String, now: Date = Date()) -> Duration? {
        let text = value.trimmingSpaces()
        if let seconds = Int64(text) { return seconds >= 0 ? .seconds(seconds) : nil }
        guard let date = parseHTTPDate(text) else { return nil }
        let delta = date.timeIntervalSince(now)
        return .milliseconds(Int64(max(0, delta) * 1000))
    }

    /// IMF-fixdate only (RFC 9110 §5.6.7), the form senders must use.
    static func parseHTTPDate(_ text: String) -> Date? {
        // "Sun, 06 Nov 1994 08:49:37 GMT"
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[5] == "GMT", let day = Int(parts[1]), let year = Int(parts[3]) else { return nil }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard let monthIndex = months.firstIndex(of: String(parts[2])) else { return nil }
        let time = parts[4].split(separator: ":")
        guard time.count == 3, let hour = Int(time[0]), let minute = Int(time[1]), let second = Int(time[2]) else { return nil }
        let iso = String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", year, monthIndex + 1, day, hour, minute, second)
        return ISO8601.parse(iso)
    }
}
