import AsyncHTTPClient
import ServiceLifecycle

/// Owns an `HTTPClient` for the life of the service group and shuts it down after the services
/// listed after it (which use it) have stopped.
public struct HTTPClientService: Service {
    public let client: HTTPClient

    public init(client: HTTPClient) { self.client = client }

    public func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}

/// Runs the PostgreSQL client's connection pool as a service.
import PostgresNIO

public struct PostgresClientService: Service {
    public let client: PostgresClient

    public init(client: PostgresClient) { self.client = client }

    public func run() async throws {
        await client.run()
    }
}
