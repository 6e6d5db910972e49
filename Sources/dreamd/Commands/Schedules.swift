import ArgumentParser
import DreamdCore
import Foundation

struct Schedules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage recurring jobs (cron schedules) through the HTTP API.",
        subcommands: [Create.self, List.self, Show.self, Update.self, Delete.self, Trigger.self, Preview.self]
    )

    /// Options that build a schedule body; shared by `create` and `update`.
    struct ScheduleOptions: ParsableArguments {
        @Option(help: "Name of the schedule.") var name: String?
        @Option(help: "Five cron fields, @hourly/@daily/@weekly/@monthly/@yearly, or \"@every 10m\".") var cron: String?
        @Option(help: "IANA time zone the cron fields are read in (default UTC).") var timezone: String?
        @Option(help: "Job kind, e.g. image_gen.") var kind: String?
        @Option(help: "Job params as JSON text, or @file.json.") var params: String?
        @Option(help: "Job priority (-100..100, lower runs first).") var priority: Int?
        @Option(help: "Job attempts before it fails.") var maxAttempts: Int?
        @Option(help: "Job metadata as a JSON object.") var metadata: String?
        @Option(help: "While the previous run is unfinished: skip (default) or allow.") var overlap: String?
        @Option(help: "After downtime: none, one (default) or all missed ticks.") var catchUp: String?

        func fields() throws -> [String: JSONValue] {
            var body: [String: JSONValue] = [:]
            if let name { body["name"] = .string(name) }
            if let cron { body["cron"] = .string(cron) }
            if let timezone { body["timezone"] = .string(timezone) }
            if let overlap { body["overlap"] = .string(overlap) }
            if let catchUp { body["catch_up"] = .string(catchUp) }
            return body
        }

        /// The job template from the options, on top of `base` (the stored one when updating).
        func template(base: JSONValue?) throws -> JSONValue? {
            guard kind != nil || params != nil || priority != nil || maxAttempts != nil || metadata != nil else { return nil }
            var job = base?.objectValue ?? [:]
            if let kind { job["kind"] = .string(kind) }
            if let params { job["params"] = try Self.json(params, option: "--params") }
            if let priority { job["priority"] = .number(Double(priority)) }
            if let maxAttempts { job["max_attempts"] = .number(Double(maxAttempts)) }
            if let metadata { job["metadata"] = try Self.json(metadata, option: "--metadata") }
            return .object(job)
        }

        static func json(_ text: String, option: String) throws -> JSONValue {
            let content = text.hasPrefix("@") ? try String(contentsOfFile: String(text.dropFirst()), encoding: .utf8) : text
            guard let parsed = try? DreamdJSON.decode(JSONValue.self, from: content) else { throw ValidationError("\(option) is not valid JSON") }
            return parsed
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a schedule; prints it as JSON.",
            discussion: """
                Example: dreamd schedules create --name nightly --cron '30 2 * * *' --timezone Europe/Berlin \\
                  --kind image_gen --params '{"prompt": "a fox", "num_samples": 1, "width": 512, "height": 512, "base_model": "sd-1.5"}'
                """
        )
        @OptionGroup var api: APIOptions
        @OptionGroup var schedule: ScheduleOptions
        @Flag(help: "Create it disabled.") var disabled = false

        func run() async throws {
            guard schedule.name != nil, schedule.cron != nil, schedule.kind != nil, schedule.params != nil else {
                throw ValidationError("--name, --cron, --kind and --params are required")
            }
            var body = try schedule.fields()
            body["job"] = try schedule.template(base: nil)
            if disabled { body["enabled"] = false }
            try printJSON(try await api.call(.POST, "/v1/schedules", body: .object(body)))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List schedules, newest first.")
        @OptionGroup var api: APIOptions
        @Option(help: "Only enabled (true) or disabled (false) schedules.") var enabled: Bool?
        @Option(help: "Page size (1-500).") var limit = 50
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            var query = ["limit=\(limit)"]
            if let enabled { query.append("enabled=\(enabled)") }
            let page = try await api.call(.GET, "/v1/schedules?" + query.joined(separator: "&"))
            if json { return try printJSON(page) }
            print("ID                                    NAME                  CRON                ZONE                ON   NEXT")
            for schedule in page["data"]?.arrayValue ?? [] {
                func column(_ key: String, _ width: Int) -> String {
                    (schedule[key]?.stringValue ?? "").padding(toLength: width, withPad: " ", startingAt: 0)
                }
                let on = schedule["enabled"]?.boolValue == true ? "yes " : "no  "
                print("\(column("id", 36))  \(column("name", 20))  \(column("cron", 18))  \(column("timezone", 18))  \(on) \(schedule["next_fire_at"]?.stringValue ?? "-")")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a schedule and its recent runs.")
        @OptionGroup var api: APIOptions
        @Argument(help: "Schedule id.") var id: String

        func run() async throws {
            try printJSON(try await api.call(.GET, "/v1/schedules/\(id)"))
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a schedule; only the options given change. Prints it as JSON.",
            discussion: "Job options (--kind, --params, ...) change the stored job template field by field."
        )
        @OptionGroup var api: APIOptions
        @Argument(help: "Schedule id.") var id: String
        @OptionGroup var schedule: ScheduleOptions
        @Flag(help: "Enable the schedule (it resumes at its next tick).") var enable = false
        @Flag(help: "Disable the schedule.") var disable = false

        func run() async throws {
            var body = try schedule.fields()
            var base: JSONValue?
            if schedule.kind != nil || schedule.params != nil || schedule.priority != nil || schedule.maxAttempts != nil || schedule.metadata != nil {
                base = try await api.call(.GET, "/v1/schedules/\(id)")["job"]
            }
            if let job = try schedule.template(base: base) { body["job"] = job }
            guard !(enable && disable) else { throw ValidationError("--enable and --disable exclude each other") }
            if enable || disable { body["enabled"] = .bool(enable) }
            guard !body.isEmpty else { throw ValidationError("nothing to change: pass at least one option") }
            try printJSON(try await api.call(.PATCH, "/v1/schedules/\(id)", body: .object(body)))
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a schedule. Jobs it created are kept.")
        @OptionGroup var api: APIOptions
        @Argument(help: "Schedule id.") var id: String

        func run() async throws {
            _ = try await api.call(.DELETE, "/v1/schedules/\(id)")
            printError("deleted schedule \(id)")
        }
    }

    struct Trigger: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a job of the schedule now; prints the job.")
        @OptionGroup var api: APIOptions
        @Argument(help: "Schedule id.") var id: String

        func run() async throws {
            try printJSON(try await api.call(.POST, "/v1/schedules/\(id)/trigger"))
        }
    }

    struct Preview: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the next fire times of a schedule (UTC and local).")
        @OptionGroup var api: APIOptions
        @Argument(help: "Schedule id.") var id: String
        @Option(help: "How many (1-100).") var count = 5
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let preview = try await api.call(.GET, "/v1/schedules/\(id)/preview?count=\(count)")
            if json { return try printJSON(preview) }
            for time in preview["data"]?.arrayValue ?? [] {
                print("\(time["at"]?.stringValue ?? "")  \(time["local"]?.stringValue ?? "")")
            }
        }
    }
}
