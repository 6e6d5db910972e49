import DreamdCore
import Foundation
import Testing

/// `2026-01-15T10:17:30Z` and the like.
func instant(_ text: String) -> Date {
    guard let date = DreamdJSON.parseDate(text) else { fatalError("bad test date \(text)") }
    return date
}

func utcString(_ date: Date?) -> String? {
    date.map { String(DreamdJSON.formatDate($0).prefix(19)) + "Z" }
}

@Suite("Cron expressions")
struct CronExpressionTests {
    /// Expression → the next fire time after Thursday 2026-01-15T10:17:30Z, in UTC.
    static let table: [(String, String)] = [
        ("* * * * *", "2026-01-15T10:18:00Z"),
        ("*/15 * * * *", "2026-01-15T10:30:00Z"),
        ("0 * * * *", "2026-01-15T11:00:00Z"),
        ("@hourly", "2026-01-15T11:00:00Z"),
        ("@daily", "2026-01-16T00:00:00Z"),
        ("@midnight", "2026-01-16T00:00:00Z"),
        ("@weekly", "2026-01-18T00:00:00Z"),
        ("@monthly", "2026-02-01T00:00:00Z"),
        ("@yearly", "2027-01-01T00:00:00Z"),
        ("@annually", "2027-01-01T00:00:00Z"),
        ("30 9 * * 1-5", "2026-01-16T09:30:00Z"),
        ("0 12 * * MON-FRI", "2026-01-15T12:00:00Z"),
        ("0 0 1,15 * *", "2026-02-01T00:00:00Z"),
        ("0 0 29 2 *", "2028-02-29T00:00:00Z"),
        ("5 4 * * sun", "2026-01-18T04:05:00Z"),
        ("0 0 * JAN,jul *", "2026-01-16T00:00:00Z"),
        ("0 0 1 */3 *", "2026-04-01T00:00:00Z"),
        ("0 0 1 feb-mar *", "2026-02-01T00:00:00Z"),
        // Both day fields restricted: either matches (the 13th or a Friday).
        ("0 0 13 * 5", "2026-01-16T00:00:00Z"),
        // Day-of-month restricted, day-of-week `*`: both must match, i.e. only the 13th.
        ("0 0 13 * *", "2026-02-13T00:00:00Z"),
        ("0 0 * * 7", "2026-01-18T00:00:00Z"),
        ("0 0 * * 1/2", "2026-01-16T00:00:00Z"),
        ("15 10 * * *", "2026-01-16T10:15:00Z"),
        ("10-20/5 * * * *", "2026-01-15T10:20:00Z"),
        ("0 8-18/4 * * *", "2026-01-15T12:00:00Z"),
        ("59 23 31 12 *", "2026-12-31T23:59:00Z"),
        ("0 0 31 * *", "2026-01-31T00:00:00Z"),
        ("17 10 15 1 *", "2027-01-15T10:17:00Z"),
        ("45 */2 * * *", "2026-01-15T10:45:00Z"),
        ("45 */3 * * *", "2026-01-15T12:45:00Z"),
        ("0,30 * * * *", "2026-01-15T10:30:00Z"),
        ("  0   12  *  *  *  ", "2026-01-15T12:00:00Z"),
        ("@every 1s", "2026-01-15T10:17:31Z"),
        ("@every 1m", "2026-01-15T10:18:00Z"),
        ("@every 90m", "2026-01-15T10:30:00Z"),
        ("@every 1h", "2026-01-15T11:00:00Z"),
        ("@EVERY 1h30m", "2026-01-15T10:30:00Z"),
    ]

    @Test("known expressions and their next fire time", arguments: table)
    func nextTimes(expression: String, expected: String) throws {
        let spec = try ScheduleSpec(parsing: expression)
        #expect(utcString(spec.next(after: instant("2026-01-15T10:17:30Z"), in: .gmt)) == expected)
    }

    /// Invalid expressions, the field the API reports, and a fragment of the message.
    static let invalid: [(String, String, String)] = [
        ("", "cron", "empty"),
        ("* * * *", "cron", "expected 5 fields"),
        ("* * * * * *", "cron", "got 6"),
        ("60 * * * *", "cron", "minute field: 60 is out of range 0-59"),
        ("* 24 * * *", "cron", "hour field: 24 is out of range 0-23"),
        ("* * 0 * *", "cron", "day-of-month field: 0 is out of range 1-31"),
        ("* * * 13 *", "cron", "month field: 13 is out of range 1-12"),
        ("* * * * 8", "cron", "day-of-week field: 8 is out of range 0-7"),
        ("*/0 * * * *", "cron", "minute field: the step in \"*/0\""),
        ("1/x * * * *", "cron", "minute field: the step"),
        ("5-1 * * * *", "cron", "minute field: range \"5-1\" ends before it starts"),
        ("* * * FOO *", "cron", "month field: \"FOO\""),
        ("a * * * *", "cron", "minute field: \"a\""),
        ("1,,2 * * * *", "cron", "minute field"),
        ("* * * * mon-", "cron", "day-of-week field"),
        ("-1 * * * *", "cron", "minute field"),
        ("@reboot", "cron", "unknown macro @reboot"),
        ("@every", "cron", "@every needs a duration"),
        ("@every 0s", "cron", "at least 1s"),
        ("@every 500ms", "cron", "whole number of seconds"),
        ("@every 1.5s", "cron", "whole number of seconds"),
        ("@every soon", "cron", "invalid duration"),
        ("0 0 30 2 *", "cron", "never fires"),
        ("0 0 31 4,6 *", "cron", "never fires"),
    ]

    @Test("invalid expressions are refused naming the problem", arguments: invalid)
    func refused(expression: String, field: String, fragment: String) {
        #expect {
            _ = try ScheduleSpec(parsing: expression)
        } throws: { error in
            guard let error = error as? ScheduleSpec.ParseError else { return false }
            return error.field == field && error.description.contains(fragment)
        }
    }

    @Test("IANA zones are accepted; unknown names and abbreviations are refused")
    func timeZones() throws {
        #expect(try ScheduleSpec.timeZone(named: "UTC").secondsFromGMT() == 0)
        #expect(try ScheduleSpec.timeZone(named: "Europe/Berlin").identifier == "Europe/Berlin")
        #expect(try ScheduleSpec.timeZone(named: "America/New_York").identifier == "America/New_York")
        for bad in ["Mars/Olympus_Mons", "EST", "GMT+5", "", "europe/berlin"] {
            #expect {
                _ = try ScheduleSpec.timeZone(named: bad)
            } throws: { error in
                (error as? ScheduleSpec.ParseError)?.field == "timezone" && "\(error)".contains("unknown time zone")
            }
        }
    }

    @Test("cron fields are read in the schedule's zone; @every ignores it")
    func zoneMatters() throws {
        let after = instant("2026-01-15T10:17:30Z")
        let berlin = try ScheduleSpec.timeZone(named: "Europe/Berlin")
        let tokyo = try ScheduleSpec.timeZone(named: "Asia/Tokyo")
        #expect(utcString(try ScheduleSpec(parsing: "0 12 * * *").next(after: after, in: berlin)) == "2026-01-15T11:00:00Z")
        #expect(utcString(try ScheduleSpec(parsing: "0 9 * * *").next(after: after, in: tokyo)) == "2026-01-16T00:00:00Z")
        #expect(utcString(try ScheduleSpec(parsing: "@every 1h").next(after: after, in: tokyo)) == "2026-01-15T11:00:00Z")
    }

    @Test("upcoming ticks are strictly increasing")
    func upcoming() throws {
        let spec = try ScheduleSpec(parsing: "*/20 9-10 * * 1-5")
        let times = spec.upcoming(after: instant("2026-01-16T10:30:00Z"), in: .gmt, count: 4).compactMap(utcString)
        #expect(times == ["2026-01-16T10:40:00Z", "2026-01-19T09:00:00Z", "2026-01-19T09:20:00Z", "2026-01-19T09:40:00Z"])
        #expect(try ScheduleSpec(parsing: "@every 10s").description == "@every 10s")
    }
}
