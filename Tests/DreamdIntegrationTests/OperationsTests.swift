import DreamdCore
import DreamdServices
import DreamdStore
import Foundation
import ServiceLifecycle
import Testing

@Suite("Operations", .hangGuard)
struct OperationsTests {
    @Test("/metrics exposes jobs, claims, upstream calls and callbacks in Prometheus format")
    func metrics() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim, overrides: ["DREAMD_CALLBACKS": "on"]) { daemon in
                    let id = try #require(try await daemon.submit(imageGenBody()).json["id"]?.stringValue)
                    #expect(try await daemon.waitFinal(id)["state"]?.stringValue == "succeeded")
                    var request = HTTPClientRequestBuilder.get(daemon.baseURL + "/metrics")
                    let text = try await request.text()
                    for name in ["dreamd_job_transitions_total", "dreamd_claim_duration_seconds", "dreamd_upstream_requests_total",
                                 "dreamd_upstream_request_duration_seconds", "dreamd_callbacks_received_total", "dreamd_jobs_claimed_total"] {
                        #expect(text.contains(name), "missing \(name)")
                    }
                    #expect(text.contains(#"dreamd_job_transitions_total{kind="image_gen",state="succeeded"}"#))
                    #expect(text.contains(#"upstream="dreamlook""#))
                }
            }
        }
    }

    @Test("bad configuration stops start-up with a message naming the key", arguments: [
        ("DREAMD_POLL_INTERVAL", "5 parsecs"), ("DREAMD_LISTEN", "nowhere"), ("DREAMD_WORKER_CONCURRENCY", "-1"),
        ("DREAMD_LOG_FORMAT", "xml"), ("DREAMLOOK_BASE_URL", "ftp://x"), ("DREAMD_CALLBACKS", "sometimes"),
        ("DATABASE_URL", "mysql://x"), ("DREAMD_LEASE_DURATION", "1s"),
    ])
    func configurationErrors(key: String, value: String) throws {
        var environment = ["DATABASE_URL": "postgres://u@localhost/db"]
        environment[key] = value
        #expect {
            _ = try DaemonConfiguration(environment: environment)
        } throws: { error in
            (error as? ConfigurationError)?.key == key
        }
    }

    @Test("a config file: KEY=value lines under the environment; unknown keys and bad lines are refused by name")
    func configFile() throws {
        let text = """
            # dreamd settings
            DATABASE_URL=postgres://dreamd@db:5432/dreamd
            export DREAMD_POLL_INTERVAL="2s"
            DREAMD_WORKER_CONCURRENCY = 4
            DREAMLOOK_API_KEY='dl-from-file'

            """
        let file = try ConfigFile(path: "dreamd.conf", text: text)
        let (configuration, merged) = try DaemonConfiguration.load(environment: ["DREAMD_WORKER_CONCURRENCY": "7"], file: file)
        #expect(configuration.pollInterval == .seconds(2))
        #expect(configuration.worker.concurrency == 7, "the environment wins over the file")
        #expect(configuration.dreamlookAPIKey == "dl-from-file")
        #expect(merged["DATABASE_URL"] == "postgres://dreamd@db:5432/dreamd")

        let typo = try ConfigFile(path: "dreamd.conf", text: "DATABASE_URL=postgres://u@h/d\nDREAMD_POLL_INTERVALL=2s\n")
        #expect { _ = try DaemonConfiguration.load(environment: [:], file: typo) } throws: { error in
            let error = error as? ConfigurationError
            return error?.key == "DREAMD_POLL_INTERVALL" && error?.message.contains("line 2") == true
        }
        let invalid = try ConfigFile(path: "dreamd.conf", text: "DATABASE_URL=postgres://u@h/d\nDREAMD_POLL_INTERVAL=soon\n")
        #expect { _ = try DaemonConfiguration.load(environment: [:], file: invalid) } throws: { error in
            (error as? ConfigurationError)?.key == "DREAMD_POLL_INTERVAL"
        }
        #expect { _ = try ConfigFile(path: "dreamd.conf", text: "DATABASE_URL postgres://x\n") } throws: { error in
            (error as? ConfigurationError)?.message.contains("line 1: expected KEY=value") == true
        }
        #expect { _ = try ConfigFile(path: "dreamd.conf", text: "DREAMD_IDLE_POLL=1s\nDREAMD_IDLE_POLL=2s\n") } throws: { error in
            (error as? ConfigurationError)?.message.contains("set twice") == true
        }
        // The shipped env file example is a valid config file, every key known.
        let example = BuiltBinary.packageRoot.appendingPathComponent("systemd/dreamd.env.example").path
        _ = try DaemonConfiguration.load(environment: [:], file: try ConfigFile(path: example))
    }

    @Test("config check redacts secrets")
    func redaction() throws {
        let configuration = try DaemonConfiguration(environment: [
            "DATABASE_URL": "postgres://dreamd:hunter2@db:5432/dreamd", "DREAMLOOK_API_KEY": "dl-very-secret", "DREAMGEN_API_KEY": "dg-also-secret",
        ])
        let printed = configuration.redactedSummary.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")
        #expect(!printed.contains("hunter2") && !printed.contains("dl-very-secret") && !printed.contains("dg-also-secret"))
        #expect(printed.contains("DREAMLOOK_API_KEY=***"))
    }

    @Test("a graceful stop lets steps finish within the drain timeout, then gives leases back; a restart finishes the job")
    func drain() async throws {
        try await TestDatabase.with { db in
            guard case .created(let job) = try await db.jobs.insert(.init(kind: "test_noop", params: [:])) else { return }
            var configuration = WorkerConfiguration(
                concurrency: 2, leaseDuration: .seconds(30), heartbeatInterval: .seconds(1), idlePollInterval: .milliseconds(100),
                maintenanceInterval: .seconds(10), owner: "draining"
            )
            configuration.drainTimeout = .milliseconds(500)
            let slow = JobWorker(store: db.jobs, registry: ExecutorRegistry([CountingExecutor(behaviour: .hang(.seconds(10)))]),
                                 configuration: configuration, logger: db.logger)
            let group = ServiceGroup(services: [slow], logger: db.logger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                #expect(try await eventually { try await db.jobs.job(id: job.id)?.state == .submitting })
                let stopping = ContinuousClock.now
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                #expect(ContinuousClock.now - stopping < .seconds(5))
            }
            let released = try #require(try await db.jobs.job(id: job.id))
            #expect(released.state == .queued)
            #expect(released.attempt == 1)
            #expect(try await db.values("SELECT count(*)::int FROM jobs WHERE lease_owner IS NOT NULL", as: Int.self) == [0])
            // A restarted worker finishes it; its attempt counts on, so an upstream submission would be looked up first.
            let executor = CountingExecutor()
            try await withWorkers([fastWorker(db, executor: executor, owner: "restarted")], logger: db.logger) {
                let done = try await eventually { try await db.jobs.job(id: job.id)?.state == .succeeded }
                #expect(done)
            }
            #expect(try await db.jobs.job(id: job.id)?.attempt == 2)
        }
    }
}

@Suite("Key scopes and rate limits", .hangGuard)
struct KeyScopeTests {
    @Test("scopes: read keys read, submit keys submit, and neither administers")
    func scopes() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let reader = try await db.keys.create(name: "reader", scope: .read).token
                    let submitter = try await db.keys.create(name: "submitter", scope: .submit).token
                    #expect(try await daemon.request(.GET, "/v1/jobs", token: reader).status == 200)
                    let refused = try await daemon.request(.POST, "/v1/jobs", body: imageGenBody(), token: reader)
                    #expect(refused.status == 403)
                    #expect(refused.json["error"]?["code"]?.stringValue == "forbidden")
                    let created = try await daemon.request(.POST, "/v1/jobs", body: imageGenBody(), token: submitter)
                    #expect(created.status == 201)
                    let id = try #require(created.json["id"]?.stringValue)
                    #expect(try await daemon.request(.POST, "/v1/jobs/\(id)/cancel", token: reader).status == 403)
                    #expect(try await daemon.request(.POST, "/v1/subscriptions", body: "{}", token: submitter).status == 403)
                }
            }
        }
    }

    @Test("each key is held to its request rate with 429 and Retry-After")
    func rateLimit() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim, overrides: ["DREAMD_API_RATE_LIMIT": "0.05", "DREAMD_API_RATE_BURST": "5"]) { daemon in
                    var statuses: [Int] = []
                    for _ in 0..<8 { statuses.append(try await daemon.request(.GET, "/v1/jobs").status) }
                    #expect(statuses.prefix(5).allSatisfy { $0 == 200 })
                    #expect(statuses.suffix(3).allSatisfy { $0 == 429 })
                    let other = try await db.keys.create(name: "other").token
                    #expect(try await daemon.request(.GET, "/v1/jobs", token: other).status == 200)
                }
            }
        }
    }
}

@Suite("OpenAPI", .hangGuard)
struct OpenAPITests {
    @Test("GET /openapi.json describes exactly the routes the router serves")
    func documentMatchesRoutes() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    // The dashboard's HTML pages (/ui, DreamdUI) are not part of the JSON API.
                    let served = Set(daemon.daemon.router().routes.filter { $0.path.description.split(separator: "/").first != "ui" }.map { route -> String in
                        let path = route.path.description.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
                        return "\(route.method.rawValue.lowercased()) /" + path.joined(separator: "/")
                    })
                    let answer = try await daemon.request(.GET, "/openapi.json", token: "")
                    #expect(answer.status == 200)
                    #expect(answer.json["openapi"]?.stringValue == "3.1.0")
                    var documented: Set<String> = []
                    for (path, item) in answer.json["paths"]?.objectValue ?? [:] {
                        for method in item.objectValue?.keys ?? [:].keys { documented.insert("\(method) \(path)") }
                    }
                    #expect(served.subtracting(documented).isEmpty, "undocumented: \(served.subtracting(documented).sorted())")
                    #expect(documented.subtracting(served).isEmpty, "documented but not served: \(documented.subtracting(served).sorted())")
                }
            }
        }
    }
}
