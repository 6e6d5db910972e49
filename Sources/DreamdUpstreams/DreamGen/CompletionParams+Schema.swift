import DreamdCore

extension CompletionParams {
    /// The JSON Schema of a `completion` job's params: what `validate(_:)` checks.
    static var schema: JSONValue {
        JSONSchema.object([
            "model": JSONSchema.string(minLength: 1, maxLength: 64, pattern: "^[a-z0-9.-]+$"),
            "input": JSONSchema.string(minLength: 1, maxLength: maxInputLength),
            "sampling": JSONSchema.nullable(samplingSchema),
        ], required: ["model", "input"], description: "DreamGen's request: the model id, the input text and samplingParams of kind basic.")
    }

    static var samplingSchema: JSONValue {
        JSONSchema.object([
            "kind": JSONSchema.nullable(JSONSchema.enumeration(["basic"])),
            "temperature": JSONSchema.nullable(JSONSchema.number(0...5)),
            "topP": JSONSchema.nullable(JSONSchema.number(0...1)),
            "topK": JSONSchema.nullable(JSONSchema.integer(0...1000)),
            "minP": JSONSchema.nullable(JSONSchema.number(0...1)),
            "presencePenalty": JSONSchema.nullable(JSONSchema.number(-2...2)),
            "frequencyPenalty": JSONSchema.nullable(JSONSchema.number(-2...2)),
            "repetitionPenalty": JSONSchema.nullable(JSONSchema.number(0...10)),
            "maxTokens": JSONSchema.nullable(JSONSchema.integer(1...32_768).described("At most maxTotalTokens when both are given.")),
            "maxTotalTokens": JSONSchema.nullable(JSONSchema.integer(1...131_072)),
            "stopSequences": JSONSchema.nullable(JSONSchema.array(JSONSchema.string(), count: 0...16)),
            "allowedRoles": JSONSchema.nullable(JSONSchema.array(JSONSchema.string(), count: 0...32)),
            "ignoreEos": JSONSchema.nullable(JSONSchema.boolean),
            "disallowMessageEnd": JSONSchema.nullable(JSONSchema.boolean),
            "minimumMessageContentTokens": JSONSchema.nullable(JSONSchema.integer(0...32_768)),
        ])
    }
}
