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
            abstract: "Validate the environment (and --config file) and print the effective configuration, secrets redacted.",
            discussion: "Exits 78 (EX_CONFIG) with a message naming the key when a value is invalid."
        )

        @OptionGroup var configOption: ConfigOption

        func run() async throws {
            let (configuration, _) = try configOption.load()
            let width = configuration.redactedSummary.map(\.key.count).max() ?? 0
            for (key, value) in configuration.redactedSummary {
                print(key.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value)
            }
        }
    }
}
