import DreamdCore
import DreamdSim
import Foundation
import Testing

extension DreamEnginesTests {
    @Suite("Predict errors and upstream health")
    struct PredictErrorTests {
        @Test("429, 502, 503 and 504 are retried by the client; the job succeeds on its first attempt", arguments: [429, 502, 503, 504])
        func transientRetried(status: Int) async throws {
            try await withPredictDaemon { daemon, sim, _, _ in
                await sim.dreamEngines.forceNext(statuses: [status])
                let id = try #require(try await daemon.submit(PredictFixtures.predictBody()).json["id"]?.stringValue)
                let job = try await daemon.waitFinal(id)
                #expect(job["state"]?.stringValue == "succeeded", "\(job)")
                #expect(job["attempt"]?.intValue == 1)
                #expect(await sim.dreamEngines.requests("rollouts") == 2)
                #expect(await sim.dreamEngines.charges == 1)
            }
        }

        @Test("transient errors beyond the client's tries go back to the queue with backoff")
        func transientToQueue() async throws {
            try await withPredictDaemon { daemon, sim, _, _ in
                await sim.dreamEngines.forceNext(statuses: [503, 502, 504])
                let id = try #require(try await daemon.submit(PredictFixtures.predictBody()).json["id"]?.stringValue)
                let job = try await daemon.waitFinal(id)
                #expect(job["state"]?.stringValue == "succeeded", "\(job)")
                #expect(job["attempt"]?.intValue == 2)
                let events = try await daemon.request(.GET, "/v1/jobs/\(id)/events").json["data"]?.arrayValue ?? []
                let retry = try #require(events.first { $0["to_state"]?.stringValue == "scheduled" })
                #expect(retry["detail"]?["error"]?["code"]?.stringValue == "upstream_unavailable")
            }
        }

        @Test("500, 400, 415, 422 and 404 (model) are final after one request",
              arguments: [(500, "upstream_server_error"), (400, "upstream_invalid_request"), (415, "upstream_invalid_request"),
                          (422, "upstream_invalid_request"), (404, "upstream_not_found")])
        func finalErrors(status: Int, code: String) async throws {
            try await withPredictDaemon { daemon, sim, _, _ in
                await sim.dreamEngines.forceNext(statuses: [status])
                let id = try #require(try await daemon.submit(PredictFixtures.predictBody()).json["id"]?.stringValue)
                let job = try await daemon.waitFinal(id)
                #expect(job["state"]?.stringValue == "failed")
                #expect(job["attempt"]?.intValue == 1)
                #expect(job["error"]?["code"]?.stringValue == code)
                #expect(job["error"]?["message"]?.stringValue?.contains("\(status)") == true)
                #expect(await sim.dreamEngines.requests("rollouts") == 1)
                #expect(await sim.dreamEngines.requests("predict") == 0)
                #expect(await sim.dreamEngines.charges == 0)
            }
        }

        @Test("401 and 403 are final and mark the upstream unhealthy until a call succeeds", arguments: [401, 403])
        func authFailures(status: Int) async throws {
            try await withPredictDaemon { daemon, sim, _, _ in
                await sim.dreamEngines.forceNext(statuses: [status])
                let id = try #require(try await daemon.submit(PredictFixtures.predictBody()).json["id"]?.stringValue)
                let job = try await daemon.waitFinal(id)
                #expect(job["state"]?.stringValue == "failed")
                #expect(job["error"]?["code"]?.stringValue == (status == 401 ? "upstream_unauthorized" : "upstream_forbidden"))
                let upstreams = try await daemon.request(.GET, "/v1/upstreams").json["data"]?.arrayValue ?? []
                let dream = try #require(upstreams.first { $0["name"]?.stringValue == "dream" })
                #expect(dream["state"]?.stringValue == "unhealthy")
                #expect(dream["reason"]?.stringValue?.contains("\(status)") == true)
                let ready = try await daemon.request(.GET, "/readyz", token: "")
                #expect(ready.status == 200)
                #expect(ready.json["checks"]?["upstream.dream"]?["detail"]?.stringValue?.hasPrefix("unhealthy") == true)
                // The next success clears it.
                let next = try #require(try await daemon.submit(PredictFixtures.predictBody()).json["id"]?.stringValue)
                #expect(try await daemon.waitFinal(next)["state"]?.stringValue == "succeeded")
                let after = try await daemon.request(.GET, "/v1/upstreams").json["data"]?.arrayValue ?? []
                #expect(after.first { $0["name"]?.stringValue == "dream" }?["state"]?.stringValue == "healthy")
            }
        }

        @Test("402 pauses Dream Engines dispatch; jobs stay queued without using attempts; resume runs them")
        func insufficientCreditsPause() async throws {
            try await withPredictDaemon { daemon, sim, db, _ in
                await sim.dreamEngines.setBalance(mils: 0)
                var ids: [String] = []
                for seed in 0..<3 {
                    ids.append(try #require(try await daemon.submit(PredictFixtures.predictBody(extra: ["seed": .number(Double(seed))])).json["id"]?.stringValue))
                }
                let paused = try await eventually {
                    let upstreams = try await daemon.request(.GET, "/v1/upstreams").json["data"]?.arrayValue ?? []
                    return upstreams.first { $0["name"]?.stringValue == "dream" }?["state"]?.stringValue == "paused"
                }
                #expect(paused)
                // Give the worker time: nothing more is sent while paused, and nothing is lost.
                try await Task.sleep(for: .seconds(1))
                let requestsWhilePaused = await sim.dreamEngines.requests("rollouts")
                try await Task.sleep(for: .seconds(1))
                #expect(await sim.dreamEngines.requests("rollouts") == requestsWhilePaused)
                #expect(requestsWhilePaused <= 3)
                let states = try await db.values("SELECT state || ':' || attempt FROM jobs ORDER BY created_at", as: String.self)
                #expect(states == ["queued:0", "queued:0", "queued:0"])
                #expect(await sim.dreamEngines.charges == 0)
                let upstreams = try await daemon.request(.GET, "/v1/upstreams").json["data"]?.arrayValue ?? []
                let dream = try #require(upstreams.first { $0["name"]?.stringValue == "dream" })
                #expect(dream["paused_until"]?.stringValue != nil)
                #expect(dream["reason"]?.stringValue?.contains("402") == true)
                let ready = try await daemon.request(.GET, "/readyz", token: "")
                #expect(ready.status == 200)
                #expect(ready.json["checks"]?["upstream.dream"]?["detail"]?.stringValue?.hasPrefix("paused until") == true)
                let events = try await daemon.request(.GET, "/v1/jobs/\(ids[0])/events").json["data"]?.arrayValue ?? []
                #expect(events.contains { $0["to_state"]?.stringValue == "queued" && $0["detail"]?["deferred"]?["code"]?.stringValue == "upstream_insufficient_credits" })
                // Credits topped up; resume.
                await sim.dreamEngines.setBalance(mils: nil)
                let resumed = try await daemon.request(.POST, "/v1/upstreams/dream/resume")
                #expect(resumed.status == 200)
                #expect(resumed.json["was_paused"] == true)
                for id in ids {
                    let job = try await daemon.waitFinal(id)
                    #expect(job["state"]?.stringValue == "succeeded")
                    #expect(job["attempt"]?.intValue == 1)
                }
                #expect(await sim.dreamEngines.charges == 3)
            }
        }

        @Test("the pause lifts by itself after the cool-down")
        func pauseCooldown() async throws {
            try await withPredictDaemon(["DREAMD_DREAM_PAUSE_COOLDOWN": "1s"]) { daemon, sim, _, _ in
                await sim.dreamEngines.forceNext(statuses: [402])
                let id = try #require(try await daemon.submit(PredictFixtures.predictBody()).json["id"]?.stringValue)
                let job = try await daemon.waitFinal(id)
                #expect(job["state"]?.stringValue == "succeeded")
                #expect(job["attempt"]?.intValue == 1)
                #expect(await sim.dreamEngines.requests("rollouts") == 2)
            }
        }

        @Test("a 402 met by one process pauses every process on the database; a resume through another lifts it everywhere")
        func pauseIsShared() async throws {
            try await TestDatabase.with { db in
                try await withSimulator { sim in
                    await sim.dreamEngines.setTiming(coldStart: .zero, rolloutTime: .milliseconds(50))
                    try await withDataDirectory { data in
                        let overrides = predictOverrides(sim, dataDirectory: data)
                        try await withDaemon(database: db, simulator: sim, overrides: overrides) { first in
                            try await withDaemon(database: db, simulator: sim, overrides: overrides) { second in
                                @Sendable func dream(_ daemon: RunningDaemon) async throws -> String? {
                                    let upstreams = try await daemon.request(.GET, "/v1/upstreams").json["data"]?.arrayValue ?? []
                                    return upstreams.first { $0["name"]?.stringValue == "dream" }?["state"]?.stringValue
                                }
                                _ = try await first.request(.GET, "/v1/models")
                                _ = try await second.request(.GET, "/v1/models")
                                await sim.dreamEngines.setBalance(mils: 0)
                                let id = try #require(try await first.submit(PredictFixtures.predictBody()).json["id"]?.stringValue)
                                let bothPaused = try await eventually {
                                    let states = (try await dream(first), try await dream(second))
                                    return states == ("paused", "paused")
                                }
                                #expect(bothPaused)
                                #expect(try await eventually {
                                    try await db.values("SELECT count(*)::int FROM upstream_pauses WHERE upstream = 'dream'", as: Int.self) == [1]
                                })
                                // Neither process sends anything while paused; the job waits, queued. (A step the
                                // second process claimed before the pause reached it may still be finishing.)
                                try await Task.sleep(for: .milliseconds(500))
                                let sent = await sim.dreamEngines.requests("rollouts")
                                #expect(sent <= 2)
                                try await Task.sleep(for: .milliseconds(1500))
                                #expect(await sim.dreamEngines.requests("rollouts") == sent)
                                #expect(try await db.values("SELECT state FROM jobs", as: String.self) == ["queued"])

                                await sim.dreamEngines.setBalance(mils: nil)
                                let resumed = try await second.request(.POST, "/v1/upstreams/dream/resume")
                                #expect(resumed.status == 200)
                                #expect(resumed.json["was_paused"] == true)
                                let bothHealthy = try await eventually {
                                    let states = (try await dream(first), try await dream(second))
                                    return states == ("healthy", "healthy")
                                }
                                #expect(bothHealthy)
                                #expect(try await db.values("SELECT count(*)::int FROM upstream_pauses", as: Int.self) == [0])
                                #expect(try await first.waitFinal(id)["state"]?.stringValue == "succeeded")
                            }
                        }
                    }
                }
            }
        }

        @Test("at most DREAMD_DREAM_MAX_IN_FLIGHT rollouts run at once; the rest wait in the queue")
        func inFlightCap() async throws {
            try await withPredictDaemon(["DREAMD_DREAM_MAX_IN_FLIGHT": "2"], rolloutTime: .seconds(1)) { daemon, sim, _, _ in
                var ids: [String] = []
                for seed in 0..<6 {
                    ids.append(try #require(try await daemon.submit(PredictFixtures.predictBody(extra: ["seed": .number(Double(seed))])).json["id"]?.stringValue))
                }
                let sawQueued = try await eventually(timeout: .seconds(20)) {
                    let upstreams = try await daemon.request(.GET, "/v1/upstreams").json["data"]?.arrayValue ?? []
                    return upstreams.first { $0["name"]?.stringValue == "dream" }?["in_flight"]?.intValue == 2
                }
                #expect(sawQueued)
                for id in ids { #expect(try await daemon.waitFinal(id)["state"]?.stringValue == "succeeded") }
                #expect(await sim.dreamEngines.maxConcurrentRollouts == 2)
            }
        }

        @Test("a job deferred by its executor goes back to queued and gets its attempt back")
        func deferredOutcome() async throws {
            try await TestDatabase.with { db in
                guard case .created(let job) = try await db.jobs.insert(.init(kind: "predict", params: [:], maxAttempts: 1)) else {
                    Issue.record("not created")
                    return
                }
                let claimed = try await db.jobs.claim(kinds: ["predict"], limit: 1, owner: "w1", leaseDuration: .seconds(30))
                #expect(claimed.first?.job.attempt == 1)
                let reason = JobError(code: "upstream_insufficient_credits", message: "402")
                let recorded = try await db.jobs.record(.deferred(until: nil, reason: reason), for: try #require(claimed.first), provider: "dream",
                                                        owner: "w1", backoff: .jobRetry)
                #expect(recorded?.state == .queued)
                #expect(recorded?.attempt == 0)
                #expect(recorded?.error == reason)
                // With max_attempts 1 it can still run: the deferral used no attempt.
                let again = try await db.jobs.claim(kinds: ["predict"], limit: 1, owner: "w1", leaseDuration: .seconds(30))
                #expect(again.first?.job.id == job.id && again.first?.job.attempt == 1)
                let later = Date().addingTimeInterval(60)
                let scheduled = try await db.jobs.record(.deferred(until: later, reason: reason), for: try #require(again.first), provider: "dream",
                                                         owner: "w1", backoff: .jobRetry)
                #expect(scheduled?.state == .scheduled)
                #expect(abs((scheduled?.runAt.timeIntervalSince(later) ?? 99)) < 1)
                let trail = try await db.values("SELECT coalesce(from_state, '-') || '>' || to_state FROM job_events ORDER BY id", as: String.self)
                #expect(trail == ["->queued", "queued>submitting", "submitting>queued", "queued>submitting", "submitting>scheduled"])
            }
        }
    }
}
