import AsyncHTTPClient
import DreamdCore
import DreamdSim
import DreamdStore
import Foundation
import NIOCore
import Testing

/// Issue 15: a submission whose answer is lost is settled, never paid for twice.
@Suite("reconciliation", .hangGuard)
struct ReconciliationTests {
    @Test("under load (150 jobs, 10 % created-then-503, 5 % plain 503) every job succeeds and is created upstream exactly once")
    func lostAnswersUnderLoad() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim, overrides: ["DREAMD_API_RATE_LIMIT": "0"]) { daemon in
                    var faults = SimulatorFaults()
                    faults.createThenFailRate = 0.1
                    faults.serverErrorRate = 0.05
                    await sim.dreamlook.setFaults(faults)
                    var ids: [String] = []
                    for index in 0..<150 {
                        let submitted = try await daemon.submit(imageGenBody(prompt: "fox \(index)"))
                        ids.append(try #require(submitted.json["id"]?.stringValue, "\(submitted.status) \(submitted.json)"))
                    }
                    for id in ids {
                        let job = try await daemon.waitFinal(id, timeout: .seconds(120))
                        #expect(job["state"]?.stringValue == "succeeded", "job \(id): \(job["error"] ?? .null)")
                    }
                    let counts = await sim.dreamlook.tagCounts(key: "dreamd_job_id")
                    #expect(counts.count == ids.count)
                    #expect(counts.values.max() == 1, "a job was submitted more than once")
                    // The lost answers were adopted: more than 50 jobs were listed after some of them.
                    let adopted = try await db.client.rows("""
                        SELECT count(*)::int FROM job_events WHERE detail->'detail'->>'submission' = 'adopted'
                        """, logger: db.logger).decode(Int.self).reduce(0, +)
                    #expect(adopted > 0)
                }
            }
        }
    }

    @Test("a held reconciliation holds fresh submissions of its kind in every claim; the reconciling job and other kinds still go")
    func holdBlocksFreshSubmissions() async throws {
        try await TestDatabase.with { db in
            let params = try JSONValue.parse(#"{"prompt": "a", "num_samples": 1, "width": 512, "height": 512, "base_model": "sd-1.5"}"#)
            guard case .created(let held) = try await db.jobs.insert(.init(kind: .imageGen, params: params)),
                  case .created(let fresh) = try await db.jobs.insert(.init(kind: .imageGen, params: params)),
                  case .created(let other) = try await db.jobs.insert(.init(kind: .dreambooth, params: params)) else {
                Issue.record("insert failed"); return
            }
            try await db.client.rows("""
                UPDATE jobs SET reconcile_since = now() - interval '1 second', reconcile_hold = true WHERE id = \(held.id)
                """, logger: db.logger)
            let first = try await db.jobs.claim(kinds: [.imageGen, .dreambooth], limit: 10, owner: "a", leaseDuration: .seconds(30),
                                                holdingKinds: [.imageGen, .dreambooth])
            #expect(Set(first.map(\.job.id)) == [held.id, other.id])
            let reconciling = try #require(first.first { $0.job.id == held.id })
            #expect(reconciling.reconcileSince != nil)
            #expect(try await db.jobs.claim(kinds: [.imageGen], limit: 10, owner: "b", leaseDuration: .seconds(30),
                                            holdingKinds: [.imageGen]).isEmpty)
            // Settled (here: accepted upstream), the hold is gone and the fresh job is claimed.
            let write = try db.jobs.outcomeWrite(.running(upstreamJobID: "ig_00000001", upstreamState: "queued", nextCheck: Date().addingTimeInterval(60)),
                                                 for: reconciling, provider: "dreamlook", backoff: .jobRetry)
            #expect(try await db.jobs.recordBatch([write])[held.id] == .running)
            let next = try await db.jobs.claim(kinds: [.imageGen], limit: 10, owner: "b", leaseDuration: .seconds(30), holdingKinds: [.imageGen])
            #expect(next.map(\.job.id) == [fresh.id])
            #expect(next.first?.reconcileSince == nil)
        }
    }

    @Test("a submission cut off by a crash on its last attempt is looked up and adopted, not failed and not sent again")
    func rescuedLastAttemptAdopted() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                let job = try await insertImageGen(db, maxAttempts: 1)
                let tag = job.id.uuidString.lowercased()
                // A process claims it, reaches dreamlook, and dies before recording the answer.
                let claimed = try await db.jobs.claim(kinds: [.imageGen], limit: 1, owner: "crashed", leaseDuration: .milliseconds(200))
                #expect(claimed.count == 1)
                var request = HTTPClientRequest(url: sim.baseURL + "/image_gen")
                request.method = .POST
                request.headers.add(name: "authorization", value: "Bearer dl-test")
                request.headers.add(name: "content-type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: #"{"prompt": "a", "num_samples": 1, "width": 512, "height": 512, "base_model": "sd-1.5", "tags": [{"key": "dreamd_job_id", "value": "\#(tag)"}]}"#))
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                #expect(response.status == .ok)
                let created = try JSONValue.parse(String(buffer: try await response.body.collect(upTo: 1 << 16)))
                let upstreamID = try #require(created["job_id"]?.stringValue)
                try await Task.sleep(for: .milliseconds(300))
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let final = try await daemon.waitFinal(tag)
                    #expect(final["state"]?.stringValue == "succeeded", "\(final["error"] ?? .null)")
                    #expect(final["attempt"]?.intValue == 2)
                    // The copy the dead process created is the one followed.
                    #expect(final["result"]?["upstream_job_id"]?.stringValue == upstreamID)
                }
                #expect(await sim.dreamlook.jobCount(taggedWith: "dreamd_job_id", value: tag) == 1)
            }
        }
    }

    @Test("a submission killed before its callback token was written was never sent: requeued with its attempt back; one killed after is settled first")
    func rescueTellsNeverSentFromMaybeSent() async throws {
        try await TestDatabase.with { db in
            for _ in 0..<3 { _ = try await insertImageGen(db) }
            // Two claims that promise the mark (a daemon with callbacks on), one that does not (callbacks off).
            let marking = try await db.jobs.claim(kinds: [.imageGen], limit: 2, owner: "crashed", leaseDuration: .milliseconds(200),
                                                  markingKinds: [.imageGen])
            let plain = try await db.jobs.claim(kinds: [.imageGen], limit: 1, owner: "crashed", leaseDuration: .milliseconds(200))
            #expect(marking.count == 2 && plain.count == 1)
            // One of the marking claims got as far as its callback token (and so maybe sent); the other did not.
            let (unsent, marked) = (marking[0].job.id, marking[1].job.id)
            _ = try await CallbackStore(client: db.client, logger: db.logger).newToken(jobID: marked, provider: "dreamlook")
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await db.jobs.rescueExpiredLeases() == 3)

            func row(_ id: UUID) async throws -> (String, Int, Bool, Bool, String) {
                let rows = try await db.client.query("""
                    SELECT j.state, j.attempt, j.reconcile_since IS NOT NULL, j.reconcile_hold,
                           (SELECT e.detail->>'submission' FROM job_events e WHERE e.job_id = j.id AND e.actor = 'rescuer')
                    FROM jobs j WHERE j.id = \(id)
                    """, logger: db.logger)
                for try await value in rows.decode((String, Int, Bool, Bool, String).self) { return value }
                throw TestSetupError("no job \(id)")
            }
            let unsentRow = try await row(unsent)
            #expect(unsentRow == ("queued", 0, false, false, "never sent"))
            let markedRow = try await row(marked)
            #expect(markedRow == ("queued", 1, true, true, "outcome unknown"))
            let plainRow = try await row(plain[0].job.id)
            #expect(plainRow == ("queued", 1, true, true, "outcome unknown"))
        }
    }

    @Test("a last attempt killed before its callback token is sent once by the next daemon and succeeds, not failed as unknown")
    func neverSentLastAttemptSentOnce() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                let job = try await insertImageGen(db, maxAttempts: 1)
                let tag = job.id.uuidString.lowercased()
                // A daemon with callbacks claims it and dies before writing the token: nothing reached dreamlook.
                let claimed = try await db.jobs.claim(kinds: [.imageGen], limit: 1, owner: "crashed", leaseDuration: .milliseconds(200),
                                                      markingKinds: [.imageGen])
                #expect(claimed.count == 1)
                try await Task.sleep(for: .milliseconds(300))
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let final = try await daemon.waitFinal(tag)
                    #expect(final["state"]?.stringValue == "succeeded", "\(final["error"] ?? .null)")
                    #expect(final["attempt"]?.intValue == 1)
                }
                #expect(await sim.dreamlook.jobCount(taggedWith: "dreamd_job_id", value: tag) == 1)
            }
        }
    }

    @Test("a listing that cannot be conclusive is not resubmitted: the job waits (submission_unreconciled), then fails submission_unknown")
    func inconclusiveListingWaitsThenFails() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                let job = try await insertImageGen(db)
                let id = job.id.uuidString.lowercased()
                _ = try await db.jobs.claim(kinds: [.imageGen], limit: 1, owner: "crashed", leaseDuration: .milliseconds(100))
                // 60 jobs created after that submission began (by another client of the account) push it out of
                // the 50-job window: its absence proves nothing.
                for index in 0..<60 {
                    var request = HTTPClientRequest(url: sim.baseURL + "/image_gen")
                    request.method = .POST
                    request.headers.add(name: "authorization", value: "Bearer dl-test")
                    request.headers.add(name: "content-type", value: "application/json")
                    request.body = .bytes(ByteBuffer(string: #"{"prompt": "other \#(index)", "num_samples": 1, "width": 512, "height": 512, "base_model": "sd-1.5"}"#))
                    _ = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                }
                try await Task.sleep(for: .milliseconds(200))
                try await withDaemon(database: db, simulator: sim, overrides: ["DREAMD_RECONCILE_DEADLINE": "8s"]) { daemon in
                    let waiting = try await eventually {
                        try await daemon.job(id)["error"]?["code"]?.stringValue == "submission_unreconciled"
                    }
                    #expect(waiting)
                    let final = try await daemon.waitFinal(id, timeout: .seconds(40))
                    #expect(final["state"]?.stringValue == "failed")
                    #expect(final["error"]?["code"]?.stringValue == "submission_unknown")
                }
                #expect(await sim.dreamlook.jobCount(taggedWith: "dreamd_job_id", value: id) == 0)
            }
        }
    }

    @Test("a retried POST /v1/jobs with a known Idempotency-Key gets its job even when the body would no longer validate")
    func idempotentReplayBeforeValidation() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim, overrides: fastRetention) { daemon in
                    let checkpoint = try await daemon.trainCheckpoint()
                    let upstream = try #require(checkpoint["upstream_checkpoint_id"]?.stringValue)
                    let body = #"{"kind": "image_gen", "params": {"prompt": "sks dog", "num_samples": 1, "width": 512, "height": 512, "checkpoint_id": "\#(upstream)"}, "run_at": "2099-01-01T00:00:00Z"}"#
                    let first = try await daemon.submit(body, headers: [("Idempotency-Key", "replay-1")])
                    #expect(first.status == 201)
                    let expiresAt = try #require(jsonDate(checkpoint["expires_at"]))
                    try await Task.sleep(for: .milliseconds(Int64(max(0, expiresAt.timeIntervalSinceNow) * 1000) + 100))
                    // A fresh submission is refused now ...
                    #expect(try await daemon.submit(body).status == 422)
                    // ... but the retried one gets its job back.
                    let replayed = try await daemon.submit(body, headers: [("Idempotency-Key", "replay-1")])
                    #expect(replayed.status == 200)
                    #expect(replayed.json["id"] == first.json["id"])
                    // Another body with the key is still a conflict.
                    #expect(try await daemon.submit(imageGenBody(), headers: [("Idempotency-Key", "replay-1")]).status == 409)
                }
            }
        }
    }

    @Test("a callback that arrives while its job is still submitting waits in the inbox and is applied once the job is running")
    func earlyCallbackApplied() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim, overrides: ["DREAMD_CALLBACKS": "on"]) { daemon in
                    let params = try JSONValue.parse(#"{"prompt": "a", "num_samples": 1, "width": 512, "height": 512, "base_model": "sd-1.5", "dry_run": true}"#)
                    guard case .created(let job) = try await db.jobs.insert(.init(kind: .imageGen, params: params, runAt: Date().addingTimeInterval(3600),
                                                                                  provider: "dreamlook")) else {
                        Issue.record("insert failed"); return
                    }
                    // A worker is mid-submission (the job is leased and `submitting`) when the callback comes. That
                    // worker is this test: a held reconciliation of the kind (a job not due for an hour) keeps the
                    // daemon's own claims off fresh image_gen submissions, while this claim (holding nothing) takes it.
                    try await db.client.rows("""
                        INSERT INTO jobs (id, kind, state, params, run_at, reconcile_since, reconcile_hold)
                        VALUES (gen_random_uuid(), 'image_gen', 'scheduled', '{}', now() + interval '1 hour', now(), true)
                        """, logger: db.logger)
                    try await db.client.rows("UPDATE jobs SET run_at = now() - interval '1 second', state = 'queued' WHERE id = \(job.id)", logger: db.logger)
                    let claimed = try #require(try await db.jobs.claim(kinds: [.imageGen], limit: 1, owner: "slow-worker", leaseDuration: .seconds(60)).first)
                    let token = try await CallbackStore(client: db.client, logger: db.logger).newToken(jobID: job.id, provider: "dreamlook")
                    let payload = #"{"job_id": "TEST_0000beef", "state": "success", "image_gen_results": [{"generated_images": [{"url": "https://example.com/dummy.png"}]}]}"#
                    #expect(try await postCallback("\(daemon.baseURL)/callbacks/dreamlook/\(token)", body: payload) == 202)
                    try await Task.sleep(for: .milliseconds(1500))
                    #expect(try await daemon.job(job.id.uuidString.lowercased())["state"]?.stringValue == "submitting")
                    #expect(try await db.values("SELECT count(*)::int FROM callback_inbox WHERE processed_at IS NULL", as: Int.self) == [1])
                    // The submission's answer is recorded: a dry run, which dreamlook never answers polls for.
                    let write = try db.jobs.outcomeWrite(.running(upstreamJobID: "TEST_0000beef", upstreamState: "queued", nextCheck: Date().addingTimeInterval(600)),
                                                         for: claimed, provider: "dreamlook", backoff: .jobRetry)
                    #expect(try await db.jobs.recordBatch([write])[job.id] == .running)
                    let final = try await daemon.waitFinal(job.id.uuidString.lowercased(), timeout: .seconds(20))
                    #expect(final["state"]?.stringValue == "succeeded")
                    #expect(final["result"]?["dry_run"]?.boolValue == true)
                    #expect(try await db.values("SELECT count(*)::int FROM callback_inbox WHERE processed_at IS NULL", as: Int.self) == [0])
                }
            }
        }
    }

    /// Inserts a queued dreamlook `image_gen` job with the smallest body the simulator takes.
    private func insertImageGen(_ db: TestDatabase, maxAttempts: Int = 5) async throws -> Job {
        let params = try JSONValue.parse(#"{"prompt": "a", "num_samples": 1, "width": 512, "height": 512, "base_model": "sd-1.5"}"#)
        guard case .created(let job) = try await db.jobs.insert(.init(kind: .imageGen, params: params, maxAttempts: maxAttempts,
                                                                      provider: "dreamlook")) else {
            throw TestSetupError("the image_gen job was not created")
        }
        return job
    }
}
