import ArgumentParser
import DreamdStore
import Logging

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending migrations (safe to run from several processes at once).")

    @OptionGroup var database: DatabaseOptions

    @Flag(name: .long, help: "Only report whether the database is current.")
    var check = false

    func run() async throws {
        LoggingSetup.bootstrap()
        let logger = Logger(label: "dreamd.migrate")
        let runner = try MigrationRunner(directory: MigrationRunner.locateDirectory(explicit: database.migrationsDir))
        do {
            let check = self.check
            let applied = try await database.withClient(logger: logger) { client in
                if check {
                    try await runner.checkCurrent(client: client, logger: logger)
                    return [String]()
                }
                return try await runner.migrate(client: client, logger: logger)
            }
            if check { print("database is current (\(runner.migrations.count) migrations)") }
            else if applied.isEmpty { print("nothing to apply; \(runner.migrations.count) migrations already applied") }
            else { for file in applied { print("applied \(file)") } }
        } catch let error as MigrationError {
            printError("dreamd migrate: \(error)")
            throw ExitCode.failure
        }
    }
}
