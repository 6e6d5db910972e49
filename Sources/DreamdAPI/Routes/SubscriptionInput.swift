import DreamdCore
import Foundation

/// Validation of subscription bodies (`POST` and `PATCH /v1/subscriptions`). Errors are 422 with
/// `details.field` naming the field.
struct SubscriptionInput: Sendable {
    static let createKeys: Set<String> = ["url", "event_types", "description", "enabled", "secret"]
    static let patchKeys: Set<String> = ["url", "event_types", "description", "enabled"]
    static let maxURLLength = 2048
    static let maxDescriptionLength = 1024
    static let maxEventTypes = 50

    var url: String?
    var eventTypes: [String]?
    var description: String?
    var enabled: Bool?
    var secret: WebhookSecret?

    /// Parses a body; with `creating`, `url` and `event_types` are required and `secret` is accepted.
    init(body: JSONValue, creating: Bool, policy: DestinationPolicy) throws {
        guard let object = body.objectValue else {
            throw APIError.badRequest("the body must be a JSON object", code: "invalid_json")
        }
        let allowed = creating ? Self.createKeys : Self.patchKeys
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw Self.invalid(unknown, "is not a known field")
        }
        if let value = object["url"], !value.isNull {
            guard let text = value.stringValue else { throw Self.invalid("url", "must be a string") }
            url = try Self.validateURL(text, policy: policy)
        } else if creating {
            throw Self.invalid("url", "is required")
        }
        if let value = object["event_types"], !value.isNull {
            guard let items = value.arrayValue, !items.isEmpty else {
                throw Self.invalid("event_types", "must be a non-empty array of strings such as \"job.succeeded\" or \"job.*\"")
            }
            guard items.count <= Self.maxEventTypes else { throw Self.invalid("event_types", "may list at most \(Self.maxEventTypes) filters") }
            var types: [String] = []
            for (index, item) in items.enumerated() {
                guard let text = item.stringValue else { throw Self.invalid("event_types[\(index)]", "must be a string") }
                do { _ = try EventTypeFilter(text) } catch { throw Self.invalid("event_types[\(index)]", error.description) }
                if !types.contains(text) { types.append(text) }
            }
            eventTypes = types
        } else if creating {
            throw Self.invalid("event_types", "is required")
        }
        if let value = object["description"], !value.isNull {
            guard let text = value.stringValue else { throw Self.invalid("description", "must be a string") }
            guard text.unicodeScalars.count <= Self.maxDescriptionLength else {
                throw Self.invalid("description", "must be at most \(Self.maxDescriptionLength) characters")
            }
            description = text
        }
        if let value = object["enabled"], !value.isNull {
            guard let flag = value.boolValue else { throw Self.invalid("enabled", "must be a boolean") }
            enabled = flag
        }
        if creating, let value = object["secret"], !value.isNull {
            guard let text = value.stringValue else { throw Self.invalid("secret", "must be a string") }
            do { secret = try WebhookSecret(text) } catch { throw Self.invalid("secret", error.description) }
        }
    }

    /// An http(s) URL with a host and no credentials. A host written as an IP address is checked
    /// against the destination policy now; names are checked when each attempt resolves them.
    static func validateURL(_ text: String, policy: DestinationPolicy) throws -> String {
        guard text.unicodeScalars.count <= maxURLLength else { throw invalid("url", "must be at most \(maxURLLength) characters") }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            throw invalid("url", "must be an absolute http or https URL")
        }
        guard scheme == "http" || scheme == "https" else { throw invalid("url", "must use http or https, not \(scheme)") }
        var host = components.percentEncodedHost ?? ""
        if host.hasPrefix("["), host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
            guard case .v6? = IPAddress(host) else { throw invalid("url", "has a bracketed host that is not an IPv6 address") }
        }
        guard !host.isEmpty else { throw invalid("url", "must have a host") }
        guard components.user == nil, components.password == nil else {
            throw invalid("url", "must not contain credentials; receivers authenticate us by the webhook-signature header")
        }
        if let port = components.port, !(1...65535).contains(port) { throw invalid("url", "has an invalid port") }
        if let address = IPAddress(host) {
            do { try policy.check(address) } catch { throw invalid("url", error.description) }
        }
        return text
    }

    static func invalid(_ field: String, _ message: String) -> APIError {
        APIError.invalid(ValidationError(field: field, message: message), code: "invalid_subscription")
    }
}
