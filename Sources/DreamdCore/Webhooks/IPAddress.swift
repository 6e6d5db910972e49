import Foundation

/// An IPv4 or IPv6 address, parsed from text without the C library (the classifier is pure).
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4(UInt32)
    case v6([UInt8])

    /// Parses dotted IPv4 (`127.0.0.1`) or IPv6 (`::1`, `fe80::1%eth0`, `::ffff:10.0.0.1`, `[::1]`).
    public init?(_ text: some StringProtocol) {
        var text = Substring(text)
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        if let zone = text.firstIndex(of: "%") { text = text[..<zone] }
        if let v4 = Self.parseV4(text) {
            self = .v4(v4)
        } else if let v6 = Self.parseV6(text) {
            self = .v6(v6)
        } else {
            return nil
        }
    }

    static func parseV4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isNumber }), let octet = UInt32(part), octet <= 255 else {
                return nil
            }
            // Leading zeros are refused: some resolvers read them as octal.
            if part.count > 1, part.first == "0" { return nil }
            value = value << 8 | octet
        }
        return value
    }

    static func parseV6(_ text: Substring) -> [UInt8]? {
        guard text.contains(":"), text.count <= 45 else { return nil }
        var head: [UInt16] = []
        var tail: [UInt16] = []
        var sawDoubleColon = false
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String, allowV4: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            let items = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, item) in items.enumerated() {
                if index == items.count - 1, allowV4, item.contains(".") {
                    guard let v4 = parseV4(item) else { return nil }
                    result.append(UInt16(v4 >> 16))
                    result.append(UInt16(v4 & 0xFFFF))
                    continue
                }
                guard (1...4).contains(item.count), let group = UInt16(item, radix: 16) else { return nil }
                result.append(group)
            }
            return result
        }
        if halves.count == 2 {
            sawDoubleColon = true
            guard let h = groups(halves[0], allowV4: false), let t = groups(halves[1], allowV4: true) else { return nil }
            head = h
            tail = t
            guard head.count + tail.count <= 7 else { return nil }
        } else {
            guard let all = groups(halves[0], allowV4: true), all.count == 8 else { return nil }
            head = all
        }
        let zeros = sawDoubleColon ? Array(repeating: UInt16(0), count: 8 - head.count - tail.count) : []
        let words = head + zeros + tail
        guard words.count == 8 else { return nil }
        return words.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }

    /// The embedded IPv4 address of `::ffff:a.b.c.d`, `64:ff9b::a.b.c.d` (NAT64) and `2002:AABB:CCDD::/48` (6to4).
    var embeddedV4: UInt32? {
        guard case .v6(let bytes) = self else { return nil }
        func v4(at offset: Int) -> UInt32 {
            bytes[offset..<offset + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF { return v4(at: 12) }
        if bytes[0..<12] == [0x00, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0] { return v4(at: 12) }
        if bytes[0] == 0x20, bytes[1] == 0x02 { return v4(at: 2) }
        return nil
    }

    public var description: String {
        switch self {
        case .v4(let value):
            return "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
        case .v6(let bytes):
            let words = stride(from: 0, to: 16, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
            // Compress the longest run of two or more zero groups (RFC 5952).
            var bestStart = -1, bestLength = 0, index = 0
            while index < 8 {
                if words[index] == 0 {
                    var end = index
                    while end < 8, words[end] == 0 { end += 1 }
                    if end - index > bestLength, end - index >= 2 { bestStart = index; bestLength = end - index }
                    index = end
                } else {
                    index += 1
                }
            }
            let hex = words.map { String($0, radix: 16) }
            guard bestStart >= 0 else { return hex.joined(separator: ":") }
            let left = hex[0..<bestStart].joined(separator: ":")
            let right = hex[(bestStart + bestLength)...].joined(separator: ":")
            return left + "::" + right
        }
    }
}
