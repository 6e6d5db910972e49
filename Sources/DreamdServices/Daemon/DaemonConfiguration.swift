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
    public var scheduler: SchedulerConfiguration
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
    /// Requests per second (and burst) each API key may make; 0 turns the limit off.
    public var apiRateLimit: Double
    public var apiRateBurst: Double
    /// Failed authentications each client address may make per second (and burst) before its requests get
    /// 429 without a database lookup (`DREAMD_AUTH_FAILURE_RATE`, default 0.5; `DREAMD_AUTH_FAILURE_BURST`, default 20).
    public var authFailureRate: Double
    public var authFailureBurst: Double
    /// How long a running dreamlook job may meet 401/403 on its polls, from its creation, before it fails
    /// (`DREAMD_DREAMLOOK_AUTH_DEADLINE`, default 48h).
    public var dreamlookAuthDeadline: Duration
    /// How long dreamd tries to settle a dreamlook submission whose answer was lost before the job fails
    /// `submission_unknown` (`DREAMD_RECONCILE_DEADLINE`, default 1h).
    public var reconcileDeadline: Duration
    /// How long a callback token keeps working after its job is final (`DREAMD_CALLBACK_GRACE`, default 1h).
    public var callbackGrace: Duration
    /// How many callbacks one token may store (`DREAMD_CALLBACK_MAX_PER_TOKEN`, default 20).
    public var callbackMaxPerToken: Int
    /// How long a graceful stop lets running steps finish before giving their leases back.
    public var drainTimeout: Duration
    /// How long one statement (or transaction) may go unanswered before its connection is given up.
    public var statementTimeout: Duration
    public var webhooks: WebhookConfiguration
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
    /// Let URLs a job names for dreamd to fetch (`start_frame.url`) reach private and loopback
    /// addresses (`DREAMD_INPUT_ALLOW_PRIVATE`, default false). Link-local and metadata stay refused.
    public var inputAllowPrivate: Bool

    /// Reads the configuration from environment variables (names as in `api.md`).
    public init(environment: [String: String]) throws(ConfigurationError) {
        try self.init(environment: environment, keyLog: nil)
    }

    init(environment: [String: String], keyLog: KeyLog?) throws(ConfigurationError) {
        let reader = EnvironmentReader(environment, keyLog: keyLog)
        if let level = reader.string("DREAMD_LOG_LEVEL"),
           !["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(level.lowercased()) {
            throw ConfigurationError(key: "DREAMD_LOG_LEVEL", message: "must be one of trace, debug, info, notice, warning, error, critical; got \(level)")
        }
        if let format = reader.string("DREAMD_LOG_FORMAT"), !["json", "text"].contains(format.lowercased()) {
            throw ConfigurationError(key: "DREAMD_LOG_FORMAT", message: "must be json or text, got \(format)")
        }
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
        scheduler = SchedulerConfiguration(
            interval: try reader.duration("DREAMD_SCHEDULER_INTERVAL", default: .seconds(1)),
            misfireThreshold: try reader.duration("DREAMD_SCHEDULER_MISFIRE_THRESHOLD", default: .seconds(60))
        )
        guard scheduler.interval >= .milliseconds(50), scheduler.interval <= .seconds(60) else {
            throw ConfigurationError(key: "DREAMD_SCHEDULER_INTERVAL", message: "must be from 50ms to 60s")
        }
        guard scheduler.misfireThreshold >= .seconds(1) else {
            throw ConfigurationError(key: "DREAMD_SCHEDULER_MISFIRE_THRESHOLD", message: "must be at least 1s")
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
        dreamBaseURL = reader.string("DREAM_BASE_URL") ?? "https://api.dreamengines.run"
        try Self.checkURL(dreamBaseURL, key: "DREAM_BASE_URL")
        dreamAPIKey = reader.string("DREAM_API_KEY") ?? reader.string("DREAM_ENGINE_API_KEY")
        dreamTimeout = try reader.duration("DREAMD_DREAM_TIMEOUT", default: .seconds(300))
        guard dreamTimeout >= .seconds(1) else { throw ConfigurationError(key: "DREAMD_DREAM_TIMEOUT", message: "must be at least 1s") }
        dreamMaxInFlight = try reader.int("DREAMD_DREAM_MAX_IN_FLIGHT", default: 8, in: 1...1024)
        dreamPauseCooldown = try reader.duration("DREAMD_DREAM_PAUSE_COOLDOWN", default: .seconds(600))
        modelsTTL = try reader.duration("DREAMD_MODELS_TTL", default: .seconds(300))
        bulkMaxBytes = try reader.int("DREAMD_BULK_MAX_BYTES", default: 64 << 20, in: 1024...(1 << 31))
        inputAllowPrivate = try reader.bool("DREAMD_INPUT_ALLOW_PRIVATE", default: false)
        drainTimeout = try reader.duration("DREAMD_DRAIN_TIMEOUT", default: .seconds(60))
        statementTimeout = try reader.duration("DREAMD_DB_STATEMENT_TIMEOUT", default: .seconds(30))
        guard statementTimeout >= .seconds(1) else { throw ConfigurationError(key: "DREAMD_DB_STATEMENT_TIMEOUT", message: "must be at least 1s") }
        let rateText = reader.string("DREAMD_API_RATE_LIMIT") ?? "50"
        guard let rateLimit = Double(rateText), rateLimit >= 0 else {
            throw ConfigurationError(key: "DREAMD_API_RATE_LIMIT", message: "must be requests per second (0 = off), got \(rateText)")
        }
        apiRateLimit = rateLimit
        apiRateBurst = Double(try reader.int("DREAMD_API_RATE_BURST", default: 100, in: 1...100_000))
        let failureText = reader.string("DREAMD_AUTH_FAILURE_RATE") ?? "0.5"
        guard let failureRate = Double(failureText), failureRate > 0 else {
            throw ConfigurationError(key: "DREAMD_AUTH_FAILURE_RATE", message: "must be failed authentications per second (> 0), got \(failureText)")
        }
        authFailureRate = failureRate
        authFailureBurst = Double(try reader.int("DREAMD_AUTH_FAILURE_BURST", default: 20, in: 1...100_000))
        callbackGrace = try reader.duration("DREAMD_CALLBACK_GRACE", default: .seconds(3600))
        dreamlookAuthDeadline = try reader.duration("DREAMD_DREAMLOOK_AUTH_DEADLINE", default: .seconds(48 * 3600))
        reconcileDeadline = try reader.duration("DREAMD_RECONCILE_DEADLINE", default: .seconds(3600))
        callbackMaxPerToken = try reader.int("DREAMD_CALLBACK_MAX_PER_TOKEN", default: 20, in: 1...10_000)
        worker.drainTimeout = drainTimeout
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

extension DaemonConfiguration {
    /// Every setting's effective value, secrets redacted, for `dreamd config check`.
    public var redactedSummary: [(key: String, value: String)] {
        func secret(_ value: String?) -> String { value.map { $0.isEmpty ? "(empty)" : "***(\($0.count) chars)" } ?? "(unset)" }
        return [
            ("DATABASE_URL", databaseURL.description),
            ("DREAMD_LISTEN", "\(listenHost):\(listenPort)"),
            ("DREAMD_PUBLIC_URL", publicURL + (publicURLIsExplicit ? "" : " (derived)")),
            ("DREAMD_CALLBACKS", callbacksEnabled ? "on" : "off"),
            ("DREAMLOOK_BASE_URL", dreamlookBaseURL),
            ("DREAMLOOK_API_KEY", secret(dreamlookAPIKey)),
            ("DREAMGEN_BASE_URL", dreamgenBaseURL),
            ("DREAMGEN_API_KEY", secret(dreamgenAPIKey)),
            ("DREAM_BASE_URL", dreamBaseURL),
            ("DREAM_API_KEY", secret(dreamAPIKey)),
            ("DREAMD_DREAM_TIMEOUT", DurationParser.format(dreamTimeout)),
            ("DREAMD_DREAM_MAX_IN_FLIGHT", "\(dreamMaxInFlight)"),
            ("DREAMD_DREAM_PAUSE_COOLDOWN", DurationParser.format(dreamPauseCooldown)),
            ("DREAMD_MODELS_TTL", DurationParser.format(modelsTTL)),
            ("DREAMD_BULK_MAX_BYTES", "\(bulkMaxBytes)"),
            ("DREAMD_INPUT_ALLOW_PRIVATE", "\(inputAllowPrivate)"),
            ("DREAMD_DATA_DIR", dataDirectory),
            ("DREAMD_POLL_INTERVAL", DurationParser.format(pollInterval)),
            ("DREAMD_POLL_INTERVAL_MAX", DurationParser.format(pollIntervalCap)),
            ("DREAMD_CALLBACK_POLL_INTERVAL_MAX", DurationParser.format(callbackPollIntervalCap)),
            ("DREAMD_DREAMLOOK_RATE", "\(dreamlookRequestsPerSecond)"),
            ("DREAMD_CHECKPOINT_RETENTION", DurationParser.format(checkpointRetention)),
            ("DREAMD_CHECKPOINT_EXPIRY_WARNING", DurationParser.format(checkpointExpiryWarning)),
            ("DREAMD_ARCHIVE_CHECKPOINTS", "\(archiveCheckpoints)"),
            ("DREAMD_ARCHIVE_CONCURRENCY", "\(archiveConcurrency)"),
            ("DREAMD_ARCHIVE_RETENTION", archiveRetention.map(DurationParser.format) ?? "(keep forever)"),
            ("DREAMD_WEBHOOK_ALLOW_PRIVATE", "\(webhooks.destinationPolicy.allowPrivate)"),
            ("DREAMD_WEBHOOK_CONCURRENCY", "\(webhooks.concurrency)"),
            ("DREAMD_WEBHOOK_TIMEOUT", DurationParser.format(webhooks.attemptTimeout)),
            ("DREAMD_UPSTREAM_TIMEOUT", DurationParser.format(upstreamTimeout)),
            ("DREAMD_COMPLETION_IDLE_TIMEOUT", DurationParser.format(completionIdleTimeout)),
            ("DREAMD_COMPLETION_TIMEOUT", DurationParser.format(completionTimeout)),
            ("DREAMD_WORKER_CONCURRENCY", "\(worker.concurrency)"),
            ("DREAMD_CLAIM_BATCH", "\(worker.batchSize)"),
            ("DREAMD_LEASE_DURATION", DurationParser.format(worker.leaseDuration)),
            ("DREAMD_IDLE_POLL", DurationParser.format(worker.idlePollInterval)),
            ("DREAMD_RETRY_BACKOFF", DurationParser.format(worker.retryBackoff.base)),
            ("DREAMD_RETRY_BACKOFF_MAX", DurationParser.format(worker.retryBackoff.cap)),
            ("DREAMD_DRAIN_TIMEOUT", DurationParser.format(drainTimeout)),
            ("DREAMD_API_RATE_LIMIT", apiRateLimit == 0 ? "off" : "\(apiRateLimit)/s, burst \(Int(apiRateBurst))"),
            ("DREAMD_AUTH_FAILURE_RATE", "\(authFailureRate)/s per address, burst \(Int(authFailureBurst))"),
            ("DREAMD_CALLBACK_GRACE", DurationParser.format(callbackGrace)),
            ("DREAMD_DREAMLOOK_AUTH_DEADLINE", DurationParser.format(dreamlookAuthDeadline)),
            ("DREAMD_RECONCILE_DEADLINE", DurationParser.format(reconcileDeadline)),
            ("DREAMD_CALLBACK_MAX_PER_TOKEN", "\(callbackMaxPerToken)"),
            ("DREAMD_DB_MAX_CONNECTIONS", "\(databaseMaxConnections)"),
            ("DREAMD_DB_STATEMENT_TIMEOUT", DurationParser.format(statementTimeout)),
        ]
    }
}

/// Typed reads of environment variables with errors that name the key.
struct EnvironmentReader {
    let environment: [String: String]
    let keyLog: KeyLog?

    init(_ environment: [String: String], keyLog: KeyLog? = nil) {
        self.environment = environment
        self.keyLog = keyLog
    }

    func string(_ key: String) -> String? {
        keyLog?.record(key)
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
