import AsyncHTTPClient
import DreamdCore
import Foundation
import Logging
import NIOCore

/// Fetches a URL a user gave (e.g. a predict job's `start_frame.url`) through the `AddressGuard`:
/// every hop is resolved and vetted, the connection pinned to the vetted address, and redirects
/// followed by hand (at most `maxRedirects`), each new location vetted again.
public struct GuardedFetcher: Sendable {
    let httpClient: HTTPClient
    let addressGuard: AddressGuard
    let configuration: HTTPClient.Configuration
    public var maxRedirects = 5
    public var userAgent = "dreamd/1"

    /// - Parameter httpClient: a client that does not follow redirects (the daemon's shared one).
    public init(httpClient: HTTPClient, addressGuard: AddressGuard) {
        self.httpClient = httpClient
        self.addressGuard = addressGuard
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(30))
        self.configuration = configuration
    }

    /// Why a fetch failed; `isTransient` when a later try may succeed.
    public enum FetchError: Error, Sendable, CustomStringConvertible {
        case invalidURL(String)
        case refused(String)
        case status(Int)
        case tooLarge(Int)
        case tooManyRedirects(Int)
        case transport(String)

        public var description: String {
            switch self {
            case .invalidURL(let why): "is not a fetchable URL: \(why)"
            case .refused(let why): "was refused by the address guard: \(why)"
            case .status(let status): "answered HTTP \(status)"
            case .tooLarge(let limit): "is larger than \(limit) bytes"
            case .tooManyRedirects(let limit): "redirected more than \(limit) times"
            case .transport(let why): "could not be fetched: \(why)"
            }
        }

        public var isTransient: Bool {
            switch self {
            case .status(let status): status == 429 || status >= 500
            case .transport: true
            default: false
            }
        }
    }

    /// `GET url`, returning at most `maxBytes` of the body.
    public func get(_ url: String, maxBytes: Int, timeout: Duration, logger: Logger) async throws(FetchError) -> ByteBuffer {
        var location = url
        for _ in 0...maxRedirects {
            let target: PinnedTarget
            do { target = try PinnedTarget(url: location) } catch { throw .invalidURL(error.reason) }
            let address: IPAddress
            do { address = try await addressGuard.vet(target) } catch {
                if case .refused = error { throw .refused(error.description) }
                throw .transport(error.description)
            }
            var request = HTTPClientRequest(url: location)
            request.headers.add(name: "user-agent", value: userAgent)
            let outcome: Hop
            do {
                outcome = try await addressGuard.execute(
                    request, to: target, address: address, client: httpClient, configuration: configuration,
                    timeout: timeout, logger: logger
                ) { response in
                    let status = Int(response.status.code)
                    if (300..<400).contains(status), let next = response.headers.first(name: "location") {
                        return Hop.redirect(next)
                    }
                    guard (200..<300).contains(status) else { return Hop.failed(status) }
                    do {
                        return Hop.body(try await response.body.collect(upTo: maxBytes))
                    } catch is NIOTooManyBytesError {
                        return Hop.tooLarge
                    }
                }
            } catch {
                throw .transport("\(error)")
            }
            switch outcome {
            case .body(let body): return body
            case .failed(let status): throw .status(status)
            case .tooLarge: throw .tooLarge(maxBytes)
            case .redirect(let next):
                guard let resolved = URL(string: next, relativeTo: URL(string: location))?.absoluteString else {
                    throw .invalidURL("redirect to an unreadable location")
                }
                location = resolved
            }
        }
        throw .tooManyRedirects(maxRedirects)
    }

    private enum Hop: Sendable {
        case body(ByteBuffer)
        case redirect(String)
        case failed(Int)
        case tooLarge
    }
}
