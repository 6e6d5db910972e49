import DreamdCore
import DreamdSim
import Foundation
import Testing

@Suite("dreamlook upstream", .hangGuard)
struct DreamlookUpstreamTests {
    @Test("503s on submit are retried to success, and the job exists upstream exactly once")
    func serverErrorsRetried() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    await sim.dreamlook.forceNext(statuses: [503, 503])
                    let id = try #require(try await daemon.submit(imageGenBody()).json["id"]?.stringValue)
                    let job = try await daemon.waitFinal(id)
                    #expect(job["state"]?.stringValue == "succeeded")
                    #expect((job["attempt"]?.intValue ?? 0) >= 2)
                    #expect(await sim.dreamlook.jobCount(taggedWith: "dreamd_job_id", value: id) == 1)
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
