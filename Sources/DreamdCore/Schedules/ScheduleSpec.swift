import Foundation

/// When a schedule fires: a cron expression in a time zone, or a fixed interval.
///
/// `@every <duration>` ticks are aligned to the Unix epoch (whole multiples of the interval since
/// 1970-01-01T00:00:00Z), so every process computes the same ticks without shared state and the
/// time zone does not matter: `@every 1h` fires on the hour, `@every 15m` at :00, :15, :30 and :45 UTC.
public enum ScheduleSpec: Sendable, Hashable, CustomStringConvertible {
    case cron(CronExpression)
    /// A fixed interval in whole seconds (at least 1).
    case every(seconds: Int64)

    /// Why a schedule expression or time zone was refused.
    public enum ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        case cron(CronParseError)
        case invalidEvery(String)
        case neverFires(String)
        case unknownTimeZone(String)

        public var description: String {
            switch self {
            case .cron(let error): error.description
            case .invalidEvery(let why): why
            case .neverFires(let text): "\"\(text)\" never fires (no date matches it)"
            case .unknownTimeZone(let name): "unknown time zone \"\(name)\" (use an IANA name such as UTC, Europe/Berlin, America/New_York)"
            }
        }

        /// The request field the problem belongs to.
        public var field: String {
            if case .unknownTimeZone = self { return "timezone" }
            return "cron"
        }
    }

    /// Parses `cron` text: five fields, a macro, or `@every <duration>` (e.g. `@every 90s`, `@every 1h30m`).
    public init(parsing text: String) throws(ParseError) {
        let trimmed = text.trimmingSpaces()
        let lower = trimmed.lowercased()
        if lower.hasPrefix("@every") {
            let rest = trimmed.dropFirst("@every".count)
            guard rest.first?.isWhitespace == true else {
                throw .invalidEvery("@every needs a duration, e.g. \"@every 30s\" or \"@every 1h30m\"")
            }
            let duration: Duration
            do throws(DurationParser.ParseError) { duration = try DurationParser.parse(String(rest)) } catch {
                throw .invalidEvery("@every: \(error.description)")
            }
            let (seconds, attoseconds) = duration.components
            guard attoseconds == 0 else { throw .invalidEvery("@every: the interval must be a whole number of seconds") }
            guard seconds >= 1 else { throw .invalidEvery("@every: the interval must be at least 1s") }
            self = .every(seconds: seconds)
            return
        }
        do throws(CronParseError) { self = .cron(try CronExpression(trimmed)) } catch { throw .cron(error) }
        // A valid expression that no date satisfies, such as 30 February.
        if next(after: Date(timeIntervalSince1970: 0), in: .gmt) == nil { throw .neverFires(trimmed) }
    }

    public var description: String {
        switch self {
        case .cron(let expression): expression.source
        case .every(let seconds): "@every \(DurationParser.format(.seconds(seconds)))"
        }
    }

    /// The first tick strictly after `date`.
    public func next(after date: Date, in timeZone: TimeZone) -> Date? {
        switch self {
        case .cron(let expression):
            return expression.next(after: date, in: timeZone)
        case .every(let seconds):
            let interval = Double(seconds)
            let index = (date.timeIntervalSince1970 / interval).rounded(.down)
            var tick = (index + 1) * interval
            if tick <= date.timeIntervalSince1970 { tick += interval }
            return Date(timeIntervalSince1970: tick)
        }
    }

    /// The next `count` ticks after `date`.
    public func upcoming(after date: Date, in timeZone: TimeZone, count: Int) -> [Date] {
        var ticks: [Date] = []
        var cursor = date
        while ticks.count < count, let tick = next(after: cursor, in: timeZone) {
            ticks.append(tick)
            cursor = tick
        }
        return ticks
    }

    /// `date` as clocks in `timeZone` show it, with the offset: `2026-03-08T03:00:00-04:00`.
    public static func localTime(_ date: Date, in timeZone: TimeZone) -> String {
        WallClock.localString(date, in: timeZone)
    }

    /// Resolves an IANA time zone name (`UTC`, `Europe/Berlin`, ...). Abbreviations and offsets
    /// such as `EST` or `GMT+5` are refused: they hide daylight-saving rules.
    public static func timeZone(named name: String) throws(ParseError) -> TimeZone {
        if name == "UTC" || name == "Etc/UTC" || name == "GMT" { return .gmt }
        // Area/Location names only; Foundation would also take abbreviations and offsets ("GMT+0500").
        guard name.contains("/"), let zone = TimeZone(identifier: name), zone.identifier == name else {
            throw .unknownTimeZone(name)
        }
        return zone
    }
}

/// What the scheduler does with a tick while the schedule's previous run has not finished.
public enum OverlapPolicy: String, Sendable, Codable, CaseIterable, Hashable {
    /// Create no job; record a `schedule.skipped` event instead.
    case skip
    /// Create the job anyway.
    case allow
}

/// What the scheduler does with ticks it missed (more than the misfire threshold late, e.g. every
/// daemon was down).
public enum CatchUpPolicy: String, Sendable, Codable, CaseIterable, Hashable {
    /// Drop missed ticks; the schedule resumes at its next tick.
    case none
    /// One job, for the latest missed tick.
    case one
    /// One job per missed tick, the most recent `TickPlanner.allCap` at most.
    case all
}
