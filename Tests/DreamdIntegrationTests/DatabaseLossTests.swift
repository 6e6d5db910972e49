import AsyncHTTPClient
import DreamdCore
import DreamdStore
import Foundation
import Logging
import PostgresNIO
import Testing

/// Takes a test database away from its clients and gives it back, as a PostgreSQL restart or a
/// network cut would: new connections are refused and every open one is terminated.
struct DatabaseOutage {
    let database: TestDatabase

    private func admin(_ query: PostgresQuery) async throws {
        let logger = database.logger
        try await TestDatabase.withAdmin(try TestDatabase.adminURL(), logger: logger) { connection in
            try await connection.query(query, logger: logger)
        }
    }

    /// Refuses new connections to the database and terminates the open ones.
    func begin() async throws {
        let name = database.url.database
        try await admin(PostgresQuery(unsafeSQL: "ALTER DATABASE \"\(name)\" WITH ALLOW_CONNECTIONS false"))
        try await admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = \(name) AND pid <> pg_backend_pid()")
    }

    /// Accepts connections again.
    func end() async throws {
        try await admin(PostgresQuery(unsafeSQL: "ALTER DATABASE \"\(database.url.database)\" WITH ALLOW_CONNECTIONS true"))
    }
}

@Suite("Database loss", .hangGuard, .serialized)
struct DatabaseLossTests {
    @Test("losing PostgreSQL: /readyz 503 while /healthz stays 200; the daemon reconnects by itself; no job lost or doubled")
    func outage() async throws {
        try await TestDatabase.with { db in
            try await withSimulator(runTime: .seconds(1)) { sim in
                // A statement that gets no answer at all (PostgresNIO can lose one written as the server
                // closes its connection) is given up after 3 s, and its step retried or taken over.
                try await withDaemon(database: db, simulator: sim, overrides: ["DREAMD_DB_STATEMENT_TIMEOUT": "3s"]) { daemon in
                    var ids: [String] = []
                    for index in 0..<8 {
                        let answer = try await daemon.submit(imageGenBody(prompt: "outage \(index)"))
                        try #require(answer.status == 201)
                        ids.append(try #require(answer.json["id"]?.stringValue))
                    }
                    // Some work is upstream when the database goes away.
                    #expect(try await eventually { await sim.dreamlook.jobCount >= 4 })

                    let outage = DatabaseOutage(database: db)
                    db.logger.info("outage: begin")
                    try await outage.begin()
                    db.logger.info("outage: database gone")
                    var endedOutage = false
                    do {
                        let notReady = try await eventually(timeout: .seconds(15)) {
                            try await daemon.request(.GET, "/readyz").status == 503
                        }
                        #expect(notReady, "/readyz must answer 503 while the database is gone")
                        db.logger.info("outage: /readyz answered 503")
                        let readyz = try await daemon.request(.GET, "/readyz")
                        #expect(readyz.json["checks"]?["database"] != nil, "\(readyz.json)")
                        #expect(try await daemon.request(.GET, "/healthz").status == 200)
                        // Upstream jobs finish meanwhile; their results wait for the database.
                        try await Task.sleep(for: .seconds(2))
                        try await outage.end()
                        endedOutage = true
                        db.logger.info("outage: database back")
                    } catch {
                        if !endedOutage { try? await outage.end() }
                        throw error
                    }

                    #expect(try await eventually(timeout: .seconds(30)) { try await daemon.request(.GET, "/readyz").status == 200 })
                    db.logger.info("outage: /readyz answered 200")
                    for id in ids {
                        #expect(try await daemon.waitFinal(id)["state"]?.stringValue == "succeeded", "job \(id)")
                        #expect(await sim.dreamlook.jobCount(taggedWith: "dreamd_job_id", value: id) == 1, "job \(id) upstream once")
                    }
                    // Each job reached `succeeded` exactly once, and nothing else was created.
                    let transitions = try await db.values(
                        "SELECT count(*)::int FROM job_events WHERE to_state = 'succeeded'", as: Int.self)
                    #expect(transitions == [ids.count])
                    #expect(try await db.values("SELECT count(*)::int FROM jobs", as: Int.self) == [ids.count])
                    // The daemon works on without a restart.
                    let after = try await daemon.submit(imageGenBody(prompt: "after the outage"))
                    let afterID = try #require(after.json["id"]?.stringValue)
                    #expect(try await daemon.waitFinal(afterID)["state"]?.stringValue == "succeeded")
                }
            }
        }
    }

    @Test("a statement past its deadline fails as 'database unavailable', gives its connection back, and the client still stops")
    func statementDeadline() async throws {
        try await TestDatabase.with { db in
            let client = PostgresClient(configuration: try db.url.clientConfiguration(maximumConnections: 2), backgroundLogger: db.logger)
            let started = ContinuousClock.now
            try await PostgresClient.withRunning(client) { client in
                let error = await #expect(throws: DatabaseAvailability.DeadlineExceeded.self) {
                    try await StatementDeadline.$current.withValue(.seconds(1)) {
                        try await client.rows("SELECT pg_sleep(30)", logger: db.logger)
                    }
                }
                #expect(error.map(DatabaseAvailability.isUnavailable) == true)
                #expect(ContinuousClock.now - started < .seconds(10))
                // The pool serves the next statements on a fresh connection.
                for _ in 0..<3 {
                    let one = try await client.rows("SELECT 1", logger: db.logger).decode(Int.self)
                    #expect(one == [1])
                }
            }
            // `withRunning` returned: the pool shut down although the abandoned statement never answered.
            #expect(ContinuousClock.now - started < .seconds(20))
        }
    }
}
