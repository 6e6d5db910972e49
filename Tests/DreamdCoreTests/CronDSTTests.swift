import DreamdCore
import Foundation
import Testing

/// Daylight-saving changes in two zones, 2026:
/// - America/New_York: clocks jump 02:00 EST → 03:00 EDT on 8 March (07:00Z) and fall back
///   02:00 EDT → 01:00 EST on 1 November (06:00Z).
/// - Europe/Berlin: 02:00 CET → 03:00 CEST on 29 March (01:00Z); 03:00 CEST → 02:00 CET on
///   25 October (01:00Z).
@Suite("Cron across daylight-saving changes")
struct CronDSTTests {
    func ticks(_ expression: String, zone: String, after: String, count: Int) throws -> [String] {
        let spec = try ScheduleSpec(parsing: expression)
        let timeZone = try ScheduleSpec.timeZone(named: zone)
        return spec.upcoming(after: instant(after), in: timeZone, count: count).compactMap(utcString)
    }

    @Test("New York spring forward: the skipped 02:30 fires once, at 03:00 EDT")
    func newYorkSpringForward() throws {
        #expect(try ticks("30 2 * * *", zone: "America/New_York", after: "2026-03-06T12:00:00Z", count: 3) == [
            "2026-03-07T07:30:00Z", // 02:30 EST
            "2026-03-08T07:00:00Z", // 02:30 does not exist: 03:00 EDT, the first instant after the gap
            "2026-03-09T06:30:00Z", // 02:30 EDT
        ])
    }

    @Test("New York fall back: the repeated 01:30 fires once, at its first occurrence")
    func newYorkFallBack() throws {
        #expect(try ticks("30 1 * * *", zone: "America/New_York", after: "2026-10-31T12:00:00Z", count: 3) == [
            "2026-11-01T05:30:00Z", // 01:30 EDT; the 01:30 EST an hour later does not fire
            "2026-11-02T06:30:00Z", // 01:30 EST
            "2026-11-03T06:30:00Z",
        ])
    }

    @Test("Berlin spring forward: the skipped 02:30 fires once, at 03:00 CEST")
    func berlinSpringForward() throws {
        #expect(try ticks("30 2 * * *", zone: "Europe/Berlin", after: "2026-03-27T12:00:00Z", count: 3) == [
            "2026-03-28T01:30:00Z", // 02:30 CET
            "2026-03-29T01:00:00Z", // 02:30 does not exist: 03:00 CEST
            "2026-03-30T00:30:00Z", // 02:30 CEST
        ])
    }

    @Test("Berlin fall back: the repeated 02:30 fires once, at its first occurrence")
    func berlinFallBack() throws {
        #expect(try ticks("30 2 * * *", zone: "Europe/Berlin", after: "2026-10-23T12:00:00Z", count: 3) == [
            "2026-10-24T00:30:00Z", // 02:30 CEST
            "2026-10-25T00:30:00Z", // 02:30 CEST, first of two; 01:30Z (02:30 CET) does not fire
            "2026-10-26T01:30:00Z", // 02:30 CET
        ])
    }

    @Test("hourly across the gap: no duplicate and no hole in real time")
    func hourlyAcrossGap() throws {
        #expect(try ticks("0 * * * *", zone: "America/New_York", after: "2026-03-08T05:30:00Z", count: 3) == [
            "2026-03-08T06:00:00Z", // 01:00 EST
            "2026-03-08T07:00:00Z", // 02:00 is skipped, 03:00 EDT fires once
            "2026-03-08T08:00:00Z", // 04:00 EDT
        ])
    }

    @Test("every wall-clock time in the repeated hour fires once (use @every for fixed real-time intervals)")
    func halfHourlyAcrossRepeatedHour() throws {
        #expect(try ticks("*/30 * * * *", zone: "America/New_York", after: "2026-11-01T04:45:00Z", count: 3) == [
            "2026-11-01T05:00:00Z", // 01:00 EDT
            "2026-11-01T05:30:00Z", // 01:30 EDT
            "2026-11-01T07:00:00Z", // 02:00 EST; 01:00 and 01:30 EST already fired as EDT
        ])
        #expect(try ticks("@every 30m", zone: "America/New_York", after: "2026-11-01T04:45:00Z", count: 4) == [
            "2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z",
        ])
    }

    @Test("a tick taken after the first of a repeated time does not fire it again")
    func fromInsideRepeatedHour() throws {
        // 01:45 EST (06:45Z) is in the second pass of 01:xx; the next 01:30 is the next day's.
        #expect(try ticks("30 1 * * *", zone: "America/New_York", after: "2026-11-01T06:45:00Z", count: 1) == ["2026-11-02T06:30:00Z"])
        // From the skipped-time tick itself, the next is the next day's.
        #expect(try ticks("30 2 * * *", zone: "Europe/Berlin", after: "2026-03-29T01:00:00Z", count: 1) == ["2026-03-30T00:30:00Z"])
    }

    @Test("the preview's local time carries the offset in force")
    func localTime() throws {
        let newYork = try ScheduleSpec.timeZone(named: "America/New_York")
        #expect(ScheduleSpec.localTime(instant("2026-03-08T07:00:00Z"), in: newYork) == "2026-03-08T03:00:00-04:00")
        #expect(ScheduleSpec.localTime(instant("2026-11-01T06:30:00Z"), in: newYork) == "2026-11-01T01:30:00-05:00")
        let kolkata = try ScheduleSpec.timeZone(named: "Asia/Kolkata")
        #expect(ScheduleSpec.localTime(instant("2026-01-15T10:17:30Z"), in: kolkata) == "2026-01-15T15:47:30+05:30")
    }
}
