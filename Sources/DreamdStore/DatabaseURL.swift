import Foundation
import PostgresNIO

/// Parses `DATABASE_URL` (`postgres://user:pass@host:port/db`, or `?host=/socket/dir` for a Unix socket).
public struct DatabaseURL: Sendable, Hashable, CustomStringConvertible {
    public enum ParseError: Error, CustomStringConvertible {
        case invalid(String)
        public var description: String {
            switch self { case .invalid(let why): why }
        }
    }

    public var user: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String
    public var socketDirectory: String?
    public var requireTLS: Bool

    public init(_ text: String) throws(ParseError) {
        guard let components = URLComponents(string: text), let scheme = components.scheme,
              ["postgres", "postgresql"].contains(scheme) else {
            throw .invalid("expected postgres://user:pass@host:port/db")
        }
        let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
        user = components.user.flatMap { $0.removingPercentEncoding } ?? query["user"] ?? "postgres"
        password = components.password.flatMap { $0.removingPercentEncoding } ?? query["password"]
        host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "localhost"
        port = components.port ?? query["port"].flatMap(Int.init) ?? 5432
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.isEmpty ? user : path
        if let socketHost = query["host"], socketHost.hasPrefix("/") { socketDirectory = socketHost }
        requireTLS = ["require", "verify-ca", "verify-full"].contains(query["sslmode"] ?? "")
    }

    /// The same location with another database name (tests create one database each).
    public func with(database: String) -> DatabaseURL {
        var copy = self
        copy.database = database
        return copy
    }

    /// The client configuration for PostgresNIO.
    public func clientConfiguration(maximumConnections: Int = 20) throws -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if let socketDirectory {
            configuration = .init(unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: user, password: password, database: database)
        } else {
            configuration = .init(host: host, port: port, username: user, password: password, database: database,
                                  tls: requireTLS ? .require(.makeClientConfiguration()) : .disable)
        }
        configuration.options.maximumConnections = maximumConnections
        configuration.options.minimumConnections = 0
        return configuration
    }

    /// The URL with its password redacted, safe to log.
    public var description: String {
        let location = socketDirectory.map { "?host=\($0)" } ?? ""
        return "postgres://\(user)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)\(location)"
    }
}
