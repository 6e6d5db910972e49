import Foundation

/// A proleptic Gregorian calendar date, counted in days from 1970-01-01.
struct CivilDate: Sendable, Hashable {
    let year: Int
    let month: Int
    let day: Int
    /// 0 = Sunday ... 6 = Saturday.
    let weekday: Int

    init(days: Int64) {
        // Howard Hinnant's civil-from-days.
        let z = days + 719_468
        let era = Self.floorDivide(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        day = Int(doy - (153 * mp + 2) / 5 + 1)
        month = Int(mp < 10 ? mp + 3 : mp - 9)
        year = Int(yoe + era * 400 + (month <= 2 ? 1 : 0))
        // 1970-01-01 was a Thursday.
        weekday = Int(((days % 7) + 7 + 4) % 7)
    }

    /// Days from 1970-01-01 to the given date (days-from-civil).
    static func days(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = floorDivide(y, 400)
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        a >= 0 ? a / b : -((-a + b - 1) / b)
    }
}

/// A wall-clock minute in some time zone: a day and a minute of that day, without an offset.
struct CivilMinute: Sendable, Hashable, Comparable {
    var days: Int64
    var minuteOfDay: Int

    init(days: Int64, minuteOfDay: Int) {
        self.days = days
        self.minuteOfDay = minuteOfDay
    }

    /// The minute containing `localSeconds` (seconds since 1970-01-01T00:00 wall-clock time).
    init(localSeconds: Int64) {
        days = CivilDate.floorDivide(localSeconds, 86_400)
        minuteOfDay = Int((localSeconds - days * 86_400) / 60)
    }

    func advanced(byMinutes count: Int) -> CivilMinute {
        let total = Int64(minuteOfDay) + Int64(count)
        let dayShift = CivilDate.floorDivide(total, 1440)
        return CivilMinute(days: days + dayShift, minuteOfDay: Int(total - dayShift * 1440))
    }

    /// Seconds since 1970-01-01T00:00 of this wall-clock time, as if it were UTC.
    var localSeconds: Int64 { days * 86_400 + Int64(minuteOfDay) * 60 }

    static func < (lhs: CivilMinute, rhs: CivilMinute) -> Bool {
        (lhs.days, lhs.minuteOfDay) < (rhs.days, rhs.minuteOfDay)
    }
}

/// Turns wall-clock times into instants in an IANA time zone, across offset changes.
enum WallClock {
    /// The first instant at which clocks in `timeZone` show `minute`.
    ///
    /// A time that occurs twice (clocks go back) gives its first occurrence. A time that never occurs
    /// (clocks go forward over it) gives the first instant after the gap, i.e. the moment of the change.
    static func firstInstant(of minute: CivilMinute, in timeZone: TimeZone) -> Date {
        let naive = minute.localSeconds
        func offset(_ seconds: Int64) -> Int64 {
            Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(seconds))))
        }
        // Offsets in force around that wall-clock time; a change happens at most once in a day or so.
        let candidates = Set([offset(naive - 86_400), offset(naive), offset(naive + 86_400)])
        let valid = candidates.map { naive - $0 }.filter { offset($0) == naive - $0 }
        if let first = valid.min() { return Date(timeIntervalSince1970: Double(first)) }
        // A gap: the clocks jumped over this time. Find the change between the instant where the
        // earlier (smaller) offset would put it and the one where the later offset would.
        let largest = candidates.max() ?? 0
        let smallest = candidates.min() ?? 0
        var low = naive - largest   // before the change
        var high = naive - smallest // after the change
        let before = offset(low)
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if offset(middle) == before { low = middle } else { high = middle }
        }
        return Date(timeIntervalSince1970: Double(high))
    }

    /// The wall-clock time at `date` in `timeZone`, as `YYYY-MM-DDTHH:MM:SS±HH:MM`.
    static func localString(_ date: Date, in timeZone: TimeZone) -> String {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let offset = timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(seconds)))
        let local = seconds + Int64(offset)
        let days = CivilDate.floorDivide(local, 86_400)
        let civil = CivilDate(days: days)
        let secondOfDay = Int(local - days * 86_400)
        let sign = offset < 0 ? "-" : "+"
        let absOffset = abs(offset)
        let date = String(format: "%04d-%02d-%02dT%02d:%02d:%02d", civil.year, civil.month, civil.day,
                          secondOfDay / 3600, secondOfDay % 3600 / 60, secondOfDay % 60)
        return date + sign + String(format: "%02d:%02d", absOffset / 3600, absOffset % 3600 / 60)
    }
}
