import ArgumentParser
import DreamdCore
import Foundation

struct Upstreams: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "See and steer the upstreams (through the HTTP API of the daemon that serves it).",
        subcommands: [List.self, Resume.self, Models.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Each upstream's state: healthy, paused (and until when), unhealthy.")
        @OptionGroup var api: APIOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            let answer = try await api.call(.GET, "/v1/upstreams")
            if json { return try printJSON(answer) }
            print("NAME        STATE       IN FLIGHT  PAUSED UNTIL                  REASON")
            for upstream in answer["data"]?.arrayValue ?? [] {
                let name = (upstream["name"]?.stringValue ?? "").padding(toLength: 10, withPad: " ", startingAt: 0)
                let state = (upstream["state"]?.stringValue ?? "").padding(toLength: 10, withPad: " ", startingAt: 0)
                let inFlight = upstream["in_flight"]?.intValue.map { n in upstream["max_in_flight"]?.intValue.map { "\(n)/\($0)" } ?? "\(n)" } ?? "-"
                let until = upstream["paused_until"]?.stringValue ?? "-"
                print("\(name)  \(state)  \(inFlight.padding(toLength: 9, withPad: " ", startingAt: 0))  \(until.padding(toLength: 28, withPad: " ", startingAt: 0))  \(upstream["reason"]?.stringValue ?? "")")
            }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lift a dispatch pause now, e.g. `dreamd upstreams resume dream` after topping up Dream Engines credits.",
            discussion: "The pause is per process: run it against each daemon (--url) that paused."
        )
        @OptionGroup var api: APIOptions
        @Argument(help: "The upstream's name, e.g. dream.") var name: String

        func run() async throws {
            let answer = try await api.call(.POST, "/v1/upstreams/\(name)/resume")
            printError(answer["was_paused"]?.boolValue == true ? "\(name): dispatch resumed" : "\(name) was not paused")
            try printJSON(answer)
        }
    }

    struct Models: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The Dream Engines model catalog (GET /v1/models[/SLUG]).")
        @OptionGroup var api: APIOptions
        @Argument(help: "A model slug, e.g. dreamdojo-2b-gr1.") var slug: String?

        func run() async throws {
            if let slug { return try printJSON(try await api.call(.GET, "/v1/models/\(slug)")) }
            let answer = try await api.call(.GET, "/v1/models")
            print("SLUG                      ACTIVE  PRICE/FRAME  ACTION_DIM  CHUNK  RESOLUTION")
            for model in answer["data"]?.arrayValue ?? [] {
                let slug = (model["slug"]?.stringValue ?? "").padding(toLength: 24, withPad: " ", startingAt: 0)
                let active = (model["active"]?.boolValue == true ? "yes" : "no").padding(toLength: 6, withPad: " ", startingAt: 0)
                let price = String(format: "$%.4f", model["price_per_frame_usd"]?.doubleValue ?? 0).padding(toLength: 11, withPad: " ", startingAt: 0)
                let spec = model["spec"]
                let dim = "\(spec?["action_dim"]?.intValue ?? 0)".padding(toLength: 10, withPad: " ", startingAt: 0)
                let chunk = "\(spec?["chunk_size"]?.intValue ?? 0)".padding(toLength: 5, withPad: " ", startingAt: 0)
                let resolution = (spec?["resolution"]?.arrayValue ?? []).compactMap(\.intValue).map(String.init).joined(separator: "×")
                print("\(slug)  \(active)  \(price)  \(dim)  \(chunk)  \(resolution) (H×W)")
            }
        }
    }
}
