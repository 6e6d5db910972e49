import DreamdCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Resolves a host name to every address it has. The SSRF guard checks all of them.
public protocol HostResolver: Sendable {
    func resolve(host: String, port: Int) async throws -> [IPAddress]
}

/// A resolution failure, with the resolver's own message.
public struct HostResolutionError: Error, CustomStringConvertible, Sendable {
    public var host: String
    public var message: String

    public init(host: String, message: String) {
        self.host = host
        self.message = message
    }

    public var description: String { "could not resolve \(host): \(message)" }
}

/// The system resolver (`getaddrinfo`, so `/etc/hosts` and search domains apply as for any
/// program), run on NIO's blocking-I/O thread pool, never on an event loop.
public struct SystemHostResolver: HostResolver {
    public init() {}

    public func resolve(host: String, port: Int) async throws -> [IPAddress] {
        try await NIOThreadPool.singleton.runIfActive { try Self.getaddrinfoBlocking(host: host, port: port) }
    }

    static func getaddrinfoBlocking(host: String, port: Int) throws -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Darwin)
        hints.ai_socktype = SOCK_STREAM
        #else
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &result)
        guard status == 0 else {
            throw HostResolutionError(host: host, message: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(result) }
        var addresses: [IPAddress] = []
        var cursor = result
        while let info = cursor {
            if let address = info.pointee.ai_addr {
                switch info.pointee.ai_family {
                case AF_INET:
                    let raw = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                    addresses.append(.v4(UInt32(bigEndian: raw)))
                case AF_INET6:
                    let bytes = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                        withUnsafeBytes(of: pointer.pointee.sin6_addr) { Array($0) }
                    }
                    addresses.append(.v6(bytes))
                default:
                    break
                }
            }
            cursor = info.pointee.ai_next
        }
        var seen = Set<IPAddress>()
        return addresses.filter { seen.insert($0).inserted }
    }
}
