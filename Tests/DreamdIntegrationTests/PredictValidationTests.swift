import DreamdCore
import DreamdSim
import Foundation
import Testing

extension DreamEnginesTests {
    @Suite("Predict validation, estimates and the catalog")
    struct PredictValidationTests {
        @Test("invalid predict jobs are refused with 422 naming the problem, and never stored",
              arguments: [
                InvalidPredict("unknown model", body: PredictFixtures.predictBody(model: "no-such-model"),
                               field: "params.model", message: "unknown model"),
                InvalidPredict("inactive model", body: PredictFixtures.predictBody(model: PredictFixtures.inactiveModel),
                               field: "params.model", message: "not active"),
                InvalidPredict("T not a multiple of chunk_size", body: PredictFixtures.predictBody(actions: ["base64": .string(PredictFixtures.actionsBase64(rows: 50))]),
                               field: "params.actions", message: "chunk_size 12"),
                InvalidPredict("wrong action_dim", body: PredictFixtures.predictBody(actions: ["base64": .string(PredictFixtures.actionsBase64(rows: 12, columns: 10))]),
                               field: "params.actions", message: "action_dim 10"),
                InvalidPredict("wrong dtype", body: PredictFixtures.predictBody(actions: ["base64": .string(PredictFixtures.float64NPYBase64())]),
                               field: "params.actions.base64", message: "float32"),
                InvalidPredict("wrong frame size", body: PredictFixtures.predictBody(frame: ["base64": .string(PredictFixtures.frame(width: 320, height: 240))]),
                               field: "params.start_frame.base64", message: "320×240"),
                InvalidPredict("not an image", body: PredictFixtures.predictBody(frame: ["base64": "aGVsbG8gd29ybGQ="]),
                               field: "params.start_frame.base64", message: "neither a PNG nor a JPEG"),
                InvalidPredict("both frame forms", body: PredictFixtures.predictBody(frame: ["base64": "eA==", "url": "http://x/y.png"]),
                               field: "params.start_frame", message: "exactly one"),
                InvalidPredict("ragged values", body: PredictFixtures.predictBody(actions: ["values": [[1, 2], [3]]]),
                               field: "params.actions.values[1]", message: "row 0 has 2"),
                InvalidPredict("unknown field", body: PredictFixtures.predictBody(extra: ["temperature": 1]),
                               field: "params.temperature", message: "not a known field"),
                InvalidPredict("num_steps out of range", body: PredictFixtures.predictBody(extra: ["num_steps": 0]),
                               field: "params.num_steps", message: "between"),
              ])
        func invalid(_ submission: InvalidPredict) async throws {
            try await withPredictDaemon { daemon, _, db, _ in
                let answer = try await daemon.submit(submission.body)
                #expect(answer.status == 422, "\(submission.name): \(answer.json)")
                #expect(answer.json["error"]?["details"]?["field"]?.stringValue == submission.field, "\(submission.name): \(answer.json)")
                #expect(answer.json["error"]?["message"]?.stringValue?.contains(submission.message) == true, "\(submission.name): \(answer.json)")
                #expect(try await db.values("SELECT count(*)::int FROM jobs", as: Int.self) == [0])
            }
        }

        @Test("a start_frame.url of the wrong size is refused at submit time")
        func urlFrameChecked() async throws {
            try await withPredictDaemon { daemon, sim, _, _ in
                let body = PredictFixtures.predictBody(frame: ["url": .string("\(sim.baseURL)/fixtures/frame.png?width=100&height=100")])
                let answer = try await daemon.submit(body)
                #expect(answer.status == 422)
                #expect(answer.json["error"]?["details"]?["field"]?.stringValue == "params.start_frame.url")
                #expect(answer.json["error"]?["message"]?.stringValue?.contains("100×100") == true)
            }
        }

        @Test("start_frame.url goes through the address guard: loopback refused unless allowed, redirects vetted hop by hop")
        func urlFrameGuarded() async throws {
            try await withPredictDaemon(["DREAMD_INPUT_ALLOW_PRIVATE": "false"]) { daemon, sim, db, _ in
                let body = PredictFixtures.predictBody(frame: ["url": .string("\(sim.baseURL)/fixtures/frame.png")])
                let answer = try await daemon.submit(body)
                #expect(answer.status == 422)
                #expect(answer.json["error"]?["details"]?["field"]?.stringValue == "params.start_frame.url")
                #expect(answer.json["error"]?["message"]?.stringValue?.contains("loopback") == true)
                #expect(try await db.values("SELECT count(*)::int FROM jobs", as: Int.self) == [0])
            }
            try await withPredictDaemon { daemon, sim, _, _ in
                let frame = "\(sim.baseURL)/fixtures/frame.png"
                let viaRedirect = "\(sim.baseURL)/fixtures/redirect?to=" + frame.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
                let accepted = try await daemon.submit(PredictFixtures.predictBody(frame: ["url": .string(viaRedirect)]))
                #expect(accepted.status == 201, "\(accepted.json)")
                let metadata = "http://169.254.169.254/latest/meta-data/"
                let toMetadata = "\(sim.baseURL)/fixtures/redirect?to=" + metadata.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
                let refused = try await daemon.submit(PredictFixtures.predictBody(frame: ["url": .string(toMetadata)]))
                #expect(refused.status == 422)
                #expect(refused.json["error"]?["message"]?.stringValue?.contains("cloud metadata") == true, "\(refused.json)")
                let direct = try await daemon.submit(PredictFixtures.predictBody(frame: ["url": .string(metadata)]))
                #expect(direct.status == 422)
            }
        }

        @Test("estimate: frames (T + 1) × price per frame, for one job and for N rows")
        func estimates() async throws {
            try await withPredictDaemon { daemon, _, _, _ in
                let one = try await daemon.request(.POST, "/v1/estimate", body: PredictFixtures.predictBody())
                #expect(one.status == 200, "\(one.json)")
                #expect(one.json["rows"]?.intValue == 1)
                #expect(one.json["frames_per_row"]?.intValue == 49)
                #expect(one.json["total_frames"]?.intValue == 49)
                #expect(one.json["price_per_frame_usd"]?.doubleValue == 0.0005)
                #expect(one.json["total_usd"]?.doubleValue == 0.0245)
                #expect(one.json["model"]?.stringValue == PredictFixtures.model)
                let params = try DreamdJSON.string(PredictFixtures.params())
                let many = try await daemon.request(.POST, "/v1/estimate", body: #"{"rows": 1000, "kind": "predict", "params": \#(params)}"#)
                #expect(many.status == 200, "\(many.json)")
                #expect(many.json["rows"]?.intValue == 1000)
                #expect(many.json["total_frames"]?.intValue == 49_000)
                #expect(many.json["total_usd"]?.doubleValue == 24.5)
                let batch = try await daemon.request(.POST, "/v1/estimate", body: PredictFixtures.batchBody(k: 4, rows: 12))
                #expect(batch.json["frames_per_row"]?.intValue == 52)
                #expect(batch.json["total_usd"]?.doubleValue == 0.026)
                let invalid = try await daemon.request(.POST, "/v1/estimate", body: PredictFixtures.predictBody(model: "nope"))
                #expect(invalid.status == 422)
                let badRows = try await daemon.request(.POST, "/v1/estimate", body: #"{"rows": 0, "kind": "predict", "params": \#(params)}"#)
                #expect(badRows.status == 422)
                #expect(badRows.json["error"]?["details"]?["field"]?.stringValue == "rows")
                let noEstimate = try await daemon.request(.POST, "/v1/estimate", body: imageGenBody())
                #expect(noEstimate.status == 422)
                #expect(noEstimate.json["error"]?["code"]?.stringValue == "estimate_unavailable")
            }
        }

        @Test("models: the catalog from the upstream, one model by slug, 404 for an unknown slug")
        func models() async throws {
            try await withPredictDaemon { daemon, _, _, _ in
                let list = try await daemon.request(.GET, "/v1/models")
                #expect(list.status == 200)
                let models = try #require(list.json["data"]?.arrayValue)
                #expect(models.filter { $0["active"] == true }.map { $0["slug"]?.stringValue } == [PredictFixtures.model])
                let one = try await daemon.request(.GET, "/v1/models/\(PredictFixtures.model)")
                #expect(one.status == 200)
                #expect(one.json["spec"]?["chunk_size"]?.intValue == 12)
                #expect(one.json["price_per_frame_usd"]?.doubleValue == 0.0005)
                #expect(try await daemon.request(.GET, "/v1/models/nope").status == 404)
                #expect(try await daemon.request(.GET, "/v1/models", token: "wrong").status == 401)
            }
        }

        @Test("the catalog is cached for DREAMD_MODELS_TTL, then fetched again")
        func modelsTTL() async throws {
            try await withPredictDaemon(["DREAMD_MODELS_TTL": "3s"]) { daemon, sim, _, _ in
                let before = await sim.dreamEngines.requests("models")
                let started = ContinuousClock.now
                for _ in 0..<3 { #expect(try await daemon.request(.GET, "/v1/models").status == 200) }
                let fast = ContinuousClock.now - started < .seconds(3)
                if fast { #expect(await sim.dreamEngines.requests("models") == before) }
                try await Task.sleep(for: .milliseconds(3200))
                let refreshed = ContinuousClock.now
                #expect(try await daemon.request(.GET, "/v1/models").status == 200)
                #expect(try await daemon.request(.GET, "/v1/models/\(PredictFixtures.model)").status == 200)
                let fetched = await sim.dreamEngines.requests("models") - before
                if fast, ContinuousClock.now - refreshed < .seconds(3) { #expect(fetched == 1) } else { #expect(fetched >= 1) }
            }
        }

        @Test("with the catalog unreachable and never fetched, predict submissions get 503, other kinds still work")
        func catalogUnavailable() async throws {
            try await TestDatabase.with { db in
                try await withSimulator { sim in
                    try await withDataDirectory { data in
                        var overrides = predictOverrides(sim, dataDirectory: data)
                        overrides["DREAM_BASE_URL"] = "http://127.0.0.1:9"
                        overrides["DREAMD_DREAM_TIMEOUT"] = "2s"
                        try await withDaemon(database: db, simulator: sim, overrides: overrides) { daemon in
                            let answer = try await daemon.submit(PredictFixtures.predictBody())
                            #expect(answer.status == 503)
                            #expect(answer.json["error"]?["code"]?.stringValue == "catalog_unavailable")
                            #expect(try await daemon.submit(imageGenBody()).status == 201)
                        }
                    }
                }
            }
        }
    }
}

/// One invalid predict submission. Tests name it by `name` alone: its body carries megabytes of base64,
/// which would otherwise be printed with every test event.
struct InvalidPredict: Sendable, CustomTestStringConvertible {
    let name: String
    let body: String
    let field: String
    let message: String

    init(_ name: String, body: String, field: String, message: String) {
        self.name = name
        self.body = body
        self.field = field
        self.message = message
    }

    var testDescription: String { name }
}
