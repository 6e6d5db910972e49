import Foundation

/// Which ticks of a schedule are due now, computed from the schedule alone: its next unfired tick
/// (`next_fire_at`), its expression, and the current time. Never from when a process woke up.
public enum TickPlanner {
    /// Most jobs `catch_up: all` creates for one outage; older missed ticks are dropped.
    public static let allCap = 100
    /// Most ticks enumerated from `next_fire_at`; past it (a dense cron after a long outage) only the
    /// last `fallbackLookback` are considered.
    static let scanLimit = 200_000
    static let fallbackLookback: TimeInterval = 7 * 86_400

    /// What to do for one schedule now.
    public struct Plan: Sendable, Hashable {
        /// Ticks to fire, oldest first.
        public var fire: [Date]
        /// Due ticks dropped by the catch-up policy.
        public var dropped: Int
        /// The schedule's next unfired tick after this plan (`nil`: it never fires again).
        public var next: Date?
        /// Whether the oldest due tick was later than the misfire threshold (an outage).
        public var missed: Bool

        public init(fire: [Date], dropped: Int, next: Date?, missed: Bool) {
            self.fire = fire
            self.dropped = dropped
            self.next = next
            self.missed = missed
        }
    }

    /// Plans the ticks due at `now`, given the first unfired tick `nextFireAt`.
    ///
    /// Ticks no later than `misfireThreshold` behind `now` are on time and all fire. If the oldest due
    /// tick is later than that, the schedule missed ticks and `catchUp` decides: `none` fires only a
    /// latest tick that is itself on time, `one` fires the latest tick, `all` fires every due tick
    /// (the most recent `cap`).
    public static func plan(
        spec: ScheduleSpec, timeZone: TimeZone, nextFireAt: Date, now: Date, catchUp: CatchUpPolicy,
        misfireThreshold: Duration = .seconds(60), cap: Int = allCap
    ) -> Plan {
        guard nextFireAt <= now else { return Plan(fire: [], dropped: 0, next: nextFireAt, missed: false) }
        let threshold = misfireThreshold.seconds
        let (recent, count) = dueTicks(spec: spec, timeZone: timeZone, from: nextFireAt, through: now, keep: max(cap, 1))
        let next = spec.next(after: now, in: timeZone)
        guard let latest = recent.last else { return Plan(fire: [], dropped: 0, next: next, missed: false) }
        let missed = now.timeIntervalSince(nextFireAt) > threshold
        var fire: [Date]
        if !missed {
            fire = Array(recent.suffix(cap))
        } else {
            switch catchUp {
            case .none: fire = now.timeIntervalSince(latest) <= threshold ? [latest] : []
            case .one: fire = [latest]
            case .all: fire = Array(recent.suffix(cap))
            }
        }
        return Plan(fire: fire, dropped: count - fire.count, next: next, missed: missed)
    }

    /// The due ticks in `[from, through]`: the last `keep` of them and how many there are.
    static func dueTicks(spec: ScheduleSpec, timeZone: TimeZone, from: Date, through now: Date, keep: Int) -> (recent: [Date], count: Int) {
        if case .every(let seconds) = spec {
            let interval = Double(seconds)
            let count = Int(((now.timeIntervalSince(from)) / interval).rounded(.down)) + 1
            let first = max(0, count - keep)
            let recent = (first..<count).map { from.addingTimeInterval(Double($0) * interval) }
            return (recent, count)
        }
        var recent: [Date] = []
        var count = 0
        var tick: Date? = from
        var scanned = 0
        while var current = tick, current <= now {
            if scanned == scanLimit {
                // Too many to walk (a dense expression after a long outage): skip to the last week, which
                // holds at most 10,080 ticks of a cron expression. `count` is then a lower bound.
                let lookback = now.addingTimeInterval(-fallbackLookback)
                if current < lookback {
                    guard let restart = spec.next(after: lookback, in: timeZone), restart <= now else { break }
                    current = restart
                }
            }
            recent.append(current)
            if recent.count >= 2 * keep { recent.removeFirst(recent.count - keep) }
            count += 1
            scanned += 1
            tick = spec.next(after: current, in: timeZone)
        }
        return (Array(recent.suffix(keep)), count)
    }
}
