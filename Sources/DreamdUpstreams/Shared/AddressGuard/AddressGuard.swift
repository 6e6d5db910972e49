import AsyncHTTPClient
import DreamdCore
import Logging
import NIOCore

/// The SSRF guard for every URL dreamd fetches on a user's behalf: webhook deliveries and Dream
/// Engines' `start_frame.url`.
///
/// The host is resolved on every request and every address it resolves to is checked by the
/// `DestinationPolicy`; one forbidden address refuses the request (a name must not be able to mix a
/// public and a private answer and let the connection pick). The request then goes to the vetted
/// address itself, so a DNS answer that changes between the check and the connection (rebinding)
/// cannot redirect it:
/// - `http`: the URL's host is replaced by the vetted IP and the `Host` header keeps the original name;
/// - `https` to a name: a request-scoped `HTTPClient` with `dnsOverride = [name: vetted IP]`, so the
///   TCP connection goes to that IP while TLS still sends SNI and verifies the certificate for the name.
/// The client passed in must not follow redirects (a redirect would leave the guard behind).
public struct AddressGuard: Sendable {
    public var resolver: any HostResolver
    public var policy: DestinationPolicy

    public init(resolver: any HostResolver = SystemHostResolver(), policy: DestinationPolicy) {
        self.resolver = resolver
        self.policy = policy
    }

    /// Why a target was not connected to.
    public enum GuardError: Error, Sendable, CustomStringConvertible {
        case refused(DestinationPolicy.Refusal)
        case noAddress(String)
        case resolution(HostResolutionError)

        public var description: String {
            switch self {
            case .refused(let refusal): refusal.description
            case .noAddress(let host): "\(host) resolved to no address"
            case .resolution(let error): error.description
            }
        }
    }

    /// Resolves the target's host (an IP literal is taken as is), checks every address, and returns
    /// the one to connect to.
    public func vet(_ target: PinnedTarget) async throws(GuardError) -> IPAddress {
        let addresses: [IPAddress]
        if let literal = target.literalAddress {
            addresses = [literal]
        } else {
            do {
                addresses = try await resolver.resolve(host: target.host, port: target.port)
            } catch let error as HostResolutionError {
                throw .resolution(error)
            } catch {
                throw .resolution(HostResolutionError(host: target.host, message: "\(error)"))
            }
        }
        guard let vetted = addresses.first else { throw .noAddress(target.host) }
        for address in addresses {
            do { try policy.check(address) } catch { throw .refused(error) }
        }
        return vetted
    }

    /// Sends `request` (its URL is replaced) to `target` over a connection to `address`, and hands
    /// the response to `read` while the connection is alive. `client` serves plain HTTP;
    /// HTTPS to a name gets a client of `configuration` for this request only.
    public func execute<T: Sendable>(
        _ request: HTTPClientRequest, to target: PinnedTarget, address: IPAddress, client: HTTPClient,
        configuration: HTTPClient.Configuration, timeout: Duration, logger: Logger,
        read: (HTTPClientResponse) async throws -> T
    ) async throws -> T {
        var request = request
        request.url = target.url(connectingTo: address)
        request.headers.replaceOrAdd(name: "host", value: target.hostHeader)
        let deadline = TimeAmount.nanoseconds(Int64(timeout.seconds * 1e9))
        guard target.needsPinnedTLS else {
            return try await read(try await client.execute(request, timeout: deadline, logger: logger))
        }
        var pinned = configuration
        pinned.dnsOverride = [target.host: address.description]
        pinned.redirectConfiguration = .disallow
        let scoped = HTTPClient(eventLoopGroupProvider: .singleton, configuration: pinned)
        do {
            let answer = try await read(try await scoped.execute(request, timeout: deadline, logger: logger))
            try? await scoped.shutdown()
            return answer
        } catch {
            try? await scoped.shutdown()
            throw error
        }
    }
}
