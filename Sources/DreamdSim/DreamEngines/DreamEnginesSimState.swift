import DreamdCore
import Foundation

/// The simulated Dream Engines deployment: its catalog, the account's balance, the rollouts it ran,
/// stored answers by `Idempotency-Key`, the faults it injects, and counters tests read.
actor DreamEnginesSimState {
    /// A rollout the engine ran: what `GET {video_url}` serves and the envelope a replay returns.
    struct Rollout: Sendable {
        var id: String
        var envelope: JSONValue
        var frames: Int
    }

    /// An answer kept for replays under an `Idempotency-Key`.
    enum StoredAnswer: Sendable {
        case envelope(JSONValue)
        case body(Data, headers: [(String, String)])
    }

    static let pricePerFrameMils = 5 // $0.0005

    var faults: SimulatorFaults
    var forced = ForcedAnswers()
    var failAfterCharge = 0
    var legacyOnly: Bool
    var coldStart: Duration
    var rolloutTime: Duration
    var warmAt: ContinuousClock.Instant?
    /// Prepaid balance in mils; `nil` for unlimited.
    var balanceMils: Int?
    let startedAt = Date()

    var rollouts: [String: Rollout] = [:]
    var idempotent: [String: (hash: String, answer: StoredAnswer)] = [:]

    // Counters for tests.
    var charges = 0
    var chargedMils = 0
    var inFlight = 0
    var maxInFlight = 0
    var requestCount = 0
    var requests: [String: Int] = [:]
    var idempotencyKeys: [String] = []
    var replays = 0

    init(faults: SimulatorFaults, coldStart: Duration, rolloutTime: Duration, legacyOnly: Bool, balanceMils: Int?) {
        self.faults = faults
        self.coldStart = coldStart
        self.rolloutTime = rolloutTime
        self.legacyOnly = legacyOnly
        self.balanceMils = balanceMils
    }

    func setFaults(_ faults: SimulatorFaults) { self.faults = faults }
    func force(statuses: [Int]) { forced.statuses.append(contentsOf: statuses) }
    func setFailAfterCharge(_ count: Int) { failAfterCharge = count }
    func setLegacyOnly(_ value: Bool) { legacyOnly = value }
    func setBalance(mils: Int?) { balanceMils = mils }
    func setTiming(coldStart: Duration, rolloutTime: Duration) {
        self.coldStart = coldStart
        self.rolloutTime = rolloutTime
        warmAt = nil
    }

    /// Counts a request to `route` and returns the status to answer instead, if a fault fires.
    func arrive(route: String, idempotencyKey: String?) -> Int? {
        requestCount += 1
        requests[route, default: 0] += 1
        if let idempotencyKey { idempotencyKeys.append(idempotencyKey) }
        if let status = forced.next() { return status }
        if Double.random(in: 0..<1) < faults.rateLimitRate { return 429 }
        if Double.random(in: 0..<1) < faults.serverErrorRate { return [502, 503, 504].randomElement() ?? 503 }
        return nil
    }

    /// Counts a request that faults never hit (video downloads).
    func count(route: String) { requests[route, default: 0] += 1 }

    func stored(key: String) -> (hash: String, answer: StoredAnswer)? { idempotent[key] }

    func countReplay() { replays += 1 }

    /// Whether the balance covers `mils`; the balance itself for the 402 body.
    func canAfford(_ mils: Int) -> (ok: Bool, balance: Int) {
        guard let balanceMils else { return (true, Int.max) }
        return (balanceMils >= mils, balanceMils)
    }

    /// Waits out the cold start (the first request after start loads the model), then counts the
    /// rollout in flight for `rolloutTime`.
    func beginRollout() -> ContinuousClock.Instant {
        let now = ContinuousClock.now
        if warmAt == nil { warmAt = now + coldStart }
        inFlight += 1
        maxInFlight = max(maxInFlight, inFlight)
        return max(warmAt ?? now, now) + rolloutTime
    }

    func endRollout() { inFlight -= 1 }

    /// Debits the balance and records the charge; returns whether to fail after charging (a fault).
    func charge(mils: Int) -> Bool {
        charges += 1
        chargedMils += mils
        if balanceMils != nil { balanceMils! -= mils }
        if failAfterCharge > 0 {
            failAfterCharge -= 1
            return true
        }
        return Double.random(in: 0..<1) < faults.createThenFailRate
    }

    func store(rollout: Rollout) { rollouts[rollout.id] = rollout }

    func remember(key: String, hash: String, answer: StoredAnswer) { idempotent[key] = (hash, answer) }

    func rollout(_ id: String) -> Rollout? { rollouts[id] }
}
