import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A local webhook subscriber for the benchmarks: answers 204 to `POST /hooks/{name}` and notes when
/// each webhook first arrived, under a key read from the request (its `webhook-id`, or the job id in
/// its body).
public final class WebhookReceiver: Sendable {
    /// Reads the key a receipt is recorded under; nil records nothing but still counts the request.
    public typealias Key = @Sendable (HTTPFields, ByteBuffer) -> String?

    private let key: Key
    private let state = Mutex<(count: Int, first: [String: Double])>((0, [:]))

    public init(key: @escaping Key) { self.key = key }

    /// Keys receipts by the `webhook-id` header (one per delivery).
    public static func byWebhookID() -> WebhookReceiver {
        WebhookReceiver { headers, _ in headers.first { $0.name.canonicalName == "webhook-id" }?.value ?? "" }
    }

    /// Webhooks received, duplicates included.
    public var count: Int { state.withLock { $0.count } }
    /// Distinct keys received.
    public var distinct: Int { state.withLock { $0.first.count } }
    /// When each key first arrived, in seconds since 1970.
    public func firstReceipts() -> [String: Double] { state.withLock { $0.first } }
    public func reset() { state.withLock { $0 = (0, [:]) } }

    /// The receiver as an application on 127.0.0.1 and a free port, which `onServerRunning` is told.
    public func application(logger: Logger, onServerRunning: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let router = Router()
        router.post("hooks/:name") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 1 << 20)
            let now = Date().timeIntervalSince1970
            let key = self.key(request.headers, body)
            self.state.withLock { state in
                state.count += 1
                if let key, state.first[key] == nil { state.first[key] = now }
            }
            return Response(status: .noContent)
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: "bench-receiver"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }
}
