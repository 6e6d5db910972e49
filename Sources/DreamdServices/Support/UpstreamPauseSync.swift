import DreamdCore
import DreamdStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Shares dispatch pauses between the dreamd processes on one database, through `upstream_pauses`.
///
/// Each `interval`: a pause this process started (its worker met a 402) is recorded for the others, a
/// pause recorded by another process is applied here, and a pause this process had agreed with the table
/// on but the table no longer holds (a resume through any process) is lifted here. So a 402 anywhere stops
/// Dream Engines dispatch everywhere within one interval, and one resume restarts it everywhere.
public final class UpstreamPauseSync: Service, Sendable {
    let store: UpstreamPauseStore
    let healths: [UpstreamHealth]
    let interval: Duration
    let logger: Logger
    /// Per upstream, the pause end this process and the table last agreed on.
    private let agreed = Mutex<[String: Date]>([:])

    public init(store: UpstreamPauseStore, healths: [UpstreamHealth], interval: Duration = .seconds(1), logger: Logger) {
        self.store = store
        self.healths = healths
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        guard !healths.isEmpty else { return }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await self.sync()
                } catch {
                    self.logger.warning("sharing upstream pauses failed", metadata: ["error": "\(String(reflecting: error))"])
                }
                try? await Task.sleep(for: self.interval)
            }
        }
    }

    /// One exchange with the table.
    public func sync() async throws {
        let recorded = Dictionary(try await store.active().map { ($0.upstream, $0) }) { first, _ in first }
        for health in healths {
            let status = health.status
            let local = status.state == .paused ? status.pausedUntil : nil
            let shared = recorded[health.name]
            let agreedUntil = agreed.withLock { $0[health.name] }
            if let local, !Self.same(local, agreedUntil), shared.map({ $0.until < local.addingTimeInterval(-0.001) }) ?? true {
                // Started here: tell the others.
                try await store.pause(UpstreamPause(upstream: health.name, until: local, reason: status.reason ?? "paused"))
                logger.notice("upstream pause shared", metadata: ["upstream": "\(health.name)", "until": "\(DreamdJSON.formatDate(local))"])
                agreed.withLock { $0[health.name] = local }
            } else if let shared, local.map({ $0 < shared.until.addingTimeInterval(-0.001) }) ?? true {
                // Started elsewhere (or extended there): apply it here.
                health.pause(until: shared.until, reason: shared.reason)
                logger.notice("upstream paused by another process", metadata: ["upstream": "\(health.name)", "until": "\(DreamdJSON.formatDate(shared.until))"])
                agreed.withLock { $0[health.name] = shared.until }
            } else if shared == nil, let local, Self.same(local, agreedUntil) {
                // Lifted elsewhere: a resume through another process.
                health.resume()
                logger.notice("upstream resumed by another process", metadata: ["upstream": "\(health.name)"])
                agreed.withLock { $0[health.name] = nil }
            } else if local == nil, shared == nil {
                agreed.withLock { $0[health.name] = nil }
            } else if let shared, agreedUntil == nil {
                agreed.withLock { $0[health.name] = shared.until }
            }
        }
    }

    /// Equal to the millisecond (the table keeps microseconds, a `Date` more).
    private static func same(_ a: Date, _ b: Date?) -> Bool {
        guard let b else { return false }
        return abs(a.timeIntervalSince(b)) < 0.001
    }
}
