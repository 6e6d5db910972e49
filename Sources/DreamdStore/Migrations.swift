import Crypto
import Foundation
import Logging
import PostgresNIO

/// One numbered `.sql` file of `migrations/`.
public struct Migration: Sendable, Hashable {
    public var version: Int
    public var name: String
    public var sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// SHA-256 of the file's text, recorded when applied so a later edit is noticed.
    public var checksum: String {
        SHA256.hash(data: Data(sql.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    public var fileName: String { String(format: "%04d_%@.sql", version, name) }
}

/// Errors of the migration runner, each with a message for an operator.
public enum MigrationError: Error, CustomStringConvertible {
    case directoryNotFound(String)
    case badFileName(String)
    case duplicateVersion(Int)
    case checksumMismatch(version: Int, file: String)
    case unknownApplied(version: Int, name: String)
    case behind(missing: [String])
    case failed(file: String, message: String)

    public var description: String {
        switch self {
        case .directoryNotFound(let path):
            "migrations directory not found at \(path) (set DREAMD_MIGRATIONS_DIR or --migrations-dir)"
        case .badFileName(let name):
            "migration file \(name) is not named NNNN_name.sql"
        case .duplicateVersion(let version):
            "two migration files share version \(version)"
        case .checksumMismatch(let version, let file):
            "migration \(file) (version \(version)) was changed after it was applied; restore the applied text and add a new migration instead"
        case .unknownApplied(let version, let name):
            "the database has migration \(version) (\(name)) that this dreamd does not know; it is newer than this binary"
        case .behind(let missing):
            "the database is behind: migration\(missing.count == 1 ? "" : "s") \(missing.joined(separator: ", ")) not applied; run `dreamd migrate`"
        case .failed(let file, let message):
            "migration \(file) failed: \(message)"
        }
    }
}

/// Applies `migrations/NNNN_name.sql` in order, each in its own transaction, under an advisory lock,
/// recording each in `schema_migrations` with its checksum.
public struct MigrationRunner: Sendable {
    /// The advisory lock key that serialises concurrent `dreamd migrate` runs ("dreamd" in ASCII).
    static let advisoryLockKey: Int64 = 0x64_72_65_61_6d_64

    public let migrations: [Migration]

    public init(migrations: [Migration]) throws(MigrationError) {
        let sorted = migrations.sorted { $0.version < $1.version }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where previous.version == next.version {
            throw .duplicateVersion(next.version)
        }
        self.migrations = sorted
    }

    /// Loads every `NNNN_name.sql` of `directory`.
    public init(directory: String) throws(MigrationError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw .directoryNotFound(directory)
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var loaded: [Migration] = []
        for file in names.sorted() where file.hasSuffix(".sql") {
            let stem = file.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]), version > 0 else {
                throw .badFileName(file)
            }
            guard let sql = try? String(contentsOfFile: "\(directory)/\(file)", encoding: .utf8) else {
                throw .badFileName(file)
            }
            loaded.append(Migration(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql))
        }
        try self.init(migrations: loaded)
    }

    /// Finds the migrations directory: an explicit path, `DREAMD_MIGRATIONS_DIR`, `./migrations`,
    /// or `share/dreamd/migrations` beside the installed binary.
    public static func locateDirectory(explicit: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let explicit { return explicit }
        if let fromEnvironment = environment["DREAMD_MIGRATIONS_DIR"], !fromEnvironment.isEmpty { return fromEnvironment }
        let candidates = [
            FileManager.default.currentDirectoryPath + "/migrations",
            URL(fileURLWithPath: CommandLine.arguments.first ?? "").deletingLastPathComponent()
                .appendingPathComponent("../share/dreamd/migrations").standardized.path,
            "/usr/share/dreamd/migrations",
        ]
        return candidates.first { FileManager.default.fileExists(atPath: $0) } ?? candidates[0]
    }

    /// Applies every pending migration. Returns the files applied, in order.
    @discardableResult
    public func migrate(client: PostgresClient, logger: Logger) async throws -> [String] {
        try await client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(Self.advisoryLockKey))", logger: logger)
            do {
                let applied = try await apply(on: connection, logger: logger)
                try await connection.query("SELECT pg_advisory_unlock(\(Self.advisoryLockKey))", logger: logger)
                return applied
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.advisoryLockKey))", logger: logger)
                throw error
            }
        }
    }

    private func apply(on connection: PostgresConnection, logger: Logger) async throws -> [String] {
        try await connection.query("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """, logger: logger)
        let recorded = try await appliedVersions(on: connection, logger: logger)
        try verify(recorded: recorded)
        var applied: [String] = []
        for migration in migrations where recorded[migration.version] == nil {
            logger.info("applying migration", metadata: ["migration": "\(migration.fileName)"])
            do {
                try await connection.query("BEGIN", logger: logger)
                for statement in SQLStatementSplitter.split(migration.sql) {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (\(migration.version), \(migration.name), \(migration.checksum))",
                    logger: logger
                )
                try await connection.query("COMMIT", logger: logger)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw MigrationError.failed(file: migration.fileName, message: String(reflecting: error))
            }
            applied.append(migration.fileName)
        }
        return applied
    }

    /// Refuses to go on when the database is behind (names the missing files) or was migrated with other text.
    public func checkCurrent(client: PostgresClient, logger: Logger) async throws {
        // Under the statement deadline: `/readyz` runs this while the database may be going away.
        let recorded = try await client.withDeadlinedConnection(logger: logger) { connection in
            let exists = try await connection.query("SELECT to_regclass('schema_migrations') IS NOT NULL", logger: logger)
                .collect().first?.decode(Bool.self) ?? false
            return exists ? try await appliedVersions(on: connection, logger: logger) : [:]
        }
        try verify(recorded: recorded)
        let missing = migrations.filter { recorded[$0.version] == nil }.map(\.fileName)
        if !missing.isEmpty { throw MigrationError.behind(missing: missing) }
    }

    private func appliedVersions(on connection: PostgresConnection, logger: Logger) async throws -> [Int: (name: String, checksum: String)] {
        var recorded: [Int: (name: String, checksum: String)] = [:]
        let rows = try await connection.query("SELECT version, name, checksum FROM schema_migrations", logger: logger)
        for try await (version, name, checksum) in rows.decode((Int, String, String).self) {
            recorded[version] = (name, checksum)
        }
        return recorded
    }

    private func verify(recorded: [Int: (name: String, checksum: String)]) throws(MigrationError) {
        let known = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        for (version, entry) in recorded.sorted(by: { $0.key < $1.key }) {
            guard let migration = known[version] else { throw .unknownApplied(version: version, name: entry.name) }
            if migration.checksum != entry.checksum { throw .checksumMismatch(version: version, file: migration.fileName) }
        }
    }
}
