import DreamdStore
import Hummingbird
import NIOCore

/// The per-request context of the HTTP API: the caller's key once authenticated, and the body limit.
public struct APIRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The key that authenticated this request (routes under `/v1`).
    public var apiKey: APIKey?
    /// Largest accepted request body; larger bodies get 413.
    public var maxUploadSize: Int { APIRequestContext.bodyLimit }

    /// 10 MB, as the contract says.
    public static let bodyLimit = 10 * 1024 * 1024

    /// The peer of the connection (the daemon does not trust forwarding headers).
    public let remoteAddress: SocketAddress?

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }

    /// The client's IP address as text (no port), the key of per-address limits; `"unknown"` without one.
    public var clientAddress: String {
        remoteAddress?.ipAddress ?? "unknown"
    }
}
