import Foundation

/// One of the five fields of a cron expression.
public enum CronField: String, Sendable, CaseIterable, CustomStringConvertible {
    case minute
    case hour
    case dayOfMonth = "day-of-month"
    case month
    case dayOfWeek = "day-of-week"

    /// The values the field accepts (day-of-week also accepts 7 for Sunday).
    public var range: ClosedRange<Int> {
        switch self {
        case .minute: 0...59
        case .hour: 0...23
        case .dayOfMonth: 1...31
        case .month: 1...12
        case .dayOfWeek: 0...7
        }
    }

    /// Names accepted in place of numbers (case-insensitive).
    var names: [String: Int] {
        switch self {
        case .month:
            ["jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12]
        case .dayOfWeek:
            ["sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6]
        default: [:]
        }
    }

    public var description: String { rawValue }
}

/// Why a cron expression was refused. Each case names the field and the token at fault.
public enum CronParseError: Error, Sendable, Hashable, CustomStringConvertible {
    case empty
    case wrongFieldCount(Int)
    case unknownMacro(String)
    case invalidToken(field: CronField, token: String)
    case outOfRange(field: CronField, value: Int)
    case reversedRange(field: CronField, token: String)
    case invalidStep(field: CronField, token: String)

    public var description: String {
        switch self {
        case .empty:
            "the expression is empty"
        case .wrongFieldCount(let count):
            "expected 5 fields (minute hour day-of-month month day-of-week), got \(count)"
        case .unknownMacro(let macro):
            "unknown macro \(macro) (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, @every <duration>)"
        case .invalidToken(let field, let token):
            "\(field) field: \"\(token)\" is not a number, name, range, list or step"
        case .outOfRange(let field, let value):
            "\(field) field: \(value) is out of range \(field.range.lowerBound)-\(field.range.upperBound)"
        case .reversedRange(let field, let token):
            "\(field) field: range \"\(token)\" ends before it starts"
        case .invalidStep(let field, let token):
            "\(field) field: the step in \"\(token)\" must be a positive integer"
        }
    }
}

/// A standard five-field cron expression (`minute hour day-of-month month day-of-week`) with lists,
/// ranges, steps, month and weekday names, and the macros `@yearly`, `@monthly`, `@weekly`, `@daily`,
/// `@hourly`.
///
/// As in Vixie cron, when both day-of-month and day-of-week are restricted (neither starts with `*`),
/// a day matches if either does; otherwise both must.
///
/// Fire times are wall-clock times in a time zone. Across daylight-saving changes, each matching
/// wall-clock time fires once: a time the clocks skip fires at the first instant after the gap (02:30
/// on a spring-forward night fires at 03:00), and a time that occurs twice fires at its first occurrence.
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    /// The expression as written (macros expanded in `fields`).
    public let source: String
    let minutes: UInt64
    let hours: UInt64
    let daysOfMonth: UInt64
    let months: UInt64
    /// Bits 0...6, Sunday = 0.
    let daysOfWeek: UInt64
    let dayOfMonthRestricted: Bool
    let dayOfWeekRestricted: Bool

    static let macros: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    /// Parses an expression; throws naming the field and token at fault.
    public init(_ text: String) throws(CronParseError) {
        let trimmed = text.trimmingSpaces()
        guard !trimmed.isEmpty else { throw .empty }
        source = trimmed
        var expanded = trimmed
        if trimmed.hasPrefix("@") {
            guard let macro = Self.macros[trimmed.lowercased()] else { throw .unknownMacro(trimmed) }
            expanded = macro
        }
        let fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else { throw .wrongFieldCount(fields.count) }
        minutes = try Self.parseField(fields[0], .minute)
        hours = try Self.parseField(fields[1], .hour)
        daysOfMonth = try Self.parseField(fields[2], .dayOfMonth)
        months = try Self.parseField(fields[3], .month)
        var dow = try Self.parseField(fields[4], .dayOfWeek)
        if dow & (1 << 7) != 0 { dow = (dow | 1) & ~(1 << 7) }
        daysOfWeek = dow
        dayOfMonthRestricted = !fields[2].hasPrefix("*")
        dayOfWeekRestricted = !fields[4].hasPrefix("*")
    }

    public var description: String { source }

    /// Parses one field: a comma list of `*`, `N`, `A-B`, each optionally with `/STEP`.
    static func parseField(_ text: String, _ field: CronField) throws(CronParseError) -> UInt64 {
        var bits: UInt64 = 0
        for item in text.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            guard !item.isEmpty else { throw .invalidToken(field: field, token: text) }
            let parts = item.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard parts.count <= 2 else { throw .invalidStep(field: field, token: item) }
            var step = 1
            if parts.count == 2 {
                guard let value = Int(parts[1]), value > 0 else { throw .invalidStep(field: field, token: item) }
                step = value
            }
            let base = parts[0]
            var low: Int
            var high: Int
            if base == "*" {
                low = field.range.lowerBound
                high = field == .dayOfWeek ? 6 : field.range.upperBound
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(String(base[..<dash]), field, token: item)
                high = try value(String(base[base.index(after: dash)...]), field, token: item)
                guard low <= high else { throw .reversedRange(field: field, token: item) }
            } else {
                low = try value(base, field, token: item)
                // `N/STEP` means from N to the end of the range, as in Vixie cron.
                high = parts.count == 2 ? (field == .dayOfWeek ? 6 : field.range.upperBound) : low
            }
            var current = low
            while current <= high {
                bits |= 1 << UInt64(current)
                current += step
            }
        }
        return bits
    }

    private static func value(_ text: String, _ field: CronField, token: String) throws(CronParseError) -> Int {
        if let name = field.names[text.lowercased()] { return name }
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int(text) else {
            throw .invalidToken(field: field, token: token)
        }
        guard field.range.contains(number) else { throw .outOfRange(field: field, value: number) }
        return number
    }

    // MARK: - Matching

    func dayMatches(_ date: CivilDate) -> Bool {
        let domMatch = daysOfMonth & (1 << UInt64(date.day)) != 0
        let dowMatch = daysOfWeek & (1 << UInt64(date.weekday)) != 0
        if dayOfMonthRestricted && dayOfWeekRestricted { return domMatch || dowMatch }
        return domMatch && dowMatch
    }

    /// The first wall-clock minute strictly after `start` (a minute, local time) that matches, searching
    /// at most `limitDays` days ahead.
    func nextMatch(from start: CivilMinute, limitDays: Int64) -> CivilMinute? {
        var days = start.days
        var minute = start.minuteOfDay
        let lastDay = start.days + limitDays
        while days <= lastDay {
            let date = CivilDate(days: days)
            if months & (1 << UInt64(date.month)) == 0 {
                days = CivilDate.days(year: date.month == 12 ? date.year + 1 : date.year, month: date.month == 12 ? 1 : date.month + 1, day: 1)
                minute = 0
                continue
            }
            if !dayMatches(date) {
                days += 1
                minute = 0
                continue
            }
            var hour = minute / 60
            var minuteOfHour = minute % 60
            var found = false
            while hour < 24 {
                if hours & (1 << UInt64(hour)) != 0 {
                    let remaining = minutes >> UInt64(minuteOfHour)
                    if remaining != 0 {
                        minuteOfHour += remaining.trailingZeroBitCount
                        found = true
                        break
                    }
                }
                hour += 1
                minuteOfHour = 0
            }
            if found { return CivilMinute(days: days, minuteOfDay: hour * 60 + minuteOfHour) }
            days += 1
            minute = 0
        }
        return nil
    }

    /// The next fire time strictly after `date`, as an instant; `nil` if the expression never matches
    /// again (e.g. `0 0 30 2 *`). See the type's documentation for daylight-saving behaviour.
    public func next(after date: Date, in timeZone: TimeZone) -> Date? {
        let afterSeconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let local = afterSeconds + Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(afterSeconds))))
        var candidate = CivilMinute(localSeconds: local).advanced(byMinutes: 1)
        // Every valid expression matches within 8 years (29 February); 9 is a safe bound.
        let limitDays: Int64 = 9 * 366
        let firstDay = candidate.days
        while let match = nextMatch(from: candidate, limitDays: limitDays - (candidate.days - firstDay)) {
            let instant = WallClock.firstInstant(of: match, in: timeZone)
            if instant > date { return instant }
            // The first occurrence of a repeated wall-clock time already passed: it has fired.
            candidate = match.advanced(byMinutes: 1)
        }
        return nil
    }
}
