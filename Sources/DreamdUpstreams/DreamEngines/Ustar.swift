import Foundation
import NIOCore

/// The tar (ustar) archives `POST /v1/predict/batch` answers with: a streaming reader that yields each
/// member's bytes as they arrive, and a writer for the simulator.
public enum Ustar {
    /// What the reader found in the bytes fed so far.
    public enum Event: Sendable, Equatable {
        /// A regular file member starts.
        case begin(name: String, size: Int)
        /// Bytes of the current member.
        case data(ByteBuffer)
        /// The current member is complete.
        case end
    }

    public enum ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        case badHeader(String)
        case truncated

        public var description: String {
            switch self {
            case .badHeader(let why): "malformed tar header: \(why)"
            case .truncated: "the tar archive ended in the middle of a member"
            }
        }
    }

    /// An incremental reader: `feed` chunks in order, act on the events; `finish` at the end.
    public struct Reader: Sendable {
        private var pending = ByteBuffer()
        private var remaining = 0
        private var padding = 0
        private var inMember = false
        private var skipping = false
        public private(set) var finished = false

        public init() {}

        public mutating func feed(_ chunk: ByteBuffer) throws(ParseError) -> [Event] {
            var chunk = chunk
            pending.writeBuffer(&chunk)
            var events: [Event] = []
            while !finished {
                if remaining > 0 {
                    guard pending.readableBytes > 0 else { break }
                    let count = min(remaining, pending.readableBytes)
                    let slice = pending.readSlice(length: count) ?? ByteBuffer()
                    if !skipping { events.append(.data(slice)) }
                    remaining -= count
                    continue
                }
                if padding > 0 {
                    let count = min(padding, pending.readableBytes)
                    guard count > 0 else { break }
                    pending.moveReaderIndex(forwardBy: count)
                    padding -= count
                    continue
                }
                if inMember {
                    if !skipping { events.append(.end) }
                    inMember = false
                    skipping = false
                }
                guard pending.readableBytes >= 512, let header = pending.readBytes(length: 512) else { break }
                if header.allSatisfy({ $0 == 0 }) {
                    finished = true
                    break
                }
                let name = Self.text(header[0..<100])
                let prefix = Self.text(header[345..<500])
                guard let size = Int(Self.text(header[124..<136]).trimmingCharacters(in: .whitespaces), radix: 8) else {
                    throw .badHeader("size field of \(name)")
                }
                let type = header[156]
                let isFile = type == 0 || type == UInt8(ascii: "0")
                remaining = size
                padding = (512 - size % 512) % 512
                inMember = true
                skipping = !isFile
                if isFile { events.append(.begin(name: prefix.isEmpty ? name : prefix + "/" + name, size: size)) }
            }
            pending.discardReadBytes()
            return events
        }

        /// Checks that the archive did not stop inside a member.
        public mutating func finish() throws(ParseError) -> [Event] {
            if remaining > 0 { throw .truncated }
            if inMember {
                inMember = false
                return skipping ? [] : [.end]
            }
            return []
        }

        static func text(_ bytes: ArraySlice<UInt8>) -> String {
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// Writes an archive of regular files (names up to 100 bytes).
    public static func archive(_ files: [(name: String, data: Data)], modified: Date = Date()) -> Data {
        var out = Data()
        for file in files {
            var header = [UInt8](repeating: 0, count: 512)
            func put(_ text: String, at offset: Int, length: Int) {
                for (index, byte) in text.utf8.prefix(length).enumerated() { header[offset + index] = byte }
            }
            func octal(_ value: Int, length: Int) -> String {
                let digits = String(value, radix: 8)
                return String(repeating: "0", count: max(0, length - 1 - digits.count)) + digits
            }
            put(file.name, at: 0, length: 100)
            put(octal(0o644, length: 8), at: 100, length: 7)
            put(octal(0, length: 8), at: 108, length: 7)
            put(octal(0, length: 8), at: 116, length: 7)
            put(octal(file.data.count, length: 12), at: 124, length: 11)
            put(octal(Int(modified.timeIntervalSince1970), length: 12), at: 136, length: 11)
            put("        ", at: 148, length: 8)
            header[156] = UInt8(ascii: "0")
            put("ustar", at: 257, length: 6)
            put("00", at: 263, length: 2)
            let checksum = header.reduce(0) { $0 + Int($1) }
            put(octal(checksum, length: 7), at: 148, length: 6)
            header[154] = 0
            header[155] = UInt8(ascii: " ")
            out.append(contentsOf: header)
            out.append(file.data)
            out.append(Data(count: (512 - file.data.count % 512) % 512))
        }
        out.append(Data(count: 1024))
        return out
    }
}
