import DreamdCore
import DreamdStore
import Foundation
import PostgresNIO
import Testing

/// The database enforces `JobState.transitions`, for every writer.
@Suite("Job state machine", .hangGuard)
struct JobStateMachineTests {
    @Test("job_transitions holds exactly JobState.transitions")
    func tableMatchesSwift() async throws {
        try await TestDatabase.with { db in
            var stored: Set<String> = []
            for (from, to) in try await db.client.rows("SELECT from_state, to_state FROM job_transitions", logger: db.logger)
                .decode((String, String).self) {
                stored.insert("\(from)->\(to)")
            }
            var swift: Set<String> = []
            for from in JobState.allCases {
                for to in JobState.allCases where from.canTransition(to: to) { swift.insert("\(from.rawValue)->\(to.rawValue)") }
            }
            #expect(stored == swift)
        }
    }

    @Test("an illegal UPDATE from psql is refused with a clear error; a legal one is audited")
    func illegalRefusedLegalAudited() async throws {
        try await TestDatabase.with { db in
            guard case .created(let job) = try await db.jobs.insert(.init(kind: "test_noop", params: [:])) else { return }
            do {
                try await db.client.query("UPDATE jobs SET state = 'succeeded' WHERE id = \(job.id)", logger: db.logger)
                Issue.record("queued -> succeeded was accepted")
            } catch let error as PSQLError {
                #expect(error.serverInfo?[.sqlState] == "23514")
                let message = error.serverInfo?[.message] ?? ""
                #expect(message.contains("illegal job state transition queued -> succeeded"))
                #expect(message.contains(job.id.uuidString.lowercased()))
            }
            // Nothing of the refused statement remains.
            #expect(try await db.jobs.job(id: job.id)?.state == .queued)
            #expect(try await db.jobs.events(jobID: job.id).count == 1)
            // One bad row refuses the whole statement.
            guard case .created(let other) = try await db.jobs.insert(.init(kind: "test_noop", params: [:])) else { return }
            try await db.client.query("UPDATE jobs SET state = 'cancelled' WHERE id = \(other.id)", logger: db.logger)
            // (queued → submitting is allowed for `job`, cancelled → submitting is not for `other`.)
            await #expect(throws: PSQLError.self) {
                try await db.client.query("UPDATE jobs SET state = 'submitting' WHERE id IN (\(job.id), \(other.id))", logger: db.logger)
            }
            #expect(try await db.jobs.job(id: job.id)?.state == .queued)
            // A legal move by a person is audited with their role, and a final one reaches the outbox.
            try await db.client.query("UPDATE jobs SET state = 'scheduled', run_at = now() + interval '1 hour' WHERE id = \(job.id)", logger: db.logger)
            try await db.client.query("UPDATE jobs SET state = 'cancelled' WHERE id = \(job.id)", logger: db.logger)
            let trail = try await db.jobs.events(jobID: job.id).map { "\($0.actor):\($0.fromState?.rawValue ?? "-")->\($0.toState.rawValue)" }
            let role = "sql:\(db.url.user)"
            #expect(trail == ["api:-->queued", "\(role):queued->scheduled", "\(role):scheduled->cancelled"])
            let outbox = try await db.values("SELECT type FROM events WHERE payload->'data'->>'id' = \(job.id.uuidString.lowercased())", as: String.self)
            #expect(outbox == ["job.cancelled"])
            // An update that changes no state is not a move and writes no audit row.
            try await db.client.query("UPDATE jobs SET metadata = '{\"note\": 1}' WHERE id = \(job.id)", logger: db.logger)
            #expect(try await db.jobs.events(jobID: job.id).count == 3)
        }
    }
}
