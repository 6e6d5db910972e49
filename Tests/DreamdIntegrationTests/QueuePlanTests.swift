import DreamdCore
@testable import DreamdStore
import Foundation
import Logging
import PostgresNIO
import Testing

/// The queue's hot statements keep a shape whose cost grows with the batch, not with the batch squared or
/// with the table, whatever the statistics say (migration 0024, docs/ARCHITECTURE.md "The hot path").
///
/// The statistics are taken while nothing is leased, the state ANALYZE catches most of the time: it made the
/// planner expect one leased job, put `jobs` on the outer side of a nested loop and read the whole batch
/// again per job (60 ms a statement at 256 jobs), and join a claim's rows through a scan of the whole table.
@Suite("Queue plans", .hangGuard)
struct QueuePlanTests {
    @Test("the claim, the heartbeat and the outcome batch never read the batch once per job, nor the table per claim",
          arguments: ["force_custom_plan", "force_generic_plan"])
    func plansStayLinear(mode: String) async throws {
        try await TestDatabase.with { db in
            try await db.client.query("""
                INSERT INTO jobs (id, kind, state, params)
                SELECT gen_random_uuid(), 'test_noop', 'queued', '{}'::jsonb FROM generate_series(1, 30000)
                """, logger: db.logger)
            try await db.client.query("ANALYZE jobs", logger: db.logger)
            let claimed = try await db.jobs.claim(kinds: ["test_noop"], limit: 256, owner: "w", leaseDuration: .seconds(30))
            #expect(claimed.count == 256)
            let writes = try claimed.map {
                try db.jobs.outcomeWrite(.succeeded(result: [:], costUSD: nil, upstreamState: nil), for: $0, provider: "test", backoff: .jobRetry)
            }
            let claim = JobQueueStatements.Claim(kinds: ["test_noop"], limit: 256, owner: "w", leaseMillis: 30_000, holdingKinds: [],
                                                 markingKinds: [])
            let heartbeat = JobQueueStatements.Heartbeat(ids: claimed.map(\.job.id), epochs: claimed.map(\.leaseEpoch), leaseMillis: 30_000)

            try await db.client.withConnection { connection in
                try await connection.query("SET plan_cache_mode = \(unescaped: mode)", logger: db.logger)
                let claimPlan = try await Self.plan("claim", JobQueueStatements.Claim.sql, types: ["text[]", "int8", "text", "int8", "text[]", "text[]"],
                                                    try claim.makeBindings(), connection, db.logger)
                let heartbeatPlan = try await Self.plan("heartbeat", JobQueueStatements.Heartbeat.sql, types: ["uuid[]", "int8[]", "int8"],
                                                        try heartbeat.makeBindings(), connection, db.logger)
                let outcomeTypes = ["uuid[]", "int8[]"] + Array(repeating: "text[]", count: 8) + ["int8[]"] + Array(repeating: "text[]", count: 5)
                let outcomePlan = try await Self.plan("outcome", JobQueueStatements.RecordBatch.sql, types: outcomeTypes,
                                                      OutcomeWrite.bindings(writes), connection, db.logger)
                for (name, plan) in [("claim", claimPlan), ("heartbeat", heartbeatPlan), ("outcome batch", outcomePlan)] {
                    #expect(plan.batchReadPerRow.isEmpty, "\(name) (\(mode)): a nested loop reads the batch once per job: \(plan.batchReadPerRow)")
                }
                let claimScansJobs = claimPlan.scans(table: "jobs")
                #expect(!claimScansJobs, "claim (\(mode)) scans all of jobs")
            }
            // The statements still do their work.
            #expect(try await db.jobs.heartbeat(leases: claimed.map { Lease(id: $0.job.id, epoch: $0.leaseEpoch) }, leaseDuration: .seconds(30)).count == 256)
            #expect(try await db.jobs.recordBatch(writes).values.allSatisfy { $0 == .succeeded })
        }
    }

    @Test("the delivery claim reads about the rows it takes, not the backlog, with statistics taken while none were pending")
    func deliveryClaimReadsTheWindow() async throws {
        try await TestDatabase.with { db in
            _ = try await SubscriptionStore(client: db.client, logger: db.logger)
                .create(.init(url: "http://127.0.0.1:9/hook", eventTypes: ["job.*"]))
            // Statistics from a table of delivered rows (the usual state), then a burst of 20,000 due ones.
            try await db.client.query("""
                INSERT INTO events (id, type, payload) SELECT gen_random_uuid(), 'job.succeeded', '{}' FROM generate_series(1, 20000)
                """, logger: db.logger)
            try await db.client.query("UPDATE deliveries SET state = 'succeeded', next_attempt_at = NULL, delivered_at = now(), attempts = 1",
                                      logger: db.logger)
            try await db.client.query("ANALYZE deliveries", logger: db.logger)
            try await db.client.query("""
                INSERT INTO events (id, type, payload) SELECT gen_random_uuid(), 'job.succeeded', '{}' FROM generate_series(1, 20000)
                """, logger: db.logger)

            var explain = DeliveryStore.claimQuery(limit: 32, owner: "w", leaseDuration: .seconds(30), perSubscription: 128)
            explain.sql = "EXPLAIN (ANALYZE, FORMAT JSON) " + explain.sql
            var text = ""
            for try await row in try await db.client.query(explain, logger: db.logger).decode(String.self) { text += row }
            let plan = try PlanNode(explainJSON: text)
            let read = plan.rowsRead(from: "deliveries")
            #expect(read < 1_000, "the claim read \(read) delivery rows to take 32 of a 20,000-row backlog")
            #expect(try await db.values("SELECT count(*)::int FROM deliveries WHERE state = 'delivering'", as: Int.self) == [32])
        }
    }

    /// The generic or custom plan (as `plan_cache_mode` says) of `sql` with `binds` of `types`, as PostgreSQL's JSON:
    /// the statement prepared with its parameter types, then `EXPLAIN EXECUTE` with the values as literals
    /// (a utility statement takes no bound parameters; the server quotes them itself).
    private static func plan(_ name: String, _ sql: String, types: [String], _ binds: PostgresBindings,
                             _ connection: PostgresConnection, _ logger: Logger) async throws -> PlanNode {
        let casts = types.enumerated().map { "format('%L', $\($0.offset + 1)::\($0.element))" }.joined(separator: " || ',' || ")
        var literals = ""
        for try await row in try await connection.query(PostgresQuery(unsafeSQL: "SELECT \(casts)", binds: binds), logger: logger)
            .decode(String.self) { literals = row }
        // `format('%L')` of an array is one quoted literal; split them back at the quote-comma-quote joints.
        let values = try Self.splitLiterals(literals, count: types.count)
        let arguments = zip(values, types).map { "\($0)::\($1)" }.joined(separator: ", ")
        try await connection.query(PostgresQuery(unsafeSQL: "PREPARE plan_\(name)(\(types.joined(separator: ", "))) AS \(sql)"), logger: logger)
        var text = ""
        for try await row in try await connection.query(
            PostgresQuery(unsafeSQL: "EXPLAIN (FORMAT JSON) EXECUTE plan_\(name)(\(arguments))"), logger: logger
        ).decode(String.self) {
            text += row
        }
        return try PlanNode(explainJSON: text)
    }

    /// Splits `'a','b',...` (each an SQL literal as `format('%L')` writes it, quotes doubled inside) into its literals.
    private static func splitLiterals(_ text: String, count: Int) throws -> [String] {
        var literals: [String] = []
        var current = ""
        var inside = false
        var characters = Array(text)[...]
        while let character = characters.popFirst() {
            if character == "'" {
                if inside, characters.first == "'" {
                    current.append("''")
                    characters.removeFirst()
                    continue
                }
                inside.toggle()
                current.append(character)
            } else if character == ",", !inside {
                literals.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        literals.append(current)
        try #require(literals.count == count, "literals: \(text.prefix(200))")
        return literals
    }
}

/// One node of an `EXPLAIN (FORMAT JSON)` plan and its children.
private struct PlanNode {
    var type: String
    var relation: String?
    var children: [PlanNode]
    /// With `ANALYZE`: the rows the node produced and those its filters and rechecks threw away, over all loops.
    var rowsTouched: Double

    init(_ json: [String: Any]) {
        type = json["Node Type"] as? String ?? ""
        relation = json["Relation Name"] as? String
        children = (json["Plans"] as? [[String: Any]] ?? []).map(PlanNode.init)
        func number(_ key: String) -> Double { (json[key] as? NSNumber)?.doubleValue ?? 0 }
        rowsTouched = (number("Actual Rows") + number("Rows Removed by Filter") + number("Rows Removed by Index Recheck"))
            * max(1, number("Actual Loops"))
    }

    /// The top node of what `EXPLAIN (FORMAT JSON)` printed.
    init(explainJSON text: String) throws {
        let top = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]])
        self.init(try #require(top.first?["Plan"] as? [String: Any]))
    }

    /// The rows the plan's scans of `table` touched (`EXPLAIN ANALYZE` only).
    func rowsRead(from table: String) -> Int {
        Int(all.filter { $0.relation == table && $0.type != "ModifyTable" }.map(\.rowsTouched).reduce(0, +))
    }

    var all: [PlanNode] { [self] + children.flatMap(\.all) }

    /// Nested loops whose inner side is the batch (`unnest(...)`, or a CTE of it) read again per outer row.
    var batchReadPerRow: [String] {
        all.filter { $0.type == "Nested Loop" && $0.children.count == 2 && $0.children[1].isBatch }
            .map { "\($0.children[0].type) \($0.children[0].relation ?? "") x \($0.children[1].type)" }
    }

    private var isBatch: Bool {
        switch type {
        case "Function Scan": true
        case "Materialize": children.first?.isBatch ?? false
        default: false
        }
    }

    /// Whether the plan reads all of `table` (a sequential scan).
    func scans(table: String) -> Bool { all.contains { $0.type == "Seq Scan" && $0.relation == table } }
}
