import PostgresNIO
import Synchronization

/// Tells a lost database apart from a failed statement, so callers can answer "try again" (503)
/// rather than "internal error" (500).
public enum DatabaseAvailability {
    /// Whether `error` says the database could not be reached or the connection was lost.
    public static func isUnavailable(_ error: any Error) -> Bool {
        if error is DeadlineExceeded { return true }
        // PostgresNIO surfaces "no connection could be made for a while" as the pool module's
        // `ConnectionPoolError` (its circuit breaker); that module is underscored, so match by name.
        if String(reflecting: type(of: error)).hasSuffix(".ConnectionPoolError") { return true }
        if let error = error as? PSQLError {
            switch error.code {
            case .serverClosedConnection, .connectionError, .uncleanShutdown, .clientClosedConnection, .poolClosed:
                return true
            case .server:
                // Class 08: connection exception; 57P01-03: the server is shutting down or cannot take connections.
                let state = error.serverInfo?[.sqlState] ?? ""
                return state.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(state)
            default:
                return false
            }
        }
        return false
    }

    /// Runs `operation`, giving up after `timeout`: with the database gone, a query waits for a
    /// connection until the pool's circuit breaker trips (a minute), and does not give up when cancelled.
    /// The caller gets its answer on time; the abandoned operation ends on its own when the pool answers,
    /// or never (see ``PostgresClient/rows(_:logger:file:line:)``), which is why it is not a child task: a
    /// task group would wait for it.
    public static func withDeadline<T: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        let outcome = FirstOutcome<T>()
        return try await withCheckedThrowingContinuation { continuation in
            outcome.install(continuation)
            // Two short-lived tasks race; whichever finishes first answers, the other's result is dropped.
            let timer = Task {
                try? await Task.sleep(for: timeout)
                outcome.resolve(.failure(DeadlineExceeded(timeout: timeout)))
            }
            Task {
                do { outcome.resolve(.success(try await operation())) } catch { outcome.resolve(.failure(error)) }
                timer.cancel()
            }
        }
    }

    /// The database did not answer in time.
    public struct DeadlineExceeded: Error, CustomStringConvertible, Sendable {
        public var timeout: Duration
        public var description: String { "no answer within \(timeout)" }
    }
}

/// Resumes a continuation with the first outcome only; later ones are dropped.
private final class FirstOutcome<T: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<T, any Error>?>(nil)

    /// Called before either racer starts.
    func install(_ continuation: CheckedContinuation<T, any Error>) {
        self.continuation.withLock { $0 = continuation }
    }

    func resolve(_ result: Result<T, any Error>) {
        continuation.withLock { $0.take() }?.resume(with: result)
    }
}
