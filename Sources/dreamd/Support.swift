import ArgumentParser
import DreamdServices
import DreamdStore
import Foundation
import Logging
import PostgresNIO

/// Process-wide logging to standard error: `DREAMD_LOG_LEVEL` (default info) and
/// `DREAMD_LOG_FORMAT` (`text`, the default, or `json`: one object per line).
enum LoggingSetup {
    static func bootstrap(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let level = environment["DREAMD_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
        let json = environment["DREAMD_LOG_FORMAT"]?.lowercased() == "json"
        LoggingSystem.bootstrap { label in
            if json { return JSONLogHandler(label: label, level: level) }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

/// `--config FILE`: settings in `KEY=value` lines, under the environment's.
struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "A configuration file of KEY=value lines (the environment wins over it).")
    var config: String?

    /// The configuration and the merged settings, or exit 78 (EX_CONFIG) with a message naming the key.
    func load() throws -> (DaemonConfiguration, [String: String]) {
        do {
            let file = try config.map { path throws(ConfigurationError) in try ConfigFile(path: path) }
            return try DaemonConfiguration.load(environment: ProcessInfo.processInfo.environment, file: file)
        } catch {
            printError("dreamd: configuration error: \(error)")
            throw ExitCode(78)
        }
    }
}

/// Options shared by the commands that open the database directly.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: "PostgreSQL URL (default: $DATABASE_URL).")
    var databaseURL: String?

    @Option(name: .long, help: "Folder of NNNN_name.sql migrations (default: $DREAMD_MIGRATIONS_DIR, ./migrations).")
    var migrationsDir: String?

    func url() throws -> DatabaseURL {
        guard let text = databaseURL ?? ProcessInfo.processInfo.environment["DATABASE_URL"], !text.isEmpty else {
            throw ValidationError("DATABASE_URL is not set (or pass --database-url)")
        }
        return try DatabaseURL(text)
    }

    /// Runs `body` with a connected client, shutting it down afterwards.
    func withClient<T: Sendable>(logger: Logger, _ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        let client = PostgresClient(configuration: try url().clientConfiguration(maximumConnections: 4), backgroundLogger: logger)
        return try await PostgresClient.withRunning(client, body)
    }
}

/// Prints to standard error (standard output is kept for results scripts read).
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
