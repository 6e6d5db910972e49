import ArgumentParser
import DreamdServices
import DreamdStore
import Foundation
import Logging
import Metrics
import Prometheus

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the daemon: HTTP API, workers and pollers, until SIGTERM.")

    @Option(name: .long, help: "Folder of migrations to check the database against.")
    var migrationsDir: String?

    @OptionGroup var configOption: ConfigOption

    func run() async throws {
        let (configuration, settings) = try configOption.load()
        LoggingSetup.bootstrap(environment: settings)
        let logger = Logger(label: "dreamd")
        let migrations = try MigrationRunner(directory: MigrationRunner.locateDirectory(explicit: migrationsDir, environment: settings))
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let daemon = try Daemon(configuration: configuration, migrations: migrations, metricsRegistry: registry, logger: logger)
        try await daemon.run(startupCheck: true) { port in
            logger.info("dreamd listening", metadata: ["address": "\(configuration.listenHost):\(port)", "database": "\(configuration.databaseURL)"])
        }
    }
}
