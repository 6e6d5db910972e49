import AsyncHTTPClient
import DreamdCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// The built `dreamd` executable, next to the test bundle.
enum BuiltBinary {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func dreamd() throws -> URL {
        var candidates: [URL] = []
        if let bundle = Bundle.main.executableURL { candidates.append(bundle.deletingLastPathComponent().appendingPathComponent("dreamd")) }
        candidates.append(packageRoot.appendingPathComponent(".build/debug/dreamd"))
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw TestFailure(description: "the dreamd executable is not built (looked at \(candidates.map(\.path))); run `swift build --build-tests`")
        }
        return found
    }

    /// A TCP port free right now on loopback.
    static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
}

/// Points `process`'s stdout and stderr at a new, empty log file and returns the file.
func captureOutput(of process: Process, name: String) throws -> URL {
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString).log")
    _ = FileManager.default.createFile(atPath: output.path, contents: nil)
    let handle = try FileHandle(forWritingTo: output)
    process.standardOutput = handle
    process.standardError = handle
    return output
}

/// Waits for `process` to exit and returns its status; one still running after `timeout` is killed and
/// fails the test rather than hanging it.
func waitForExit(_ process: Process, within timeout: Duration, what: String) async throws -> Int32 {
    let deadline = ContinuousClock.now + timeout
    while process.isRunning {
        guard ContinuousClock.now < deadline else {
            kill(process.processIdentifier, SIGKILL)
            throw TestFailure(description: "\(what) did not exit within \(timeout)")
        }
        try await Task.sleep(for: .milliseconds(50))
    }
    return process.terminationStatus
}

/// Runs a tool to its end and returns its exit status and output (stdout and stderr).
func runTool(_ path: String, _ arguments: [String], timeout: Duration = .seconds(60)) async throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = try captureOutput(of: process, name: "dreamd-tool")
    defer { try? FileManager.default.removeItem(at: output) }
    try process.run()
    let status = try await waitForExit(process, within: timeout, what: "\(path) \(arguments.joined(separator: " "))")
    return (status, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
}

/// A `dreamd serve` child process whose output (stdout and stderr) is collected in a file.
final class DaemonProcess: Sendable {
    let process: Process
    let output: URL
    let baseURL: String

    /// Runs `dreamd serve`; with `denyWriteExecute`, under the kernel's `PR_SET_MDWE` (what systemd's
    /// `MemoryDenyWriteExecute=yes` uses), set by a small Python launcher that then execs the daemon and
    /// prints `mdwe=<flags>` first.
    init(environment: [String: String], port: Int, denyWriteExecute: Bool = false) throws {
        let process = Process()
        if denyWriteExecute {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-c", """
                import ctypes, os, sys
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.prctl(65, 1, 0, 0, 0) != 0: sys.exit("PR_SET_MDWE failed: errno %d" % ctypes.get_errno())
                print("mdwe=%d" % libc.prctl(66, 0, 0, 0, 0), flush=True)
                os.execv(sys.argv[1], [sys.argv[1], "serve"])
                """, try BuiltBinary.dreamd().path]
        } else {
            process.executableURL = try BuiltBinary.dreamd()
            process.arguments = ["serve"]
        }
        process.currentDirectoryURL = BuiltBinary.packageRoot
        process.environment = environment.merging(["DREAMD_LISTEN": "127.0.0.1:\(port)"]) { $1 }
        output = try captureOutput(of: process, name: "dreamd-process")
        try process.run()
        self.process = process
        baseURL = "http://127.0.0.1:\(port)"
    }

    var log: String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }

    /// SIGTERM, then the exit status once the process has drained and exited.
    func terminate(within timeout: Duration = .seconds(30)) async throws -> Int32 {
        process.terminate()
        return try await waitForExit(process, within: timeout, what: "dreamd after SIGTERM")
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: output)
    }

    func request(_ method: HTTPMethod, _ path: String, token: String, body: String? = nil) async throws -> (status: Int, json: JSONValue) {
        try await apiRequest(method, baseURL + path, body: body, token: token)
    }
}

@Suite("The dreamd process", .hangGuard, .serialized)
struct ProcessTests {
    @Test("secrets never reach the logs (trace level, JSON lines), under MemoryDenyWriteExecute; SIGTERM drains and exits 0")
    func secretsStayOutOfLogs() async throws {
        let dreamlookKey = "dl-SECRET-\(UUID().uuidString.prefix(8))"
        let dreamKey = "dre_SECRET_\(UUID().uuidString.prefix(8))"
        try await TestDatabase.with { db in
            try await withSimulator(dreamlookKey: dreamlookKey) { sim in
                try await withReceiver { receiver in
                    var environment = testEnvironment(database: db, dreamlookURL: sim.baseURL)
                    environment["DREAMLOOK_API_KEY"] = dreamlookKey
                    environment["DREAM_API_KEY"] = dreamKey
                    environment["DREAMD_LOG_LEVEL"] = "trace"
                    environment["DREAMD_LOG_FORMAT"] = "json"
                    environment["DREAMD_WEBHOOK_ALLOW_PRIVATE"] = "true"
                    environment["PATH"] = ProcessInfo.processInfo.environment["PATH"]
                    environment["DREAMD_CALLBACKS"] = "on"
                    let token = try await db.keys.create(name: "process").token
                    let daemon = try DaemonProcess(environment: environment, port: try await BuiltBinary.freePort(), denyWriteExecute: true)
                    #expect(try await eventually { (try? await daemon.request(.GET, "/healthz", token: ""))?.status == 200 }, "\(daemon.log)")

                    let subscription = try await daemon.request(.POST, "/v1/subscriptions", token: token,
                                                                body: #"{"url": "\#(receiver.url("logs"))", "event_types": ["job.*"]}"#)
                    let webhookSecret = try #require(subscription.json["secret"]?.stringValue, "\(subscription.json)")
                    let wrongToken = "dreamd_WRONG_\(UUID().uuidString)"
                    #expect(try await daemon.request(.GET, "/v1/jobs", token: wrongToken).status == 401)
                    let submitted = try await daemon.request(.POST, "/v1/jobs", token: token, body: imageGenBody())
                    let id = try #require(submitted.json["id"]?.stringValue, "\(submitted.json)")
                    let finished = try await eventually(timeout: .seconds(30)) {
                        try await daemon.request(.GET, "/v1/jobs/\(id)", token: token).json["state"]?.stringValue == "succeeded"
                    }
                    #expect(finished, "\(daemon.log.suffix(4000))")
                    #expect(try await eventually { !receiver.received("logs").isEmpty })
                    #expect(try await daemon.request(.GET, "/v1/models", token: token).status == 200)
                    // The job's callback came through a URL whose token must not be logged, even on an error path.
                    let callbackURL = try #require(await sim.dreamlook.callbackURL(taggedWith: "dreamd_job_id", value: id))
                    let callbackToken = String(callbackURL.split(separator: "/").last ?? "")
                    #expect(callbackToken.count >= 43)
                    _ = try await postCallback(callbackURL, body: "not json")
                    _ = try await postCallback(callbackURL.replacingOccurrences(of: "/dreamlook/", with: "/nobody/"), body: "{}")
                    // Every family of metrics the operations guide names, from this process's own registry
                    // (the queue and upstream gauges are sampled every few seconds).
                    let families = [
                        "dreamd_job_transitions_total", "dreamd_jobs_claimed_total", "dreamd_claim_duration_seconds",
                        "dreamd_upstream_requests_total", "dreamd_upstream_request_duration_seconds", "dreamd_polls_total",
                        "dreamd_webhook_attempts_total", "dreamd_webhook_attempt_duration_seconds",
                        "dreamd_jobs", "dreamd_queue_oldest_age_seconds",
                        "dreamd_upstream_paused", "dreamd_upstream_unhealthy", "dreamd_upstream_in_flight",
                    ]
                    let metricsURL = daemon.baseURL + "/metrics"
                    let allThere = try await eventually(timeout: .seconds(20), interval: .milliseconds(500)) {
                        var request = HTTPClientRequestBuilder.get(metricsURL)
                        let text = try await request.text()
                        return families.allSatisfy { family in text.contains("\n\(family){") || text.contains("\n\(family) ") || text.contains("# TYPE \(family) ") }
                    }
                    var request = HTTPClientRequestBuilder.get(metricsURL)
                    let text = try await request.text()
                    #expect(allThere, "missing: \(families.filter { !text.contains("# TYPE \($0) ") })")
                    #expect(text.contains(#"dreamd_webhook_attempts_total{result="succeeded"}"#), "a delivery was counted by outcome")

                    let status = try await daemon.terminate()
                    #expect(status == 0, "exit status after SIGTERM")
                    let log = daemon.log
                    #expect(log.hasPrefix("mdwe=1\n"), "the daemon ran with PR_SET_MDWE: \(log.prefix(200))")
                    let lines = log.split(separator: "\n").filter { !$0.hasPrefix("mdwe=") }
                    #expect(lines.count > 20, "trace logging should have written plenty")
                    for (name, secret) in [("API token", token), ("wrong bearer token", wrongToken), ("webhook secret", webhookSecret),
                                           ("webhook secret body", String(webhookSecret.dropFirst("whsec_".count))),
                                           ("dreamlook key", dreamlookKey), ("Dream Engines key", dreamKey),
                                           ("callback token", callbackToken)] {
                        #expect(!log.contains(secret), "the \(name) appears in the log")
                    }
                    // One JSON object per line, and the job's lines carry its id and kind.
                    let objects = lines.compactMap { try? DreamdJSON.decoder().decode(JSONValue.self, from: Data($0.utf8)) }
                    #expect(objects.count == lines.count, "every log line is a JSON object")
                    #expect(objects.contains { $0["job_id"]?.stringValue?.lowercased() == id.lowercased() && $0["kind"]?.stringValue == "image_gen" })
                }
            }
        }
    }

    @Test("systemd-analyze verify accepts the unit file without a warning")
    func systemdUnitVerifies() async throws {
        let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let tool = try #require(analyze, "systemd-analyze is missing: install systemd (.ci/run does) to check the unit")
        let unit = try String(contentsOf: BuiltBinary.packageRoot.appendingPathComponent("systemd/dreamd.service"), encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/local/bin/dreamd serve"))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dreamd-unit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // The unit names the installed path; verify checks that it is executable, so point it at the build.
        let local = directory.appendingPathComponent("dreamd.service")
        try unit.replacingOccurrences(of: "/usr/local/bin/dreamd", with: try BuiltBinary.dreamd().path)
            .write(to: local, atomically: true, encoding: .utf8)
        let (status, output) = try await runTool(tool, ["verify", local.path])
        #expect(status == 0, "\(output)")
        #expect(output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "systemd-analyze: \(output)")
        // The exposure score docs/install.md quotes (lower is better; 10 is an unprotected service).
        let (_, security) = try await runTool(tool, ["security", "--offline=true", local.path])
        let score = security.split(separator: "\n").first { $0.contains("Overall exposure level") }
            .flatMap { line in line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) } }
        let exposure = try #require(score, "no exposure score in: \(security.suffix(500))")
        #expect(exposure <= 1.5, "systemd-analyze security: exposure \(exposure)")
        let notes = try String(contentsOf: BuiltBinary.packageRoot.appendingPathComponent("docs/install.md"), encoding: .utf8)
        #expect(notes.contains("exposure level \(String(format: "%.1f", exposure))"), "docs/install.md quotes the current exposure score \(exposure)")
    }
}
