import ArgumentParser
import AsyncHTTPClient
import DreamdCore
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Synchronization

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
        let bytes = try body.map { HTTPClientRequest.Body.bytes(ByteBuffer(data: try DreamdJSON.encoder().encode($0))) }
        return try await call(method, path, rawBody: bytes, contentType: "application/json", headers: headers)
    }

    /// Sends `rawBody` as `contentType`; see `call(_:_:body:headers:)`.
    func call(_ method: HTTPMethod, _ path: String, rawBody: HTTPClientRequest.Body?, contentType: String, headers: [(String, String)] = [],
              timeout: Duration = .seconds(60), details: ((JSONValue) -> Void)? = nil) async throws -> JSONValue {
        guard let token = token ?? ProcessInfo.processInfo.environment["DREAMD_TOKEN"], !token.isEmpty else {
            throw ValidationError("no API key: pass --token or set DREAMD_TOKEN (create one with `dreamd keys create --name NAME`)")
        }
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "authorization", value: "Bearer \(token)")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let rawBody {
            request.headers.add(name: "content-type", value: contentType)
            request.body = rawBody
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .nanoseconds(Int64(timeout.seconds * 1e9)))
        let buffer = try await response.body.collect(upTo: 64 << 20)
        let value = (try? DreamdJSON.decoder().decode(JSONValue.self, from: Data(buffer.readableBytesView))) ?? .null
        guard (200..<300).contains(response.status.code) else {
            let message = value["error"]?["message"]?.stringValue ?? String(buffer: buffer)
            let code = value["error"]?["code"]?.stringValue ?? "\(response.status.code)"
            printError("dreamd: \(code): \(message)")
            if let errorDetails = value["error"]?["details"] { details?(errorDetails) }
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
        subcommands: [Submit.self, List.self, Show.self, Cancel.self, Retry.self, Wait.self, Estimate.self, Batch.self]
    )

    struct Submit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Submit a job (prints it as JSON), or a file of them with --file.",
            discussion: """
                With --file rows.jsonl, every line is a job body ({"kind", "params", ...}); the rows are checked and \
                inserted together (all or none) through POST /v1/jobs/bulk, and the batch is printed. With --wait, \
                a progress bar follows the batch until every job is final (exit 0 only if all succeeded).
                """
        )
        @OptionGroup var api: APIOptions
        @Option(help: "Job kind, e.g. image_gen or predict.") var kind: String?
        @Option(help: "Params as JSON text, or @file.json.") var params: String?
        @Option(help: "A JSON-lines file of job bodies to submit as one batch.") var file: String?
        @Flag(help: "With --file: follow the batch with a progress bar until it finishes.") var wait = false
        @Option(help: "With --wait: give up after this long, e.g. 2h.") var timeout = "24h"
        @Option(help: "ISO-8601 time to run at.") var runAt: String?
        @Option(help: "Priority (-100..100, lower runs first).") var priority: Int?
        @Option(help: "Attempts before the job fails.") var maxAttempts: Int?
        @Option(help: "Idempotency-Key header.") var idempotencyKey: String?

        func validate() throws {
            if file == nil, kind == nil || params == nil { throw ValidationError("give --kind and --params, or --file rows.jsonl") }
            if file != nil, kind != nil || params != nil { throw ValidationError("--file takes its kinds and params from the file; drop --kind/--params") }
            if wait, file == nil { throw ValidationError("--wait follows a batch: use it with --file (for one job: dreamd jobs wait ID)") }
        }

        func run() async throws {
            if let file { return try await submitFile(file) }
            guard let kind, let params else { return }
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

        func submitFile(_ path: String) async throws {
            guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
            let rows = data.split(separator: UInt8(ascii: "\n")).filter { !$0.allSatisfy { $0 == 32 || $0 == 13 || $0 == 9 } }.count
            printError("submitting \(rows) rows (\(ByteFormat.size(data.count))) from \(path)")
            let started = ContinuousClock.now
            let upload = UploadProgress(data: data, label: "upload")
            let body = HTTPClientRequest.Body.stream(upload, length: .known(Int64(data.count)))
            let batch = try await api.call(.POST, "/v1/jobs/bulk", rawBody: body, contentType: "application/x-ndjson",
                                           headers: idempotencyKey.map { [("Idempotency-Key", $0)] } ?? [], timeout: .seconds(600)) { details in
                for row in details["rows"]?.arrayValue ?? [] {
                    let field = row["field"]?.stringValue.map { "\($0): " } ?? ""
                    printError("  line \(row["line"]?.intValue ?? 0): \(field)\(row["message"]?.stringValue ?? "")")
                }
                if details["truncated"]?.boolValue == true { printError("  ... (more rows are invalid)") }
            }
            upload.finish()
            let id = batch["id"]?.stringValue ?? ""
            printError("batch \(id): \(batch["total"]?.intValue ?? rows) jobs submitted in \(String(format: "%.2f", (ContinuousClock.now - started).seconds)) s")
            guard wait else {
                var summary = batch.objectValue ?? [:]
                summary.removeValue(forKey: "job_ids")
                return try printJSON(.object(summary))
            }
            try await BatchFollower(api: api, id: id, timeout: try DurationParser.parse(timeout)).follow()
        }
    }

    struct Batch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a batch (from submit --file); with --wait, follow it to the end.")
        @OptionGroup var api: APIOptions
        @Argument(help: "Batch id.") var id: String
        @Flag(help: "Follow the batch with a progress bar until it finishes.") var wait = false
        @Option(help: "With --wait: give up after this long.") var timeout = "24h"

        func run() async throws {
            guard wait else { return try printJSON(try await api.call(.GET, "/v1/batches/\(id)")) }
            try await BatchFollower(api: api, id: id, timeout: try DurationParser.parse(timeout)).follow()
        }
    }

    struct Estimate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "What a job, or N rows like it, would cost (POST /v1/estimate).")
        @OptionGroup var api: APIOptions
        @Option(help: "Job kind, e.g. predict.") var kind: String
        @Option(help: "Params as JSON text, or @file.json.") var params: String
        @Option(help: "How many rows like this one.") var rows = 1

        func run() async throws {
            let text = params.hasPrefix("@") ? try String(contentsOfFile: String(params.dropFirst()), encoding: .utf8) : params
            guard let parsed = try? DreamdJSON.decode(JSONValue.self, from: text) else { throw ValidationError("--params is not valid JSON") }
            try printJSON(try await api.call(.POST, "/v1/estimate", body: ["kind": .string(kind), "params": parsed, "rows": .number(Double(rows))]))
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

/// Follows a batch until every job is final, drawing a progress bar on standard error.
struct BatchFollower {
    let api: APIOptions
    let id: String
    let timeout: Duration

    func follow() async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        let interactive = isatty(STDERR_FILENO) != 0
        var lastLine = ""
        var lastPrinted = clock.now - .seconds(60)
        while true {
            let batch = try await api.call(.GET, "/v1/batches/\(id)")
            let total = batch["total"]?.intValue ?? 0
            let succeeded = batch["succeeded"]?.intValue ?? 0
            let failed = batch["failed"]?.intValue ?? 0
            let cancelled = batch["cancelled"]?.intValue ?? 0
            let pending = batch["pending"]?.intValue ?? 0
            let line = Self.bar(done: total - pending, total: total) + "  ok \(succeeded)  failed \(failed)"
                + (cancelled > 0 ? "  cancelled \(cancelled)" : "") + "  pending \(pending)"
                + String(format: "  $%.4f", batch["cost_usd"]?.doubleValue ?? 0)
            if interactive {
                FileHandle.standardError.write(Data(("\r" + line + "   ").utf8))
            } else if line != lastLine, clock.now - lastPrinted >= .seconds(5) || pending == 0 {
                printError(line)
                lastPrinted = clock.now
            }
            lastLine = line
            if pending == 0 {
                if interactive { printError("") }
                try printJSON(batch)
                if failed > 0 || cancelled > 0 { throw ExitCode.failure }
                return
            }
            guard clock.now < deadline else {
                if interactive { printError("") }
                printError("dreamd: batch \(id) still has \(pending) pending jobs")
                throw ExitCode(2)
            }
            try await Task.sleep(for: .seconds(1))
        }
    }

    static func bar(done: Int, total: Int, width: Int = 30) -> String {
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let filled = Int((fraction * Double(width)).rounded(.down))
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            + String(format: "%3.0f%%", fraction * 100) + "  \(done)/\(total)"
    }
}

enum ByteFormat {
    static func size(_ bytes: Int) -> String {
        bytes >= 1 << 20 ? String(format: "%.1f MB", Double(bytes) / 1_048_576) : String(format: "%.1f KB", Double(bytes) / 1024)
    }
}

/// A request body that streams `data` in chunks and draws an upload progress bar on standard error.
final class UploadProgress: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let data: Data
    let label: String
    let interactive = isatty(STDERR_FILENO) != 0
    private let sent = Mutex<(bytes: Int, lastDraw: ContinuousClock.Instant?, done: Bool)>((0, nil, false))
    static let chunkSize = 256 << 10

    init(data: Data, label: String) {
        self.data = data
        self.label = label
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let owner: UploadProgress
        var offset = 0

        mutating func next() async -> ByteBuffer? {
            guard offset < owner.data.count else { return nil }
            let end = Swift.min(offset + UploadProgress.chunkSize, owner.data.count)
            let chunk = ByteBuffer(data: owner.data[offset..<end])
            offset = end
            owner.advance(to: end)
            return chunk
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(owner: self) }

    func advance(to bytes: Int) {
        let now = ContinuousClock.now
        let draw = sent.withLock { state -> Bool in
            state.bytes = bytes
            guard interactive, state.lastDraw.map({ now - $0 >= .milliseconds(100) }) ?? true || bytes == data.count else { return false }
            state.lastDraw = now
            return true
        }
        if draw {
            let line = BatchFollower.bar(done: bytes, total: data.count).replacingOccurrences(of: "\\d+/\\d+$", with: "", options: .regularExpression)
            FileHandle.standardError.write(Data(("\r\(label) " + line + " \(ByteFormat.size(bytes))/\(ByteFormat.size(data.count))" + (bytes == data.count ? "  checking and inserting ..." : "")).utf8))
        }
    }

    /// Ends the progress line.
    func finish() {
        let wasDrawn = sent.withLock { state -> Bool in
            defer { state.done = true }
            return state.lastDraw != nil && !state.done
        }
        if wasDrawn { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
