import Crypto
import DreamdCore
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A real webhook receiver over HTTP for the tests: records every request to `/hooks/<name>` and
/// answers per a script (e.g. 500, 500, then 200; 410; 429 with Retry-After).
final class WebhookReceiver: Sendable {
    /// One recorded request.
    struct Received: Sendable {
        var name: String
        var webhookID: String
        var timestamp: String
        var signature: String
        var host: String
        var contentType: String
        var body: String
        var receivedAt: Date
    }

    /// One scripted answer.
    struct Answer: Sendable {
        var status: Int
        var headers: [String: String] = [:]
        var body: String = ""
        var delay: Duration = .zero

        static func status(_ code: Int, _ headers: [String: String] = [:], body: String = "", delay: Duration = .zero) -> Answer {
            Answer(status: code, headers: headers, body: body, delay: delay)
        }
    }

    private struct State {
        var received: [Received] = []
        var scripts: [String: [Answer]] = [:]
        var fallback: [String: Answer] = [:]
        var inFlight: [String: Int] = [:]
        var maxInFlight: [String: Int] = [:]
    }

    private let state = Mutex(State())
    private let portBox = Mutex(0)

    var port: Int { portBox.withLock { $0 } }

    /// The URL of hook `name` on 127.0.0.1 (or another host name that reaches this machine).
    func url(_ name: String, host: String = "127.0.0.1") -> String { "http://\(host):\(port)/hooks/\(name)" }

    /// Answers the next requests to `name` with `answers` in order, then with `then` (default 200).
    func script(_ name: String, _ answers: [Answer], then fallback: Answer = .status(200)) {
        state.withLock {
            $0.scripts[name] = answers
            $0.fallback[name] = fallback
        }
    }

    func received(_ name: String? = nil) -> [Received] {
        state.withLock { state in state.received.filter { name == nil || $0.name == name } }
    }

    func maxConcurrent(_ name: String) -> Int { state.withLock { $0.maxInFlight[name] ?? 0 } }

    private func begin(_ request: Received) -> Answer {
        state.withLock { state in
            state.received.append(request)
            state.inFlight[request.name, default: 0] += 1
            state.maxInFlight[request.name] = max(state.maxInFlight[request.name] ?? 0, state.inFlight[request.name] ?? 0)
            if var script = state.scripts[request.name], !script.isEmpty {
                let answer = script.removeFirst()
                state.scripts[request.name] = script
                return answer
            }
            return state.fallback[request.name] ?? .status(200)
        }
    }

    private func end(_ name: String) {
        state.withLock { $0.inFlight[name, default: 1] -= 1 }
    }

    func application(logger: Logger, onServerRunning: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let router = Router()
        router.post("hooks/:name") { request, context -> Response in
            var request = request
            let name = context.parameters.get("name") ?? ""
            let body = try await request.collectBody(upTo: 1 << 20)
            func header(_ name: String) -> String { request.headers.first { $0.name.canonicalName == name }?.value ?? "" }
            let received = Received(
                name: name, webhookID: header("webhook-id"), timestamp: header("webhook-timestamp"),
                signature: header("webhook-signature"), host: request.head.authority ?? header("host"), contentType: header("content-type"),
                body: String(decoding: body.readableBytesView, as: UTF8.self), receivedAt: Date()
            )
            let answer = self.begin(received)
            if answer.delay > .zero { try? await Task.sleep(for: answer.delay) }
            self.end(name)
            var response = Response(status: .init(code: answer.status), body: .init(byteBuffer: ByteBuffer(string: answer.body)))
            for (key, value) in answer.headers {
                if key.lowercased() == "location" { response.headers[.location] = value }
                if key.lowercased() == "retry-after" { response.headers[.retryAfter] = value }
            }
            return response
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: "test-receiver"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                self.portBox.withLock { $0 = port }
                await onServerRunning(port)
            },
            logger: logger
        )
    }
}

/// Runs a receiver on a free loopback port for the duration of `body`.
func withReceiver<T: Sendable>(_ body: @Sendable (WebhookReceiver) async throws -> T) async throws -> T {
    let receiver = WebhookReceiver()
    var logger = Logger(label: "receiver")
    logger.logLevel = .critical
    return try await withListeningServices(logger: logger, { [receiver.application(logger: logger, onServerRunning: $0)] }) { _ in
        try await body(receiver)
    }
}

/// Verifies a Standard Webhooks signature from the spec alone (swift-crypto, none of dreamd's code):
/// any `v1,` entry of the header equal to base64(HMAC-SHA256(base64decode(secret after whsec_),
/// "{id}.{timestamp}.{body}")).
func independentlyVerifies(_ received: WebhookReceiver.Received, secret: String) -> Bool {
    guard secret.hasPrefix("whsec_"), let key = Data(base64Encoded: String(secret.dropFirst(6))) else { return false }
    let content = Data("\(received.webhookID).\(received.timestamp).\(received.body)".utf8)
    let expected = "v1," + Data(HMAC<SHA256>.authenticationCode(for: content, using: SymmetricKey(data: key))).base64EncodedString()
    return received.signature.split(separator: " ").contains { $0 == expected[...] }
}

/// Keeps every log line (message and metadata) of a logger, to check what never appears in logs.
final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    var all: [String] { lines.withLock { $0 } }
    func append(_ line: String) { lines.withLock { $0.append(line) } }

    func logger(_ label: String = "captured") -> Logger {
        Logger(label: label) { _ in CapturingLogHandler(capture: self) }
    }
}

struct CapturingLogHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        capture.append("\(event.level) \(event.message) \(merged) \(event.error.map { String(reflecting: $0) } ?? "")")
    }
}
