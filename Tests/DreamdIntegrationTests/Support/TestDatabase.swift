import DreamdStore
import Foundation
import Logging
import PostgresNIO
import Testing

/// A fresh, migrated database per test, on the server `DREAMD_TEST_DATABASE_URL` points at.
/// A missing server is a failure, never a skip.
struct TestDatabase: Sendable {
    let url: DatabaseURL
    let client: PostgresClient
    let logger: Logger

    static let migrationsDirectory: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("migrations").path

    static func adminURL() throws -> DatabaseURL {
        guard let text = ProcessInfo.processInfo.environment["DREAMD_TEST_DATABASE_URL"], !text.isEmpty else {
            throw TestSetupError("DREAMD_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh, which starts a throwaway PostgreSQL")
        }
        return try DatabaseURL(text)
    }

    static func migrations() throws -> MigrationRunner {
        try MigrationRunner(directory: migrationsDirectory)
    }

    /// Creates a database, optionally migrates it, runs `body` with a live client, then drops it.
    static func with<T: Sendable>(migrate: Bool = true, _ body: @Sendable (TestDatabase) async throws -> T) async throws -> T {
        let admin = try adminURL()
        let logger = testLogger()
        let name = "dreamd_t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        try await withAdmin(admin, logger: logger) { client in
            try await client.query("CREATE DATABASE \(unescaped: name)", logger: logger)
        }
        let url = admin.with(database: name)
        let client = PostgresClient(configuration: try url.clientConfiguration(maximumConnections: 10), backgroundLogger: logger)
        let database = TestDatabase(url: url, client: client, logger: logger)
        do {
            let result = try await PostgresClient.withRunning(client) { client in
                if migrate { try await migrations().migrate(client: client, logger: logger) }
                return try await body(database)
            }
            try? await drop(name, admin: admin, logger: logger)
            return result
        } catch {
            try? await drop(name, admin: admin, logger: logger)
            throw error
        }
    }

    private static func drop(_ name: String, admin: DatabaseURL, logger: Logger) async throws {
        try await withAdmin(admin, logger: logger) { client in
            try await client.query("DROP DATABASE IF EXISTS \(unescaped: name) WITH (FORCE)", logger: logger)
        }
    }

    /// Runs `body` on one plain connection to the admin database. (Not a `PostgresClient`: a client whose
    /// `run()` task is cancelled before it has started can hang forever, and with it the test process.)
    static func withAdmin(_ admin: DatabaseURL, logger: Logger, _ body: @Sendable (PostgresConnection) async throws -> Void) async throws {
        let configuration = PostgresConnection.Configuration(
            host: admin.host, port: admin.port, username: admin.user, password: admin.password, database: admin.database, tls: .disable)
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        do {
            try await body(connection)
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
    }

    var jobs: JobStore { JobStore(client: client, logger: logger) }
    var keys: APIKeyStore { APIKeyStore(client: client, logger: logger) }

    /// Runs a query and returns the first column of every row as `T`.
    func values<T: PostgresDecodable & Sendable>(_ query: PostgresQuery, as type: T.Type = T.self) async throws -> [T] {
        var values: [T] = []
        for try await value in try await client.query(query, logger: logger).decode(T.self) { values.append(value) }
        return values
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(20), interval: Duration = .milliseconds(50), _ condition: @Sendable () async throws -> Bool) async throws -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: interval)
    }
    return try await condition()
}

/// Quiet unless `DREAMD_TEST_LOG_LEVEL` asks for more.
func testLogger(_ label: String = "test") -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = ProcessInfo.processInfo.environment["DREAMD_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    return logger
}
