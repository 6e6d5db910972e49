import DreamdCore

/// Submit-time validation of `completion` params: `{"model", "input", "sampling": {...}}`, where `sampling`
/// is DreamGen's `samplingParams` of kind `basic`.
enum CompletionParams {
    /// The longest `input`, in characters (the request body limit bounds it in bytes too).
    static let maxInputLength = 1_000_000
    static let knownModels: Set<String> = ["opus-v1-sm", "opus-v1-lg", "opus-v1-xl"]

    static func validate(_ params: JSONValue) throws(ValidationError) {
        let reader = try ParamsReader(params, path: "params")
        try reader.rejectUnknownKeys(allowed: ["model", "input", "sampling"])
        let model = try reader.requiredString("model")
        guard model.utf8.count <= 64, model.utf8.allSatisfy(Self.isModelIDByte) else {
            throw ValidationError(field: "params.model", message: "must be a DreamGen model id such as \(knownModels.sorted().joined(separator: ", "))")
        }
        _ = try reader.requiredString("input", maxLength: maxInputLength)
        if let sampling = params["sampling"], !sampling.isNull { try validateSampling(sampling) }
    }

    /// `[a-z0-9.-]`: the characters of a DreamGen model id (the OpenAPI pattern says the same).
    static func isModelIDByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
            || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
    }

    static func validateSampling(_ sampling: JSONValue) throws(ValidationError) {
        let reader = try ParamsReader(sampling, path: "params.sampling")
        try reader.rejectUnknownKeys(allowed: [
            "kind", "temperature", "topP", "topK", "minP", "presencePenalty", "frequencyPenalty", "repetitionPenalty",
            "maxTokens", "maxTotalTokens", "stopSequences", "ignoreEos", "allowedRoles", "disallowMessageEnd",
            "minimumMessageContentTokens",
        ])
        if let kind = try reader.optionalString("kind"), kind != "basic" {
            throw ValidationError(field: "params.sampling.kind", message: "must be \"basic\", got \"\(kind)\"")
        }
        _ = try reader.optionalNumber("temperature", in: 0...5)
        _ = try reader.optionalNumber("topP", in: 0...1)
        _ = try reader.optionalInt("topK", in: 0...1000)
        _ = try reader.optionalNumber("minP", in: 0...1)
        _ = try reader.optionalNumber("presencePenalty", in: -2...2)
        _ = try reader.optionalNumber("frequencyPenalty", in: -2...2)
        _ = try reader.optionalNumber("repetitionPenalty", in: 0...10)
        let maxTokens = try reader.optionalInt("maxTokens", in: 1...32_768)
        let maxTotal = try reader.optionalInt("maxTotalTokens", in: 1...131_072)
        if let maxTokens, let maxTotal, maxTokens > maxTotal {
            throw ValidationError(field: "params.sampling.maxTokens", message: "must not exceed maxTotalTokens (\(maxTokens) > \(maxTotal))")
        }
        try stringList(sampling["stopSequences"], field: "params.sampling.stopSequences", limit: 16)
        try stringList(sampling["allowedRoles"], field: "params.sampling.allowedRoles", limit: 32)
        _ = try reader.optionalBool("ignoreEos")
        _ = try reader.optionalBool("disallowMessageEnd")
        _ = try reader.optionalInt("minimumMessageContentTokens", in: 0...32_768)
    }

    static func stringList(_ value: JSONValue?, field: String, limit: Int) throws(ValidationError) {
        guard let value, !value.isNull else { return }
        guard let list = value.arrayValue, list.allSatisfy({ $0.stringValue != nil }) else {
            throw ValidationError(field: field, message: "must be an array of strings")
        }
        guard list.count <= limit else { throw ValidationError(field: field, message: "must hold at most \(limit) strings") }
        if let index = list.firstIndex(where: { ($0.stringValue?.unicodeScalars.count ?? 0) > ParamsReader.defaultMaxLength }) {
            throw ValidationError(field: "\(field)[\(index)]", message: "must be at most \(ParamsReader.defaultMaxLength) characters")
        }
    }

    /// DreamGen's request body for a job's params.
    static func requestBody(_ params: JSONValue) -> JSONValue {
        var sampling = params["sampling"]?.objectValue ?? [:]
        sampling["kind"] = "basic"
        return [
            "modelId": params["model"] ?? .null,
            "input": params["input"] ?? "",
            "samplingParams": .object(sampling),
        ]
    }
}
