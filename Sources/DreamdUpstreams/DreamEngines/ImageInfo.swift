import Foundation

/// What a PNG or JPEG header says about the image, read without decoding it: the PNG `IHDR` chunk,
/// or a JPEG's first start-of-frame (SOFn) marker.
public struct ImageInfo: Sendable, Hashable, CustomStringConvertible {
    public enum Format: String, Sendable, Hashable { case png, jpeg }

    public var format: Format
    public var width: Int
    public var height: Int
    /// Colour channels: 3 for RGB, 4 for RGBA, 1 for grey (and for palette PNGs, whose colours are RGB).
    public var channels: Int
    /// Bits per sample.
    public var bitDepth: Int
    /// The PNG colour type (2 = RGB), `nil` for JPEG.
    public var pngColorType: Int?

    /// Whether this is an 8-bit RGB image (a PNG of colour type 2, or a 3-component JPEG).
    public var isRGB8: Bool {
        switch format {
        case .png: pngColorType == 2 && bitDepth == 8
        case .jpeg: channels == 3 && bitDepth == 8
        }
    }

    public var description: String {
        let colour: String = switch (format, pngColorType) {
        case (.png, 0?): "grey"
        case (.png, 2?): "RGB"
        case (.png, 3?): "palette"
        case (.png, 4?): "grey+alpha"
        case (.png, 6?): "RGBA"
        default: channels == 3 ? "RGB" : channels == 1 ? "grey" : "\(channels)-channel"
        }
        return "\(format.rawValue.uppercased()) \(width)×\(height) \(colour) \(bitDepth)-bit"
    }

    public enum ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        case unknownFormat
        case truncated
        case malformed(String)

        public var description: String {
            switch self {
            case .unknownFormat: "is neither a PNG nor a JPEG"
            case .truncated: "is a truncated image"
            case .malformed(let why): "is a malformed image: \(why)"
            }
        }
    }

    /// Reads the header of PNG or JPEG bytes.
    public init(_ bytes: Data) throws(ParseError) {
        let b = [UInt8](bytes.prefix(1 << 20))
        if b.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            try self.init(png: b)
        } else if b.starts(with: [0xFF, 0xD8]) {
            try self.init(jpeg: b, total: bytes.count)
        } else {
            throw .unknownFormat
        }
    }

    private init(png b: [UInt8]) throws(ParseError) {
        guard b.count >= 29 else { throw .truncated }
        guard Array(b[12..<16]) == Array("IHDR".utf8) else { throw .malformed("the first chunk is not IHDR") }
        func be32(_ at: Int) -> Int { Int(b[at]) << 24 | Int(b[at + 1]) << 16 | Int(b[at + 2]) << 8 | Int(b[at + 3]) }
        format = .png
        width = be32(16)
        height = be32(20)
        bitDepth = Int(b[24])
        let colorType = Int(b[25])
        pngColorType = colorType
        channels = switch colorType {
        case 0: 1
        case 2: 3
        case 3: 3
        case 4: 2
        case 6: 4
        default: 0
        }
        guard channels > 0 else { throw .malformed("unknown PNG colour type \(colorType)") }
        guard width > 0, height > 0 else { throw .malformed("zero width or height") }
    }

    private init(jpeg b: [UInt8], total: Int) throws(ParseError) {
        var i = 2
        while i + 3 < b.count {
            guard b[i] == 0xFF else { throw .malformed("expected a marker at byte \(i)") }
            var marker = b[i + 1]
            while marker == 0xFF, i + 2 < b.count { i += 1; marker = b[i + 1] }
            i += 2
            if marker == 0x01 || (0xD0...0xD8).contains(marker) { continue }
            guard i + 1 < b.count else { break }
            let length = Int(b[i]) << 8 | Int(b[i + 1])
            guard length >= 2 else { throw .malformed("segment length \(length)") }
            let isStartOfFrame = (0xC0...0xCF).contains(marker) && marker != 0xC4 && marker != 0xC8 && marker != 0xCC
            if isStartOfFrame {
                guard i + 7 < b.count else { throw .truncated }
                format = .jpeg
                bitDepth = Int(b[i + 2])
                height = Int(b[i + 3]) << 8 | Int(b[i + 4])
                width = Int(b[i + 5]) << 8 | Int(b[i + 6])
                channels = Int(b[i + 7])
                pngColorType = nil
                guard width > 0, height > 0 else { throw .malformed("zero width or height") }
                return
            }
            if marker == 0xDA { throw .malformed("no frame header before the image data") }
            i += length
        }
        throw total > b.count ? .malformed("no frame header in the first MiB") : .truncated
    }
}
