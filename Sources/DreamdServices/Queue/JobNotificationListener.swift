import DreamdCore
import Logging
import PostgresNIO
import ServiceLifecycle

/// Holds one connection that `LISTEN`s on `dreamd_jobs` and wakes the worker on every insert.
/// Reconnects with backoff; the worker's poll fallback covers any gap.
public struct JobNotificationListener: Service {
    public static let channel = "dreamd_jobs"

    let client: PostgresClient
    let wake: WakeSignal
    let logger: Logger

    public init(client: PostgresClient, wake: WakeSignal, logger: Logger) {
        self.client = client
        self.wake = wake
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var failures = 0
            while !Task.isCancelled {
                do {
                    try await client.withConnection { connection in
                        try await connection.listen(on: Self.channel) { notifications in
                            logger.debug("listening for new jobs", metadata: ["channel": "\(Self.channel)"])
                            // Jobs inserted while the connection was down are found by the poll fallback.
                            wake.signal()
                            for try await _ in notifications { wake.signal() }
                        }
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
}
