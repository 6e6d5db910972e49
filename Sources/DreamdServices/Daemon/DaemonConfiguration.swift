import DreamdCore
import DreamdStore
import Foundation

/// A start-up configuration error, naming the key at fault.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public var key: String
    public var message: String
    public var description: String { "\(key): \(message)" }
}

/// Everything `dreamd serve` reads from its environment, validated at start.
public struct DaemonConfiguration: Sendable {
    public var databaseURL: DatabaseURL
    public var listenHost: String
    public var listenPort: Int
    public var publicURL: String
    public var dreamlookBaseURL: String
    public var dreamlookAPIKey: String?
    public var dataDirectory: String
    public var pollInterval: Duration
    public var pollIntervalCap: Duration
    public var upstreamTimeout: Duration
    public var worker: WorkerConfiguration
    public var databaseMaxConnections: Int
    /// Whether submissions carry callback URLs (`DREAMD_CALLBACKS=auto|on|off`; auto: when `DREAMD_PUBLIC_URL` is set).
    public var callbacksEnabled: Bool
    /// Whether `DREAMD_PUBLIC_URL` was given (else it follows the bound listening address).
    public var publicURLIsExplicit: Bool
    public var callbackPollIntervalCap: Duration
    public var dreamlookRequestsPerSecond: Double
    public var checkpointRetention: Duration
    /// Dream Engines (`DREAM_BASE_URL`, `DREAM_API_KEY` else `DREAM_ENGINE_API_KEY`, else no auth header).
    public var dreamBaseURL: String
    public var dreamAPIKey: String?
    /// Deadline of one rollout call; covers a 90 s cold start (`DREAMD_DREAM_TIMEOUT`).
    public var dreamTimeout: Duration
    /// Rollouts in flight at once from this process (`DREAMD_DREAM_MAX_IN_FLIGHT`).
    public var dreamMaxInFlight: Int
    /// How long a 402 pauses Dream Engines dispatch unless resumed sooner (`DREAMD_DREAM_PAUSE_COOLDOWN`).
    public var dreamPauseCooldown: Duration
    /// How long the model catalog is cached (`DREAMD_MODELS_TTL`).
    public var modelsTTL: Duration
    /// Largest `POST /v1/jobs/bulk` body (`DREAMD_BULK_MAX_BYTES`).
    public var bulkMaxBytes: Int

    /// Reads the configuration from environment variables (names as in `api.md`).
    public init(environment: [String: String]) throws(ConfigurationError) {
        let reader = EnvironmentReader(environment)
        guard let databaseText = reader.string("DATABASE_URL") else {
            throw ConfigurationError(key: "DATABASE_URL", message: "is required (postgres://user:pass@host:port/db)")
        }
        do { databaseURL = try DatabaseURL(databaseText) } catch {
            throw ConfigurationError(key: "DATABASE_URL", message: "\(error)")
        }
        let listen = reader.string("DREAMD_LISTEN") ?? "127.0.0.1:8080"
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ConfigurationError(key: "DREAMD_LISTEN", message: "expected host:port, got \(listen)")
        }
        listenHost = String(listen[..<colon])
        listenPort = port
        publicURLIsExplicit = reader.string("DREAMD_PUBLIC_URL") != nil
        publicURL = reader.string("DREAMD_PUBLIC_URL") ?? "http://\(listen)"
        try Self.checkURL(publicURL, key: "DREAMD_PUBLIC_URL")
        dreamlookBaseURL = reader.string("DREAMLOOK_BASE_URL") ?? "https://api.dreamlook.ai"
        try Self.checkURL(dreamlookBaseURL, key: "DREAMLOOK_BASE_URL")
        dreamlookAPIKey = reader.string("DREAMLOOK_API_KEY")
        dataDirectory = reader.string("DREAMD_DATA_DIR") ?? "/var/lib/dreamd"
        pollInterval = try reader.duration("DREAMD_POLL_INTERVAL", default: .seconds(5))
        pollIntervalCap = try reader.duration("DREAMD_POLL_INTERVAL_MAX", default: .seconds(60))
        upstreamTimeout = try reader.duration("DREAMD_UPSTREAM_TIMEOUT", default: .seconds(60))
        worker = WorkerConfiguration(
            concurrency: try reader.int("DREAMD_WORKER_CONCURRENCY", default: 16, in: 1...1024),
            batchSize: try reader.int("DREAMD_CLAIM_BATCH", default: 10, in: 1...1000),
            leaseDuration: try reader.duration("DREAMD_LEASE_DURATION", default: .seconds(30)),
            heartbeatInterval: .seconds(1),
            idlePollInterval: try reader.duration("DREAMD_IDLE_POLL", default: .seconds(1)),
            retryBackoff: BackoffPolicy(
                base: try reader.duration("DREAMD_RETRY_BACKOFF", default: .seconds(10)),
                cap: try reader.duration("DREAMD_RETRY_BACKOFF_MAX", default: .seconds(3600))
            )
        )
        worker.heartbeatInterval = worker.leaseDuration / 3
        guard worker.leaseDuration >= .seconds(3) else {
            throw ConfigurationError(key: "DREAMD_LEASE_DURATION", message: "must be at least 3s")
        }
        databaseMaxConnections = try reader.int("DREAMD_DB_MAX_CONNECTIONS", default: 20, in: 4...500)
        switch reader.string("DREAMD_CALLBACKS")?.lowercased() ?? "auto" {
        case "auto": callbacksEnabled = publicURLIsExplicit
        case "on", "true", "1": callbacksEnabled = true
        case "off", "false", "0": callbacksEnabled = false
        case let other: throw ConfigurationError(key: "DREAMD_CALLBACKS", message: "must be auto, on or off, got \(other)")
        }
        callbackPollIntervalCap = try reader.duration("DREAMD_CALLBACK_POLL_INTERVAL_MAX", default: .seconds(600))
        let rate = reader.string("DREAMD_DREAMLOOK_RATE") ?? "10"
        guard let parsedRate = Double(rate), parsedRate > 0, parsedRate <= 10_000 else {
            throw ConfigurationError(key: "DREAMD_DREAMLOOK_RATE", message: "must be requests per second between 0 and 10000, got \(rate)")
        }
        dreamlookRequestsPerSecond = parsedRate
        checkpointRetention = try reader.duration("DREAMD_CHECKPOINT_RETENTION", default: .seconds(48 * 3600))
        dreamBaseURL = reader.string("DREAM_BASE_URL") ?? "https://api.dreamengines.run"
        try Self.checkURL(dreamBaseURL, key: "DREAM_BASE_URL")
        dreamAPIKey = reader.string("DREAM_API_KEY") ?? reader.string("DREAM_ENGINE_API_KEY")
        dreamTimeout = try reader.duration("DREAMD_DREAM_TIMEOUT", default: .seconds(300))
        guard dreamTimeout >= .seconds(1) else { throw ConfigurationError(key: "DREAMD_DREAM_TIMEOUT", message: "must be at least 1s") }
        dreamMaxInFlight = try reader.int("DREAMD_DREAM_MAX_IN_FLIGHT", default: 8, in: 1...1024)
        dreamPauseCooldown = try reader.duration("DREAMD_DREAM_PAUSE_COOLDOWN", default: .seconds(600))
        modelsTTL = try reader.duration("DREAMD_MODELS_TTL", default: .seconds(300))
        bulkMaxBytes = try reader.int("DREAMD_BULK_MAX_BYTES", default: 64 << 20, in: 1024...(1 << 31))
    }

    static func checkURL(_ text: String, key: String) throws(ConfigurationError) {
        guard let url = URL(string: text), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw ConfigurationError(key: key, message: "must be an http(s) URL, got \(text)")
        }
    }
}

/// Typed reads of environment variables with errors that name the key.
struct EnvironmentReader {
    let environment: [String: String]

    init(_ environment: [String: String]) { self.environment = environment }

    func string(_ key: String) -> String? {
        guard let value = environment[key]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        return value
    }

    func duration(_ key: String, default fallback: Duration) throws(ConfigurationError) -> Duration {
        guard let text = string(key) else { return fallback }
        do { return try DurationParser.parse(text) } catch {
            throw ConfigurationError(key: key, message: error.description)
        }
    }

    func int(_ key: String, default fallback: Int, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let text = string(key) else { return fallback }
        guard let value = Int(text), range.contains(value) else {
            throw ConfigurationError(key: key, message: "must be an integer from \(range.lowerBound) to \(range.upperBound), got \(text)")
        }
        return value
    }
}
