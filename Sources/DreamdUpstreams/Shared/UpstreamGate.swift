import Foundation

/// Paces one upstream's calls from this process: a token bucket of `ratePerSecond` (burst of one
/// second's worth), and a pause that a 429's `Retry-After` sets for this upstream only.
public actor UpstreamGate {
    public let name: String
    private let ratePerSecond: Double
    private var tokens: Double
    private var lastRefill: ContinuousClock.Instant
    private var pausedUntil: ContinuousClock.Instant?
    private let clock = ContinuousClock()

    public init(name: String, ratePerSecond: Double) {
        self.name = name
        self.ratePerSecond = max(0.1, ratePerSecond)
        self.tokens = max(1, ratePerSecond)
        self.lastRefill = ContinuousClock.now
    }

    /// Waits until a call may go out.
    public func acquire() async throws {
        while true {
            let now = clock.now
            if let pausedUntil, pausedUntil > now {
                try await Task.sleep(until: pausedUntil, clock: clock)
                continue
            }
            let elapsed = (now - lastRefill).seconds
            tokens = min(max(1, ratePerSecond), tokens + elapsed * ratePerSecond)
            lastRefill = now
            if tokens >= 1 {
                tokens -= 1
                return
            }
            try await Task.sleep(for: .milliseconds(Int64(((1 - tokens) / ratePerSecond) * 1000) + 1))
        }
    }

    /// Holds every call to this upstream for `duration` (a 429's `Retry-After`).
    public func pause(for duration: Duration) {
        let until = clock.now + duration
        if pausedUntil.map({ $0 < until }) ?? true { pausedUntil = until }
    }

    /// Whether calls are paused now, and until when.
    public var pausedFor: Duration? {
        guard let pausedUntil, pausedUntil > clock.now else { return nil }
        return pausedUntil - clock.now
    }
}
