import DreamdCore
import Foundation

extension JobKind {
    /// K rollouts from one start frame on Dream Engines (`POST /v1/predict/batch`).
    public static let predictBatch: JobKind = "predict_batch"
}

/// A `predict` or `predict_batch` job's params, parsed and checked.
///
/// `predict`: `{"model", "start_frame": {"base64"} | {"url"}, "actions": {"base64" (.npy)} | {"values": [[...]]},
/// "seed"?, "num_steps"?, "guidance"?, "score"?}`. `predict_batch`: the same with `"actions": [<actions>, ...]`
/// (K sequences, one video each) and no `score`.
public struct PredictParams: Sendable {
    public enum Frame: Sendable {
        case inline(Data, ImageInfo)
        case url(String)
    }

    public var model: String
    public var frame: Frame
    /// One action sequence for `predict`, K for `predict_batch`.
    public var actions: [NPYFloat32Matrix]
    public var seed: Int
    public var numSteps: Int?
    public var guidance: Double?
    public var score: Bool
    /// A `predict_batch` job.
    public var isBatch: Bool

    /// Frames the job produces: T + 1 per sequence.
    public var frames: Int { actions.reduce(0) { $0 + $1.rows + 1 } }

    static let predictKeys: Set<String> = ["model", "start_frame", "actions", "seed", "num_steps", "guidance", "score"]
    static let maxBatch = 64
    static let maxRows = 100_000

    /// Parses `params` of `kind`, and when `catalog` is given checks them against the model's spec:
    /// it exists and is active, the actions are (T, action_dim) with T a multiple of `chunk_size`, and an
    /// inline frame has the model's resolution.
    public init(kind: JobKind, params: JSONValue, catalog: CatalogSnapshot?) throws(ValidationError) {
        let reader = try ParamsReader(params)
        isBatch = kind == .predictBatch
        try reader.rejectUnknownKeys(allowed: kind == .predictBatch ? Self.predictKeys.subtracting(["score"]) : Self.predictKeys)
        model = try reader.requiredString("model")
        seed = try reader.optionalInt("seed", in: 0...Int(UInt32.max)) ?? 0
        numSteps = try reader.optionalInt("num_steps", in: 1...1000)
        guidance = try reader.optionalNumber("guidance", in: 0...100)
        score = try reader.optionalBool("score") ?? false
        frame = try Self.frame(params["start_frame"])
        if kind == .predictBatch {
            guard let list = params["actions"]?.arrayValue, !list.isEmpty else {
                throw ValidationError(field: "params.actions", message: "must be a non-empty array of action sequences ({\"base64\"} or {\"values\"}), one per video")
            }
            guard list.count <= Self.maxBatch else {
                throw ValidationError(field: "params.actions", message: "must hold at most \(Self.maxBatch) sequences, got \(list.count)")
            }
            var sequences: [NPYFloat32Matrix] = []
            for (index, item) in list.enumerated() { sequences.append(try Self.actions(item, field: "params.actions[\(index)]")) }
            actions = sequences
        } else {
            actions = [try Self.actions(params["actions"], field: "params.actions")]
        }
        if let catalog { try check(against: catalog) }
    }

    /// Checks the params against the catalog's spec of their model.
    public func check(against catalog: CatalogSnapshot) throws(ValidationError) {
        let spec = try Self.model(model, in: catalog)
        for (index, sequence) in actions.enumerated() {
            try Self.check(sequence, against: spec, field: isBatch ? "params.actions[\(index)]" : "params.actions")
        }
        if case .inline(_, let info) = frame { try Self.check(info, against: spec, field: "params.start_frame.base64") }
    }

    /// The model `slug` of the catalog, if it exists and is the active one.
    public static func model(_ slug: String, in catalog: CatalogSnapshot) throws(ValidationError) -> ModelSpec {
        guard let spec = catalog.model(slug) else {
            let known = catalog.models.map(\.slug).joined(separator: ", ")
            throw ValidationError(field: "params.model", message: "unknown model \"\(slug)\" (the catalog has: \(known.isEmpty ? "none" : known))")
        }
        guard spec.active else {
            let active = catalog.active.map { " (the active model is \($0.slug))" } ?? ""
            throw ValidationError(field: "params.model", message: "model \(slug) is not active on this Dream Engines deployment\(active)")
        }
        return spec
    }

    static func check(_ sequence: NPYFloat32Matrix, against spec: ModelSpec, field: String) throws(ValidationError) {
        if spec.actionDim > 0, sequence.columns != spec.actionDim {
            throw ValidationError(field: field, message: "has action_dim \(sequence.columns); model \(spec.slug) needs \(spec.actionDim)")
        }
        let t = sequence.rows
        if spec.chunkSize > 0, t % spec.chunkSize != 0 {
            let chunk = spec.chunkSize
            let down = t - t % chunk
            throw ValidationError(field: field, message: "has T=\(t) actions, not a multiple of model \(spec.slug)'s chunk_size \(chunk) (pad to T=\(down + chunk)\(down > 0 ? " or cut to T=\(down)" : ""))")
        }
    }

    /// Checks a start frame's header against the model's resolution (`[H, W]`).
    public static func check(_ info: ImageInfo, against spec: ModelSpec, field: String) throws(ValidationError) {
        let (height, width) = spec.resolution
        guard info.isRGB8 else {
            throw ValidationError(field: field, message: "is a \(info); the start frame must be an 8-bit RGB PNG or JPEG")
        }
        if height > 0, width > 0, info.width != width || info.height != height {
            throw ValidationError(field: field, message: "is \(info.width)×\(info.height) (W×H); model \(spec.slug) needs \(width)×\(height)")
        }
    }

    static func frame(_ value: JSONValue?) throws(ValidationError) -> Frame {
        let field = "params.start_frame"
        guard let value, !value.isNull else { throw ValidationError(field: field, message: "is required: {\"base64\": PNG/JPEG} or {\"url\": ...}") }
        let reader = try ParamsReader(value, path: field)
        try reader.rejectUnknownKeys(allowed: ["base64", "url"])
        let base64 = try reader.optionalString("base64", maxLength: .max)
        let url = try reader.optionalString("url")
        switch (base64, url) {
        case (let text?, nil):
            guard let data = decodeBase64(text), !data.isEmpty else { throw ValidationError(field: "\(field).base64", message: "is not valid base64") }
            do throws(ImageInfo.ParseError) {
                return .inline(data, try ImageInfo(data))
            } catch {
                throw ValidationError(field: "\(field).base64", message: error.description)
            }
        case (nil, let text?):
            guard let parsed = URL(string: text), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""), parsed.host != nil else {
                throw ValidationError(field: "\(field).url", message: "must be an http(s) URL")
            }
            return .url(text)
        default:
            throw ValidationError(field: field, message: "must hold exactly one of base64 or url")
        }
    }

    static func actions(_ value: JSONValue?, field: String) throws(ValidationError) -> NPYFloat32Matrix {
        guard let value, !value.isNull else {
            throw ValidationError(field: field, message: "is required: {\"base64\": .npy (float32, (T, action_dim))} or {\"values\": [[...], ...]}")
        }
        let reader = try ParamsReader(value, path: field)
        try reader.rejectUnknownKeys(allowed: ["base64", "values"])
        switch (value["base64"], value["values"]) {
        case (let encoded?, nil):
            guard let text = encoded.stringValue, let data = decodeBase64(text) else {
                throw ValidationError(field: "\(field).base64", message: "is not valid base64")
            }
            let matrix: NPYFloat32Matrix
            do throws(NPYFloat32Matrix.ParseError) { matrix = try NPYFloat32Matrix(npy: data) } catch {
                throw ValidationError(field: "\(field).base64", message: error.description)
            }
            guard matrix.rows > 0, matrix.columns > 0 else { throw ValidationError(field: "\(field).base64", message: "is empty") }
            return matrix
        case (nil, let rowsValue?):
            guard let rows = rowsValue.arrayValue, !rows.isEmpty else {
                throw ValidationError(field: "\(field).values", message: "must be a non-empty array of rows (T, action_dim)")
            }
            guard rows.count <= maxRows else { throw ValidationError(field: "\(field).values", message: "must hold at most \(maxRows) rows") }
            var numbers: [[Double]] = []
            numbers.reserveCapacity(rows.count)
            var width: Int?
            for (index, row) in rows.enumerated() {
                guard let cells = row.arrayValue else {
                    throw ValidationError(field: "\(field).values[\(index)]", message: "must be an array of numbers")
                }
                if let width, cells.count != width {
                    throw ValidationError(field: "\(field).values[\(index)]", message: "has \(cells.count) values; row 0 has \(width)")
                }
                width = cells.count
                var line: [Double] = []
                line.reserveCapacity(cells.count)
                for cell in cells {
                    guard let number = cell.doubleValue, number.isFinite, abs(number) <= Double(Float.greatestFiniteMagnitude) else {
                        throw ValidationError(field: "\(field).values[\(index)]", message: "must hold only finite float32 numbers")
                    }
                    line.append(number)
                }
                numbers.append(line)
            }
            guard (width ?? 0) > 0 else { throw ValidationError(field: "\(field).values", message: "rows must not be empty") }
            return NPYFloat32Matrix(values: numbers)
        default:
            throw ValidationError(field: field, message: "must hold exactly one of base64 or values")
        }
    }

    /// Standard or URL-safe base64, with or without padding or line breaks.
    static func decodeBase64(_ text: String) -> Data? {
        var cleaned = text.filter { !$0.isWhitespace }.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        if cleaned.hasPrefix("data:"), let comma = cleaned.firstIndex(of: ",") { cleaned = String(cleaned[cleaned.index(after: comma)...]) }
        while cleaned.count % 4 != 0 { cleaned += "=" }
        return Data(base64Encoded: cleaned)
    }
}
