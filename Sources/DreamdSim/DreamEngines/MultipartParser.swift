import Foundation

/// Parses `multipart/form-data` bodies (RFC 7578) as a FastAPI server would: parts by name, each with
/// its filename and content type. Small and strict; enough for the Dream Engines routes.
struct MultipartParser {
    struct Part {
        var name: String
        var filename: String?
        var contentType: String?
        var data: Data

        var text: String { String(decoding: data, as: UTF8.self) }
    }

    enum ParseError: Error, CustomStringConvertible {
        case notMultipart
        case malformed(String)

        var description: String {
            switch self {
            case .notMultipart: "the body is not multipart/form-data"
            case .malformed(let why): "malformed multipart body: \(why)"
            }
        }
    }

    /// The boundary of a `Content-Type: multipart/form-data; boundary=...` header.
    static func boundary(contentType: String?) -> String? {
        guard let contentType, contentType.lowercased().hasPrefix("multipart/form-data") else { return nil }
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0].lowercased() == "boundary" {
                return pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        return nil
    }

    static func parse(_ body: Data, contentType: String?) throws -> [Part] {
        guard let boundary = boundary(contentType: contentType) else { throw ParseError.notMultipart }
        let bytes = [UInt8](body)
        let delimiter = [UInt8]("--\(boundary)".utf8)
        var parts: [Part] = []
        guard var position = find(delimiter, in: bytes, from: 0) else { throw ParseError.malformed("no opening boundary") }
        position += delimiter.count
        while true {
            // After a boundary: "--" ends the body, CRLF starts a part.
            if position + 1 < bytes.count, bytes[position] == 0x2D, bytes[position + 1] == 0x2D { break }
            guard position + 1 < bytes.count, bytes[position] == 0x0D, bytes[position + 1] == 0x0A else {
                throw ParseError.malformed("no CRLF after a boundary")
            }
            position += 2
            guard let headerEnd = find([0x0D, 0x0A, 0x0D, 0x0A], in: bytes, from: position) else {
                throw ParseError.malformed("part headers never end")
            }
            let headers = String(decoding: bytes[position..<headerEnd], as: UTF8.self)
            let dataStart = headerEnd + 4
            guard let next = find([0x0D, 0x0A] + delimiter, in: bytes, from: dataStart) else {
                throw ParseError.malformed("no closing boundary")
            }
            var part = Part(name: "", data: Data(bytes[dataStart..<next]))
            for line in headers.components(separatedBy: "\r\n") {
                let pair = line.split(separator: ":", maxSplits: 1)
                guard pair.count == 2 else { continue }
                let value = pair[1].trimmingCharacters(in: .whitespaces)
                switch pair[0].lowercased() {
                case "content-disposition":
                    part.name = parameter("name", in: value) ?? ""
                    part.filename = parameter("filename", in: value)
                case "content-type":
                    part.contentType = value
                default:
                    break
                }
            }
            parts.append(part)
            position = next + 2 + delimiter.count
        }
        return parts
    }

    static func parameter(_ name: String, in header: String) -> String? {
        for item in header.split(separator: ";").dropFirst() {
            let pair = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0].lowercased() == name {
                var value = pair[1]
                if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
                return value
            }
        }
        return nil
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        var index = start
        let last = haystack.count - needle.count
        let first = needle[0]
        while index <= last {
            if haystack[index] == first {
                var match = true
                for offset in 1..<needle.count where haystack[index + offset] != needle[offset] {
                    match = false
                    break
                }
                if match { return index }
            }
            index += 1
        }
        return nil
    }
}
