import Foundation
import Logging
import PostgresNIO

/// A dispatch pause of one upstream, as every process on the database sees it.
public struct UpstreamPause: Sendable, Hashable {
    public var upstream: String
    public var until: Date
    public var reason: String

    public init(upstream: String, until: Date, reason: String) {
        self.upstream = upstream
        self.until = until
        self.reason = reason
    }
}

/// The `upstream_pauses` table: dispatch pauses shared between dreamd processes.
public struct UpstreamPauseStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Records a pause; when one is already recorded the later end wins.
    public func pause(_ pause: UpstreamPause) async throws {
        try await client.rows("""
            INSERT INTO upstream_pauses (upstream, paused_until, reason) VALUES (\(pause.upstream), \(pause.until), \(pause.reason))
            ON CONFLICT (upstream) DO UPDATE SET
                paused_until = greatest(upstream_pauses.paused_until, EXCLUDED.paused_until),
                reason = EXCLUDED.reason, paused_at = now()
            """, logger: logger)
    }

    /// Lifts the upstream's pause. Returns whether one was in force.
    @discardableResult
    public func resume(upstream: String) async throws -> Bool {
        let rows = try await client.rows(
            "DELETE FROM upstream_pauses WHERE upstream = \(upstream) RETURNING paused_until > now()", logger: logger)
        return try rows.decode(Bool.self).first ?? false
    }

    /// The pauses in force now.
    public func active() async throws -> [UpstreamPause] {
        let rows = try await client.rows(
            "SELECT upstream, paused_until, reason FROM upstream_pauses WHERE paused_until > now()", logger: logger)
        return try rows.decode((String, Date, String).self).map { UpstreamPause(upstream: $0.0, until: $0.1, reason: $0.2) }
    }
}
