import ArgumentParser
import AsyncHTTPClient
import DreamdCore
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// Where the CLI finds the API: `--url`/`DREAMD_URL` and `--token`/`DREAMD_TOKEN`.
struct APIOptions: ParsableArguments {
    @Option(name: .long, help: "Base URL of the dreamd API (default: $DREAMD_URL or http://127.0.0.1:8080).")
    var url: String?

    @Option(name: .long, help: "API key (default: $DREAMD_TOKEN).")
    var token: String?

    var baseURL: String {
        let text = url ?? ProcessInfo.processInfo.environment["DREAMD_URL"] ?? "http://127.0.0.1:8080"
        return text.hasSuffix("/") ? String(text.dropLast()) : text
    }

    /// Sends a request and returns the JSON answer; an error answer is printed and exits non-zero.
    func call(_ method: HTTPMethod, _ path: String, body: JSONValue? = nil, headers: [(String, String)] = []) async throws -> JSONValue {
        guard let token = token ?? ProcessInfo.processInfo.environment["DREAMD_TOKEN"], !token.isEmpty else {
            throw ValidationError("no API key: pass --token or set DREAMD_TOKEN (create one with `dreamd keys create --name NAME`)")
        }
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "authorization", value: "Bearer \(token)")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try DreamdJSON.encoder().encode(body)))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let buffer = try await response.body.collect(upTo: 64 << 20)
        let value = (try? DreamdJSON.decoder().decode(JSONValue.self, from: Data(buffer.readableBytesView))) ?? .null
        guard (200..<300).contains(response.status.code) else {
            let message = value["error"]?["message"]?.stringValue ?? String(buffer: buffer)
            let code = value["error"]?["code"]?.stringValue ?? "\(response.status.code)"
            printError("dreamd: \(code): \(message)")
            throw ExitCode.failure
        }
        return value
    }
}

func printJSON(_ value: JSONValue) throws {
    let encoder = DreamdJSON.encoder()
    encoder.outputFormatting.insert(.prettyPrinted)
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit and follow jobs through the HTTP API.",
        subcommands: [Submit.self, List.self, Show.self, Cancel.self, Wait.self]
    )

    struct Submit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Submit a job; prints it as JSON.")
        @OptionGroup var api: APIOptions
        @Option(help: "Job kind, e.g. image_gen.") var kind: String
        @Option(help: "Params as JSON text, or @file.json.") var params: String
        @Option(help: "ISO-8601 time to run at.") var runAt: String?
        @Option(help: "Priority (-100..100, lower runs first).") var priority: Int?
        @Option(help: "Attempts before the job fails.") var maxAttempts: Int?
        @Option(help: "Idempotency-Key header.") var idempotencyKey: String?

        func run() async throws {
            let text = params.hasPrefix("@") ? try String(contentsOfFile: String(params.dropFirst()), encoding: .utf8) : params
            guard let parsed = try? DreamdJSON.decode(JSONValue.self, from: text) else { throw ValidationError("--params is not valid JSON") }
            var body: [String: JSONValue] = ["kind": .string(kind), "params": parsed]
            if let runAt { body["run_at"] = .string(runAt) }
            if let priority { body["priority"] = .number(Double(priority)) }
            if let maxAttempts { body["max_attempts"] = .number(Double(maxAttempts)) }
            let job = try await api.call(.POST, "/v1/jobs", body: .object(body),
                                         headers: idempotencyKey.map { [("Idempotency-Key", $0)] } ?? [])
            try printJSON(job)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List jobs, newest first.")
        @OptionGroup var api: APIOptions
        @Option(help: "Filter by state (comma list).") var state: String?
        @Option(help: "Filter by kind (comma list).") var kind: String?
        @Option(help: "Page size (1-500).") var limit = 50
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            var query = ["limit=\(limit)"]
            if let state { query.append("state=\(state)") }
            if let kind { query.append("kind=\(kind)") }
            let page = try await api.call(.GET, "/v1/jobs?" + query.joined(separator: "&"))
            if json { return try printJSON(page) }
            print("ID                                    KIND                  STATE       ATTEMPT  CREATED")
            for job in page["data"]?.arrayValue ?? [] {
                let kind = (job["kind"]?.stringValue ?? "").padding(toLength: 20, withPad: " ", startingAt: 0)
                let state = (job["state"]?.stringValue ?? "").padding(toLength: 10, withPad: " ", startingAt: 0)
                print("\(job["id"]?.stringValue ?? "")  \(kind)  \(state)  \(job["attempt"]?.intValue ?? 0)/\(job["max_attempts"]?.intValue ?? 0)      \(job["created_at"]?.stringValue ?? "")")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a job and, with --events, its audit trail.")
        @OptionGroup var api: APIOptions
        @Argument(help: "Job id.") var id: String
        @Flag(help: "Also print the audit trail.") var events = false

        func run() async throws {
            try printJSON(try await api.call(.GET, "/v1/jobs/\(id)"))
            if events { try printJSON(try await api.call(.GET, "/v1/jobs/\(id)/events")) }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a job that has not finished.")
        @OptionGroup var api: APIOptions
        @Argument(help: "Job id.") var id: String

        func run() async throws {
            try printJSON(try await api.call(.POST, "/v1/jobs/\(id)/cancel"))
        }
    }

    struct Wait: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Wait until a job is final; exits 0 only if it succeeded.",
            discussion: "For a completion job the text is printed as it arrives; other jobs print as JSON when final."
        )
        @OptionGroup var api: APIOptions
        @Argument(help: "Job id.") var id: String
        @Option(help: "Give up after this long, e.g. 10m.") var timeout = "1h"
        @Flag(help: "Print the final job as JSON (also for completion jobs).") var json = false

        func run() async throws {
            let limit = try DurationParser.parse(timeout)
            let clock = ContinuousClock()
            let deadline = clock.now + limit
            var lastState = ""
            var printed = 0
            while true {
                let job = try await api.call(.GET, "/v1/jobs/\(id)")
                let state = job["state"]?.stringValue ?? ""
                if state != lastState {
                    printError("\(DreamdJSON.formatDate(Date()))  \(state)")
                    lastState = state
                }
                let streams = job["kind"]?.stringValue == JobKind.completion.rawValue && !json
                if streams {
                    let output = try await api.call(.GET, "/v1/jobs/\(id)/output?offset=\(printed)")
                    if let text = output["text"]?.stringValue, !text.isEmpty {
                        FileHandle.standardOutput.write(Data(text.utf8))
                        printed += text.unicodeScalars.count
                    }
                }
                if let parsed = JobState(rawValue: state), parsed.isFinal {
                    if streams {
                        print("")
                        if let error = job["error"]?["message"]?.stringValue { printError("dreamd: \(error)") }
                    } else {
                        try printJSON(job)
                    }
                    if parsed != .succeeded { throw ExitCode.failure }
                    return
                }
                guard clock.now < deadline else {
                    printError("dreamd: job \(id) is still \(state) after \(timeout)")
                    throw ExitCode(2)
                }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }
}
