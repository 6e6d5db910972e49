import Foundation

/// A 2-D little-endian float32 array in NumPy's `.npy` format (versions 1.0–3.0 read, 1.0 written):
/// the `actions` part of a Dream Engines rollout, shape (T, action_dim), dtype `<f4`, C order.
public struct NPYFloat32Matrix: Sendable, Hashable {
    public let rows: Int
    public let columns: Int
    /// `rows × columns` float32 values, little-endian, row after row.
    public let data: Data

    /// Why bytes are not a 2-D `<f4` C-order `.npy` array.
    public enum ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        case notNPY
        case unsupportedVersion(major: UInt8)
        case malformedHeader(String)
        case wrongDType(String)
        case fortranOrder
        case wrongRank([Int])
        case truncated(expected: Int, got: Int)

        public var description: String {
            switch self {
            case .notNPY: "is not a .npy file (no \\x93NUMPY magic)"
            case .unsupportedVersion(let major): ".npy format version \(major) is not supported"
            case .malformedHeader(let why): "has a malformed .npy header: \(why)"
            case .wrongDType(let descr): "must be float32 ('<f4'), got dtype '\(descr)'"
            case .fortranOrder: "must be in C order, got fortran_order=True"
            case .wrongRank(let shape): "must be 2-D (T, action_dim), got shape (\(shape.map(String.init).joined(separator: ", ")))"
            case .truncated(let expected, let got): "holds \(got) data bytes, the shape needs \(expected)"
            }
        }
    }

    public init(rows: Int, columns: Int, data: Data) {
        self.rows = rows
        self.columns = columns
        self.data = data
    }

    /// Builds the array from rows of numbers (all of one length), converting to float32.
    public init(values: [[Double]]) {
        rows = values.count
        columns = values.first?.count ?? 0
        var data = Data(capacity: rows * columns * 4)
        for row in values {
            for value in row {
                withUnsafeBytes(of: Float(value).bitPattern.littleEndian) { data.append(contentsOf: $0) }
            }
        }
        self.data = data
    }

    /// Parses `.npy` bytes, checking dtype, order and rank.
    public init(npy bytes: Data) throws(ParseError) {
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard bytes.count >= 10, Array(bytes.prefix(6)) == magic else { throw .notNPY }
        let base = bytes.startIndex
        let major = bytes[base + 6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[base + 8]) | Int(bytes[base + 9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw .malformedHeader("too short") }
            headerLength = (0..<4).reduce(0) { $0 | Int(bytes[base + 8 + $1]) << (8 * $1) }
            headerStart = 12
        default:
            throw .unsupportedVersion(major: major)
        }
        guard bytes.count >= headerStart + headerLength else { throw .malformedHeader("header runs past the end") }
        let headerBytes = bytes[(base + headerStart)..<(base + headerStart + headerLength)]
        guard let header = String(data: headerBytes, encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw .malformedHeader("header is not text")
        }
        let fields = try Self.parseHeader(header)
        guard fields.descr == "<f4" else { throw .wrongDType(fields.descr) }
        guard !fields.fortranOrder else { throw .fortranOrder }
        guard fields.shape.count == 2 else { throw .wrongRank(fields.shape) }
        rows = fields.shape[0]
        columns = fields.shape[1]
        let expected = rows * columns * 4
        let payload = bytes[(base + headerStart + headerLength)...]
        guard payload.count >= expected else { throw .truncated(expected: expected, got: payload.count) }
        data = Data(payload.prefix(expected))
    }

    /// The value at (`row`, `column`).
    public subscript(row: Int, column: Int) -> Float {
        let offset = data.startIndex + (row * columns + column) * 4
        let bits = UInt32(data[offset]) | UInt32(data[offset + 1]) << 8 | UInt32(data[offset + 2]) << 16 | UInt32(data[offset + 3]) << 24
        return Float(bitPattern: bits)
    }

    /// The array as `.npy` version 1.0 bytes, header padded so the data starts on a 64-byte boundary.
    public var npyBytes: Data {
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(rows), \(columns)), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        let length = UInt16(header.utf8.count)
        out.append(UInt8(length & 0xFF))
        out.append(UInt8(length >> 8))
        out.append(contentsOf: header.utf8)
        out.append(data)
        return out
    }

    struct HeaderFields {
        var descr: String
        var fortranOrder: Bool
        var shape: [Int]
    }

    /// Reads the three keys of the header's Python dict literal.
    static func parseHeader(_ header: String) throws(ParseError) -> HeaderFields {
        func value(after key: String) -> Substring? {
            guard let range = header.range(of: "'\(key)'") ?? header.range(of: "\"\(key)\"") else { return nil }
            var rest = header[range.upperBound...].drop { $0 == " " }
            guard rest.first == ":" else { return nil }
            rest = rest.dropFirst().drop { $0 == " " }
            return rest
        }
        guard let descrText = value(after: "descr"), let quote = descrText.first, quote == "'" || quote == "\"",
              let end = descrText.dropFirst().firstIndex(of: quote) else {
            throw .malformedHeader("no descr")
        }
        let descr = String(descrText[descrText.index(after: descrText.startIndex)..<end])
        guard let orderText = value(after: "fortran_order") else { throw .malformedHeader("no fortran_order") }
        let fortran: Bool
        if orderText.hasPrefix("False") { fortran = false } else if orderText.hasPrefix("True") { fortran = true } else {
            throw .malformedHeader("fortran_order is not True or False")
        }
        guard let shapeText = value(after: "shape"), shapeText.first == "(", let close = shapeText.firstIndex(of: ")") else {
            throw .malformedHeader("no shape")
        }
        var shape: [Int] = []
        for part in shapeText[shapeText.index(after: shapeText.startIndex)..<close].split(separator: ",") {
            let trimmed = part.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "L", with: "")
            if trimmed.isEmpty { continue }
            guard let dimension = Int(trimmed), dimension >= 0 else { throw .malformedHeader("shape holds \(trimmed)") }
            shape.append(dimension)
        }
        return HeaderFields(descr: descr, fortranOrder: fortran, shape: shape)
    }
}
