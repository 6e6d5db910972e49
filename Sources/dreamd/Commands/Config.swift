import ArgumentParser
import DreamdServices
import Foundation

struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect the configuration.",
        subcommands: [Check.self]
    )

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate the environment and print the effective configuration, secrets redacted.",
            discussion: "Exits 78 (EX_CONFIG) with a message naming the key when a value is invalid."
        )

        func run() async throws {
            let configuration: DaemonConfiguration
            do {
                configuration = try DaemonConfiguration(environment: ProcessInfo.processInfo.environment)
            } catch {
                printError("dreamd: configuration error: \(error)")
                throw ExitCode(78)
            }
            let width = configuration.redactedSummary.map(\.key.count).max() ?? 0
            for (key, value) in configuration.redactedSummary {
                print(key.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value)
            }
        }
    }
}
