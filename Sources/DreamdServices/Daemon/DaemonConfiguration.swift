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
    /// How long before expiry a checkpoint becomes `expiring` (`DREAMD_CHECKPOINT_EXPIRY_WARNING`, default 6h).
    public var checkpointExpiryWarning: Duration
    /// The retention sweeper's longest sleep between passes (`DREAMD_RETENTION_SWEEP_INTERVAL`, default 1s).
    public var retentionSweepInterval: Duration
    /// Archive every trained checkpoint, whatever the job asked (`DREAMD_ARCHIVE_CHECKPOINTS`, default false).
    public var archiveCheckpoints: Bool
    /// How many checkpoint downloads run at once (`DREAMD_ARCHIVE_CONCURRENCY`, default 2; 0: this process does not archive).
    public var archiveConcurrency: Int
    /// First wait after a failed archive attempt, doubling up to 1h (`DREAMD_ARCHIVE_RETRY_BACKOFF`, default 30s).
    public var archiveRetryBackoff: Duration
    /// How long an archive claim holds without renewal (`DREAMD_ARCHIVE_LEASE`, default 60s).
    public var archiveLeaseDuration: Duration
    /// How long archived files are kept (`DREAMD_ARCHIVE_RETENTION`; unset: forever).
    public var archiveRetention: Duration?
    public var dreamgenBaseURL: String
    public var dreamgenAPIKey: String?
    public var completionIdleTimeout: Duration
    public var completionTimeout: Duration

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
        checkpointExpiryWarning = try reader.duration("DREAMD_CHECKPOINT_EXPIRY_WARNING", default: .seconds(6 * 3600))
        retentionSweepInterval = try reader.duration("DREAMD_RETENTION_SWEEP_INTERVAL", default: .seconds(1))
        guard retentionSweepInterval >= .milliseconds(10) else {
            throw ConfigurationError(key: "DREAMD_RETENTION_SWEEP_INTERVAL", message: "must be at least 10ms")
        }
        archiveCheckpoints = try reader.bool("DREAMD_ARCHIVE_CHECKPOINTS", default: false)
        archiveConcurrency = try reader.int("DREAMD_ARCHIVE_CONCURRENCY", default: 2, in: 0...64)
        archiveRetryBackoff = try reader.duration("DREAMD_ARCHIVE_RETRY_BACKOFF", default: .seconds(30))
        archiveLeaseDuration = try reader.duration("DREAMD_ARCHIVE_LEASE", default: .seconds(60))
        guard archiveLeaseDuration >= .seconds(1) else {
            throw ConfigurationError(key: "DREAMD_ARCHIVE_LEASE", message: "must be at least 1s")
        }
        if reader.string("DREAMD_ARCHIVE_RETENTION") != nil {
            archiveRetention = try reader.duration("DREAMD_ARCHIVE_RETENTION", default: .zero)
        } else {
            archiveRetention = nil
        }
        dreamgenBaseURL = reader.string("DREAMGEN_BASE_URL") ?? "https://dreamgen.com"
        try Self.checkURL(dreamgenBaseURL, key: "DREAMGEN_BASE_URL")
        dreamgenAPIKey = reader.string("DREAMGEN_API_KEY")
        completionIdleTimeout = try reader.duration("DREAMD_COMPLETION_IDLE_TIMEOUT", default: .seconds(30))
        completionTimeout = try reader.duration("DREAMD_COMPLETION_TIMEOUT", default: .seconds(600))
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

    func bool(_ key: String, default fallback: Bool) throws(ConfigurationError) -> Bool {
        guard let text = string(key) else { return fallback }
        switch text.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw ConfigurationError(key: key, message: "must be true or false, got \(text)")
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
