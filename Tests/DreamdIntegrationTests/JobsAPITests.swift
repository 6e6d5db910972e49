import DreamdCore
import DreamdSim
import DreamdStore
import Foundation
import Testing

@Suite("Jobs API", .hangGuard)
struct JobsAPITests {
    @Test("an image_gen job runs to success through the simulator, with its audit trail and outbox event")
    func submitToSuccess() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let created = try await daemon.submit(imageGenBody())
                    #expect(created.status == 201)
                    #expect(created.json["state"]?.stringValue == "queued")
                    let id = try #require(created.json["id"]?.stringValue)
                    let job = try await daemon.waitFinal(id)
                    #expect(job["state"]?.stringValue == "succeeded")
                    #expect(job["upstream"]?["provider"]?.stringValue == "dreamlook")
                    let upstreamID = try #require(job["upstream"]?["job_id"]?.stringValue)
                    #expect(upstreamID.hasPrefix("ig_"))
                    let images = job["result"]?["image_gen_results"]?.arrayValue?.first?["generated_images"]?.arrayValue
                    #expect(images?.count == 2)
                    #expect(job["finished_at"]?.stringValue != nil)
                    // Submitted with the dreamd_job_id tag.
                    #expect(await sim.dreamlook.jobCount(taggedWith: "dreamd_job_id", value: id) == 1)
                    // The audit trail, oldest first, with actors.
                    let events = try await daemon.request(.GET, "/v1/jobs/\(id)/events").json["data"]?.arrayValue ?? []
                    let trail = events.map { "\($0["actor"]?.stringValue ?? ""):\($0["to_state"]?.stringValue ?? "")" }
                    #expect(trail.first == "api:queued")
                    #expect(trail.contains("worker:submitting"))
                    #expect(trail.contains("worker:running"))
                    #expect(trail.last == "poller:succeeded")
                    let outbox = try await db.values("SELECT type FROM events WHERE payload->'data'->>'id' = \(id)", as: String.self)
                    #expect(outbox == ["job.succeeded"])
                    // The event carries the job exactly as the API shows it.
                    let payload = try await db.values("SELECT payload::text FROM events WHERE type = 'job.succeeded'", as: String.self)
                    let event = try DreamdJSON.decode(JSONValue.self, from: try #require(payload.first))
                    #expect(event["type"]?.stringValue == "job.succeeded")
                    #expect(event["data"] == job)
                }
            }
        }
    }

    @Test("Idempotency-Key: same body gives the same job, another body 409")
    func idempotency() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let key = [("Idempotency-Key", "order-42")]
                    let first = try await daemon.submit(imageGenBody(), headers: key)
                    let second = try await daemon.submit(imageGenBody(), headers: key)
                    #expect(first.status == 201)
                    #expect(second.status == 200)
                    #expect(first.json["id"] == second.json["id"])
                    let other = try await daemon.submit(imageGenBody(prompt: "something else"), headers: key)
                    #expect(other.status == 409)
                    #expect(other.json["error"]?["code"]?.stringValue == "idempotency_conflict")
                    let count = try await db.values("SELECT count(*)::int FROM jobs", as: Int.self)
                    #expect(count == [1])
                }
            }
        }
    }

    @Test("cancelling a scheduled job means it never reaches the upstream")
    func cancelScheduled() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    // Far enough ahead that a request slowed by a loaded machine still finds it in the future.
                    let runAt = DreamdJSON.formatDate(Date().addingTimeInterval(3))
                    let created = try await daemon.submit(imageGenBody(extra: #", "run_at": "\#(runAt)""#))
                    #expect(created.json["state"]?.stringValue == "scheduled")
                    let id = try #require(created.json["id"]?.stringValue)
                    let cancelled = try await daemon.request(.POST, "/v1/jobs/\(id)/cancel")
                    #expect(cancelled.status == 200)
                    #expect(cancelled.json["state"]?.stringValue == "cancelled")
                    try await Task.sleep(for: .seconds(4))
                    #expect(try await daemon.job(id)["state"]?.stringValue == "cancelled")
                    #expect(await sim.dreamlook.requestCount == 0)
                    let again = try await daemon.request(.POST, "/v1/jobs/\(id)/cancel")
                    #expect(again.status == 409)
                    #expect(again.json["error"]?["code"]?.stringValue == "job_finished")
                    let outbox = try await db.values("SELECT type FROM events", as: String.self)
                    #expect(outbox == ["job.cancelled"])
                }
            }
        }
    }

    @Test("bad input gets a 4xx JSON error naming the problem, never a 500")
    func validationErrors() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let cases: [(body: String, status: Int, code: String, field: String?)] = [
                        (#"{"kind": "image_gen", "params": {"num_samples": 2, "width": 512, "height": 512, "base_model": "m"}}"#, 422, "invalid_job", "params.prompt"),
                        (#"{"kind": "image_gen", "params": {"prompt": "p", "num_samples": 99, "width": 512, "height": 512, "base_model": "m"}}"#, 422, "invalid_job", "params.num_samples"),
                        (#"{"kind": "image_gen", "params": {"prompt": "p", "num_samples": 1, "width": 500, "height": 512, "base_model": "m"}}"#, 422, "invalid_job", "params.width"),
                        (#"{"kind": "image_gen", "params": {"prompt": "p", "num_samples": 1, "width": 512, "height": 512}}"#, 422, "invalid_job", "params.base_model"),
                        (#"{"kind": "image_gen", "params": {"prompt": "p", "num_samples": 1, "width": 512, "height": 512, "base_model": "m", "colour": 1}}"#, 422, "invalid_job", "params.colour"),
                        (#"{"kind": "teleport", "params": {}}"#, 422, "invalid_job", "kind"),
                        (#"{"kind": "predict", "params": {}}"#, 422, "invalid_job", "params.model"),
                        (#"{"params": {}}"#, 422, "invalid_job", "kind"),
                        (imageGenBody(extra: #", "priority": 1000"#), 422, "invalid_job", "priority"),
                        (imageGenBody(extra: #", "run_at": "tomorrow""#), 422, "invalid_job", "run_at"),
                        (imageGenBody(extra: #", "surprise": true"#), 422, "invalid_job", "surprise"),
                        (#"{"kind": "image_gen", "params": "#, 400, "invalid_json", nil),
                        (#"[1, 2]"#, 400, "invalid_json", nil),
                        ("", 400, "invalid_json", nil),
                    ]
                    for item in cases {
                        let answer = try await daemon.submit(item.body)
                        #expect(answer.status == item.status, "\(item.body)")
                        #expect(answer.json["error"]?["code"]?.stringValue == item.code, "\(item.body)")
                        #expect(answer.json["error"]?["message"]?.stringValue?.isEmpty == false)
                        if let field = item.field {
                            #expect(answer.json["error"]?["details"]?["field"]?.stringValue == field, "\(item.body)")
                        }
                    }
                    // Nothing was stored.
                    #expect(try await db.values("SELECT count(*)::int FROM jobs", as: Int.self) == [0])
                    // Not found, bad ids, bad filters.
                    #expect(try await daemon.request(.GET, "/v1/jobs/\(UUID())").status == 404)
                    #expect(try await daemon.request(.GET, "/v1/jobs/not-a-uuid").json["error"]?["code"]?.stringValue == "not_found")
                    #expect(try await daemon.request(.GET, "/v1/jobs?state=bogus").status == 400)
                    #expect(try await daemon.request(.GET, "/v1/jobs?limit=501").status == 400)
                    #expect(try await daemon.request(.GET, "/v1/jobs?cursor=zzz").status == 400)
                    let missingRoute = try await daemon.request(.GET, "/v1/nothing-here")
                    #expect(missingRoute.status == 404)
                    #expect(missingRoute.json["error"]?["code"]?.stringValue == "not_found")
                }
            }
        }
    }

    @Test("bearer keys: missing, wrong and revoked keys get 401; health needs none")
    func authentication() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let none = try await daemon.request(.GET, "/v1/jobs", token: "")
                    #expect(none.status == 401)
                    #expect(none.json["error"]?["code"]?.stringValue == "unauthorized")
                    #expect(try await daemon.request(.GET, "/v1/jobs", token: "dmd_wrong").status == 401)
                    let (_, token) = try await db.keys.create(name: "short-lived")
                    #expect(try await daemon.request(.GET, "/v1/jobs", token: token).status == 200)
                    #expect(try await db.keys.revoke(idOrName: "short-lived") == 1)
                    #expect(try await daemon.request(.GET, "/v1/jobs", token: token).status == 401)
                    #expect(try await daemon.request(.GET, "/healthz", token: "").status == 200)
                    let ready = try await daemon.request(.GET, "/readyz", token: "")
                    #expect(ready.status == 200)
                    #expect(ready.json["checks"]?["migrations"]?["ok"] == true)
                    // Only a hash of the token is stored.
                    let stored = try await db.values("SELECT token_hash FROM api_keys", as: String.self)
                    #expect(!stored.contains(token) && stored.allSatisfy { $0.count == 64 })
                }
            }
        }
    }

    @Test("bodies over 10 MB get 413 with a JSON error")
    func bodyLimit() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let padding = String(repeating: "x", count: 10 * 1024 * 1024 + 10)
                    let answer = try await daemon.submit(imageGenBody(extra: #", "metadata": {"pad": "\#(padding)"}"#))
                    #expect(answer.status == 413)
                    #expect(answer.json["error"]?["code"]?.stringValue == "payload_too_large")
                }
            }
        }
    }

    @Test("listing pages through every job once, newest first, with filters")
    func listing() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                // A key the simulator refuses keeps the jobs from moving while we page.
                try await withDaemon(database: db, simulator: sim, overrides: ["DREAMD_WORKER_CONCURRENCY": "1"]) { daemon in
                    var ids: [String] = []
                    for index in 0..<7 {
                        let runAt = DreamdJSON.formatDate(Date().addingTimeInterval(3600))
                        let created = try await daemon.submit(imageGenBody(prompt: "p\(index)", extra: #", "run_at": "\#(runAt)""#))
                        ids.append(try #require(created.json["id"]?.stringValue))
                    }
                    var seen: [String] = []
                    var cursor: String?
                    repeat {
                        let page = try await daemon.request(.GET, "/v1/jobs?limit=3&state=scheduled" + (cursor.map { "&cursor=\($0)" } ?? ""))
                        #expect(page.status == 200)
                        seen += page.json["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
                        cursor = page.json["next_cursor"]?.stringValue
                    } while cursor != nil
                    #expect(seen == ids.reversed())
                    let none = try await daemon.request(.GET, "/v1/jobs?state=succeeded")
                    #expect(none.json["data"]?.arrayValue?.isEmpty == true)
                    #expect(none.json["next_cursor"] == .null)
                }
            }
        }
    }
}
