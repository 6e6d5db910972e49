import ArgumentParser
import DreamdStore
import Foundation
import Logging

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage API keys (works on the database directly).",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key and print its token once, on standard output.")
        @OptionGroup var database: DatabaseOptions
        @Option(help: "A name to recognise the key by.") var name: String
        @Option(help: "What the key may do: admin, submit or read.") var scope = "admin"

        func run() async throws {
            LoggingSetup.bootstrap()
            let logger = Logger(label: "dreamd.keys")
            let name = self.name
            guard let scope = APIKeyScope(rawValue: scope) else { throw ValidationError("--scope must be admin, submit or read") }
            let (key, token) = try await database.withClient(logger: logger) { client in
                try await APIKeyStore(client: client, logger: logger).create(name: name, scope: scope)
            }
            printError("created \(key.scope.rawValue) key \(key.id.uuidString.lowercased()) (\(key.name)); the token below is shown only now:")
            print(token)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (never their tokens).")
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            LoggingSetup.bootstrap()
            let logger = Logger(label: "dreamd.keys")
            let keys = try await database.withClient(logger: logger) { client in
                try await APIKeyStore(client: client, logger: logger).list()
            }
            print("ID                                    NAME                 SCOPE   PREFIX        CREATED                      REVOKED")
            for key in keys {
                print("\(key.id.uuidString.lowercased())  \(key.name.padding(toLength: 20, withPad: " ", startingAt: 0)) \(key.scope.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)) \(key.prefix)  \(key.createdAt)  \(key.revokedAt.map { "\($0)" } ?? "-")")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key by id or name.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The key's id or name.") var key: String

        func run() async throws {
            LoggingSetup.bootstrap()
            let logger = Logger(label: "dreamd.keys")
            let key = self.key
            let count = try await database.withClient(logger: logger) { client in
                try await APIKeyStore(client: client, logger: logger).revoke(idOrName: key)
            }
            guard count > 0 else {
                printError("no live key with id or name \(key)")
                throw ExitCode.failure
            }
            print("revoked \(count) key\(count == 1 ? "" : "s")")
        }
    }
}
