import AsyncHTTPClient
import DreamdCore
import Foundation
import Logging
import Metrics
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// A small JSON-over-HTTP helper shared by the upstream clients: bearer auth, timeouts, bounded
/// bodies, and classification of failures into `UpstreamError`.
public struct JSONHTTP: Sendable {
    public let provider: String
    public let baseURL: String
    public let apiKey: String?
    public let httpClient: HTTPClient
    public let timeout: Duration
    /// Largest response body read, to bound memory.
    public let maxResponseBytes: Int
    /// Paces calls and holds them after a 429.
    public let gate: UpstreamGate?

    public init(provider: String, baseURL: String, apiKey: String?, httpClient: HTTPClient, timeout: Duration = .seconds(60),
                maxResponseBytes: Int = 16 << 20, gate: UpstreamGate? = nil) {
        self.gate = gate
        self.provider = provider
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        self.httpClient = httpClient
        self.timeout = timeout
        self.maxResponseBytes = maxResponseBytes
    }

    /// Waits for this upstream's rate budget (the gate), for a caller that must do something between the
    /// wait and the call; it then sends with `paced: true`.
    public func awaitTurn() async throws(UpstreamError) {
        guard let gate else { return }
        do { try await gate.acquire() } catch {
            throw .retryable(code: "cancelled", message: "the call was cancelled while waiting for the rate budget", retryAfter: nil)
        }
    }

    /// Sends `body` (if any) as JSON and decodes a JSON answer. Throws `UpstreamError`. Waits for the rate
    /// budget first, unless the caller already did (`paced`, after ``awaitTurn()``).
    public func send(_ method: HTTPMethod, _ path: String, body: JSONValue? = nil, paced: Bool = false,
                     logger: Logger) async throws(UpstreamError) -> JSONValue {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "accept", value: "application/json")
        request.headers.add(name: "user-agent", value: "dreamd/0.1")
        if let apiKey, !apiKey.isEmpty { request.headers.add(name: "authorization", value: "Bearer \(apiKey)") }
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            do {
                request.body = .bytes(ByteBuffer(data: try DreamdJSON.encoder().encode(body)))
            } catch {
                throw .final(code: "encoding_failed", message: "could not encode the request: \(error)")
            }
        }
        if !paced { try await awaitTurn() }
        let response: HTTPClientResponse
        let started = ContinuousClock.now
        do {
            response = try await httpClient.execute(request, timeout: .nanoseconds(Int64(timeout.seconds * 1e9)), logger: logger)
        } catch {
            UpstreamMetrics.record(upstream: provider, status: "transport_error", since: started)
            throw UpstreamError.transport(provider: provider, error, requestMayHaveBeenSent: method == .POST)
        }
        UpstreamMetrics.record(upstream: provider, status: "\(response.status.code)", since: started)
        let buffer: ByteBuffer
        do {
            buffer = try await response.body.collect(upTo: maxResponseBytes)
        } catch {
            throw UpstreamError.transport(provider: provider, error, requestMayHaveBeenSent: method == .POST)
        }
        let text = String(buffer: buffer)
        guard (200..<300).contains(response.status.code) else {
            let error = UpstreamError.classify(provider: provider, status: response.status, headers: response.headers, body: text)
            if response.status == .tooManyRequests, let gate {
                await gate.pause(for: UpstreamError.retryAfter(response.headers) ?? .seconds(1))
            }
            throw error
        }
        do {
            return try DreamdJSON.decode(JSONValue.self, from: text.isEmpty ? "null" : text)
        } catch {
            let message = "\(provider) answered with invalid JSON: \(text.prefix(200))"
            // A POST answered 2xx was accepted: with its answer unreadable, its outcome is unknown.
            if method == .POST { throw .outcomeUnknown(code: "upstream_bad_response", message: message) }
            throw .retryable(code: "upstream_bad_response", message: message, retryAfter: nil)
        }
    }
}
