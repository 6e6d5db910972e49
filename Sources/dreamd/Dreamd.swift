import ArgumentParser

/// The `dreamd` command: the daemon, its simulators, and tools to operate it.
@main
struct Dreamd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dreamd",
        abstract: "Orchestrates paid remote AI jobs through a PostgreSQL-backed queue.",
        subcommands: [Serve.self, Migrate.self, Sim.self, Keys.self, Jobs.self, Schedules.self, Checkpoints.self, Upstreams.self, Config.self]
    )
}
