import Logging
import PostgresNIO
import Synchronization

extension PostgresClient {
    /// Runs `body` with `client` running, then stops the client.
    ///
    /// The client is not cancelled until its `run()` is processing events: a `PostgresClient` whose run
    /// task is cancelled before `run()` has started can fail to return from it (its pool's shutdown fires
    /// before the pool runs), which hangs whatever waits for it. Connections are only ever made by the
    /// running pool, so one connection lease completing (or failing) proves it runs. The run task is seen
    /// to start before that lease is asked for, as PostgresNIO warns about leases before `run()`. The
    /// connection stays in the pool for `body`.
    public static func withRunning<T: Sendable>(
        _ client: PostgresClient, _ body: @Sendable (PostgresClient) async throws -> T
    ) async throws -> T {
        let started = RunStarted()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                started.mark()
                await client.run()
            }
            await started.wait()
            defer { group.cancelAll() }
            do {
                try await client.withConnection { _ in }
            } catch {
                // The pool ran and could not connect: `body` meets (and reports) the same error.
            }
            return try await body(client)
        }
    }
}

/// Set once the run task is executing; `wait` then gives `run()` a moment to mark itself running.
private final class RunStarted: Sendable {
    private let flag = Atomic<Bool>(false)

    func mark() { flag.store(true, ordering: .releasing) }

    func wait() async {
        while !flag.load(ordering: .acquiring) { try? await Task.sleep(for: .milliseconds(1)) }
        try? await Task.sleep(for: .milliseconds(2))
    }
}
