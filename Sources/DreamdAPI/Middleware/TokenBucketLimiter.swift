import Foundation
import Synchronization

/// A token bucket per key, in this process: `rate` requests per second with bursts of `burst`.
///
/// Used per API key (`KeyRateLimiter`) and per client address for failed authentications
/// (`AddressRateLimiter`). Buckets that have refilled are dropped once the table grows past
/// `maxTrackedKeys`, so a stream of new addresses cannot grow it without bound.
public final class TokenBucketLimiter<Key: Hashable & Sendable>: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    let rate: Double
    let burst: Double
    let maxTrackedKeys: Int
    private let buckets = Mutex<[Key: Bucket]>([:])

    public init(rate: Double, burst: Double, maxTrackedKeys: Int = 100_000) {
        self.rate = max(rate, 0.001)
        self.burst = max(burst, 1)
        self.maxTrackedKeys = max(maxTrackedKeys, 16)
    }

    /// Takes a token for `key`: `nil` when admitted, else the whole seconds to wait.
    public func admit(_ key: Key) -> Int? {
        update(key, take: true)
    }

    /// Whether `key` has a token left, without taking it: `nil` when it has, else the whole seconds to wait.
    public func wait(for key: Key) -> Int? {
        update(key, take: false)
    }

    private func update(_ key: Key, take: Bool) -> Int? {
        let now = ContinuousClock.now
        return buckets.withLock { buckets -> Int? in
            guard var bucket = buckets[key] else {
                guard take else { return nil }
                if buckets.count >= maxTrackedKeys { dropRefilled(&buckets, now: now) }
                buckets[key] = Bucket(tokens: burst - 1, updated: now)
                return nil
            }
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated).seconds * rate)
            bucket.updated = now
            defer { buckets[key] = bucket }
            if bucket.tokens >= 1 {
                if take { bucket.tokens -= 1 }
                return nil
            }
            return max(1, Int(((1 - bucket.tokens) / rate).rounded(.up)))
        }
    }

    private func dropRefilled(_ buckets: inout [Key: Bucket], now: ContinuousClock.Instant) {
        buckets = buckets.filter { _, bucket in bucket.tokens + (now - bucket.updated).seconds * rate < burst }
        // Still full of live buckets (a flood of distinct addresses): forget the oldest half.
        if buckets.count >= maxTrackedKeys {
            let sorted = buckets.sorted { $0.value.updated < $1.value.updated }
            for (key, _) in sorted.prefix(sorted.count / 2) { buckets[key] = nil }
        }
    }
}

/// Requests per API key.
public typealias KeyRateLimiter = TokenBucketLimiter<UUID>

/// Failed authentications per client address (its IP, without the port).
public typealias AddressRateLimiter = TokenBucketLimiter<String>

extension Duration {
    fileprivate var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
