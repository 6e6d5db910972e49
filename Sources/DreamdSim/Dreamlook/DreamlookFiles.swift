import DreamdCore
import Foundation
import Hummingbird

/// How the simulator serves checkpoint files (`GET /files/<ckp>.safetensors?expires=<unix>&signature=sim`).
public struct DreamlookFileSettings: Sendable, Hashable {
    /// The size of every checkpoint file, also reported as `size_bytes` in the job object.
    public var checkpointSize: Int = 256 * 1024
    /// How long a signed URL rendered into a job object stays valid; past it the URL answers 403.
    public var urlLifetime: Duration = .seconds(3600)
    /// Bytes per second a download is served at (`nil`: as fast as possible), so a test can stop one midway.
    public var throttleBytesPerSecond: Int?

    public init() {}
}

/// One request for a checkpoint file, as the simulator saw it.
public struct DreamlookFileRequest: Sendable, Hashable {
    public var name: String
    /// The `Range` header, if any.
    public var range: String?
    public var status: Int
}

/// Serves checkpoint files: deterministic bytes, `Range` (206 + `Content-Range`), throttling, and expiring
/// signed URLs (403 once `expires` has passed; the job object renders fresh URLs on every GET).
enum DreamlookFiles {
    /// The bytes of checkpoint `id` (deterministic, so tests can hash what they expect).
    static func bytes(checkpointID id: String, range: Range<Int>) -> [UInt8] {
        var seed: UInt64 = 1469598103934665603
        for byte in id.utf8 { seed = (seed ^ UInt64(byte)) &* 1099511628211 }
        return range.map { index in
            var x = seed &+ UInt64(index) &* 0x9E3779B97F4A7C15
            x = (x ^ (x >> 30)) &* 0xBF58476D1CE4E5B9
            x = (x ^ (x >> 27)) &* 0x94D049BB133111EB
            return UInt8(truncatingIfNeeded: x ^ (x >> 31))
        }
    }

    /// The signed URL of a checkpoint file, valid until `now + lifetime`.
    static func url(checkpointID id: String, baseURL: String, settings: DreamlookFileSettings, now: Date = Date()) -> String {
        let expires = Int(now.addingTimeInterval(settings.urlLifetime.seconds).timeIntervalSince1970.rounded(.up))
        return "\(baseURL)/files/\(id).safetensors?expires=\(expires)&signature=sim"
    }

    static func serve(_ request: Request, name: String, state: DreamlookSimState) async throws -> Response {
        let settings = await state.files
        let rangeHeader = request.headers[.range]
        func answer(_ status: HTTPResponse.Status, _ message: String) async throws -> Response {
            await state.recordFileRequest(DreamlookFileRequest(name: name, range: rangeHeader, status: Int(status.code)))
            return try DreamlookSimulator.json(["detail": .string(message)], status: status)
        }
        guard name.hasPrefix("ckp_"), name.hasSuffix(".safetensors") else { return try await answer(.notFound, "Not Found") }
        let id = String(name.dropLast(".safetensors".count))
        guard let expiresText = request.uri.queryParameters["expires"], let expires = Double(String(expiresText)) else {
            return try await answer(.forbidden, "missing signature")
        }
        guard expires >= Date().timeIntervalSince1970 else { return try await answer(.forbidden, "Request has expired") }
        let size = settings.checkpointSize
        var start = 0
        var end = size - 1
        var status = HTTPResponse.Status.ok
        if let rangeHeader {
            guard rangeHeader.hasPrefix("bytes="), let dash = rangeHeader.firstIndex(of: "-"),
                  let first = Int(rangeHeader[rangeHeader.index(rangeHeader.startIndex, offsetBy: 6)..<dash]) else {
                return try await answer(.rangeNotSatisfiable, "bad range")
            }
            let lastText = rangeHeader[rangeHeader.index(after: dash)...]
            let last = lastText.isEmpty ? size - 1 : min(Int(lastText) ?? size - 1, size - 1)
            guard first < size, first <= last else { return try await answer(.rangeNotSatisfiable, "range not satisfiable") }
            start = first
            end = last
            status = .partialContent
        }
        await state.recordFileRequest(DreamlookFileRequest(name: name, range: rangeHeader, status: Int(status.code)))
        var headers: HTTPFields = [.contentType: "application/octet-stream", .acceptRanges: "bytes"]
        if status == .partialContent { headers[.contentRange] = "bytes \(start)-\(end)/\(size)" }
        let length = end - start + 1
        let throttle = settings.throttleBytesPerSecond
        let (first, last) = (start, end)
        let body = ResponseBody(contentLength: length) { writer in
            let chunk = throttle.map { max(1024, $0 / 20) } ?? 64 * 1024
            var offset = first
            while offset <= last {
                let upper = min(offset + chunk, last + 1)
                try await writer.write(ByteBuffer(bytes: bytes(checkpointID: id, range: offset..<upper)))
                if let throttle { try await Task.sleep(for: .milliseconds(Int64(1000 * (upper - offset) / max(throttle, 1)))) }
                offset = upper
            }
            try await writer.finish(nil)
        }
        return Response(status: status, headers: headers, body: body)
    }
}
