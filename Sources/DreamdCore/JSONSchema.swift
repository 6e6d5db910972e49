/// Building blocks for the JSON Schemas the OpenAPI document shows. Each states what the matching
/// `ParamsReader` call checks, so a schema and its validator say the same thing.
public enum JSONSchema {
    /// A string of at most `maxLength` code points (`ParamsReader` counts the same way).
    public static func string(minLength: Int = 0, maxLength: Int = ParamsReader.defaultMaxLength, pattern: String? = nil) -> JSONValue {
        var schema: [String: JSONValue] = ["type": "string"]
        if minLength > 0 { schema["minLength"] = .number(Double(minLength)) }
        if maxLength < Int.max { schema["maxLength"] = .number(Double(maxLength)) }
        if let pattern { schema["pattern"] = .string(pattern) }
        return .object(schema)
    }

    /// One of the strings in `values`.
    public static func enumeration(_ values: [String]) -> JSONValue {
        ["type": "string", "enum": .array(values.map { .string($0) })]
    }

    /// An integer in `range`.
    public static func integer(_ range: ClosedRange<Int>) -> JSONValue {
        ["type": "integer", "minimum": .number(Double(range.lowerBound)), "maximum": .number(Double(range.upperBound))]
    }

    /// A number in `range`.
    public static func number(_ range: ClosedRange<Double>) -> JSONValue {
        ["type": "number", "minimum": .number(range.lowerBound), "maximum": .number(range.upperBound)]
    }

    public static let boolean: JSONValue = ["type": "boolean"]

    /// An ISO-8601 / RFC 3339 date-time string.
    public static let dateTime: JSONValue = ["type": "string", "format": "date-time"]

    /// `schema`, or `null`: the optional fields `ParamsReader` reads treat `null` as absent.
    public static func nullable(_ schema: JSONValue) -> JSONValue {
        guard case .object(var object) = schema else { return schema }
        switch object["type"] {
        case .string(let type)?: object["type"] = [.string(type), "null"]
        case .array(let types)?: object["type"] = .array(types + ["null"])
        default: return ["anyOf": [schema, ["type": "null"]]]
        }
        if case .array(let values)? = object["enum"] { object["enum"] = .array(values + [.null]) }
        return .object(object)
    }

    /// An object with exactly these properties (no others); `required` must be present and not `null`.
    public static func object(_ properties: [String: JSONValue], required: [String] = [], description: String? = nil) -> JSONValue {
        var schema: [String: JSONValue] = [
            "type": "object",
            "properties": .object(properties),
            "additionalProperties": false,
        ]
        if !required.isEmpty { schema["required"] = .array(required.sorted().map { .string($0) }) }
        if let description { schema["description"] = .string(description) }
        return .object(schema)
    }

    /// An array of `items`, `count` long.
    public static func array(_ items: JSONValue, count: ClosedRange<Int>) -> JSONValue {
        var schema: [String: JSONValue] = ["type": "array", "items": items]
        if count.lowerBound > 0 { schema["minItems"] = .number(Double(count.lowerBound)) }
        if count.upperBound < Int.max { schema["maxItems"] = .number(Double(count.upperBound)) }
        return .object(schema)
    }

    /// An http(s) URL with a host, as the validators check it.
    /// The host is a name or IPv4 address, or an IPv6 address in brackets; no spaces anywhere.
    public static let httpURL: JSONValue = [
        "type": "string", "format": "uri",
        "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://([^/?#@\\s\\[\\]]+|\\[[0-9A-Fa-f:.]+\\](:[0-9]{1,5})?)([/?#][^\\s]*)?$",
    ]

    /// A reference to a schema of the document's `components`.
    public static func ref(_ name: String) -> JSONValue { ["$ref": .string("#/components/schemas/\(name)")] }

    /// Any JSON object (free-form).
    public static let anyObject: JSONValue = ["type": "object"]
}

extension JSONValue {
    /// This schema with a `description` (what JSON Schema cannot say, such as a check across fields).
    public func described(_ text: String) -> JSONValue {
        guard case .object(var object) = self else { return self }
        object["description"] = .string(text)
        return .object(object)
    }

    /// This schema with more keywords (`multipleOf`, `not`, ...).
    public func with(_ keywords: [String: JSONValue]) -> JSONValue {
        guard case .object(var object) = self else { return self }
        object.merge(keywords) { $1 }
        return .object(object)
    }
}
