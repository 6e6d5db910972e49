import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOCore
import _NIOFileSystem

/// Why a checkpoint download failed.
public enum CheckpointDownloadError: Error, CustomStringConvertible, Sendable {
    /// 403/404/410 on the signed URL: its signature expired (or the file is gone); refresh the URL.
    case urlRejected(status: Int)
    /// Any other HTTP status.
    case http(status: Int)
    /// The body ended early or the server sent an unusable range.
    case incomplete(String)
    /// Transport or file-system failure.
    case io(String)

    public var description: String {
        switch self {
        case .urlRejected(let status): "the download URL was refused with \(status) (expired signature?)"
        case .http(let status): "the download answered \(status)"
        case .incomplete(let message): message
        case .io(let message): message
        }
    }
}

/// What a finished download produced.
public struct DownloadedFile: Sendable, Hashable {
    public var path: String
    public var bytes: Int64
    /// Lower-case hex SHA-256 of the whole file.
    public var sha256: String
    /// Whether it continued an interrupted download (`Range` request answered 206).
    public var resumed: Bool
}

/// Streams a file to disk with AsyncHTTPClient: into `<final>.part`, resuming an interrupted `.part` with
/// `Range: bytes=<size>-` (a 206 appends after re-hashing the prefix; a 200 starts over), hashing as it
/// writes, then renaming to the final name.
///
/// File I/O goes through `_NIOFileSystem` (swift-nio's async file system, which runs system calls on its
/// own thread pool): nothing blocks an event loop or the cooperative pool.
public struct CheckpointDownloader: Sendable {
    let httpClient: HTTPClient
    let timeout: Duration

    public init(httpClient: HTTPClient, timeout: Duration = .seconds(3600)) {
        self.httpClient = httpClient
        self.timeout = timeout
    }

    public func download(from url: String, to finalPath: String, expectedBytes: Int64?, logger: Logger) async throws(CheckpointDownloadError) -> DownloadedFile {
        let fs = FileSystem.shared
        let part = FilePath(finalPath + ".part")
        do {
            try await fs.createDirectory(at: FilePath(finalPath).removingLastComponent(), withIntermediateDirectories: true, permissions: nil)
        } catch let error as FileSystemError where error.code == .fileAlreadyExists {
            // already there
        } catch {
            throw .io("could not create the archive directory: \(error)")
        }
        var existing: Int64 = 0
        do { existing = try await fs.info(forFileAt: part)?.size ?? 0 } catch { existing = 0 }
        if let expectedBytes, existing > expectedBytes { existing = 0 }

        var request = HTTPClientRequest(url: url)
        if existing > 0 { request.headers.add(name: "Range", value: "bytes=\(existing)-") }
        let response: HTTPClientResponse
        do {
            response = try await httpClient.execute(request, timeout: .seconds(Int64(timeout.seconds)))
        } catch {
            throw .io("download request failed: \(error)")
        }
        let status = Int(response.status.code)
        var offset: Int64 = 0
        var hasher = SHA256()
        var resumed = false
        switch status {
        case 206:
            let range = response.headers.first(name: "content-range") ?? ""
            guard range.hasPrefix("bytes \(existing)-") else {
                throw .incomplete("asked for bytes from \(existing), got Content-Range \(range)")
            }
            offset = existing
            resumed = true
            do { hasher = try await Self.hash(prefixOf: part, length: existing) } catch {
                throw .io("could not read the partial file: \(error)")
            }
            logger.info("resuming checkpoint download", metadata: ["from_byte": "\(existing)"])
        case 200:
            if existing > 0 { _ = try? await fs.removeItem(at: part, strategy: .platformDefault, recursively: false) }
        case 416 where existing > 0:
            _ = try? await fs.removeItem(at: part, strategy: .platformDefault, recursively: false)
            throw .incomplete("the server refused the resume range; starting over next attempt")
        case 403, 404, 410:
            throw .urlRejected(status: status)
        default:
            throw .http(status: status)
        }
        do {
            try await fs.withFileHandle(forWritingAt: part, options: .modifyFile(createIfNecessary: true)) { handle in
                if offset == 0 { try await handle.resize(to: .bytes(0)) }
                for try await chunk in response.body {
                    try await handle.write(contentsOf: chunk, toAbsoluteOffset: offset)
                    chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                    offset += Int64(chunk.readableBytes)
                }
            }
        } catch {
            throw .io("download interrupted at byte \(offset): \(error)")
        }
        if let expectedBytes, offset != expectedBytes {
            throw .incomplete("download ended at byte \(offset) of \(expectedBytes)")
        }
        do {
            if try await fs.info(forFileAt: FilePath(finalPath)) != nil {
                _ = try await fs.removeItem(at: FilePath(finalPath), strategy: .platformDefault, recursively: false)
            }
            try await fs.moveItem(at: part, to: FilePath(finalPath))
        } catch {
            throw .io("could not move the finished download into place: \(error)")
        }
        let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        return DownloadedFile(path: finalPath, bytes: offset, sha256: digest, resumed: resumed)
    }

    /// SHA-256 state after the first `length` bytes of `path`.
    static func hash(prefixOf path: FilePath, length: Int64) async throws -> SHA256 {
        var hasher = SHA256()
        try await FileSystem.shared.withFileHandle(forReadingAt: path) { handle in
            for try await chunk in handle.readChunks(in: 0..<length, chunkLength: .kibibytes(256)) {
                chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            }
        }
        return hasher
    }
}
