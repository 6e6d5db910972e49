/// A submit-time validation failure: which field is wrong and why. Rendered as 422 by the API.
public struct ValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A JSON path to the offending field, e.g. `params.num_samples`.
    public var field: String
    public var message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}

/// Small helpers for validating a params object field by field, with messages that name the field.
public struct ParamsReader: Sendable {
    public let object: [String: JSONValue]
    public let path: String

    public init(_ value: JSONValue, path: String = "params") throws(ValidationError) {
        guard let object = value.objectValue else {
            throw ValidationError(field: path, message: "must be an object, got \(value.typeName)")
        }
        self.object = object
        self.path = path
    }

    func field(_ key: String) -> String { "\(path).\(key)" }

    /// The longest string a field takes unless it says otherwise, in Unicode code points (what JSON
    /// Schema's `maxLength` counts, so the OpenAPI document states the same limit): prompts, names and
    /// URLs are far shorter; fields that carry data (base64 images, a completion's input) set their own.
    public static let defaultMaxLength = 65_536

    public func requiredString(_ key: String, nonEmpty: Bool = true, maxLength: Int = defaultMaxLength) throws(ValidationError) -> String {
        guard let value = object[key], !value.isNull else { throw ValidationError(field: field(key), message: "is required") }
        guard let string = value.stringValue else { throw ValidationError(field: field(key), message: "must be a string, got \(value.typeName)") }
        if nonEmpty, string.isEmpty { throw ValidationError(field: field(key), message: "must not be empty") }
        try checkLength(key, string, maxLength: maxLength)
        return string
    }

    public func optionalString(_ key: String, maxLength: Int = defaultMaxLength) throws(ValidationError) -> String? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let string = value.stringValue else { throw ValidationError(field: field(key), message: "must be a string, got \(value.typeName)") }
        try checkLength(key, string, maxLength: maxLength)
        return string
    }

    private func checkLength(_ key: String, _ string: String, maxLength: Int) throws(ValidationError) {
        let length = string.unicodeScalars.count
        guard length <= maxLength else {
            throw ValidationError(field: field(key), message: "must be at most \(maxLength) characters, got \(length)")
        }
    }

    public func optionalInt(_ key: String, in range: ClosedRange<Int>) throws(ValidationError) -> Int? {
        guard let value = object[key], !value.isNull else { return nil }
        return try int(key, value: value, in: range)
    }

    public func requiredInt(_ key: String, in range: ClosedRange<Int>) throws(ValidationError) -> Int {
        guard let value = object[key], !value.isNull else { throw ValidationError(field: field(key), message: "is required") }
        return try int(key, value: value, in: range)
    }

    private func int(_ key: String, value: JSONValue, in range: ClosedRange<Int>) throws(ValidationError) -> Int {
        guard let int = value.intValue else { throw ValidationError(field: field(key), message: "must be an integer, got \(value.typeName == "number" ? "a fraction" : value.typeName)") }
        guard range.contains(int) else {
            throw ValidationError(field: field(key), message: "must be between \(range.lowerBound) and \(range.upperBound), got \(int)")
        }
        return int
    }

    public func optionalNumber(_ key: String, in range: ClosedRange<Double>) throws(ValidationError) -> Double? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let number = value.doubleValue else { throw ValidationError(field: field(key), message: "must be a number, got \(value.typeName)") }
        guard range.contains(number) else {
            throw ValidationError(field: field(key), message: "must be between \(range.lowerBound) and \(range.upperBound), got \(number)")
        }
        return number
    }

    public func optionalBool(_ key: String) throws(ValidationError) -> Bool? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let bool = value.boolValue else { throw ValidationError(field: field(key), message: "must be a boolean, got \(value.typeName)") }
        return bool
    }

    /// Refuses keys outside `allowed`, so a typo is reported rather than silently ignored.
    public func rejectUnknownKeys(allowed: Set<String>) throws(ValidationError) {
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw ValidationError(field: field(unknown), message: "is not a known field")
        }
    }
}
