import DreamdCore
import DreamdSim
import Foundation
import Testing

/// Runs `body` with a database, the simulator, a data directory and a daemon pointed at them.
func withPredictDaemon<T: Sendable>(
    _ extra: [String: String] = [:], rolloutTime: Duration = .milliseconds(50),
    _ body: @Sendable (RunningDaemon, Simulator, TestDatabase, String) async throws -> T
) async throws -> T {
    try await TestDatabase.with { db in
        try await withSimulator { sim in
            await sim.dreamEngines.setTiming(coldStart: .zero, rolloutTime: rolloutTime)
            return try await withDataDirectory { data in
                try await withDaemon(database: db, simulator: sim, overrides: predictOverrides(sim, dataDirectory: data, extra)) { daemon in
                    // Load the catalog first, so faults a test injects reach the rollout calls.
                    _ = try await daemon.request(.GET, "/v1/models")
                    return try await body(daemon, sim, db, data)
                }
            }
        }
    }
}

extension DreamEnginesTests {
    @Suite("Predict rollouts")
    struct PredictRolloutTests {
        @Test("a predict job runs to success: video on disk with a matching SHA-256, result and cost recorded")
        func rolloutToSuccess() async throws {
            try await withPredictDaemon { daemon, sim, db, data in
                let created = try await daemon.submit(PredictFixtures.predictBody(extra: ["seed": 3, "score": true]))
                #expect(created.status == 201)
                let id = try #require(created.json["id"]?.stringValue)
                let job = try await daemon.waitFinal(id)
                #expect(job["state"]?.stringValue == "succeeded", "\(job)")
                let result = try #require(job["result"])
                #expect(result["rollout_id"]?.stringValue?.hasPrefix("rollout_") == true)
                #expect(result["frames"]?.intValue == 49)
                #expect(result["resolution"] == [480, 640])
                #expect(result["seed"]?.intValue == 3)
                #expect(result["psnr_db"]?.doubleValue != nil)
                #expect(result["endpoint"]?.stringValue == "/v1/rollouts")
                let path = try #require(result["path"]?.stringValue)
                #expect(path == "\(data)/rollouts/\(id).mp4")
                let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
                #expect(bytes.count == result["bytes"]?.intValue)
                #expect(SHA256Digest.hex(bytes) == result["sha256"]?.stringValue)
                #expect(bytes[4..<8] == Data("ftyp".utf8))
                #expect(!FileManager.default.fileExists(atPath: path + ".part"))
                #expect(abs((job["cost_usd"]?.doubleValue ?? 0) - 49 * 0.0005) < 1e-9)
                #expect(job["upstream"]?["provider"]?.stringValue == "dream")
                #expect(await sim.dreamEngines.charges == 1)
                #expect(await sim.dreamEngines.idempotencyKeys == [id])
                let events = try await daemon.request(.GET, "/v1/jobs/\(id)/events").json["data"]?.arrayValue ?? []
                #expect(events.map { $0["to_state"]?.stringValue ?? "" } == ["queued", "submitting", "succeeded"])
                let outbox = try await db.values("SELECT type FROM events WHERE payload->'data'->>'id' = \(id)", as: String.self)
                #expect(outbox == ["job.succeeded"])
            }
        }

        @Test("actions given as values, and a start frame given by URL, are sent as .npy and PNG")
        func valuesAndURL() async throws {
            try await withPredictDaemon { daemon, sim, _, _ in
                let rows = (0..<12).map { t in JSONValue.array((0..<384).map { d in .number(Double(t * d % 7) / 10) }) }
                let body = PredictFixtures.predictBody(frame: ["url": .string("\(sim.baseURL)/fixtures/frame.png")], actions: ["values": .array(rows)])
                let id = try #require(try await daemon.submit(body).json["id"]?.stringValue)
                let job = try await daemon.waitFinal(id)
                #expect(job["state"]?.stringValue == "succeeded", "\(job)")
                #expect(job["result"]?["frames"]?.intValue == 13)
            }
        }

        @Test("a 503 after the upstream charged is retried with the same Idempotency-Key: paid once")
        func idempotentRetry() async throws {
            try await withPredictDaemon { daemon, sim, _, _ in
                await sim.dreamEngines.failAfterCharge(count: 1)
                let id = try #require(try await daemon.submit(PredictFixtures.predictBody()).json["id"]?.stringValue)
                let job = try await daemon.waitFinal(id)
                #expect(job["state"]?.stringValue == "succeeded", "\(job)")
                #expect(await sim.dreamEngines.charges == 1)
                #expect(await sim.dreamEngines.replays == 1)
                let keys = await sim.dreamEngines.idempotencyKeys
                #expect(keys.count == 2 && keys.allSatisfy { $0 == id })
            }
        }

        @Test("attempts across the queue carry the same Idempotency-Key: the job id")
        func idempotencyAcrossQueueAttempts() async throws {
            try await withPredictDaemon { daemon, sim, _, _ in
                // Two 503s, then a rollout that is charged and answered 503: the client's three tries are
                // spent, so the queue retries the job, whose next try replays the paid rollout.
                await sim.dreamEngines.forceNext(statuses: [503, 503])
                await sim.dreamEngines.failAfterCharge(count: 1)
                let id = try #require(try await daemon.submit(PredictFixtures.predictBody()).json["id"]?.stringValue)
                let job = try await daemon.waitFinal(id)
                #expect(job["state"]?.stringValue == "succeeded", "\(job)")
                #expect((job["attempt"]?.intValue ?? 0) >= 2)
                #expect(await sim.dreamEngines.charges == 1)
                let keys = await sim.dreamEngines.idempotencyKeys
                #expect(keys.count == 4 && keys.allSatisfy { $0 == id })
                #expect(await sim.dreamEngines.replays == 1)
            }
        }

        @Test("a legacy /v1/predict charged but answered 503 is not sent again (no replay there): upstream_outcome_unknown, paid once")
        func legacyLostAnswerNotResent() async throws {
            try await withPredictDaemon { daemon, sim, _, _ in
                await sim.dreamEngines.setLegacyOnly(true)
                await sim.dreamEngines.failAfterCharge(count: 1)
                let id = try #require(try await daemon.submit(PredictFixtures.predictBody()).json["id"]?.stringValue)
                let job = try await daemon.waitFinal(id)
                #expect(job["state"]?.stringValue == "failed")
                #expect(job["error"]?["code"]?.stringValue == "upstream_outcome_unknown")
                #expect(await sim.dreamEngines.charges == 1)
                #expect(await sim.dreamEngines.replays == 0)
            }
        }

        @Test("404 on /v1/rollouts falls back to the legacy /v1/predict")
        func legacyFallback() async throws {
            try await withPredictDaemon { daemon, sim, _, _ in
                await sim.dreamEngines.setLegacyOnly(true)
                let id = try #require(try await daemon.submit(PredictFixtures.predictBody()).json["id"]?.stringValue)
                let job = try await daemon.waitFinal(id)
                #expect(job["state"]?.stringValue == "succeeded", "\(job)")
                let result = try #require(job["result"])
                #expect(result["endpoint"]?.stringValue == "/v1/predict")
                #expect(result["frames"]?.intValue == 49)
                let path = try #require(result["path"]?.stringValue)
                #expect(try sha256Hex(ofFile: path) == result["sha256"]?.stringValue)
                #expect(abs((job["cost_usd"]?.doubleValue ?? 0) - 0.0245) < 1e-9)
                #expect(await sim.dreamEngines.requests("rollouts") == 1)
                #expect(await sim.dreamEngines.requests("predict") == 1)
            }
        }

        @Test("predict_batch: one frame, K action sequences, K videos kept")
        func batchOfVideos() async throws {
            try await withPredictDaemon { daemon, sim, _, data in
                let created = try await daemon.submit(PredictFixtures.batchBody(k: 3, rows: 24))
                #expect(created.status == 201, "\(created.json)")
                let id = try #require(created.json["id"]?.stringValue)
                let job = try await daemon.waitFinal(id)
                #expect(job["state"]?.stringValue == "succeeded", "\(job)")
                let videos = try #require(job["result"]?["videos"]?.arrayValue)
                #expect(videos.count == 3)
                for (index, video) in videos.enumerated() {
                    let path = try #require(video["path"]?.stringValue)
                    #expect(path == "\(data)/rollouts/\(id)/rollout_\(String(format: "%03d", index)).mp4")
                    #expect(try sha256Hex(ofFile: path) == video["sha256"]?.stringValue)
                    #expect(video["frames"]?.intValue == 25)
                }
                #expect(job["result"]?["batch_size"]?.intValue == 3)
                #expect(abs((job["cost_usd"]?.doubleValue ?? 0) - 3 * 25 * 0.0005) < 1e-9)
                #expect(await sim.dreamEngines.charges == 1)
            }
        }

        @Test("a cold start is waited out within the rollout call")
        func coldStart() async throws {
            try await withPredictDaemon(["DREAMD_DREAM_TIMEOUT": "10s"]) { daemon, sim, _, _ in
                await sim.dreamEngines.setTiming(coldStart: .seconds(2), rolloutTime: .milliseconds(50))
                let id = try #require(try await daemon.submit(PredictFixtures.predictBody()).json["id"]?.stringValue)
                let job = try await daemon.waitFinal(id)
                #expect(job["state"]?.stringValue == "succeeded", "\(job)")
                #expect(job["attempt"]?.intValue == 1)
                #expect((job["result"]?["engine_wall_ms"]?.doubleValue ?? 0) >= 1900)
            }
        }
    }
}
