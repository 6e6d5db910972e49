import DreamdCore
import DreamdSim
import Foundation
import Testing

@Suite("dreamlook upstream", .hangGuard)
struct DreamlookUpstreamTests {
    @Test("a 503 on submit is settled by a lookup before it is sent again; a failed lookup holds and asks again")
    func serverErrorsRetried() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    // The POST answers 503 (nothing created), then the in-claim lookup answers 503 too.
                    await sim.dreamlook.forceNext(statuses: [503, 503])
                    let id = try #require(try await daemon.submit(imageGenBody()).json["id"]?.stringValue)
                    let job = try await daemon.waitFinal(id)
                    #expect(job["state"]?.stringValue == "succeeded")
                    #expect(await sim.dreamlook.jobCount(taggedWith: "dreamd_job_id", value: id) == 1)
                    let events = try await daemon.request(.GET, "/v1/jobs/\(id)/events").json["data"]?.arrayValue ?? []
                    let waiting = try #require(events.first { $0["to_state"]?.stringValue == "scheduled" })
                    #expect(waiting["detail"]?["reconciling"]?["code"]?.stringValue == "submission_unreconciled")
                    #expect(waiting["detail"]?["hold_submissions"]?.boolValue == true)
                    // Waiting on a reconciliation used no attempt: the one submission that went through was attempt 1.
                    #expect(job["attempt"]?.intValue == 1)
                }
            }
        }
    }

    @Test("a submit that created the job but answered 503 is adopted, not sent twice")
    func unknownOutcomeAdopted() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    var faults = SimulatorFaults()
                    faults.createThenFailRate = 1
                    await sim.dreamlook.setFaults(faults)
                    let id = try #require(try await daemon.submit(imageGenBody()).json["id"]?.stringValue)
                    let adopted = try await eventually {
                        try await daemon.job(id)["state"]?.stringValue == "running"
                    }
                    #expect(adopted)
                    await sim.dreamlook.setFaults(SimulatorFaults())
                    let job = try await daemon.waitFinal(id)
                    #expect(job["state"]?.stringValue == "succeeded")
                    #expect(await sim.dreamlook.jobCount(taggedWith: "dreamd_job_id", value: id) == 1)
                    let details = try await daemon.request(.GET, "/v1/jobs/\(id)/events").json["data"]?.arrayValue ?? []
                    #expect(details.contains { $0["detail"]?["detail"]?["submission"]?.stringValue == "adopted" })
                }
            }
        }
    }

    @Test("429 with Retry-After is retried after the hint")
    func rateLimited() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    await sim.dreamlook.forceNext(statuses: [429])
                    let id = try #require(try await daemon.submit(imageGenBody()).json["id"]?.stringValue)
                    let job = try await daemon.waitFinal(id)
                    #expect(job["state"]?.stringValue == "succeeded")
                    let events = try await daemon.request(.GET, "/v1/jobs/\(id)/events").json["data"]?.arrayValue ?? []
                    let retry = try #require(events.first { $0["to_state"]?.stringValue == "scheduled" })
                    #expect(retry["detail"]?["error"]?["code"]?.stringValue == "upstream_rate_limited")
                    #expect((retry["detail"]?["retry_in_ms"]?.doubleValue ?? 0) >= 1000)
                }
            }
        }
    }

    @Test("401 from the upstream is final with a clear error, after one attempt")
    func unauthorizedIsFinal() async throws {
        try await TestDatabase.with { db in
            try await withSimulator(dreamlookKey: "dl-right") { sim in
                try await withDaemon(database: db, simulator: sim, overrides: ["DREAMLOOK_API_KEY": "dl-wrong"]) { daemon in
                    let id = try #require(try await daemon.submit(imageGenBody()).json["id"]?.stringValue)
                    let job = try await daemon.waitFinal(id)
                    #expect(job["state"]?.stringValue == "failed")
                    #expect(job["attempt"]?.intValue == 1)
                    #expect(job["error"]?["code"]?.stringValue == "upstream_unauthorized")
                    #expect(job["error"]?["message"]?.stringValue?.contains("401") == true)
                }
            }
        }
    }

    @Test("a dreamlook failure fails the job with its failure_reason")
    func upstreamFailure() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    var faults = SimulatorFaults()
                    faults.jobFailureRate = 1
                    await sim.dreamlook.setFaults(faults)
                    let id = try #require(try await daemon.submit(imageGenBody()).json["id"]?.stringValue)
                    let job = try await daemon.waitFinal(id)
                    #expect(job["state"]?.stringValue == "failed")
                    #expect(job["error"]?["code"]?.stringValue == "upstream_job_failed")
                    #expect(job["error"]?["message"]?.stringValue?.contains("diverged") == true)
                    #expect(job["upstream"]?["state"]?.stringValue == "failure")
                }
            }
        }
    }

    @Test("polls back off while the upstream job runs")
    func pollBackoff() async throws {
        try await TestDatabase.with { db in
            try await withSimulator(queueTime: .seconds(2), runTime: .seconds(3)) { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let id = try #require(try await daemon.submit(imageGenBody()).json["id"]?.stringValue)
                    let job = try await daemon.waitFinal(id)
                    #expect(job["state"]?.stringValue == "succeeded")
                    // 5 s of upstream work, first poll after 100 ms growing to 300 ms: far fewer polls than 50.
                    let polls = try await db.values("SELECT poll_count FROM jobs", as: Int.self).first ?? 0
                    #expect(polls >= 3 && polls <= 40, "polled \(polls) times")
                }
            }
        }
    }
}
