import Logging
import PostgresNIO
import Synchronization

extension PostgresClient {
    /// Runs `body` with `client` running, then stops the client.
    ///
    /// The client is not cancelled until its `run()` has begun: a `PostgresClient` whose run task is
    /// cancelled before `run()` starts never returns from it (its pool's shutdown fires before the pool
    /// runs), which hangs whatever waits for it. A short command (a migration check, a CLI call) can
    /// finish its queries that fast, because leases work before `run()` is entered.
    public static func withRunning<T: Sendable>(
        _ client: PostgresClient, _ body: @Sendable (PostgresClient) async throws -> T
    ) async throws -> T {
        let started = RunStarted()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                started.mark()
                await client.run()
            }
            // Waiting first also keeps leases from being asked for before `run()` (PostgresNIO warns then).
            await started.wait()
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}

/// Set once the run task is executing; `wait` then gives `run()` a moment (5 ms) to enter its pool loop.
private final class RunStarted: Sendable {
    private let flag = Atomic<Bool>(false)

    func mark() { flag.store(true, ordering: .releasing) }

    func wait() async {
        while !flag.load(ordering: .acquiring) { try? await Task.sleep(for: .milliseconds(1)) }
        try? await Task.sleep(for: .milliseconds(5))
    }
}
