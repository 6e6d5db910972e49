/// Exponential backoff with symmetric jitter: `base · factor^(attempt-1)`, capped, ± `jitter`.
public struct BackoffPolicy: Sendable, Hashable {
    public var base: Duration
    public var factor: Double
    public var cap: Duration
    /// Fraction of the delay added or removed at random, e.g. `0.1` for ±10 %.
    public var jitter: Double

    public init(base: Duration, factor: Double = 2, cap: Duration, jitter: Double = 0.1) {
        precondition(factor >= 1 && jitter >= 0 && jitter < 1)
        self.base = base
        self.factor = factor
        self.cap = cap
        self.jitter = jitter
    }

    /// Retries of a failed job attempt: 10 s, 20 s, 40 s, ... up to 1 h, ±10 %.
    public static let jobRetry = BackoffPolicy(base: .seconds(10), cap: .seconds(3600))

    /// The delay before the try that follows failed try number `attempt` (1-based), without jitter.
    public func nominalDelay(afterAttempt attempt: Int) -> Duration {
        let exponent = Double(max(0, attempt - 1))
        let seconds = base.seconds * pow(factor, min(exponent, 64))
        return .seconds(min(seconds, cap.seconds))
    }

    /// The delay with jitter drawn from `generator`.
    public func delay<G: RandomNumberGenerator>(afterAttempt attempt: Int, using generator: inout G) -> Duration {
        let nominal = nominalDelay(afterAttempt: attempt).seconds
        guard jitter > 0 else { return .seconds(nominal) }
        let spread = Double.random(in: -jitter...jitter, using: &generator)
        return .seconds(max(0, nominal * (1 + spread)))
    }

    public func delay(afterAttempt attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(afterAttempt: attempt, using: &generator)
    }
}

private func pow(_ base: Double, _ exponent: Double) -> Double {
    var result = 1.0
    var remaining = Int(exponent)
    while remaining > 0 { result *= base; remaining -= 1; if result > 1e12 { break } }
    return result
}

extension Duration {
    /// The duration in (fractional) seconds.
    public var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
