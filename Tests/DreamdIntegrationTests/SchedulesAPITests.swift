import DreamdCore
import DreamdSim
import DreamdStore
import Foundation
import Testing

let validJob = #"{"kind": "image_gen", "params": {"prompt": "a watercolor fox", "num_samples": 1, "width": 512, "height": 512, "base_model": "sd-1.5"}}"#

/// A valid schedule body with an `image_gen` job template.
func scheduleBody(name: String = "nightly foxes", cron: String = "30 2 * * *", extra: String = "") -> String {
    #"{"name": "\#(name)", "cron": "\#(cron)", "job": \#(validJob)\#(extra)}"#
}

@Suite("Schedules API", .hangGuard, .serialized)
struct SchedulesAPITests {
    @Test("create, list, get, update, preview and delete a schedule")
    func lifecycle() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let created = try await daemon.request(.POST, "/v1/schedules", body: scheduleBody(extra: #", "timezone": "America/New_York""#))
                    #expect(created.status == 201)
                    let schedule = created.json
                    let id = try #require(schedule["id"]?.stringValue)
                    #expect(schedule["name"]?.stringValue == "nightly foxes")
                    #expect(schedule["cron"]?.stringValue == "30 2 * * *")
                    #expect(schedule["timezone"]?.stringValue == "America/New_York")
                    #expect(schedule["overlap"]?.stringValue == "skip")
                    #expect(schedule["catch_up"]?.stringValue == "one")
                    #expect(schedule["enabled"]?.boolValue == true)
                    #expect(schedule["last_fired_at"] == .null)
                    #expect(schedule["job"]?["kind"]?.stringValue == "image_gen")
                    #expect(schedule["job"]?["priority"]?.intValue == 0)
                    #expect(schedule["job"]?["max_attempts"]?.intValue == 5)
                    #expect(schedule["job"]?["metadata"] == .object([:]))
                    let next = try #require(schedule["next_fire_at"]?.stringValue.flatMap(DreamdJSON.parseDate))
                    let newYork = try ScheduleSpec.timeZone(named: "America/New_York")
                    #expect(ScheduleSpec.localTime(next, in: newYork).contains("T02:30:00-0"))
                    for key in ["id", "name", "cron", "timezone", "job", "overlap", "catch_up", "enabled", "next_fire_at", "last_fired_at", "created_at", "updated_at"] {
                        #expect(schedule[key] != nil, "missing \(key)")
                    }

                    let list = try await daemon.request(.GET, "/v1/schedules")
                    #expect(list.status == 200)
                    #expect(list.json["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [id])
                    #expect(list.json["next_cursor"] == .null)

                    let fetched = try await daemon.request(.GET, "/v1/schedules/\(id)")
                    #expect(fetched.status == 200)
                    #expect(fetched.json["recent_runs"] == .array([]))
                    #expect(fetched.json["next_fire_at"] == schedule["next_fire_at"])

                    // Disable: no next fire time; enable with another expression: recomputed.
                    let disabled = try await daemon.request(.PATCH, "/v1/schedules/\(id)", body: #"{"enabled": false}"#)
                    #expect(disabled.status == 200)
                    #expect(disabled.json["enabled"]?.boolValue == false)
                    #expect(disabled.json["next_fire_at"] == .null)
                    #expect(try await daemon.request(.GET, "/v1/schedules?enabled=true").json["data"] == .array([]))
                    let enabled = try await daemon.request(.PATCH, "/v1/schedules/\(id)",
                                                           body: #"{"enabled": true, "cron": "@every 10m", "overlap": "allow", "catch_up": "all", "name": "ten"}"#)
                    #expect(enabled.status == 200)
                    #expect(enabled.json["cron"]?.stringValue == "@every 10m")
                    #expect(enabled.json["overlap"]?.stringValue == "allow")
                    #expect(enabled.json["catch_up"]?.stringValue == "all")
                    #expect(enabled.json["name"]?.stringValue == "ten")
                    let tenMinutes = try #require(enabled.json["next_fire_at"]?.stringValue.flatMap(DreamdJSON.parseDate))
                    #expect(tenMinutes.timeIntervalSince1970.truncatingRemainder(dividingBy: 600) == 0)
                    #expect(tenMinutes > Date() && tenMinutes <= Date().addingTimeInterval(601))

                    let preview = try await daemon.request(.GET, "/v1/schedules/\(id)/preview?count=3")
                    #expect(preview.status == 200)
                    let times = preview.json["data"]?.arrayValue?.compactMap { $0["at"]?.stringValue.flatMap(DreamdJSON.parseDate) } ?? []
                    #expect(times.count == 3)
                    #expect(try #require(times.first) >= tenMinutes)
                    #expect(zip(times, times.dropFirst()).allSatisfy { $1.timeIntervalSince($0) == 600 })
                    let local = preview.json["data"]?.arrayValue?.first?["local"]?.stringValue ?? ""
                    #expect(local.hasSuffix("-05:00") || local.hasSuffix("-04:00"), "\(local)")
                    #expect(try await daemon.request(.GET, "/v1/schedules/\(id)/preview?count=0").status == 400)

                    let deleted = try await daemon.request(.DELETE, "/v1/schedules/\(id)")
                    #expect(deleted.status == 204)
                    #expect(try await daemon.request(.GET, "/v1/schedules/\(id)").status == 404)
                    #expect(try await daemon.request(.DELETE, "/v1/schedules/\(id)").status == 404)
                    #expect(try await daemon.request(.PATCH, "/v1/schedules/\(id)", body: #"{"enabled": true}"#).status == 404)
                    #expect(try await daemon.request(.GET, "/v1/schedules/not-a-uuid").status == 404)
                }
            }
        }
    }

    /// Bodies the API refuses with 422, and the field it names.
    static let invalidBodies: [(String, String)] = [
        (scheduleBody(cron: "61 * * * *"), "cron"),
        (scheduleBody(cron: "* * * *"), "cron"),
        (scheduleBody(cron: "@every 0s"), "cron"),
        (scheduleBody(cron: "@fortnightly"), "cron"),
        (scheduleBody(cron: "0 0 30 2 *"), "cron"),
        (scheduleBody(extra: #", "timezone": "Mars/Olympus_Mons""#), "timezone"),
        (scheduleBody(extra: #", "timezone": 5"#), "timezone"),
        (scheduleBody(extra: #", "overlap": "queue""#), "overlap"),
        (scheduleBody(extra: #", "catch_up": "some""#), "catch_up"),
        (scheduleBody(extra: #", "enabled": "yes""#), "enabled"),
        (scheduleBody(extra: #", "colour": "blue""#), "colour"),
        (scheduleBody(extra: #", "timezone": null"#), "timezone"),
        (scheduleBody(name: ""), "name"),
        (#"{"cron": "@daily", "job": \#(validJob)}"#, "name"),
        (#"{"name": "x", "job": \#(validJob)}"#, "cron"),
        (#"{"name": "x", "cron": "@daily"}"#, "job"),
        (#"{"name": "x", "cron": "@daily", "job": []}"#, "job"),
        (#"{"name": "x", "cron": "@daily", "job": {"kind": "image_gen", "params": {"prompt": "p", "num_samples": 500, "width": 512, "height": 512, "base_model": "sd-1.5"}}}"#, "job.params.num_samples"),
        (#"{"name": "x", "cron": "@daily", "job": {"kind": "teleport", "params": {}}}"#, "job.kind"),
        (#"{"name": "x", "cron": "@daily", "job": {"kind": "predict", "params": {}}}"#, "job.params.model"),
        (#"{"name": "x", "cron": "@daily", "job": {"kind": "image_gen"}}"#, "job.params"),
        (#"{"name": "x", "cron": "@daily", "job": {"kind": "image_gen", "params": {}, "run_at": "2030-01-01T00:00:00Z"}}"#, "job.run_at"),
        (#"{"name": "x", "cron": "@daily", "job": {"kind": "image_gen", "params": {"prompt": "p", "num_samples": 1, "width": 512, "height": 512, "base_model": "sd-1.5"}, "priority": 1000}}"#, "job.priority"),
    ]

    @Test("invalid schedules are refused with 422 naming the field")
    func invalid() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    for (body, field) in Self.invalidBodies {
                        let answer = try await daemon.request(.POST, "/v1/schedules", body: body)
                        #expect(answer.status == 422, "\(body) → \(answer.status) \(answer.json)")
                        #expect(answer.json["error"]?["details"]?["field"]?.stringValue == field, "\(body) → \(answer.json)")
                        #expect(answer.json["error"]?["message"]?.stringValue?.isEmpty == false)
                    }
                    let badCron = try await daemon.request(.POST, "/v1/schedules", body: scheduleBody(cron: "0 25 * * *"))
                    #expect(badCron.json["error"]?["code"]?.stringValue == "invalid_schedule")
                    #expect(badCron.json["error"]?["message"]?.stringValue?.contains("hour field: 25 is out of range 0-23") == true)
                    #expect(try await daemon.request(.POST, "/v1/schedules", body: "{not json").status == 400)
                    #expect(try await daemon.request(.POST, "/v1/schedules", body: "[1]").status == 400)
                    #expect(try await daemon.request(.GET, "/v1/schedules?limit=0").status == 400)
                    #expect(try await daemon.request(.GET, "/v1/schedules?enabled=maybe").status == 400)
                    #expect(try await daemon.request(.GET, "/v1/schedules", token: "wrong").status == 401)

                    // A refused update changes nothing.
                    let created = try await daemon.request(.POST, "/v1/schedules", body: scheduleBody())
                    let id = try #require(created.json["id"]?.stringValue)
                    let refused = try await daemon.request(.PATCH, "/v1/schedules/\(id)", body: #"{"cron": "0 0 * * 9", "name": "changed"}"#)
                    #expect(refused.status == 422)
                    #expect(refused.json["error"]?["details"]?["field"]?.stringValue == "cron")
                    let unchanged = try await daemon.request(.GET, "/v1/schedules/\(id)")
                    #expect(unchanged.json["name"]?.stringValue == "nightly foxes")
                    #expect(unchanged.json["cron"]?.stringValue == "30 2 * * *")
                    #expect(try await daemon.request(.PATCH, "/v1/schedules/\(id)", body: #"{"timezone": "Nowhere/City"}"#).json["error"]?["details"]?["field"]?.stringValue == "timezone")
                }
            }
        }
    }

    @Test("trigger creates a job now; it runs, shows in recent_runs and the schedule_id filter, and outlives the schedule")
    func triggerAndRuns() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let created = try await daemon.request(.POST, "/v1/schedules", body: scheduleBody(extra: #", "enabled": false"#))
                    let id = try #require(created.json["id"]?.stringValue)
                    let triggered = try await daemon.request(.POST, "/v1/schedules/\(id)/trigger")
                    #expect(triggered.status == 201)
                    #expect(triggered.json["schedule_id"]?.stringValue == id)
                    #expect(triggered.json["kind"]?.stringValue == "image_gen")
                    let jobID = try #require(triggered.json["id"]?.stringValue)
                    let job = try await daemon.waitFinal(jobID)
                    #expect(job["state"]?.stringValue == "succeeded")

                    let schedule = try await daemon.request(.GET, "/v1/schedules/\(id)").json
                    let runs = schedule["recent_runs"]?.arrayValue ?? []
                    #expect(runs.count == 1)
                    #expect(runs.first?["job_id"]?.stringValue == jobID)
                    #expect(runs.first?["state"]?.stringValue == "succeeded")
                    #expect(runs.first?["finished_at"]?.stringValue != nil)
                    #expect(runs.first?["scheduled_for"]?.stringValue != nil)
                    #expect(runs.first?["cost_usd"] != nil)
                    #expect(schedule["last_fired_at"] == runs.first?["scheduled_for"])

                    let listed = try await daemon.request(.GET, "/v1/jobs?schedule_id=\(id)").json["data"]?.arrayValue ?? []
                    #expect(listed.compactMap { $0["id"]?.stringValue } == [jobID])
                    let trail = try await daemon.request(.GET, "/v1/jobs/\(jobID)/events").json["data"]?.arrayValue ?? []
                    #expect(trail.first?["actor"]?.stringValue == "api")
                    #expect(trail.first?["detail"]?["trigger"]?.stringValue == "manual")

                    #expect(try await daemon.request(.DELETE, "/v1/schedules/\(id)").status == 204)
                    #expect(try await daemon.job(jobID)["schedule_id"]?.stringValue == id)
                    #expect(try await daemon.request(.POST, "/v1/schedules/\(id)/trigger").status == 404)
                }
            }
        }
    }

    @Test("the daemon's scheduler runs an @every schedule created through the API to completion")
    func daemonFiresSchedule() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim, overrides: ["DREAMD_SCHEDULER_INTERVAL": "100ms"]) { daemon in
                    let created = try await daemon.request(.POST, "/v1/schedules", body: scheduleBody(cron: "@every 1s", extra: #", "overlap": "allow""#))
                    #expect(created.status == 201)
                    let id = try #require(created.json["id"]?.stringValue)
                    let fired = try await eventually(timeout: .seconds(20)) {
                        let runs = try await daemon.request(.GET, "/v1/schedules/\(id)").json["recent_runs"]?.arrayValue ?? []
                        return runs.contains { $0["state"]?.stringValue == "succeeded" }
                    }
                    #expect(fired)
                    #expect(try await daemon.request(.PATCH, "/v1/schedules/\(id)", body: #"{"enabled": false}"#).status == 200)
                    let schedule = try await daemon.request(.GET, "/v1/schedules/\(id)").json
                    #expect(schedule["last_fired_at"]?.stringValue != nil)
                    let ticks = (schedule["recent_runs"]?.arrayValue ?? []).compactMap { $0["scheduled_for"]?.stringValue }
                    #expect(Set(ticks).count == ticks.count)
                }
            }
        }
    }
}
