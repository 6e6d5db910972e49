import Crypto
import DreamdCore
import DreamdServices
import DreamdSim
import DreamdStore
import Foundation
import Testing

func sha256Hex(_ bytes: some Sequence<UInt8>) -> String {
    SHA256.hash(data: Array(bytes)).map { String(format: "%02x", $0) }.joined()
}

@Suite("checkpoint retention: archiving", .hangGuard)
struct CheckpointRetentionArchiveTests {
    @Test("archive_checkpoints downloads the checkpoint into DREAMD_DATA_DIR/checkpoints with its hash, and checkpoint.archived goes out")
    func archiveWithHash() async throws {
        let dataDir = temporaryDataDirectory()
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim, overrides: ["DREAMD_DATA_DIR": dataDir]) { daemon in
                    let plain = try await daemon.trainCheckpoint()
                    let checkpoint = try await daemon.trainCheckpoint(archive: true)
                    #expect(plain["archive_requested"] == false && plain["archive_state"] == .null)
                    #expect(checkpoint["archive_requested"] == true)
                    let id = try #require(checkpoint["id"]?.stringValue)
                    #expect(try await eventually { try await daemon.checkpoint(id)["archive_state"]?.stringValue == "archived" })
                    let archived = try await daemon.checkpoint(id)
                    let upstream = try #require(checkpoint["upstream_checkpoint_id"]?.stringValue)
                    let path = try #require(archived["archived_path"]?.stringValue)
                    #expect(path == "\(dataDir)/checkpoints/\(upstream).safetensors")
                    let onDisk = try Data(contentsOf: URL(fileURLWithPath: path))
                    let expected = await sim.dreamlook.checkpointBytes(upstream)
                    #expect(onDisk.count == expected.count && archived["archived_bytes"]?.intValue == expected.count)
                    #expect(sha256Hex(onDisk) == sha256Hex(expected))
                    #expect(archived["archived_sha256"]?.stringValue == sha256Hex(expected))
                    #expect(!FileManager.default.fileExists(atPath: path + ".part"))
                    let payloads = try await db.values("SELECT payload::text FROM events WHERE type = 'checkpoint.archived'", as: String.self)
                    #expect(payloads.count == 1)
                    let payload = try DreamdJSON.decode(JSONValue.self, from: try #require(payloads.first))
                    #expect(payload["data"]?["archived_sha256"] == archived["archived_sha256"])
                    #expect(payload["data"]?["archived_path"]?.stringValue == path)
                    // Only the requested checkpoint was downloaded.
                    #expect(await sim.dreamlook.fileRequests.count == 1)
                }
            }
        }
    }

    @Test("an archive interrupted mid-download resumes from its .part with a Range request and the hash matches")
    func resumeAfterCrash() async throws {
        let dataDir = temporaryDataDirectory()
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                var files = DreamlookFileSettings()
                files.throttleBytesPerSecond = 64 * 1024
                await sim.dreamlook.setFiles(files)
                let overrides = ["DREAMD_DATA_DIR": dataDir, "DREAMD_ARCHIVE_CONCURRENCY": "0"]
                try await withDaemon(database: db, simulator: sim, overrides: overrides) { daemon in
                    let checkpoint = try await daemon.trainCheckpoint(archive: true)
                    let id = try #require(checkpoint["id"]?.stringValue)
                    let upstream = try #require(checkpoint["upstream_checkpoint_id"]?.stringValue)
                    let path = "\(dataDir)/checkpoints/\(upstream).safetensors"
                    @Sendable func partSize() -> Int { (try? Data(contentsOf: URL(fileURLWithPath: path + ".part")))?.count ?? 0 }

                    // First archiver: stopped while about a third of the file is down; the stop gives its lease back.
                    try await withServiceGroup([daemon.daemon.archiver(owner: "first", leaseDuration: .seconds(1))]) { () async throws in
                        #expect(try await eventually(timeout: .seconds(20)) { partSize() >= 64 * 1024 })
                    }
                    let interruptedAt = partSize()
                    #expect(interruptedAt > 0 && interruptedAt < 256 * 1024)
                    #expect(!FileManager.default.fileExists(atPath: path))
                    #expect(try await daemon.checkpoint(id)["archive_state"]?.stringValue == "pending")

                    // Second archiver: continues from the .part.
                    await sim.dreamlook.setFiles(DreamlookFileSettings())
                    try await withServiceGroup([daemon.daemon.archiver(owner: "second", leaseDuration: .seconds(1))]) { () async throws in
                        #expect(try await eventually(timeout: .seconds(20)) { try await daemon.checkpoint(id)["archive_state"]?.stringValue == "archived" })
                    }
                    let requests = await sim.dreamlook.fileRequests
                    let resumed = try #require(requests.last)
                    #expect(resumed.status == 206)
                    #expect(resumed.range?.hasPrefix("bytes=") == true)
                    #expect(Int(resumed.range?.dropFirst("bytes=".count).split(separator: "-").first ?? "") ?? -1 >= interruptedAt)
                    let expected = await sim.dreamlook.checkpointBytes(upstream)
                    let onDisk = try Data(contentsOf: URL(fileURLWithPath: path))
                    #expect(sha256Hex(onDisk) == sha256Hex(expected))
                    #expect(try await daemon.checkpoint(id)["archived_sha256"]?.stringValue == sha256Hex(expected))
                    #expect(!FileManager.default.fileExists(atPath: path + ".part"))
                }
            }
        }
    }

    @Test("an expired signed URL is refreshed by reading the job from dreamlook again")
    func refreshesExpiredURL() async throws {
        let dataDir = temporaryDataDirectory()
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                var files = DreamlookFileSettings()
                files.urlLifetime = .seconds(1)
                await sim.dreamlook.setFiles(files)
                let overrides = ["DREAMD_DATA_DIR": dataDir, "DREAMD_ARCHIVE_CONCURRENCY": "0"]
                try await withDaemon(database: db, simulator: sim, overrides: overrides) { daemon in
                    let checkpoint = try await daemon.trainCheckpoint(archive: true)
                    let id = try #require(checkpoint["id"]?.stringValue)
                    try await Task.sleep(for: .seconds(2.5))
                    try await withServiceGroup([daemon.daemon.archiver(owner: "refresher", leaseDuration: .seconds(5))]) { () async throws in
                        #expect(try await eventually { try await daemon.checkpoint(id)["archive_state"]?.stringValue == "archived" })
                    }
                    let statuses = await sim.dreamlook.fileRequests.map(\.status)
                    #expect(statuses == [403, 200])
                    #expect(try await daemon.checkpoint(id)["url"]?.stringValue != checkpoint["url"]?.stringValue)
                }
            }
        }
    }

    @Test("an archive that cannot succeed before expiry ends failed with an error that says so")
    func expiresBeforeArchive() async throws {
        let dataDir = temporaryDataDirectory()
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                let overrides = fastRetention.merging(["DREAMD_DATA_DIR": dataDir, "DREAMD_ARCHIVE_CONCURRENCY": "0"]) { $1 }
                try await withDaemon(database: db, simulator: sim, overrides: overrides) { daemon in
                    let checkpoint = try await daemon.trainCheckpoint(archive: true)
                    let id = try #require(checkpoint["id"]?.stringValue)
                    #expect(try await eventually(timeout: .seconds(15)) { try await daemon.checkpoint(id)["state"]?.stringValue == "expired" })
                    let failed = try await daemon.checkpoint(id)
                    #expect(failed["archive_state"]?.stringValue == "failed")
                    #expect(failed["archive_error"]?.stringValue?.contains("expired") == true)
                    #expect(failed["archive_error"]?.stringValue?.contains("before it could be archived") == true)
                }
            }
        }
    }
}
