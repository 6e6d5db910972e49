import DreamdCore
import DreamdSim
import Foundation
import Testing

extension DreamEnginesTests {
    @Suite("Bulk submission and batches")
    struct PredictBulkTests {
        @Test("10,000 rows are inserted in one transaction, quickly, each with its audit row")
        func tenThousandRows() async throws {
            try await withPredictDaemon { daemon, _, db, _ in
                // Far-future jobs: the insert is measured, not the upstream.
                let runAt = DreamdJSON.formatDate(Date().addingTimeInterval(86_400))
                let lines = (0..<10_000).map { index in
                    #"{"kind": "image_gen", "run_at": "\#(runAt)", "metadata": {"row": \#(index)}, "params": {"prompt": "fox \#(index)", "num_samples": 1, "width": 512, "height": 512, "base_model": "sd-1.5"}}"#
                }
                let started = ContinuousClock.now
                let answer = try await daemon.request(.POST, "/v1/jobs/bulk", body: lines.joined(separator: "\n") + "\n", contentType: "application/x-ndjson")
                let elapsed = ContinuousClock.now - started
                print("bulk: 10,000 rows validated and inserted in \(elapsed)")
                #expect(answer.status == 201, "\(answer.json["error"] ?? .null)")
                let id = try #require(answer.json["id"]?.stringValue)
                #expect(answer.json["total"]?.intValue == 10_000)
                #expect(answer.json["job_ids"]?.arrayValue?.count == 10_000)
                #expect(elapsed < .seconds(60))
                #expect(try await db.values("SELECT count(*)::int FROM jobs WHERE batch_id = \(UUID(uuidString: id)!)", as: Int.self) == [10_000])
                #expect(try await db.values("SELECT count(*)::int FROM job_events WHERE actor = 'api' AND detail->>'batch_id' = \(id)", as: Int.self) == [10_000])
                let batch = try await daemon.request(.GET, "/v1/batches/\(id)")
                #expect(batch.json["total"]?.intValue == 10_000)
                #expect(batch.json["pending"]?.intValue == 10_000)
                let page = try await daemon.request(.GET, "/v1/jobs?batch_id=\(id)&limit=5")
                #expect(page.json["data"]?.arrayValue?.count == 5)
            }
        }

        @Test("one bad row refuses the whole upload, with every bad row reported by line")
        func allOrNothing() async throws {
            try await withPredictDaemon { daemon, _, db, _ in
                let lines = [
                    PredictFixtures.predictBody(),
                    PredictFixtures.predictBody(model: "no-such-model"),
                    imageGenBody(),
                    "{not json",
                    "",
                    PredictFixtures.predictBody(actions: ["base64": .string(PredictFixtures.actionsBase64(rows: 13))]),
                ]
                let answer = try await daemon.request(.POST, "/v1/jobs/bulk", body: lines.joined(separator: "\n"), contentType: "application/jsonl")
                #expect(answer.status == 422)
                #expect(answer.json["error"]?["code"]?.stringValue == "invalid_rows")
                let rows = try #require(answer.json["error"]?["details"]?["rows"]?.arrayValue)
                #expect(rows.map { $0["line"]?.intValue } == [2, 4, 6])
                #expect(rows[0]["field"]?.stringValue == "params.model")
                #expect(rows[0]["message"]?.stringValue?.hasPrefix("unknown model") == true)
                #expect(rows[1]["code"]?.stringValue == "invalid_json")
                #expect(rows[2]["field"]?.stringValue == "params.actions")
                #expect(try await db.values("SELECT count(*)::int FROM jobs", as: Int.self) == [0])
                #expect(try await db.values("SELECT count(*)::int FROM batches", as: Int.self) == [0])
            }
        }

        @Test("a batch reports ok, failed and pending counts and its total cost")
        func batchCounts() async throws {
            try await withPredictDaemon { daemon, sim, _, _ in
                await sim.dreamEngines.forceNext(statuses: [500])
                let lines = (0..<3).map { PredictFixtures.predictBody(extra: ["seed": .number(Double($0))]) }
                let created = try await daemon.request(.POST, "/v1/jobs/bulk", body: lines.joined(separator: "\n"), contentType: "application/x-ndjson")
                #expect(created.status == 201, "\(created.json)")
                let id = try #require(created.json["id"]?.stringValue)
                let finished = try await eventually(timeout: .seconds(60)) {
                    try await daemon.request(.GET, "/v1/batches/\(id)").json["pending"]?.intValue == 0
                }
                #expect(finished)
                let batch = try await daemon.request(.GET, "/v1/batches/\(id)").json
                #expect(batch["total"]?.intValue == 3)
                #expect(batch["succeeded"]?.intValue == 2)
                #expect(batch["failed"]?.intValue == 1)
                #expect(batch["cancelled"]?.intValue == 0)
                #expect(abs((batch["cost_usd"]?.doubleValue ?? 0) - 2 * 49 * 0.0005) < 1e-9)
                #expect(batch["created_at"]?.stringValue != nil)
                #expect(try await daemon.request(.GET, "/v1/batches/\(UUID())").status == 404)
            }
        }

        @Test("bulk: Idempotency-Key replays the batch; wrong content type 415; over the size limit 413; empty 400")
        func bulkEdges() async throws {
            try await withPredictDaemon(["DREAMD_BULK_MAX_BYTES": "4096"]) { daemon, _, db, _ in
                let body = [imageGenBody(), imageGenBody(prompt: "an owl")].joined(separator: "\n")
                let key = [("Idempotency-Key", "upload-1")]
                let first = try await daemon.request(.POST, "/v1/jobs/bulk", body: body, headers: key, contentType: "application/x-ndjson")
                let second = try await daemon.request(.POST, "/v1/jobs/bulk", body: body, headers: key, contentType: "application/x-ndjson")
                #expect(first.status == 201 && second.status == 200)
                #expect(first.json["id"] == second.json["id"])
                let other = try await daemon.request(.POST, "/v1/jobs/bulk", body: imageGenBody(), headers: key, contentType: "application/x-ndjson")
                #expect(other.status == 409)
                #expect(try await db.values("SELECT count(*)::int FROM jobs", as: Int.self) == [2])
                #expect(try await daemon.request(.POST, "/v1/jobs/bulk", body: body).status == 415)
                let big = String(repeating: imageGenBody() + "\n", count: 40)
                let tooBig = try await daemon.request(.POST, "/v1/jobs/bulk", body: big, contentType: "application/x-ndjson")
                #expect(tooBig.status == 413)
                #expect(tooBig.json["error"]?["code"]?.stringValue == "payload_too_large")
                #expect(try await daemon.request(.POST, "/v1/jobs/bulk", body: "\n\n", contentType: "application/x-ndjson").status == 400)
            }
        }
    }
}
