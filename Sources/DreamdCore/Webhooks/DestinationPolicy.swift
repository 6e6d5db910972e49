/// Which network destinations a webhook may reach: the SSRF guard's pure half.
///
/// The sender resolves the subscriber's host on every attempt and asks this policy about every
/// address it resolved to; one refused address refuses the attempt (a host must not be able to
/// mix a public and a private answer and let the connection pick).
public struct DestinationPolicy: Sendable, Hashable {
    /// `DREAMD_WEBHOOK_ALLOW_PRIVATE`: allow private (RFC 1918, ULA, CGNAT) and loopback addresses.
    /// Link-local, cloud metadata, multicast and reserved ranges stay refused.
    public var allowPrivate: Bool

    public init(allowPrivate: Bool = false) {
        self.allowPrivate = allowPrivate
    }

    /// What kind of address this is, as far as delivery is concerned.
    public enum Category: String, Sendable, Hashable, CaseIterable {
        case global
        case loopback
        /// RFC 1918 and IPv6 unique local addresses.
        case `private`
        /// RFC 6598 shared address space (CGNAT, 100.64.0.0/10); also used by overlay VPNs.
        case sharedAddressSpace = "shared_address_space"
        case linkLocal = "link_local"
        /// Cloud instance metadata endpoints (AWS, GCP, Azure, Alibaba, Oracle, AWS ECS).
        case cloudMetadata = "cloud_metadata"
        case unspecified
        case multicast
        case broadcast
        case documentation
        /// IETF special-purpose, benchmarking, reserved for future use, deprecated IPv6 forms.
        case reserved
    }

    /// A refusal, with a reason fit for the delivery log.
    public struct Refusal: Error, Sendable, Hashable, CustomStringConvertible {
        public var address: IPAddress
        public var category: Category
        public var description: String {
            "destination \(address) is \(category.rawValue.replacingOccurrences(of: "_", with: " ")); refused"
                + (category == .loopback || category == .private || category == .sharedAddressSpace
                   ? " (set DREAMD_WEBHOOK_ALLOW_PRIVATE=true to allow private and loopback addresses)" : "")
        }
    }

    /// Whether a webhook may connect to `address`.
    public func check(_ address: IPAddress) throws(Refusal) {
        let category = Self.classify(address)
        guard isAllowed(category) else { throw Refusal(address: address, category: category) }
    }

    public func isAllowed(_ category: Category) -> Bool {
        switch category {
        case .global: true
        case .loopback, .private, .sharedAddressSpace: allowPrivate
        case .linkLocal, .cloudMetadata, .unspecified, .multicast, .broadcast, .documentation, .reserved: false
        }
    }

    /// Classifies an address. Metadata endpoints are matched before the ranges that contain them.
    public static func classify(_ address: IPAddress) -> Category {
        switch address {
        case .v4(let value):
            return classifyV4(value)
        case .v6(let bytes):
            if let embedded = address.embeddedV4 { return classifyV4(embedded) }
            return classifyV6(bytes)
        }
    }

    private static func inV4(_ value: UInt32, _ network: UInt32, _ prefix: Int) -> Bool {
        let mask: UInt32 = prefix == 0 ? 0 : ~UInt32(0) << (32 - prefix)
        return value & mask == network & mask
    }

    private static func v4(_ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: UInt32) -> UInt32 { a << 24 | b << 16 | c << 8 | d }

    static let v4Metadata: Set<UInt32> = [
        v4(169, 254, 169, 254), // AWS, GCP, Azure, Oracle, DigitalOcean, ...
        v4(169, 254, 170, 2),   // AWS ECS task metadata
        v4(100, 100, 100, 200), // Alibaba Cloud
        v4(168, 63, 129, 16),   // Azure WireServer
    ]

    private static func classifyV4(_ value: UInt32) -> Category {
        if v4Metadata.contains(value) { return .cloudMetadata }
        if value == 0xFFFF_FFFF { return .broadcast }
        let table: [(UInt32, Int, Category)] = [
            (v4(0, 0, 0, 0), 8, .unspecified),
            (v4(127, 0, 0, 0), 8, .loopback),
            (v4(10, 0, 0, 0), 8, .private),
            (v4(172, 16, 0, 0), 12, .private),
            (v4(192, 168, 0, 0), 16, .private),
            (v4(100, 64, 0, 0), 10, .sharedAddressSpace),
            (v4(169, 254, 0, 0), 16, .linkLocal),
            (v4(192, 0, 0, 0), 24, .reserved),
            (v4(192, 0, 2, 0), 24, .documentation),
            (v4(198, 51, 100, 0), 24, .documentation),
            (v4(203, 0, 113, 0), 24, .documentation),
            (v4(198, 18, 0, 0), 15, .reserved),
            (v4(192, 88, 99, 0), 24, .reserved),
            (v4(224, 0, 0, 0), 4, .multicast),
            (v4(240, 0, 0, 0), 4, .reserved),
        ]
        for (network, prefix, category) in table where inV4(value, network, prefix) { return category }
        return .global
    }

    private static func inV6(_ bytes: [UInt8], _ network: [UInt8], _ prefix: Int) -> Bool {
        var remaining = prefix
        for index in 0..<16 where remaining > 0 {
            let bits = min(8, remaining)
            let mask: UInt8 = bits == 8 ? 0xFF : ~UInt8(0) << (8 - bits)
            if bytes[index] & mask != (index < network.count ? network[index] : 0) & mask { return false }
            remaining -= bits
        }
        return true
    }

    static let v6Metadata: [[UInt8]] = [
        // fd00:ec2::254, AWS IMDS over IPv6
        [0xFD, 0x00, 0x0E, 0xC2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54],
    ]

    private static func classifyV6(_ bytes: [UInt8]) -> Category {
        if v6Metadata.contains(bytes) { return .cloudMetadata }
        if bytes.allSatisfy({ $0 == 0 }) { return .unspecified }
        if bytes[0..<15].allSatisfy({ $0 == 0 }), bytes[15] == 1 { return .loopback }
        let table: [([UInt8], Int, Category)] = [
            ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 96, .reserved),  // IPv4-compatible (deprecated) ::a.b.c.d
            ([0x00, 0x64, 0xFF, 0x9B, 0x00, 0x01], 48, .reserved),  // 64:ff9b:1::/48 local-use NAT64
            ([0x01, 0x00, 0, 0, 0, 0, 0, 0], 64, .reserved),        // 100::/64 discard-only
            ([0x20, 0x01, 0x0D, 0xB8], 32, .documentation),         // 2001:db8::/32
            ([0x3F, 0xFF], 20, .documentation),                      // 3fff::/20
            ([0x20, 0x01, 0x00, 0x00], 32, .reserved),               // Teredo 2001::/32
            ([0x20, 0x01, 0x00, 0x10], 28, .reserved),               // ORCHID
            ([0x20, 0x01, 0x00, 0x20], 28, .reserved),               // ORCHIDv2
            ([0x20, 0x01, 0x00, 0x00], 23, .reserved),               // 2001::/23 IETF protocol assignments
            ([0xFC], 7, .private),                                   // fc00::/7 unique local
            ([0xFE, 0x80], 10, .linkLocal),                          // fe80::/10
            ([0xFE, 0xC0], 10, .reserved),                           // fec0::/10 site-local (deprecated)
            ([0xFF], 8, .multicast),                                 // ff00::/8
        ]
        for (network, prefix, category) in table where inV6(bytes, network, prefix) { return category }
        // Outside 2000::/3 nothing is allocated for global unicast.
        if !inV6(bytes, [0x20], 3) { return .reserved }
        return .global
    }
}
