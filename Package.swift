// swift-tools-version:6.0
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "dreamd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "dreamd", targets: ["dreamd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // The dashboard's server-rendered templates (DreamdUI).
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
    ],
    targets: [
        // Pure domain: job kinds, states, transitions, backoff, durations. No I/O.
        .target(
            name: "DreamdCore",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // PostgreSQL: migrations, the job queue, API keys, the audit trail.
        .target(
            name: "DreamdStore",
            dependencies: [
                "DreamdCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // Upstream HTTP clients and one folder per job kind family.
        .target(
            name: "DreamdUpstreams",
            dependencies: [
                "DreamdCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOPosix", package: "swift-nio"),
                // Rollout videos are streamed to disk through NIO's async file system (its own thread pool).
                .product(name: "_NIOFileSystem", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // The long-running services: workers, pollers, the LISTEN loop.
        .target(
            name: "DreamdServices",
            dependencies: [
                "DreamdCore", "DreamdStore", "DreamdUpstreams", "DreamdAPI", "DreamdUI",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "_NIOFileSystem", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        // The HTTP API (Hummingbird 2).
        .target(
            name: "DreamdAPI",
            dependencies: [
                "DreamdCore", "DreamdStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // The web dashboard at /ui: sessions, CSRF, pages rendered with Mustache, its own assets.
        .target(
            name: "DreamdUI",
            dependencies: [
                "DreamdCore", "DreamdStore", "DreamdAPI",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Simulators of the upstream services (`dreamd sim`).
        .target(
            name: "DreamdSim",
            dependencies: [
                // DreamdUpstreams for the Dream Engines wire formats (.npy, image headers, tar); the
                // official Python client checks them against the real thing (scripts/sdk-check.sh).
                "DreamdCore", "DreamdUpstreams",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "dreamd",
            dependencies: [
                "DreamdCore", "DreamdStore", "DreamdUpstreams", "DreamdServices", "DreamdAPI", "DreamdSim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // What the benchmarks share: a local webhook receiver, percentiles, peak RSS.
        .target(
            name: "BenchSupport",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")],
            path: "bench/BenchSupport",
            swiftSettings: swiftSettings
        ),
        // bench/queue.sh: drains no-op jobs through the real claim path.
        .executableTarget(
            name: "QueueBench",
            dependencies: [
                "BenchSupport", "DreamdCore", "DreamdStore", "DreamdServices",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "bench/QueueBench",
            swiftSettings: swiftSettings
        ),
        // bench/webhooks.sh: events → deliveries to a local receiver, throughput and latency.
        .executableTarget(
            name: "WebhookBench",
            dependencies: [
                "BenchSupport", "DreamdCore", "DreamdStore", "DreamdServices",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "bench/WebhookBench",
            swiftSettings: swiftSettings
        ),
        // bench/e2e.sh: jobs end to end through running daemons, the simulator and a local subscriber.
        .executableTarget(
            name: "E2EBench",
            dependencies: [
                "BenchSupport", "DreamdCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "bench/E2EBench",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DreamdCoreTests",
            dependencies: ["DreamdCore", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DreamdIntegrationTests",
            dependencies: [
                "DreamdCore", "DreamdStore", "DreamdUpstreams", "DreamdServices", "DreamdAPI", "DreamdSim", "DreamdUI",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
