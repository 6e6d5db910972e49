import DreamdCore
import Foundation

/// A URL fetched on a user's behalf (a webhook subscriber, a `start_frame.url`), taken apart so the
/// connection can be made to an address the `AddressGuard` vetted rather than to whatever the name
/// resolves to at connect time.
public struct PinnedTarget: Sendable, Hashable {
    /// Why a URL cannot be fetched at all.
    public struct InvalidURL: Error, Sendable, Hashable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    public var scheme: String
    /// The host as written, lowercased, without IPv6 brackets.
    public var host: String
    public var port: Int
    public var explicitPort: Bool
    /// Path and query exactly as written (percent-encoded), at least `/`.
    public var pathAndQuery: String
    /// The host when it is an IP literal.
    public var literalAddress: IPAddress?

    public init(url text: String) throws(InvalidURL) {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
              scheme == "http" || scheme == "https" else {
            throw InvalidURL(reason: "must be an http(s) URL")
        }
        var host = components.percentEncodedHost ?? ""
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw InvalidURL(reason: "has no host") }
        guard components.user == nil, components.password == nil else { throw InvalidURL(reason: "must not carry credentials") }
        self.scheme = scheme
        self.host = host.lowercased()
        self.explicitPort = components.port != nil
        self.port = components.port ?? (scheme == "https" ? 443 : 80)
        var path = components.percentEncodedPath
        if path.isEmpty { path = "/" }
        if let query = components.percentEncodedQuery { path += "?" + query }
        self.pathAndQuery = path
        self.literalAddress = IPAddress(host)
    }

    /// HTTPS to a name needs a request-scoped client (TLS must verify the name, not the IP).
    public var needsPinnedTLS: Bool { scheme == "https" && literalAddress == nil }

    /// The `Host` header: the name as written, with the port when it is not the scheme's default.
    public var hostHeader: String {
        let name = literalAddress.map { if case .v6 = $0 { "[\($0)]" } else { "\($0)" } } ?? host
        return explicitPort ? "\(name):\(port)" : name
    }

    /// The URL to request: for plain HTTP the vetted IP in place of the name; for HTTPS the URL as
    /// written (the request-scoped client's `dnsOverride` pins the address).
    public func url(connectingTo address: IPAddress) -> String {
        let authorityHost: String
        if scheme == "http" {
            if case .v6 = address { authorityHost = "[\(address)]" } else { authorityHost = address.description }
        } else {
            if let literalAddress, case .v6 = literalAddress { authorityHost = "[\(literalAddress)]" } else { authorityHost = host }
        }
        return "\(scheme)://\(authorityHost):\(port)\(pathAndQuery)"
    }
}
