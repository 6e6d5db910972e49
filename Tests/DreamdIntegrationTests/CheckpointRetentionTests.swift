import DreamdCore
import DreamdServices
import DreamdSim
import DreamdStore
import Foundation
import Testing

@Suite("checkpoint retention: expiry, events, refusal", .hangGuard)
struct CheckpointRetentionTests {
    @Test("available → expiring at expires_at - warning → expired at expires_at, with audit rows and outbox events")
    func transitionsOnTime() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim, overrides: fastRetention) { daemon in
                    let checkpoint = try await daemon.trainCheckpoint()
                    let id = try #require(checkpoint["id"]?.stringValue)
                    let expiresAt = try #require(jsonDate(checkpoint["expires_at"]))
                    let trainedAt = try #require(jsonDate(checkpoint["trained_at"]))
                    #expect(abs(expiresAt.timeIntervalSince(trainedAt) - 4) < 0.01)
                    #expect(try await eventually(timeout: .seconds(15)) { try await daemon.checkpoint(id)["state"]?.stringValue == "expired" })

                    let uuid = try #require(UUID(uuidString: id))
                    let trail = try await daemon.daemon.checkpoints.events(checkpointID: uuid)
                    #expect(trail.map(\.toState) == ["available", "expiring", "expired"])
                    let expiring = try #require(trail.first { $0.toState == "expiring" })
                    let expired = try #require(trail.first { $0.toState == "expired" })
                    #expect(expiring.actor == "sweeper" && expired.actor == "sweeper")
                    // On time: not before the threshold, and within the sweep interval plus slack after it.
                    #expect(expiring.at >= expiresAt.addingTimeInterval(-2.001))
                    #expect(expiring.at <= expiresAt.addingTimeInterval(-2 + 1.5))
                    #expect(expired.at >= expiresAt.addingTimeInterval(-0.001))
                    #expect(expired.at <= expiresAt.addingTimeInterval(1.5))

                    let types = try await db.values("SELECT type FROM events WHERE type LIKE 'checkpoint.%' ORDER BY created_at, id", as: String.self)
                    #expect(types == ["checkpoint.expiring", "checkpoint.expired"])
                    let payloads = try await db.values("SELECT payload::text FROM events WHERE type = 'checkpoint.expired'", as: String.self)
                    let payload = try DreamdJSON.decode(JSONValue.self, from: try #require(payloads.first))
                    #expect(payload["type"]?.stringValue == "checkpoint.expired")
                    #expect(payload["data"]?["id"]?.stringValue == id)
                    #expect(payload["data"]?["state"]?.stringValue == "expired")
                    #expect(payload["data"]?["upstream_checkpoint_id"] == checkpoint["upstream_checkpoint_id"])
                    #expect(abs((jsonDate(payload["data"]?["expires_at"]) ?? .distantPast).timeIntervalSince(expiresAt)) < 0.001)
                }
            }
        }
    }

    @Test("a job naming an expired checkpoint is refused with 422 checkpoint_expired; unknown checkpoints pass")
    func refusalAtSubmit() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim, overrides: fastRetention) { daemon in
                    let checkpoint = try await daemon.trainCheckpoint()
                    let id = try #require(checkpoint["id"]?.stringValue)
                    let upstream = try #require(checkpoint["upstream_checkpoint_id"]?.stringValue)
                    // Refused as soon as expires_at passes, even before the sweeper moved it.
                    let expiresAt = try #require(jsonDate(checkpoint["expires_at"]))
                    try await Task.sleep(for: .milliseconds(Int64(max(0, expiresAt.timeIntervalSinceNow) * 1000) + 50))

                    let imageGen = #"{"kind": "image_gen", "params": {"prompt": "sks dog", "num_samples": 1, "width": 512, "height": 512, "checkpoint_id": "\#(upstream)"}}"#
                    let refused = try await daemon.submit(imageGen)
                    #expect(refused.status == 422)
                    #expect(refused.json["error"]?["code"]?.stringValue == "checkpoint_expired")
                    #expect(refused.json["error"]?["details"]?["field"]?.stringValue == "params.checkpoint_id")
                    #expect(refused.json["error"]?["details"]?["checkpoint_id"]?.stringValue == upstream)
                    #expect(abs((jsonDate(refused.json["error"]?["details"]?["expired_at"]) ?? .distantPast).timeIntervalSince(expiresAt)) < 0.001)

                    let combined = #"{"kind": "dreambooth_image_gen", "params": {"dreambooth": \#(trainingParams), "image_gen": [{"prompt": "a", "num_samples": 1, "width": 512, "height": 512}, {"prompt": "b", "num_samples": 1, "width": 512, "height": 512, "checkpoint_id": "\#(upstream)"}]}}"#
                    let refusedCombined = try await daemon.submit(combined)
                    #expect(refusedCombined.status == 422)
                    #expect(refusedCombined.json["error"]?["code"]?.stringValue == "checkpoint_expired")
                    #expect(refusedCombined.json["error"]?["details"]?["field"]?.stringValue == "params.image_gen[1].checkpoint_id")

                    // Trained outside dreamd: allowed.
                    let unknown = imageGen.replacingOccurrences(of: upstream, with: "ckp_0badc0de")
                    #expect(try await daemon.submit(unknown).status == 201)
                    #expect(try await eventually { try await daemon.checkpoint(id)["state"]?.stringValue == "expired" })
                    #expect(try await daemon.submit(imageGen).status == 422)

                    // Bulk rows are refused the same way (one query for all rows), and nothing is inserted.
                    let jobsBefore = try await db.values("SELECT count(*)::int FROM jobs", as: Int.self)
                    let rows = [unknown, imageGen, unknown, combined].joined(separator: "\n")
                    let bulk = try await daemon.request(.POST, "/v1/jobs/bulk", body: rows, contentType: "application/x-ndjson")
                    #expect(bulk.status == 422)
                    let refusedRows = bulk.json["error"]?["details"]?["rows"]?.arrayValue ?? []
                    #expect(refusedRows.map { $0["line"]?.intValue } == [2, 4])
                    #expect(refusedRows.map { $0["code"]?.stringValue } == ["checkpoint_expired", "checkpoint_expired"])
                    #expect(refusedRows.map { $0["field"]?.stringValue } == ["params.checkpoint_id", "params.image_gen[1].checkpoint_id"])
                    #expect(try await db.values("SELECT count(*)::int FROM jobs", as: Int.self) == jobsBefore)
                }
            }
        }
    }

    @Test("a queued job whose checkpoint expires before it runs fails with checkpoint_expired and is never submitted")
    func expiresWhileQueued() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim, overrides: fastRetention) { daemon in
                    let checkpoint = try await daemon.trainCheckpoint()
                    let upstream = try #require(checkpoint["upstream_checkpoint_id"]?.stringValue)
                    let expiresAt = try #require(jsonDate(checkpoint["expires_at"]))
                    let runAt = DreamdJSON.formatDate(expiresAt.addingTimeInterval(1))
                    let body = #"{"kind": "image_gen", "run_at": "\#(runAt)", "params": {"prompt": "sks dog", "num_samples": 1, "width": 512, "height": 512, "checkpoint_id": "\#(upstream)"}}"#
                    let submitted = try await daemon.submit(body)
                    #expect(submitted.status == 201)
                    let job = try await daemon.waitFinal(try #require(submitted.json["id"]?.stringValue), timeout: .seconds(20))
                    #expect(job["state"]?.stringValue == "failed")
                    #expect(job["error"]?["code"]?.stringValue == "checkpoint_expired")
                    #expect(job["upstream"]?["job_id"] == nil || job["upstream"]?["job_id"] == .null)
                    #expect(await sim.dreamlook.jobCount(ofType: "image_gen") == 0)
                }
            }
        }
    }

    @Test("after downtime past both thresholds, the first sweep emits expiring then expired, in order")
    func downtime() async throws {
        try await TestDatabase.with { db in
            guard case .created(let job) = try await db.jobs.insert(.init(kind: .dreambooth, params: ["steps": 1])) else {
                Issue.record("job not created")
                return
            }
            // Trained 10 s ago with 4 s retention: while no sweeper ran, both thresholds passed.
            try await db.client.query("""
                INSERT INTO checkpoints (job_id, upstream_checkpoint_id, trained_at, expires_at)
                VALUES (\(job.id), 'ckp_0000dead', now() - interval '10 seconds', now() - interval '6 seconds')
                """, logger: db.logger)
            let store = CheckpointStore(client: db.client, logger: db.logger, expiryWarning: .seconds(2))
            let sweeper = RetentionSweeper(store: store, interval: .milliseconds(100), logger: db.logger)
            try await withServiceGroup([sweeper]) { () async throws in
                #expect(try await eventually { try await db.values("SELECT state FROM checkpoints", as: String.self) == ["expired"] })
            }
            let types = try await db.values("SELECT type FROM events WHERE type LIKE 'checkpoint.%' ORDER BY created_at, id", as: String.self)
            #expect(types == ["checkpoint.expiring", "checkpoint.expired"])
            let trail = try await db.values("SELECT to_state FROM checkpoint_events ORDER BY id", as: String.self)
            #expect(trail == ["available", "expiring", "expired"])
            // A second sweep changes nothing.
            try await sweeper.sweep()
            #expect(try await db.values("SELECT count(*)::int FROM events", as: Int.self) == [2])
        }
    }

    @Test("GET /v1/checkpoints filters by state and expiring_within; PATCH overrides expiry per checkpoint")
    func listingAndOverride() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim, overrides: ["DREAMD_CHECKPOINT_RETENTION": "48h"]) { daemon in
                    let checkpoint = try await daemon.trainCheckpoint()
                    let id = try #require(checkpoint["id"]?.stringValue)
                    let trainedAt = try #require(jsonDate(checkpoint["trained_at"]))
                    func listed(_ query: String) async throws -> [String] {
                        try await daemon.request(.GET, "/v1/checkpoints?\(query)").json["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
                    }
                    #expect(try await listed("state=available") == [id])
                    #expect(try await listed("state=expiring,expired") == [])
                    #expect(try await listed("expiring_within=6h") == [])
                    #expect(try await listed("expiring_within=49h") == [id])
                    #expect(try await daemon.request(.GET, "/v1/checkpoints?expiring_within=soon").status == 400)

                    // Shorten to inside the 6 h warning window: the sweeper marks it expiring.
                    let shortened = try await daemon.request(.PATCH, "/v1/checkpoints/\(id)", body: #"{"retention": "3h"}"#)
                    #expect(shortened.status == 200)
                    #expect(abs((jsonDate(shortened.json["expires_at"]) ?? .distantPast).timeIntervalSince(trainedAt.addingTimeInterval(3 * 3600))) < 0.001)
                    #expect(try await eventually { try await daemon.checkpoint(id)["state"]?.stringValue == "expiring" })
                    #expect(try await listed("expiring_within=6h") == [id])
                    // Extending past the window brings it back to available.
                    let later = DreamdJSON.formatDate(trainedAt.addingTimeInterval(72 * 3600))
                    let extended = try await daemon.request(.PATCH, "/v1/checkpoints/\(id)", body: #"{"expires_at": "\#(later)"}"#)
                    #expect(extended.status == 200)
                    #expect(extended.json["state"]?.stringValue == "available")
                    #expect(abs((jsonDate(extended.json["expires_at"]) ?? .distantPast).timeIntervalSince(trainedAt.addingTimeInterval(72 * 3600))) < 0.001)

                    for (body, field) in [(#"{"retention": "forever"}"#, "retention"), (#"{"expires_at": "tomorrow"}"#, "expires_at"),
                                          (#"{}"#, "expires_at"), (#"{"ttl": "1h"}"#, "ttl")] {
                        let bad = try await daemon.request(.PATCH, "/v1/checkpoints/\(id)", body: body)
                        #expect(bad.status == 422)
                        #expect(bad.json["error"]?["details"]?["field"]?.stringValue == field)
                    }
                    #expect(try await daemon.request(.PATCH, "/v1/checkpoints/\(UUID())", body: #"{"retention": "1h"}"#).status == 404)
                    let trail = try await daemon.daemon.checkpoints.events(checkpointID: try #require(UUID(uuidString: id)))
                    #expect(trail.map(\.toState) == ["available", "expiring", "available"])
                }
            }
        }
    }
}
