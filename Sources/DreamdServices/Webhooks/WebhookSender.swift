import AsyncHTTPClient
import DreamdCore
import DreamdStore
import DreamdUpstreams
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Sends one attempt of a delivery: resolves the subscriber's host, refuses forbidden destinations,
/// connects to the address it vetted, signs, POSTs, and reads at most 16 KB of the answer.
///
/// **SSRF at connect time**: through `AddressGuard` (resolved on every attempt, every address checked,
/// the connection pinned to the vetted address). Redirects are never followed (a 3xx is a failed attempt).
public struct WebhookSender: Sendable {
    let httpClient: HTTPClient
    let addressGuard: AddressGuard
    let timeout: Duration

    public static let userAgent = "dreamd-webhooks/1"

    public init(httpClient: HTTPClient, resolver: any HostResolver = SystemHostResolver(), policy: DestinationPolicy, timeout: Duration) {
        self.httpClient = httpClient
        self.addressGuard = AddressGuard(resolver: resolver, policy: policy)
        self.timeout = timeout
    }

    /// The client configuration webhook delivery needs: no redirects, explicit timeouts, a failed
    /// connection fails the attempt at once (our schedule retries it, not the client), and up to
    /// `connectionsPerHost` keep-alive connections to one receiver (the per-subscription cap is the real bound).
    public static func clientConfiguration(timeout: Duration, connectionsPerHost: Int = 8) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        let seconds = Int64(max(1, timeout.seconds.rounded(.up)))
        configuration.timeout = .init(connect: .seconds(min(seconds, 10)), read: .seconds(seconds))
        var pool = HTTPClient.Configuration.ConnectionPool(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, connectionsPerHost))
        pool.retryConnectionEstablishment = false
        configuration.connectionPool = pool
        configuration.decompression = .disabled
        return configuration
    }

    /// What one attempt found.
    public struct Outcome: Sendable, Hashable {
        public var attemptedAt: Date
        public var duration: Duration
        public var statusCode: Int?
        public var responseBody: String?
        /// `Retry-After` of a 429 or 503 answer.
        public var retryAfter: Duration?
        /// Why there was no HTTP answer (refused destination, DNS, connect, TLS, timeout).
        public var error: String?
        /// The destination was refused by the SSRF policy.
        public var refused: Bool

        public var succeeded: Bool { statusCode.map { (200..<300).contains($0) } ?? false }
    }

    /// Errors before an HTTP answer, with messages for the delivery log.
    enum SendError: Error, CustomStringConvertible {
        case invalidURL(String)
        case refused(DestinationPolicy.Refusal)
        case timedOut(Duration)
        case noAddress(String)

        var description: String {
            switch self {
            case .invalidURL(let why): "invalid URL: \(why)"
            case .refused(let refusal): refusal.description
            case .timedOut(let timeout): "timed out after \(DurationParser.format(timeout))"
            case .noAddress(let host): "\(host) resolved to no address"
            }
        }
    }

    /// Sends `delivery` once. Never throws: every failure becomes an `Outcome` for the log.
    public func send(_ delivery: ClaimedDelivery, logger: Logger) async -> Outcome {
        let attemptedAt = Date()
        let clock = ContinuousClock()
        let start = clock.now
        var outcome = Outcome(attemptedAt: attemptedAt, duration: .zero, statusCode: nil, responseBody: nil, retryAfter: nil,
                              error: nil, refused: false)
        do {
            let answer = try await withTimeout(timeout) { try await self.attempt(delivery, logger: logger) }
            outcome.statusCode = answer.status
            outcome.responseBody = answer.body
            outcome.retryAfter = answer.retryAfter
        } catch let error as SendError {
            outcome.error = error.description
            if case .refused = error { outcome.refused = true }
        } catch {
            outcome.error = Self.describe(error)
        }
        outcome.duration = clock.now - start
        return outcome
    }

    struct Answer: Sendable {
        var status: Int
        var body: String
        var retryAfter: Duration?
    }

    private func attempt(_ delivery: ClaimedDelivery, logger: Logger) async throws -> Answer {
        let target: PinnedTarget
        do { target = try PinnedTarget(url: delivery.url) } catch { throw SendError.invalidURL(error.reason) }
        let vetted: IPAddress
        do {
            vetted = try await addressGuard.vet(target)
        } catch {
            switch error {
            case .refused(let refusal): throw SendError.refused(refusal)
            case .noAddress(let host): throw SendError.noAddress(host)
            case .resolution(let resolution): throw resolution
            }
        }
        let timestamp = Int64(Date().timeIntervalSince1970)
        let secrets = delivery.secrets.compactMap { try? WebhookSecret($0) }
        let body = Array(delivery.payload.utf8)
        let webhookID = delivery.eventID.uuidString.lowercased()

        var request = HTTPClientRequest(url: delivery.url)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "user-agent", value: Self.userAgent)
        request.headers.add(name: "webhook-id", value: webhookID)
        request.headers.add(name: "webhook-timestamp", value: String(timestamp))
        request.headers.add(name: "webhook-signature",
                            value: WebhookSignature.header(id: webhookID, timestamp: timestamp, body: body, secrets: secrets))
        request.body = .bytes(ByteBuffer(bytes: body))
        return try await addressGuard.execute(
            request, to: target, address: vetted, client: httpClient, configuration: Self.clientConfiguration(timeout: timeout),
            timeout: timeout, logger: logger, read: Self.answer
        )
    }

    /// Reads at most 16 KB of the answer, and `Retry-After` of a 429 or 503.
    private static func answer(_ response: HTTPClientResponse) async throws -> Answer {
        let limit = DeliveryStore.AttemptRecord.maxResponseBytes
        var collected = ByteBuffer()
        for try await var chunk in response.body {
            let room = limit - collected.readableBytes
            if chunk.readableBytes >= room {
                if var head = chunk.readSlice(length: room) { collected.writeBuffer(&head) }
                break
            }
            collected.writeBuffer(&chunk)
        }
        var retryAfter: Duration?
        let status = Int(response.status.code)
        if status == 429 || status == 503, let header = response.headers.first(name: "retry-after") {
            retryAfter = RetryAfter.parse(header)
        }
        return Answer(status: status, body: String(decoding: collected.readableBytesView, as: UTF8.self), retryAfter: retryAfter)
    }

    private func withTimeout<T: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await operation() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw SendError.timedOut(timeout)
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw SendError.timedOut(timeout) }
            return first
        }
    }

    /// A short, secret-free description of a transport error for the delivery log.
    static func describe(_ error: any Error) -> String {
        if let error = error as? HostResolutionError { return error.description }
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .connectTimeout: return "timed out"
            case .remoteConnectionClosed: return "connection closed by the receiver before an answer"
            case .cancelled: return "cancelled"
            default: return "HTTP client error: \(error)"
            }
        }
        if let error = error as? ChannelError, case .connectTimeout = error { return "connect timed out" }
        let text = String(describing: error)
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        return String(text.prefix(500))
    }
}
