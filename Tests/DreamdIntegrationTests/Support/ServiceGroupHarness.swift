import Logging
import ServiceLifecycle
import Testing

/// How long a test's services get to stop after a graceful shutdown before the test gives up on them.
let serviceShutdownDeadline: Duration = .seconds(30)

/// Runs `services` in one `ServiceGroup` around `body`, then shuts them down gracefully.
///
/// Nothing here waits without bound on a service: a shutdown that outlasts ``serviceShutdownDeadline`` is
/// recorded as an issue and the group is cancelled, so a service that will not stop fails its test instead
/// of hanging the whole run. `whenEnded` runs as soon as the group has stopped, for whatever reason (it lets
/// a body that waits on the services, for a port say, stop waiting when they failed to start).
func withServiceGroup<T: Sendable>(
    _ services: [any Service], logger: Logger = testLogger(), whenEnded: @escaping @Sendable () -> Void = {},
    _ body: @Sendable () async throws -> T
) async throws -> T {
    let group = ServiceGroup(services: services, logger: logger)
    return try await withThrowingTaskGroup(of: GroupEvent.self) { tasks in
        tasks.addTask {
            defer { whenEnded() }
            try await group.run()
            return .groupEnded
        }
        let result: T
        do {
            result = try await body()
        } catch {
            await group.triggerGracefulShutdown()
            tasks.cancelAll()
            // When the services stopped first, their error is the one that explains the failure; otherwise
            // the body's is (the group's is then only the cancellation).
            do {
                while try await tasks.next() != nil {}
            } catch let groupError {
                if error is ServicesStoppedEarly { throw groupError }
            }
            throw error
        }
        await group.triggerGracefulShutdown()
        tasks.addTask {
            do { try await Task.sleep(for: serviceShutdownDeadline) } catch { return .watchdogStopped }
            return .shutdownDeadlinePassed
        }
        if try await tasks.next() == .shutdownDeadlinePassed {
            Issue.record("the services did not stop within \(serviceShutdownDeadline) of a graceful shutdown; cancelling them")
        }
        tasks.cancelAll()
        while try await tasks.next() != nil {}
        return result
    }
}

/// Runs the services `makeServices` builds around `body`, once their server listens; `body` gets its port.
/// If the services stop before the server listens, their error is thrown rather than waited on forever.
func withListeningServices<T: Sendable>(
    logger: Logger, _ makeServices: (_ onListening: @escaping @Sendable (Int) async -> Void) -> [any Service],
    _ body: @Sendable (_ port: Int) async throws -> T
) async throws -> T {
    let (ports, portContinuation) = AsyncStream<Int>.makeStream()
    let services = makeServices { port in portContinuation.yield(port) }
    return try await withServiceGroup(services, logger: logger, whenEnded: { portContinuation.finish() }) {
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw ServicesStoppedEarly() }
        return try await body(port)
    }
}

/// The services stopped before their server was listening.
struct ServicesStoppedEarly: Error, CustomStringConvertible {
    var description: String { "the services stopped before their server was listening" }
}

private enum GroupEvent: Sendable {
    case groupEnded, shutdownDeadlinePassed, watchdogStopped
}

extension Trait where Self == TimeLimitTrait {
    /// Every integration suite's limit per test: far above what any test needs, so that reaching it means a
    /// hang. The test then fails and is cancelled instead of holding the whole run until CI gives up.
    static var hangGuard: Self { .timeLimit(.minutes(5)) }
}
