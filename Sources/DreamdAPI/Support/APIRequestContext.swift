import DreamdStore
import Hummingbird

/// The per-request context of the HTTP API: the caller's key once authenticated, and the body limit.
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The key that authenticated this request (routes under `/v1`).
    public var apiKey: APIKey?
    /// Largest accepted request body; larger bodies get 413.
    public var maxUploadSize: Int { APIRequestContext.bodyLimit }

    /// 10 MB, as the contract says.
    public static let bodyLimit = 10 * 1024 * 1024

    public init(source: Source) {
        self.coreContext = .init(source: source)
    }
}
