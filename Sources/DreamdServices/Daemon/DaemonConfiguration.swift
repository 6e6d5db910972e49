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
    public var webhooks: WebhookConfiguration

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
        webhooks = try Self.webhookConfiguration(reader, idlePoll: worker.idlePollInterval)
    }

    static func webhookConfiguration(_ reader: EnvironmentReader, idlePoll: Duration) throws(ConfigurationError) -> WebhookConfiguration {
        var schedule = RetrySchedule.standard
        if let text = reader.string("DREAMD_WEBHOOK_RETRY_SCHEDULE") {
            do { schedule = try RetrySchedule.parse(text) } catch {
                throw ConfigurationError(key: "DREAMD_WEBHOOK_RETRY_SCHEDULE", message: error.description)
            }
        }
        let timeout = try reader.duration("DREAMD_WEBHOOK_TIMEOUT", default: .seconds(15))
        guard timeout >= .milliseconds(100), timeout <= .seconds(300) else {
            throw ConfigurationError(key: "DREAMD_WEBHOOK_TIMEOUT", message: "must be from 100ms to 5m")
        }
        return WebhookConfiguration(
            retrySchedule: schedule,
            destinationPolicy: DestinationPolicy(allowPrivate: try reader.bool("DREAMD_WEBHOOK_ALLOW_PRIVATE", default: false)),
            attemptTimeout: timeout,
            concurrency: try reader.int("DREAMD_WEBHOOK_CONCURRENCY", default: 32, in: 1...1024),
            perSubscription: try reader.int("DREAMD_WEBHOOK_PER_SUBSCRIPTION", default: 4, in: 1...256),
            disableAfter: try reader.duration("DREAMD_WEBHOOK_DISABLE_AFTER", default: .seconds(5 * 86_400)),
            secretOverlap: try reader.duration("DREAMD_WEBHOOK_SECRET_OVERLAP", default: .seconds(86_400)),
            idlePollInterval: idlePoll
        )
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
        guard let text = string(key)?.lowercased() else { return fallback }
        switch text {
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
