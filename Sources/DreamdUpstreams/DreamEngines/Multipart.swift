import Foundation
import NIOCore

/// A `multipart/form-data` body (RFC 7578) as the Dream Engines API takes it: files and text fields.
public struct MultipartFormData: Sendable {
    public struct Part: Sendable {
        public var name: String
        public var filename: String?
        public var contentType: String?
        public var data: Data

        public init(name: String, filename: String? = nil, contentType: String? = nil, data: Data) {
            self.name = name
            self.filename = filename
            self.contentType = contentType
            self.data = data
        }
    }

    public let boundary: String
    public private(set) var parts: [Part] = []

    public init(boundary: String = "dreamd-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()) {
        self.boundary = boundary
    }

    /// Adds a file part.
    public mutating func addFile(name: String, filename: String, contentType: String, data: Data) {
        parts.append(Part(name: name, filename: filename, contentType: contentType, data: data))
    }

    /// Adds a text field.
    public mutating func addField(name: String, value: String) {
        parts.append(Part(name: name, data: Data(value.utf8)))
    }

    /// The `Content-Type` header value.
    public var contentType: String { "multipart/form-data; boundary=\(boundary)" }

    /// The encoded body.
    public var body: ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(parts.reduce(256) { $0 + $1.data.count + 200 })
        for part in parts {
            buffer.writeString("--\(boundary)\r\n")
            var disposition = "Content-Disposition: form-data; name=\"\(Self.escape(part.name))\""
            if let filename = part.filename { disposition += "; filename=\"\(Self.escape(filename))\"" }
            buffer.writeString(disposition + "\r\n")
            if let contentType = part.contentType { buffer.writeString("Content-Type: \(contentType)\r\n") }
            buffer.writeString("\r\n")
            buffer.writeBytes(part.data)
            buffer.writeString("\r\n")
        }
        buffer.writeString("--\(boundary)--\r\n")
        return buffer
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "%22")
            .replacingOccurrences(of: "\r", with: "%0D").replacingOccurrences(of: "\n", with: "%0A")
    }
}
