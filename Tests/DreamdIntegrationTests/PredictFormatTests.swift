import DreamdCore
import DreamdSim
import DreamdUpstreams
import Foundation
import NIOCore
import Testing

@Suite("Predict wire formats", .hangGuard)
struct PredictFormatTests {
    @Test(".npy v1: written and read back, header aligned to 64 bytes")
    func npyRoundTrip() throws {
        let matrix = NPYFloat32Matrix(values: [[1, 2, 3], [4.5, -6, 0.25]])
        let bytes = matrix.npyBytes
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        #expect((10 + headerLength) % 64 == 0)
        let read = try NPYFloat32Matrix(npy: bytes)
        #expect(read.rows == 2 && read.columns == 3)
        #expect(read[1, 0] == 4.5 && read[1, 1] == -6 && read[0, 2] == 3)
    }

    @Test(".npy: wrong dtype, Fortran order, rank and truncation are named")
    func npyErrors() throws {
        let f8 = Data(base64Encoded: PredictFixtures.float64NPYBase64(rows: 2, columns: 2))!
        #expect(throws: NPYFloat32Matrix.ParseError.wrongDType("<f8")) { try NPYFloat32Matrix(npy: f8) }
        var fortran = NPYFloat32Matrix(values: [[1, 2]]).npyBytes
        let text = String(decoding: fortran, as: UTF8.self).replacingOccurrences(of: "False", with: "True ")
        fortran = Data(text.utf8.prefix(fortran.count))
        #expect(throws: NPYFloat32Matrix.ParseError.self) { try NPYFloat32Matrix(npy: fortran) }
        #expect(throws: NPYFloat32Matrix.ParseError.notNPY) { try NPYFloat32Matrix(npy: Data("hello world".utf8)) }
        let short = NPYFloat32Matrix(values: [[1, 2], [3, 4]]).npyBytes.dropLast(4)
        #expect(throws: NPYFloat32Matrix.ParseError.truncated(expected: 16, got: 12)) { try NPYFloat32Matrix(npy: Data(short)) }
    }

    @Test("image headers: PNG IHDR and JPEG SOF0 dimensions")
    func imageHeaders() throws {
        let png = try ImageInfo(SimulatedFrame.png(width: 64, height: 48))
        #expect(png.format == .png && png.width == 64 && png.height == 48 && png.isRGB8)
        // A minimal JPEG: SOI, APP0 (JFIF), SOF0 480×640 with 3 components.
        var jpeg = Data([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10])
        jpeg.append(Data("JFIF\u{0}".utf8) + Data([1, 1, 0, 0, 1, 0, 1, 0, 0]))
        jpeg.append(Data([0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01, 0xE0, 0x02, 0x80, 0x03, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]))
        jpeg.append(Data([0xFF, 0xD9]))
        let info = try ImageInfo(jpeg)
        #expect(info.format == .jpeg && info.width == 640 && info.height == 480 && info.channels == 3 && info.isRGB8)
        #expect(throws: ImageInfo.ParseError.unknownFormat) { try ImageInfo(Data("GIF89a".utf8)) }
    }

    @Test("tar: the archive the simulator writes is read back member by member, in any chunking")
    func tarRoundTrip() throws {
        let files = [(name: "rollout_000.mp4", data: Data(repeating: 7, count: 1000)), (name: "rollout_001.mp4", data: Data(repeating: 9, count: 512))]
        let archive = Ustar.archive(files)
        for chunkSize in [1, 100, 512, 4096] {
            var reader = Ustar.Reader()
            var seen: [String: Data] = [:]
            var current: String?
            var offset = 0
            var events: [Ustar.Event] = []
            while offset < archive.count {
                let end = min(offset + chunkSize, archive.count)
                events += try reader.feed(ByteBuffer(bytes: archive[offset..<end]))
                offset = end
            }
            events += try reader.finish()
            for event in events {
                switch event {
                case .begin(let name, _): current = name; seen[name] = Data()
                case .data(let buffer): seen[current!]!.append(contentsOf: buffer.readableBytesView)
                case .end: current = nil
                }
            }
            #expect(seen["rollout_000.mp4"] == files[0].data)
            #expect(seen["rollout_001.mp4"] == files[1].data)
        }
    }

    @Test("multipart: files and fields encoded with CRLF boundaries")
    func multipart() {
        var form = MultipartFormData(boundary: "XyZ")
        form.addField(name: "params", value: #"{"model":"m"}"#)
        form.addFile(name: "actions", filename: "actions.npy", contentType: "application/octet-stream", data: Data([1, 2]))
        let text = String(decoding: form.body.readableBytesView, as: UTF8.self)
        #expect(text.hasPrefix("--XyZ\r\nContent-Disposition: form-data; name=\"params\"\r\n\r\n{\"model\":\"m\"}\r\n--XyZ\r\n"))
        #expect(text.contains("name=\"actions\"; filename=\"actions.npy\"\r\nContent-Type: application/octet-stream\r\n\r\n"))
        #expect(text.hasSuffix("\r\n--XyZ--\r\n"))
        #expect(form.contentType == "multipart/form-data; boundary=XyZ")
    }

    @Test("the SDK's RetryPolicy: exponential, capped, Retry-After wins up to the cap")
    func retryPolicy() {
        let policy = RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(250), maxDelay: .seconds(4), jitter: false)
        #expect(policy.delay(forAttempt: 1, retryAfter: nil) == .milliseconds(250))
        #expect(policy.delay(forAttempt: 3, retryAfter: nil) == .seconds(1))
        #expect(policy.delay(forAttempt: 10, retryAfter: nil) == .seconds(4))
        #expect(policy.delay(forAttempt: 1, retryAfter: .seconds(2)) == .seconds(2))
        #expect(policy.delay(forAttempt: 1, retryAfter: .seconds(30)) == .seconds(4))
        let jittered = RetryPolicy().delay(forAttempt: 2, retryAfter: nil)
        #expect(jittered >= .milliseconds(250) && jittered <= .milliseconds(750))
    }

    @Test("error classification follows the SDK")
    func classification() {
        func error(_ code: Int) -> DreamEnginesError { .status(code: code, detail: "x", retryAfter: nil) }
        for code in [429, 502, 503, 504] { #expect(error(code).isRetryable, "\(code)") }
        for code in [500, 400, 401, 402, 403, 404, 415, 422] { #expect(!error(code).isRetryable, "\(code)") }
        #expect(error(401).isAuthFailure && error(403).isAuthFailure && !error(402).isAuthFailure)
        #expect(error(402).isInsufficientCredits)
        #expect(DreamEnginesError.transport("reset").isRetryable)
        #expect(error(500).jobError.code == "upstream_server_error")
        #expect(error(503).jobError.code == "upstream_unavailable")
    }
}
