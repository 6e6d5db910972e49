import AsyncHTTPClient
import DreamdCore
import DreamdSim
import DreamdUpstreams
import Foundation
import NIOCore
import Testing

/// Sends a raw callback POST, as dreamlook (or a forger) would.
func postCallback(_ url: String, body: String) async throws -> Int {
    var request = HTTPClientRequest(url: url)
    request.method = .POST
    request.headers.add(name: "content-type", value: "application/json")
    request.body = .bytes(ByteBuffer(string: body))
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
    _ = try await response.body.collect(upTo: 1 << 20)
    return Int(response.status.code)
}

@Suite("dreamlook callbacks and kinds", .hangGuard)
struct DreamlookCallbackTests {
    static let slowPolling = ["DREAMD_CALLBACKS": "on", "DREAMD_POLL_INTERVAL": "10m", "DREAMD_POLL_INTERVAL_MAX": "10m"]

    @Test("callbacks finish jobs while polling is set to 10 minutes")
    func callbacksFinishJobs() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim, overrides: Self.slowPolling) { daemon in
                    var ids: [String] = []
                    for index in 0..<5 {
                        ids.append(try #require(try await daemon.submit(imageGenBody(prompt: "fox \(index)")).json["id"]?.stringValue))
                    }
                    for id in ids {
                        let job = try await daemon.waitFinal(id, timeout: .seconds(30))
                        #expect(job["state"]?.stringValue == "succeeded")
                    }
                    // Each job was confirmed by exactly one poll, made due by its callback.
                    #expect(try await db.values("SELECT max(poll_count)::int FROM jobs", as: Int.self) == [0])
                    let outcomes = try await db.values("SELECT outcome FROM callback_inbox ORDER BY id", as: String.self)
                    #expect(outcomes.count == 5 && outcomes.allSatisfy { $0 == "poll scheduled" })
                    // Only hashes of the callback tokens are stored.
                    let url = try #require(await sim.dreamlook.callbackURL(taggedWith: "dreamd_job_id", value: ids[0]))
                    let token = String(url.split(separator: "/").last ?? "")
                    #expect(token.count >= 43)
                    #expect(try await db.values("SELECT count(*)::int FROM callback_tokens WHERE token_hash = \(token)", as: Int.self) == [0])
                }
            }
        }
    }

    @Test("with every callback dropped, polling finishes the jobs")
    func droppedCallbacks() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                var faults = SimulatorFaults()
                faults.callbackDropRate = 1
                await sim.dreamlook.setFaults(faults)
                try await withDaemon(database: db, simulator: sim, overrides: ["DREAMD_CALLBACKS": "on", "DREAMD_CALLBACK_POLL_INTERVAL_MAX": "300ms"]) { daemon in
                    var ids: [String] = []
                    for index in 0..<5 {
                        ids.append(try #require(try await daemon.submit(imageGenBody(prompt: "owl \(index)")).json["id"]?.stringValue))
                    }
                    for id in ids {
                        #expect(try await daemon.waitFinal(id)["state"]?.stringValue == "succeeded")
                    }
                    #expect(try await db.values("SELECT count(*)::int FROM callback_inbox", as: Int.self) == [0])
                    #expect(await sim.dreamlook.callbacksSent == 0)
                }
            }
        }
    }

    @Test("forged callbacks change nothing: unknown tokens get 404, a leaked URL cannot forge a result")
    func forgedCallbacks() async throws {
        try await TestDatabase.with { db in
            try await withSimulator(queueTime: .seconds(8), runTime: .seconds(1)) { sim in
                try await withDaemon(database: db, simulator: sim, overrides: Self.slowPolling) { daemon in
                    let id = try #require(try await daemon.submit(imageGenBody()).json["id"]?.stringValue)
                    #expect(try await eventually { try await daemon.job(id)["state"]?.stringValue == "running" })
                    let upstreamID = try #require(try await daemon.job(id)["upstream"]?["job_id"]?.stringValue)
                    // An unknown token: 404, nothing stored.
                    let unknown = "\(daemon.baseURL)/callbacks/dreamlook/\(String(repeating: "A", count: 43))"
                    #expect(try await postCallback(unknown, body: #"{"job_id": "\#(upstreamID)", "state": "success"}"#) == 404)
                    #expect(try await db.values("SELECT count(*)::int FROM callback_inbox", as: Int.self) == [0])
                    // A leaked URL with a forged "success" while dreamlook still has the job queued.
                    let leaked = try #require(await sim.dreamlook.callbackURL(taggedWith: "dreamd_job_id", value: id))
                    let forged = #"{"job_id": "\#(upstreamID)", "state": "success", "image_gen_results": [{"generated_images": [{"url": "https://evil.example/x.png"}]}]}"#
                    #expect(try await postCallback(leaked, body: forged) == 202)
                    try await Task.sleep(for: .milliseconds(700))
                    let meanwhile = try await daemon.job(id)
                    #expect(meanwhile["state"]?.stringValue == "running")
                    #expect(meanwhile["upstream"]?["state"]?.stringValue == "queued")
                    // A callback naming another upstream job is ignored.
                    #expect(try await postCallback(leaked, body: #"{"job_id": "ig_00000000", "state": "success"}"#) == 202)
                    // The real callback finishes the job, with dreamlook's own result.
                    let job = try await daemon.waitFinal(id, timeout: .seconds(30))
                    #expect(job["state"]?.stringValue == "succeeded")
                    let url = job["result"]?["image_gen_results"]?.arrayValue?.first?["generated_images"]?.arrayValue?.first?["url"]?.stringValue
                    #expect(url?.contains("evil") == false)
                    let outcomes = try await db.values("SELECT outcome FROM callback_inbox ORDER BY id", as: String.self)
                    #expect(outcomes.contains { $0.hasPrefix("ignored: callback names upstream job ig_00000000") })
                }
            }
        }
    }

    @Test("duplicated and reordered callbacks make no second transition and never move a job backwards")
    func duplicatedCallbacks() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                var faults = SimulatorFaults()
                faults.callbackDuplicateRate = 1
                faults.callbackReorderRate = 1
                await sim.dreamlook.setFaults(faults)
                try await withDaemon(database: db, simulator: sim, overrides: Self.slowPolling) { daemon in
                    var ids: [String] = []
                    for index in 0..<4 {
                        ids.append(try #require(try await daemon.submit(imageGenBody(prompt: "cat \(index)")).json["id"]?.stringValue))
                    }
                    for id in ids { #expect(try await daemon.waitFinal(id)["state"]?.stringValue == "succeeded") }
                    // Every copy arrived and was stored...
                    #expect(try await eventually { try await db.values("SELECT count(*)::int FROM callback_inbox", as: Int.self) == [12] })
                    try await Task.sleep(for: .milliseconds(300))
                    // ...but each job went to succeeded once and stayed there.
                    #expect(try await db.values("SELECT count(*)::int FROM job_events WHERE to_state = 'succeeded'", as: Int.self) == [4])
                    #expect(try await db.values("SELECT count(*)::int FROM events WHERE type = 'job.succeeded'", as: Int.self) == [4])
                    #expect(try await db.values("SELECT count(*)::int FROM jobs WHERE state <> 'succeeded'", as: Int.self) == [0])
                    // The reordered copies (dreamlook's "running", arriving after "success") moved nothing: each was
                    // ignored or only nudged a poll, and no callback recorded an outcome of its own.
                    // A copy that came while its job was being polled waited, and was processed once the job was free.
                    #expect(try await eventually { try await db.values("SELECT count(*)::int FROM callback_inbox WHERE processed_at IS NULL", as: Int.self) == [0] })
                    let outcomes = try await db.values("SELECT outcome FROM callback_inbox", as: String.self)
                    // ("not running": the job finished between the callback's arrival and its nudge.)
                    let harmless = ["poll scheduled", "poll already due", "ignored: job already succeeded", "ignored: job is not running"]
                    #expect(outcomes.allSatisfy { harmless.contains($0) }, "\(outcomes)")
                    #expect(try await db.values("SELECT count(*)::int FROM callback_inbox WHERE upstream_state = 'running'", as: Int.self) == [4])
                }
            }
        }
    }

    @Test("with 30 % of submits answering 503 after creating the job, every job exists upstream exactly once")
    func noDoubleSubmission() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                var faults = SimulatorFaults()
                faults.createThenFailRate = 0.3
                await sim.dreamlook.setFaults(faults)
                try await withDaemon(database: db, simulator: sim) { daemon in
                    var ids: [String] = []
                    for index in 0..<30 {
                        ids.append(try #require(try await daemon.submit(imageGenBody(prompt: "bird \(index)")).json["id"]?.stringValue))
                    }
                    for id in ids {
                        #expect(try await daemon.waitFinal(id, timeout: .seconds(60))["state"]?.stringValue == "succeeded")
                        #expect(await sim.dreamlook.jobCount(taggedWith: "dreamd_job_id", value: id) == 1, "job \(id)")
                    }
                    #expect(await sim.dreamlook.jobCount == 30)
                    let adopted = try await db.values("SELECT count(*)::int FROM job_events WHERE detail->'detail'->>'submission' = 'adopted'", as: Int.self)
                    #expect((adopted.first ?? 0) >= 1)
                }
            }
        }
    }

    @Test("dreambooth and dreambooth_image_gen record their checkpoints, visible through the API")
    func checkpointsRecorded() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let training = #"{"image_urls": ["https://example.com/1.jpg", "https://example.com/2.jpg"], "instance_prompt": "photo of sks dog", "steps": 100, "learning_rate": 2e-6, "base_model": "sd-v1-5"}"#
                    let dreambooth = try await daemon.submit(#"{"kind": "dreambooth", "params": \#(training)}"#)
                    #expect(dreambooth.status == 201)
                    let combined = try await daemon.submit(#"{"kind": "dreambooth_image_gen", "params": {"dreambooth": \#(training), "image_gen": [{"prompt": "sks dog on the moon", "num_samples": 2, "width": 512, "height": 512}]}}"#)
                    #expect(combined.status == 201)
                    let first = try await daemon.waitFinal(try #require(dreambooth.json["id"]?.stringValue))
                    let second = try await daemon.waitFinal(try #require(combined.json["id"]?.stringValue))
                    #expect(first["state"]?.stringValue == "succeeded")
                    #expect(second["state"]?.stringValue == "succeeded")
                    #expect(second["result"]?["image_gen_results"]?.arrayValue?.first?["generated_images"]?.arrayValue?.count == 2)
                    let listed = try await daemon.request(.GET, "/v1/checkpoints").json["data"]?.arrayValue ?? []
                    #expect(listed.count == 2)
                    let checkpoint = try #require(listed.first { $0["job_id"] == first["id"] })
                    #expect(checkpoint["upstream_checkpoint_id"]?.stringValue?.hasPrefix("ckp_") == true)
                    #expect(checkpoint["state"]?.stringValue == "available")
                    #expect(checkpoint["size_bytes"]?.intValue == 256 * 1024)
                    let trained = try #require(checkpoint["trained_at"]?.stringValue.flatMap(DreamdJSON.parseDate))
                    let expires = try #require(checkpoint["expires_at"]?.stringValue.flatMap(DreamdJSON.parseDate))
                    #expect(abs(expires.timeIntervalSince(trained) - 48 * 3600) < 1)
                    let one = try await daemon.request(.GET, "/v1/checkpoints/\(checkpoint["id"]?.stringValue ?? "")")
                    #expect(one.status == 200 && one.json["id"] == checkpoint["id"])
                    #expect(try await daemon.request(.GET, "/v1/checkpoints?state=bogus").status == 400)
                }
            }
        }
    }

    @Test("a dry run gets a TEST_ id, is never polled, and is finished by its callback")
    func dryRun() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim, overrides: ["DREAMD_CALLBACKS": "on"]) { daemon in
                    let id = try #require(try await daemon.submit(imageGenBody(extra: "").replacingOccurrences(of: #""base_model": "sd-1.5""#, with: #""base_model": "sd-1.5", "dry_run": true"#)).json["id"]?.stringValue)
                    let job = try await daemon.waitFinal(id)
                    #expect(job["state"]?.stringValue == "succeeded")
                    #expect(job["upstream"]?["job_id"]?.stringValue?.hasPrefix("TEST_") == true)
                    #expect(job["result"]?["dry_run"] == true)
                    #expect(try await db.values("SELECT poll_count FROM jobs", as: Int.self) == [0])
                    let trail = try await db.values("SELECT actor FROM job_events ORDER BY id", as: String.self)
                    #expect(trail.last == "callback")
                }
            }
        }
    }

    @Test("submit-time validation names the bad field for every dreamlook kind")
    func validation() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let cases: [(String, String)] = [
                        (#"{"kind": "dreambooth", "params": {"instance_prompt": "x", "steps": 10, "learning_rate": 1e-6, "base_model": "m"}}"#, "params.image_urls"),
                        (#"{"kind": "dreambooth", "params": {"image_urls": ["ftp://x"], "instance_prompt": "x", "steps": 10, "learning_rate": 1e-6, "base_model": "m"}}"#, "params.image_urls[0]"),
                        (#"{"kind": "dreambooth", "params": {"image_urls": ["https://x/1.jpg"], "instance_prompt": "x", "steps": 10, "base_model": "m"}}"#, "params.learning_rate"),
                        (#"{"kind": "dreambooth", "params": {"image_urls": ["https://x/1.jpg"], "instance_prompt": "x", "steps": 10, "learning_rate": 1e-6, "base_model": "m", "tags": [{"key": "dreamd_job_id", "value": "x"}]}}"#, "params.tags[0].key"),
                        (#"{"kind": "dreambooth_image_gen", "params": {"dreambooth": {"image_urls": ["https://x/1.jpg"], "instance_prompt": "x", "steps": 10, "learning_rate": 1e-6, "base_model": "m"}, "image_gen": [{"num_samples": 1, "width": 512, "height": 512}]}}"#, "params.image_gen[0].prompt"),
                        (#"{"kind": "dreambooth_image_gen", "params": {"image_gen": []}}"#, "params.dreambooth"),
                        (#"{"kind": "image_gen", "params": {"prompt": "p", "num_samples": 1, "width": 512, "height": 512, "checkpoint_id": "nope"}}"#, "params.checkpoint_id"),
                    ]
                    for (body, field) in cases {
                        let answer = try await daemon.submit(body)
                        #expect(answer.status == 422, "\(body)")
                        #expect(answer.json["error"]?["details"]?["field"]?.stringValue == field, "\(body)")
                    }
                }
            }
        }
    }

    @Test("the rate budget paces calls, and a 429 pauses the upstream")
    func upstreamGate() async throws {
        let gate = UpstreamGate(name: "test", ratePerSecond: 20)
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<30 { try await gate.acquire() }
        // 20 in the first burst, then 10 more at 20/s: about half a second.
        #expect(clock.now - start >= .milliseconds(400))
        await gate.pause(for: .milliseconds(300))
        #expect(await gate.pausedFor != nil)
        let paused = clock.now
        try await gate.acquire()
        #expect(clock.now - paused >= .milliseconds(280))
    }
}
