/// The kind of work a job does, e.g. `image_gen` on dreamlook.ai.
///
/// Kinds are an open set: each upstream folder declares the kinds it executes and registers
/// an executor for them, so adding a kind never touches the queue.
public struct JobKind: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public init(from decoder: any Decoder) throws {
        self.rawValue = try decoder.singleValueContainer().decode(String.self)
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
    public var description: String { rawValue }

    /// World-model rollouts on Dream Engines.
    public static let predict: JobKind = "predict"
    /// Checkpoint training on dreamlook.ai.
    public static let dreambooth: JobKind = "dreambooth"
    /// Image generation on dreamlook.ai.
    public static let imageGen: JobKind = "image_gen"
    /// Training followed by image generation on dreamlook.ai.
    public static let dreamboothImageGen: JobKind = "dreambooth_image_gen"
    /// Text completions on DreamGen.
    public static let completion: JobKind = "completion"

    /// Every kind named in the user-facing contract.
    public static let contractKinds: [JobKind] = [.predict, .dreambooth, .imageGen, .dreamboothImageGen, .completion]
}
