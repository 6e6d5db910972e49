import DreamdCore
import Foundation
import Testing

@Suite("Cron tick planning and catch-up")
struct CronTickPlannerTests {
    func plan(_ expression: String, next: String, now: String, catchUp: CatchUpPolicy, cap: Int = TickPlanner.allCap) throws -> TickPlanner.Plan {
        TickPlanner.plan(spec: try ScheduleSpec(parsing: expression), timeZone: .gmt, nextFireAt: instant(next), now: instant(now),
                         catchUp: catchUp, misfireThreshold: .seconds(60), cap: cap)
    }

    @Test("nothing is due before next_fire_at")
    func notDue() throws {
        let plan = try plan("@hourly", next: "2026-01-15T11:00:00Z", now: "2026-01-15T10:59:59Z", catchUp: .all)
        #expect(plan.fire.isEmpty)
        #expect(utcString(plan.next) == "2026-01-15T11:00:00Z")
    }

    @Test("on-time ticks all fire whatever the catch-up policy", arguments: CatchUpPolicy.allCases)
    func onTime(catchUp: CatchUpPolicy) throws {
        // A scheduler that woke 2.5 s after the first of three @every 1s ticks: all are on time.
        let plan = try plan("@every 1s", next: "2026-01-15T10:00:00Z", now: "2026-01-15T10:00:02.500Z", catchUp: catchUp)
        #expect(plan.fire.compactMap(utcString) == ["2026-01-15T10:00:00Z", "2026-01-15T10:00:01Z", "2026-01-15T10:00:02Z"])
        #expect(!plan.missed)
        #expect(plan.dropped == 0)
        #expect(utcString(plan.next) == "2026-01-15T10:00:03Z")
    }

    @Test("after an outage: none drops the missed ticks, one fires the latest, all fires each")
    func outage() throws {
        // Hourly ticks from 00:00 were missed; it is now 02:30.
        let none = try plan("@hourly", next: "2026-01-15T00:00:00Z", now: "2026-01-15T02:30:00Z", catchUp: .none)
        #expect(none.fire.isEmpty)
        #expect(none.dropped == 3)
        #expect(none.missed)
        #expect(utcString(none.next) == "2026-01-15T03:00:00Z")

        let one = try plan("@hourly", next: "2026-01-15T00:00:00Z", now: "2026-01-15T02:30:00Z", catchUp: .one)
        #expect(one.fire.compactMap(utcString) == ["2026-01-15T02:00:00Z"])
        #expect(one.dropped == 2)
        #expect(utcString(one.next) == "2026-01-15T03:00:00Z")

        let all = try plan("@hourly", next: "2026-01-15T00:00:00Z", now: "2026-01-15T02:30:00Z", catchUp: .all)
        #expect(all.fire.compactMap(utcString) == ["2026-01-15T00:00:00Z", "2026-01-15T01:00:00Z", "2026-01-15T02:00:00Z"])
        #expect(all.dropped == 0)
        #expect(utcString(all.next) == "2026-01-15T03:00:00Z")
    }

    @Test("after an outage, none still fires the current tick if it is on time")
    func noneKeepsCurrentTick() throws {
        let plan = try plan("@hourly", next: "2026-01-15T00:00:00Z", now: "2026-01-15T03:00:20Z", catchUp: .none)
        #expect(plan.fire.compactMap(utcString) == ["2026-01-15T03:00:00Z"])
        #expect(plan.dropped == 3)
    }

    @Test("catch_up all is capped to the most recent ticks")
    func allCapped() throws {
        let plan = try plan("@every 1s", next: "2026-01-15T10:00:00Z", now: "2026-01-15T10:16:40Z", catchUp: .all, cap: 100)
        #expect(plan.fire.count == 100)
        #expect(utcString(plan.fire.first) == "2026-01-15T10:15:01Z")
        #expect(utcString(plan.fire.last) == "2026-01-15T10:16:40Z")
        #expect(plan.dropped == 901)
        #expect(utcString(plan.next) == "2026-01-15T10:16:41Z")
    }

    @Test("a cron schedule years behind plans in bounded time")
    func longOutageDenseCron() throws {
        let plan = try plan("* * * * *", next: "2024-01-01T00:00:00Z", now: "2026-01-15T10:17:30Z", catchUp: .all, cap: 5)
        #expect(plan.fire.compactMap(utcString) == [
            "2026-01-15T10:13:00Z", "2026-01-15T10:14:00Z", "2026-01-15T10:15:00Z", "2026-01-15T10:16:00Z", "2026-01-15T10:17:00Z",
        ])
        #expect(plan.dropped > 200_000)
        #expect(utcString(plan.next) == "2026-01-15T10:18:00Z")
    }

    @Test("catch-up across a daylight-saving change keeps one tick per wall-clock time")
    func catchUpAcrossDST() throws {
        let newYork = try ScheduleSpec.timeZone(named: "America/New_York")
        let plan = TickPlanner.plan(spec: try ScheduleSpec(parsing: "30 * * * *"), timeZone: newYork,
                                    nextFireAt: instant("2026-11-01T04:30:00Z"), now: instant("2026-11-01T08:00:00Z"),
                                    catchUp: .all, misfireThreshold: .seconds(60))
        // 00:30 EDT, 01:30 EDT, (01:30 EST does not fire), 02:30 EST.
        #expect(plan.fire.compactMap(utcString) == ["2026-11-01T04:30:00Z", "2026-11-01T05:30:00Z", "2026-11-01T07:30:00Z"])
    }
}
