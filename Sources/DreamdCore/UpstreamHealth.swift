import Foundation
import Synchronization

/// One upstream's health as this process sees it: whether dispatch is paused (e.g. the account ran out
/// of credits) and until when, whether its last answer said the credentials are bad, and how many
/// calls are in flight. Thread-safe and synchronous, so the worker can consult it on every claim.
///
/// The state is per process; `UpstreamPauseSync` shares pauses between the processes on one database
/// (a 402 met by one pauses all, a resume through one lifts it in all, within a second).
public final class UpstreamHealth: Sendable {
    /// The upstream's name (`dream`).
    public let name: String
    /// The most calls in flight this process allows (reported only; the worker enforces it).
    public let maxInFlight: Int?
    private let state: Mutex<State>

    struct State {
        var pausedUntil: Date?
        var pauseReason: String?
        var unhealthyReason: String?
        var since: Date?
        var inFlight = 0
    }

    public init(name: String, maxInFlight: Int? = nil) {
        self.name = name
        self.maxInFlight = maxInFlight
        self.state = Mutex(State())
    }

    /// Whether new work may be dispatched now (not paused, or the pause has run out).
    public var isAccepting: Bool {
        state.withLock { state in state.pausedUntil.map { $0 <= Date() } ?? true }
    }

    /// Stops dispatch until `until` (a cool-down), or until `resume()`.
    public func pause(until: Date, reason: String) {
        state.withLock { state in
            if state.pausedUntil.map({ $0 < until }) ?? true { state.pausedUntil = until }
            state.pauseReason = reason
            state.since = Date()
        }
    }

    /// Lifts a pause at once. Returns whether one was in force.
    @discardableResult
    public func resume() -> Bool {
        state.withLock { state in
            let wasPaused = state.pausedUntil.map { $0 > Date() } ?? false
            state.pausedUntil = nil
            state.pauseReason = nil
            state.since = Date()
            return wasPaused
        }
    }

    /// Records that the upstream refused the credentials (401/403). Cleared by the next success.
    public func markUnhealthy(reason: String) {
        state.withLock { state in
            state.unhealthyReason = reason
            state.since = Date()
        }
    }

    /// Records a successful call: the credentials work.
    public func markHealthy() {
        state.withLock { state in
            if state.unhealthyReason != nil { state.since = Date() }
            state.unhealthyReason = nil
        }
    }

    /// Counts a call in flight for the duration of `body`.
    public func inFlight<T: Sendable>(_ body: () async throws -> T) async rethrows -> T {
        state.withLock { $0.inFlight += 1 }
        defer { state.withLock { $0.inFlight -= 1 } }
        return try await body()
    }

    /// The state as `GET /v1/upstreams` shows it.
    public var status: UpstreamStatus {
        state.withLock { state in
            let now = Date()
            let paused = state.pausedUntil.map { $0 > now } ?? false
            let health: UpstreamStatus.State = paused ? .paused : (state.unhealthyReason != nil ? .unhealthy : .healthy)
            return UpstreamStatus(
                name: name, state: health, pausedUntil: paused ? state.pausedUntil : nil,
                reason: paused ? state.pauseReason : state.unhealthyReason, inFlight: state.inFlight,
                maxInFlight: maxInFlight, since: state.since
            )
        }
    }
}

/// One upstream's state as the API reports it.
public struct UpstreamStatus: Sendable, Hashable, Codable {
    public enum State: String, Sendable, Hashable, Codable {
        /// Dispatching normally.
        case healthy
        /// Not dispatching until `paused_until` or a resume (e.g. out of credits); jobs wait queued.
        case paused
        /// The upstream refused our credentials on its last answer; jobs fail until that is fixed.
        case unhealthy
    }

    public var name: String
    public var state: State
    public var pausedUntil: Date?
    public var reason: String?
    public var inFlight: Int
    public var maxInFlight: Int?
    /// When the state last changed.
    public var since: Date?

    public init(name: String, state: State, pausedUntil: Date?, reason: String?, inFlight: Int, maxInFlight: Int?, since: Date?) {
        self.name = name
        self.state = state
        self.pausedUntil = pausedUntil
        self.reason = reason
        self.inFlight = inFlight
        self.maxInFlight = maxInFlight
        self.since = since
    }

    enum CodingKeys: String, CodingKey {
        case name, state, reason, since
        case pausedUntil = "paused_until"
        case inFlight = "in_flight"
        case maxInFlight = "max_in_flight"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(state, forKey: .state)
        try c.encode(pausedUntil, forKey: .pausedUntil)
        try c.encode(reason, forKey: .reason)
        try c.encode(inFlight, forKey: .inFlight)
        try c.encode(maxInFlight, forKey: .maxInFlight)
        try c.encode(since, forKey: .since)
    }
}

/// The catalog of models an upstream serves, as the API shows it (`GET /v1/models`).
public protocol ModelCatalogSource: Sendable {
    /// Every model, as the upstream describes it.
    func models() async throws(SubmissionCheckError) -> [JSONValue]
    /// One model by slug, or `nil` if the catalog has none by that name.
    func model(slug: String) async throws(SubmissionCheckError) -> JSONValue?
}
