import _NIOFileSystem
import Crypto
import DreamdCore
import Foundation
import NIOCore

/// A file kept in the data directory: where, how big, and its SHA-256.
public struct StoredFile: Sendable, Hashable {
    public var path: String
    public var bytes: Int64
    public var sha256: String

    public var json: JSONValue { ["path": .string(path), "bytes": .number(Double(bytes)), "sha256": .string(sha256)] }
}

/// Where rollout videos go: `<data dir>/rollouts/<job id>.mp4`, a batch's in `<data dir>/rollouts/<job id>/`.
///
/// Files are streamed through NIO's async file system (`_NIOFileSystem`, which does its blocking
/// system calls on its own thread pool, never on an event loop), hashed as they are written, written
/// under a temporary name and renamed into place once complete, so a reader never sees half a video.
public struct RolloutStorage: Sendable {
    public let dataDirectory: String
    /// Largest file accepted, to bound disk use by one answer.
    public let maxFileBytes: Int64

    public init(dataDirectory: String, maxFileBytes: Int64 = 4 << 30) {
        self.dataDirectory = dataDirectory
        self.maxFileBytes = maxFileBytes
    }

    /// The path of a single rollout's video.
    public func videoPath(jobID: UUID) -> String {
        "\(dataDirectory)/rollouts/\(jobID.uuidString.lowercased()).mp4"
    }

    /// The folder of a batch's videos.
    public func batchDirectory(jobID: UUID) -> String {
        "\(dataDirectory)/rollouts/\(jobID.uuidString.lowercased())"
    }

    /// Opens a file for streaming; `finish()` makes it visible at `path`.
    func sink(at path: String) async throws(DreamEnginesError) -> FileSink {
        try await FileSink.open(path: path, maxBytes: maxFileBytes)
    }

    /// Streams `body` into `path`. Errors of the body are transport errors; of the disk, storage errors.
    func store<Body: AsyncSequence & Sendable>(_ body: Body, at path: String) async throws(DreamEnginesError) -> StoredFile
    where Body.Element == ByteBuffer {
        var file = try await sink(at: path)
        do throws(DreamEnginesError) {
            var iterator = body.makeAsyncIterator()
            while true {
                let chunk: ByteBuffer?
                do { chunk = try await iterator.next() } catch { throw DreamEnginesError.transport(String(describing: error)) }
                guard let chunk else { break }
                try await file.write(chunk)
            }
            return try await file.finish()
        } catch {
            await file.abandon()
            throw error
        }
    }
}

/// One file being written: a temporary name, a running SHA-256, a byte count.
struct FileSink {
    let finalPath: FilePath
    let tempPath: FilePath
    let handle: WriteFileHandle
    let maxBytes: Int64
    private(set) var offset: Int64 = 0
    private(set) var hasher = SHA256()

    static func open(path: String, maxBytes: Int64) async throws(DreamEnginesError) -> FileSink {
        let finalPath = FilePath(path)
        let tempPath = FilePath(path + ".part")
        do {
            try await FileSystem.shared.createDirectory(at: finalPath.removingLastComponent(), withIntermediateDirectories: true)
            let handle = try await FileSystem.shared.openFile(forWritingAt: tempPath, options: .newFile(replaceExisting: true))
            return FileSink(finalPath: finalPath, tempPath: tempPath, handle: handle, maxBytes: maxBytes)
        } catch {
            throw .storage("cannot write \(path): \(error)")
        }
    }

    mutating func write(_ chunk: ByteBuffer) async throws(DreamEnginesError) {
        guard offset + Int64(chunk.readableBytes) <= maxBytes else {
            throw .badResponse("the video is larger than \(maxBytes) bytes")
        }
        chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
        do {
            offset += try await handle.write(contentsOf: chunk, toAbsoluteOffset: offset)
        } catch {
            throw .storage("cannot write \(finalPath): \(error)")
        }
    }

    /// Closes the file and renames it into place.
    func finish() async throws(DreamEnginesError) -> StoredFile {
        do {
            try await handle.close(makeChangesVisible: true)
            try await FileSystem.shared.replaceItem(at: finalPath, withItemAt: tempPath)
        } catch {
            throw .storage("cannot finish \(finalPath): \(error)")
        }
        let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        return StoredFile(path: finalPath.string, bytes: offset, sha256: digest)
    }

    /// Drops a half-written file.
    func abandon() async {
        try? await handle.close(makeChangesVisible: false)
        _ = try? await FileSystem.shared.removeItem(at: tempPath)
    }
}
