/// The upstream clients hold API keys. Their descriptions, debug descriptions and mirrors leave the
/// key out, so a client printed anywhere (swift-service-lifecycle logs every service it starts with
/// `"\(service)"`, which walks into stored properties) cannot leak it. `ProcessTests` greps a trace-level
/// log of a real `dreamd serve` for the keys.
protocol RedactedDescription: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// What may be shown: never a secret.
    var redactedFields: KeyValuePairs<String, Any> { get }
}

extension RedactedDescription {
    public var description: String {
        let fields = redactedFields.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
        return "\(type(of: self))(\(fields), apiKey: <redacted>)"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror { Mirror(self, children: redactedFields, displayStyle: .struct) }
}

extension JSONHTTP: RedactedDescription {
    var redactedFields: KeyValuePairs<String, Any> { ["provider": provider, "baseURL": baseURL] }
}

extension DreamGenClient: RedactedDescription {
    var redactedFields: KeyValuePairs<String, Any> { ["baseURL": baseURL] }
}

extension DreamEnginesClient: RedactedDescription {
    var redactedFields: KeyValuePairs<String, Any> { ["baseURL": baseURL] }
}
