import DreamdCore
import Logging
import PostgresNIO
import ServiceLifecycle

/// Holds one connection that `LISTEN`s on one or more channels (`dreamd_jobs`, `dreamd_deliveries`)
/// and signals each channel's `WakeSignal` on every notification. Reconnects with backoff; the
/// workers' poll fallback covers any gap.
public struct JobNotificationListener: Service {
    public static let channel = "dreamd_jobs"
    /// The channel new webhook deliveries are announced on.
    public static let deliveriesChannel = "dreamd_deliveries"

    let client: PostgresClient
    let channels: [(name: String, wake: WakeSignal)]
    let logger: Logger

    public init(client: PostgresClient, wake: WakeSignal, logger: Logger) {
        self.init(client: client, channels: [Self.channel: wake], logger: logger)
    }

    /// Listens on every channel of `channels` over one connection.
    public init(client: PostgresClient, channels: [String: WakeSignal], logger: Logger) {
        self.client = client
        self.channels = channels.sorted { $0.key < $1.key }.map { (name: $0.key, wake: $0.value) }
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var failures = 0
            while !Task.isCancelled {
                do {
                    try await client.withConnection { connection in
                        try await listen(on: connection, channels[...], sequences: [])
                    }
                    failures = 0
                } catch {
                    if Task.isCancelled { return }
                    failures += 1
                    logger.warning("LISTEN connection lost; reconnecting", metadata: ["error": "\(String(reflecting: error))"])
                    try? await Task.sleep(for: BackoffPolicy(base: .milliseconds(250), cap: .seconds(15)).delay(afterAttempt: failures))
                }
            }
        }
    }

    /// Starts a LISTEN per channel (nested, so each is UNLISTENed on the way out), then consumes them all.
    private func listen(
        on connection: PostgresConnection, _ remaining: ArraySlice<(name: String, wake: WakeSignal)>,
        sequences: [(PostgresNotificationSequence, WakeSignal)]
    ) async throws {
        guard let next = remaining.first else {
            logger.debug("listening", metadata: ["channels": "\(channels.map(\.name).joined(separator: ","))"])
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (notifications, wake) in sequences {
                    // Work that arrived while the connection was down is found by the poll fallback.
                    wake.signal()
                    group.addTask { for try await _ in notifications { wake.signal() } }
                }
                // Any sequence ending means the connection is gone: reconnect.
                try await group.next()
                group.cancelAll()
            }
            return
        }
        try await connection.listen(on: next.name) { notifications in
            try await listen(on: connection, remaining.dropFirst(), sequences: sequences + [(notifications, next.wake)])
        }
    }
}
