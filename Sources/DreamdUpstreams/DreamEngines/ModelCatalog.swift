import DreamdCore
import Foundation
import Logging
import Synchronization

/// The Dream Engines model catalog (`GET /v1/models`), cached for `ttl`.
///
/// Submit-time validation reads the last snapshot synchronously (`snapshot`); `current()` refreshes it
/// when it is older than the TTL. Concurrent refreshes share one request. If a refresh fails, the
/// stale snapshot is served (and the failure logged); with no snapshot at all, the catalog is unavailable.
public actor ModelCatalog: ModelCatalogSource {
    public let client: DreamEnginesClient
    public let ttl: Duration
    let logger: Logger
    private let box = SnapshotBox()
    private var inFlight: Task<Result<CatalogSnapshot, DreamEnginesError>, Never>?
    /// How many times the upstream catalog was fetched (for tests and metrics).
    public private(set) var fetchCount = 0

    public init(client: DreamEnginesClient, ttl: Duration = .seconds(300), logger: Logger) {
        self.client = client
        self.ttl = ttl
        self.logger = logger
    }

    /// The last snapshot fetched, however old; `nil` before the first fetch.
    public nonisolated var snapshot: CatalogSnapshot? { box.value }

    /// A snapshot no older than the TTL when the upstream answers; a stale one when it does not.
    public func current() async throws(SubmissionCheckError) -> CatalogSnapshot {
        if let snapshot = box.value, Date().timeIntervalSince(snapshot.fetchedAt) < ttl.seconds { return snapshot }
        switch await refresh() {
        case .success(let snapshot):
            return snapshot
        case .failure(let error):
            if let stale = box.value {
                logger.warning("the Dream Engines catalog could not be refreshed; using the cached one",
                               metadata: ["error": "\(error)", "age_s": "\(Int(Date().timeIntervalSince(stale.fetchedAt)))"])
                return stale
            }
            throw .unavailable(code: "catalog_unavailable", message: "the Dream Engines model catalog could not be fetched: \(error.jobError.message)")
        }
    }

    /// Fetches the catalog now (one request however many callers wait).
    public func refresh() async -> Result<CatalogSnapshot, DreamEnginesError> {
        if let inFlight { return await inFlight.value }
        let client = self.client
        let logger = self.logger
        let task = Task { () -> Result<CatalogSnapshot, DreamEnginesError> in
            do throws(DreamEnginesError) {
                let models = try await client.listModels(logger: logger).compactMap(ModelSpec.init)
                return .success(CatalogSnapshot(models: models, fetchedAt: Date()))
            } catch {
                return .failure(error)
            }
        }
        inFlight = task
        let result = await task.value
        inFlight = nil
        fetchCount += 1
        if case .success(let snapshot) = result { box.value = snapshot }
        return result
    }

    public func models() async throws(SubmissionCheckError) -> [JSONValue] {
        try await current().models.map(\.raw)
    }

    public func model(slug: String) async throws(SubmissionCheckError) -> JSONValue? {
        try await current().model(slug)?.raw
    }
}

/// A snapshot readable from any thread.
final class SnapshotBox: Sendable {
    private let storage = Mutex<CatalogSnapshot?>(nil)
    var value: CatalogSnapshot? {
        get { storage.withLock { $0 } }
        set { storage.withLock { $0 = newValue } }
    }
}
