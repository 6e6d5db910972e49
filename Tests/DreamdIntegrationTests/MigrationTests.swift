import DreamdStore
import Foundation
import PostgresNIO
import Testing

@Suite("Migrations", .hangGuard)
struct MigrationTests {
    @Test("applies in order once, records checksums, and a second run applies nothing")
    func appliesOnce() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let runner = try TestDatabase.migrations()
            let first = try await runner.migrate(client: db.client, logger: db.logger)
            #expect(first == runner.migrations.map(\.fileName))
            let second = try await runner.migrate(client: db.client, logger: db.logger)
            #expect(second.isEmpty)
            let recorded = try await db.values("SELECT checksum FROM schema_migrations ORDER BY version", as: String.self)
            #expect(recorded == runner.migrations.map(\.checksum))
            try await runner.checkCurrent(client: db.client, logger: db.logger)
        }
    }

    @Test("two processes migrating at once are safe")
    func concurrentMigrations() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let runner = try TestDatabase.migrations()
            let other = PostgresClient(configuration: try db.url.clientConfiguration(maximumConnections: 2), backgroundLogger: db.logger)
            try await PostgresClient.withRunning(other) { other in
                async let a = runner.migrate(client: db.client, logger: db.logger)
                async let b = runner.migrate(client: other, logger: db.logger)
                let (applied1, applied2) = try await (a, b)
                #expect(applied1.count + applied2.count == runner.migrations.count)
            }
            #expect(try await db.values("SELECT count(*)::int FROM schema_migrations", as: Int.self) == [runner.migrations.count])
        }
    }

    @Test("a changed, already-applied file is refused by name")
    func changedFileRefused() async throws {
        try await TestDatabase.with { db in
            var migrations = try TestDatabase.migrations().migrations
            migrations[0].sql += "\n-- edited after release\n"
            let edited = try MigrationRunner(migrations: migrations)
            await #expect {
                try await edited.migrate(client: db.client, logger: db.logger)
            } throws: { error in
                "\(error)".contains("0001_jobs.sql") && "\(error)".contains("changed")
            }
        }
    }

    @Test("a database that is behind is refused, naming the missing migration")
    func behindRefused() async throws {
        try await TestDatabase.with(migrate: false) { db in
            let all = try TestDatabase.migrations().migrations
            try await MigrationRunner(migrations: [all[0]]).migrate(client: db.client, logger: db.logger)
            await #expect {
                try await TestDatabase.migrations().checkCurrent(client: db.client, logger: db.logger)
            } throws: { error in
                "\(error)".contains(all[1].fileName) && "\(error)".contains("dreamd migrate")
            }
        }
    }

    @Test("a failing migration rolls back entirely")
    func failureRollsBack() async throws {
        try await TestDatabase.with { db in
            var migrations = try TestDatabase.migrations().migrations
            migrations.append(Migration(version: 9999, name: "broken", sql: "CREATE TABLE half_done (id int); SELECT no_such_function();"))
            await #expect(throws: MigrationError.self) {
                try await MigrationRunner(migrations: migrations).migrate(client: db.client, logger: db.logger)
            }
            #expect(try await db.values("SELECT count(*)::int FROM pg_tables WHERE tablename = 'half_done'", as: Int.self) == [0])
            #expect(try await db.values("SELECT count(*)::int FROM schema_migrations WHERE version = 9999", as: Int.self) == [0])
        }
    }

    @Test("the statement splitter keeps dollar-quoted bodies and quotes whole")
    func splitter() {
        let sql = """
            -- comment; with a semicolon
            CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;
            INSERT INTO t VALUES ('a;b', 'it''s');
            /* block; comment */ SELECT $tag$ x; y $tag$;
            """
        let statements = SQLStatementSplitter.split(sql)
        #expect(statements.count == 3)
        #expect(statements[0].hasSuffix("END $$"))
        #expect(statements[1].contains("'it''s'"))
        #expect(statements[2].hasSuffix("$tag$ x; y $tag$"))
    }
}
