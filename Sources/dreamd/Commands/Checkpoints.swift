import ArgumentParser
import DreamdCore
import Foundation
import NIOHTTP1

/// `dreamd checkpoints`: trained checkpoints, their expiry and archive state, through the HTTP API.
struct Checkpoints: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List and inspect trained checkpoints and their expiry.",
        subcommands: [List.self, Show.self, Extend.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List checkpoints, soonest expiry first, with the time left.")
        @OptionGroup var api: APIOptions
        @Option(help: "Filter by state: available, expiring, expired (comma list).") var state: String?
        @Option(help: "Only checkpoints expiring within this long, e.g. 6h.") var expiringWithin: String?
        @Option(help: "How many (1-500).") var limit = 100
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            var query = ["limit=\(limit)"]
            if let state { query.append("state=\(state)") }
            if let expiringWithin {
                guard (try? DurationParser.parse(expiringWithin)) != nil else { throw ValidationError("--expiring-within: not a duration (e.g. 6h)") }
                query.append("expiring_within=\(expiringWithin)")
            }
            let page = try await api.call(.GET, "/v1/checkpoints?" + query.joined(separator: "&"))
            if json { return try printJSON(page) }
            print(Self.header)
            for checkpoint in page["data"]?.arrayValue ?? [] { print(Self.row(checkpoint)) }
        }

        static let header = "CHECKPOINT      STATE       EXPIRES_AT                   LEFT       ARCHIVE"

        static func row(_ checkpoint: JSONValue, now: Date = Date()) -> String {
            let id = (checkpoint["upstream_checkpoint_id"]?.stringValue ?? "").padding(toLength: 14, withPad: " ", startingAt: 0)
            let state = (checkpoint["state"]?.stringValue ?? "").padding(toLength: 10, withPad: " ", startingAt: 0)
            let expiresText = checkpoint["expires_at"]?.stringValue ?? ""
            let left = DreamdJSON.parseDate(expiresText).map { timeLeft(until: $0, now: now) } ?? "-"
            let archive = checkpoint["archive_state"]?.stringValue ?? "-"
            return "\(id)  \(state)  \(expiresText.padding(toLength: 27, withPad: " ", startingAt: 0))  \(left.padding(toLength: 9, withPad: " ", startingAt: 0))  \(archive)"
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one checkpoint as JSON.")
        @OptionGroup var api: APIOptions
        @Argument(help: "Checkpoint id (dreamd's UUID).") var id: String

        func run() async throws {
            try printJSON(try await api.call(.GET, "/v1/checkpoints/\(id)"))
        }
    }

    struct Extend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Override a checkpoint's expiry: --retention (from trained_at) or --expires-at.")
        @OptionGroup var api: APIOptions
        @Argument(help: "Checkpoint id (dreamd's UUID).") var id: String
        @Option(help: "Retention from trained_at, e.g. 72h.") var retention: String?
        @Option(help: "ISO-8601 expiry time.") var expiresAt: String?

        func run() async throws {
            var body: [String: JSONValue] = [:]
            if let retention { body["retention"] = .string(retention) }
            if let expiresAt { body["expires_at"] = .string(expiresAt) }
            guard body.count == 1 else { throw ValidationError("give exactly one of --retention or --expires-at") }
            try printJSON(try await api.call(.PATCH, "/v1/checkpoints/\(id)", body: .object(body)))
        }
    }
}

/// Time left until `date` as `2d3h`, `5h12m`, `12m30s` or `42s`; `expired` once past.
func timeLeft(until date: Date, now: Date = Date()) -> String {
    let total = Int(date.timeIntervalSince(now).rounded(.down))
    guard total > 0 else { return "expired" }
    let days = total / 86_400, hours = total % 86_400 / 3600, minutes = total % 3600 / 60, seconds = total % 60
    if days > 0 { return "\(days)d\(hours)h" }
    if hours > 0 { return "\(hours)h\(minutes)m" }
    if minutes > 0 { return "\(minutes)m\(seconds)s" }
    return "\(seconds)s"
}
