import DreamdStore
import Foundation
import Synchronization

/// Builds callback URLs: `<public URL>/callbacks/<provider>/<token>`, with a fresh token per
/// submission whose hash is stored before the submission goes out.
public final class CallbackEndpoint: Sendable {
    let store: CallbackStore
    private let baseURL: Mutex<String>

    public init(store: CallbackStore, baseURL: String) {
        self.store = store
        self.baseURL = Mutex(Self.trimmed(baseURL))
    }

    /// Sets the base URL once the listening port is known (when it was configured as port 0).
    public func setBaseURL(_ url: String) {
        baseURL.withLock { $0 = Self.trimmed(url) }
    }

    public var currentBaseURL: String { baseURL.withLock { $0 } }

    func newURL(jobID: UUID, provider: String) async throws -> String {
        let token = try await store.newToken(jobID: jobID, provider: provider)
        return "\(currentBaseURL)/callbacks/\(provider)/\(token)"
    }

    private static func trimmed(_ url: String) -> String {
        url.hasSuffix("/") ? String(url.dropLast()) : url
    }
}
