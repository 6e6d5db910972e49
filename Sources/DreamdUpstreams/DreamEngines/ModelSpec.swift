import DreamdCore
import Foundation

/// One catalog entry of `GET /v1/models`, with the fields dreamd acts on typed and the rest kept raw.
public struct ModelSpec: Sendable, Hashable {
    public var slug: String
    public var active: Bool
    public var pricePerFrameUSD: Double
    public var actionDim: Int
    public var chunkSize: Int
    /// `(height, width)`: the engine's convention, as the wire's `[H, W]`.
    public var resolution: (height: Int, width: Int)
    /// The entry as the upstream sent it.
    public var raw: JSONValue

    /// Reads an entry leniently, as the SDK's `ModelSpec.from_dict` does; `nil` without a slug.
    public init?(_ raw: JSONValue) {
        guard let slug = raw["slug"]?.stringValue, !slug.isEmpty else { return nil }
        self.slug = slug
        self.raw = raw
        active = raw["active"]?.boolValue ?? false
        pricePerFrameUSD = raw["price_per_frame_usd"]?.doubleValue ?? 0
        let spec = raw["spec"]
        actionDim = spec?["action_dim"]?.intValue ?? 0
        chunkSize = spec?["chunk_size"]?.intValue ?? 0
        let resolution = spec?["resolution"]?.arrayValue ?? []
        self.resolution = resolution.count >= 2 ? (resolution[0].intValue ?? 0, resolution[1].intValue ?? 0) : (0, 0)
    }

    public static func == (a: ModelSpec, b: ModelSpec) -> Bool { a.raw == b.raw }
    public func hash(into hasher: inout Hasher) { hasher.combine(raw) }
}

/// The catalog as fetched at one moment.
public struct CatalogSnapshot: Sendable, Hashable {
    public var models: [ModelSpec]
    public var fetchedAt: Date

    public init(models: [ModelSpec], fetchedAt: Date) {
        self.models = models
        self.fetchedAt = fetchedAt
    }

    public func model(_ slug: String) -> ModelSpec? { models.first { $0.slug == slug } }
    /// The model the deployment serves now (exactly one is active).
    public var active: ModelSpec? { models.first { $0.active } }
}
