import DreamdCore
import Foundation
import Logging
import PostgresNIO

/// Who made a change, recorded in `job_events.actor` through the `dreamd.actor` setting.
public struct Actor: RawRepresentable, Sendable, Hashable, ExpressibleByStringLiteral {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    public static let api: Actor = "api"
    public static let worker: Actor = "worker"
    public static let poller: Actor = "poller"
    public static let scheduler: Actor = "scheduler"
    public static let rescuer: Actor = "rescuer"
    public static let cli: Actor = "cli"
}

extension PostgresConnection {
    /// Sets the transaction-local actor and detail that the `jobs_audit` trigger records.
    func setAudit(actor: Actor, detail: JSONValue? = nil, logger: Logger) async throws {
        let detailText = try detail.map { try DreamdJSON.string($0) } ?? ""
        try await query(
            "SELECT set_config('dreamd.actor', \(actor.rawValue), true), set_config('dreamd.detail', \(detailText), true)",
            logger: logger
        )
    }
}

extension PostgresRowSequence {
    /// Collects every row (for small result sets).
    func collect() async throws -> [PostgresRow] {
        var rows: [PostgresRow] = []
        for try await row in self { rows.append(row) }
        return rows
    }
}
