import AsyncHTTPClient
import DreamdCore
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import Synchronization

/// The DreamGen completion API (`upstream-apis.md` §3): `POST /api/v1/model/completion`, answered with a
/// stream of JSON lines read incrementally.
public struct DreamGenClient: Sendable {
    public static let provider = "dreamgen"

    let baseURL: String
    let apiKey: String?
    let httpClient: HTTPClient
    /// The whole request may take this long.
    let timeout: Duration
    /// A stream silent for this long is aborted.
    let idleTimeout: Duration
    let gate: UpstreamGate?

    public init(baseURL: String, apiKey: String?, httpClient: HTTPClient, timeout: Duration = .seconds(600),
                idleTimeout: Duration = .seconds(30), gate: UpstreamGate? = nil) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        self.httpClient = httpClient
        self.timeout = timeout
        self.idleTimeout = idleTimeout
        self.gate = gate
    }

    /// Streams a completion, calling `onLine` with each parsed line. Throws `UpstreamError`, or
    /// `CompletionStream.StreamFailure` for a `{"success": false}` line.
    func complete(body: JSONValue, logger: Logger, onLine: @escaping @Sendable (JSONValue) async throws -> Void) async throws {
        if let gate { try await gate.acquire() }
        var request = HTTPClientRequest(url: baseURL + "/api/v1/model/completion")
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "accept", value: "application/x-ndjson, application/json")
        if let apiKey, !apiKey.isEmpty { request.headers.add(name: "authorization", value: "Bearer \(apiKey)") }
        request.body = .bytes(ByteBuffer(data: try DreamdJSON.encoder().encode(body)))
        let response: HTTPClientResponse
        let started = ContinuousClock.now
        do {
            response = try await httpClient.execute(request, timeout: .nanoseconds(Int64(timeout.seconds * 1e9)), logger: logger)
        } catch {
            UpstreamMetrics.record(upstream: Self.provider, status: "transport_error", since: started)
            throw UpstreamError.transport(provider: Self.provider, error, requestMayHaveBeenSent: true)
        }
        UpstreamMetrics.record(upstream: Self.provider, status: "\(response.status.code)", since: started)
        guard (200..<300).contains(response.status.code) else {
            let text = (try? await response.body.collect(upTo: 64 << 10)).map { String(buffer: $0) } ?? ""
            if response.status == .tooManyRequests, let gate {
                await gate.pause(for: UpstreamError.retryAfter(response.headers) ?? .seconds(1))
            }
            throw UpstreamError.classify(provider: Self.provider, status: response.status, headers: response.headers, body: text)
        }
        try await readLines(of: response.body, logger: logger, onLine: onLine)
    }

    /// Splits the body into lines as bytes arrive, with an idle watchdog: whichever finishes first
    /// (the reader, or the watchdog finding the stream silent too long) cancels the other.
    private func readLines(of body: HTTPClientResponse.Body, logger: Logger, onLine: @escaping @Sendable (JSONValue) async throws -> Void) async throws {
        let lastActivity = ActivityClock()
        let idleTimeout = self.idleTimeout
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while true {
                    try await Task.sleep(for: idleTimeout / 4)
                    if lastActivity.silence > idleTimeout {
                        throw UpstreamError.retryable(code: "upstream_stalled",
                                                      message: "DreamGen's stream was silent for \(DurationParser.format(idleTimeout))",
                                                      retryAfter: nil)
                    }
                }
            }
            group.addTask {
                var pending = ByteBuffer()
                do {
                    for try await chunk in body {
                        lastActivity.touch()
                        var chunk = chunk
                        pending.writeBuffer(&chunk)
                        while let newline = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                            let line = pending.readString(length: newline - pending.readerIndex) ?? ""
                            pending.moveReaderIndex(forwardBy: 1)
                            try await Self.handle(line, onLine: onLine)
                        }
                        pending.discardReadBytes()
                        if pending.readableBytes > 16 << 20 {
                            throw UpstreamError.final(code: "upstream_bad_response", message: "DreamGen sent a line longer than 16 MB")
                        }
                    }
                    if pending.readableBytes > 0, let rest = pending.readString(length: pending.readableBytes) {
                        try await Self.handle(rest, onLine: onLine)
                    }
                } catch let error as UpstreamError {
                    throw error
                } catch let error as CompletionStream.StreamFailure {
                    throw error
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    throw UpstreamError.transport(provider: Self.provider, error, requestMayHaveBeenSent: true)
                }
            }
            // The first to finish decides: the reader's end (or error), or the watchdog's stall.
            try await group.next()
            group.cancelAll()
        }
    }

    private static func handle(_ line: String, onLine: @Sendable (JSONValue) async throws -> Void) async throws {
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return }
        // Some servers prefix JSON lines as server-sent events.
        let json = trimmed.hasPrefix("data:") ? String(trimmed.dropFirst(5)).trimmingCharacters(in: .whitespaces) : trimmed
        guard let value = try? DreamdJSON.decode(JSONValue.self, from: json) else {
            throw UpstreamError.retryable(code: "upstream_bad_response", message: "DreamGen sent a line that is not JSON: \(json.prefix(200))", retryAfter: nil)
        }
        try await onLine(value)
    }
}

/// When a stream last showed signs of life.
final class ActivityClock: Sendable {
    private let last = Mutex(ContinuousClock.now)
    func touch() { last.withLock { $0 = .now } }
    var silence: Duration { ContinuousClock.now - last.withLock { $0 } }
}
