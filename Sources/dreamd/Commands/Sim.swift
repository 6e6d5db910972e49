import ArgumentParser
import DreamdCore
import DreamdSim
import Logging
import ServiceLifecycle

struct Sim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the upstream simulators (dreamlook.ai, Dream Engines) on one port.")

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one).") var port = 9090
    @Option(help: "Bearer key dreamlook requests must carry (default: any).") var dreamlookKey: String?
    @Option(help: "How long a job stays queued, e.g. 1s.") var queueTime = "1s"
    @Option(help: "How long a job runs, e.g. 2s.") var runTime = "2s"
    @Option(help: "Share of requests answered 429 (0-1).") var rateLimitRate = 0.0
    @Option(help: "Retry-After seconds on a 429.") var retryAfter = 1
    @Option(help: "Share of requests answered 502/503/504 (0-1).") var serverErrorRate = 0.0
    @Option(help: "Share of submissions that create the job and answer 503 (0-1).") var createThenFailRate = 0.0
    @Option(help: "Share of jobs that end in failure (0-1).") var failureRate = 0.0
    @Option(help: "Latency added to every answer, e.g. 50ms.") var latency = "0s"
    @Option(help: "Share of callbacks never sent (0-1).") var callbackDropRate = 0.0
    @Option(help: "Share of callbacks sent twice (0-1).") var callbackDuplicateRate = 0.0
    @Option(help: "Share of jobs that also get a stale callback after the final one (0-1).") var callbackReorderRate = 0.0
    @Option(help: "Delay between a job finishing and its callback, e.g. 2s.") var callbackDelay = "0s"
    @Option(help: "Bearer key DreamGen requests must carry (default: any).") var dreamgenKey: String?
    @Option(help: "DreamGen stream style: delta or cumulative.") var dreamgenStyle = "delta"
    @Option(help: "Time between DreamGen tokens, e.g. 20ms.") var dreamgenTokenInterval = "20ms"
    @Option(help: "DreamGen: fail mid-stream after this many tokens.") var dreamgenErrorAfter: Int?
    @Option(help: "DreamGen: stall after this many tokens.") var dreamgenStallAfter: Int?
    @Option(help: "Size in bytes of every checkpoint file (and its size_bytes).") var checkpointSize = 256 * 1024
    @Option(help: "Serve checkpoint files at most this many bytes per second.") var checkpointThrottle: Int?
    @Option(help: "How long a signed checkpoint URL stays valid, e.g. 1h.") var checkpointURLLifetime = "1h"
    @Option(help: "Bearer key Dream Engines requests must carry (default: any or none).") var dreamKey: String?
    @Option(help: "Dream Engines: how long the first rollout waits for the model to load, e.g. 90s.") var dreamColdStart = "0s"
    @Option(help: "Dream Engines: how long a warm rollout takes, e.g. 3s.") var dreamRolloutTime = "1s"
    @Flag(help: "Dream Engines: answer 404 on /v1/rollouts, as a deployment that only has /v1/predict.") var dreamLegacyOnly = false
    @Option(help: "Dream Engines: prepaid balance in mils (1/10,000 USD); rollouts beyond it get 402.") var dreamBalanceMils: Int?

    func run() async throws {
        LoggingSetup.bootstrap()
        let logger = Logger(label: "dreamd.sim")
        var configuration = Simulator.Configuration()
        configuration.host = host
        configuration.port = port
        configuration.dreamlookAPIKey = dreamlookKey
        configuration.dreamAPIKey = dreamKey
        configuration.dreamLegacyOnly = dreamLegacyOnly
        configuration.dreamBalanceMils = dreamBalanceMils
        do {
            configuration.queueTime = try DurationParser.parse(queueTime)
            configuration.runTime = try DurationParser.parse(runTime)
            configuration.faults.latency = try DurationParser.parse(latency)
            configuration.faults.callbackDelay = try DurationParser.parse(callbackDelay)
            configuration.files.urlLifetime = try DurationParser.parse(checkpointURLLifetime)
            configuration.dreamColdStart = try DurationParser.parse(dreamColdStart)
            configuration.dreamRolloutTime = try DurationParser.parse(dreamRolloutTime)
        } catch {
            throw ValidationError("\(error)")
        }
        for (name, rate) in [("rate-limit-rate", rateLimitRate), ("server-error-rate", serverErrorRate),
                             ("create-then-fail-rate", createThenFailRate), ("failure-rate", failureRate),
                             ("callback-drop-rate", callbackDropRate), ("callback-duplicate-rate", callbackDuplicateRate),
                             ("callback-reorder-rate", callbackReorderRate)] where !(0...1).contains(rate) {
            throw ValidationError("--\(name) must be between 0 and 1")
        }
        guard checkpointSize > 0, checkpointThrottle.map({ $0 > 0 }) ?? true else {
            throw ValidationError("--checkpoint-size and --checkpoint-throttle must be positive")
        }
        configuration.files.checkpointSize = checkpointSize
        configuration.files.throttleBytesPerSecond = checkpointThrottle
        configuration.faults.rateLimitRate = rateLimitRate
        configuration.faults.retryAfterSeconds = retryAfter
        configuration.faults.serverErrorRate = serverErrorRate
        configuration.faults.createThenFailRate = createThenFailRate
        configuration.faults.jobFailureRate = failureRate
        configuration.dreamgenAPIKey = dreamgenKey
        guard let style = DreamGenSimulator.StreamStyle(rawValue: dreamgenStyle) else {
            throw ValidationError("--dreamgen-style must be delta or cumulative")
        }
        configuration.dreamgen.style = style
        do { configuration.dreamgen.tokenInterval = try DurationParser.parse(dreamgenTokenInterval) } catch { throw ValidationError("\(error)") }
        configuration.dreamgen.errorAfterTokens = dreamgenErrorAfter
        configuration.dreamgen.stallAfterTokens = dreamgenStallAfter
        configuration.faults.callbackDropRate = callbackDropRate
        configuration.faults.callbackDuplicateRate = callbackDuplicateRate
        configuration.faults.callbackReorderRate = callbackReorderRate
        let simulator = Simulator(configuration: configuration)
        let host = configuration.host
        let application = simulator.application(logger: logger) { port in
            logger.info("simulator listening", metadata: ["address": "\(host):\(port)"])
        }
        let group = ServiceGroup(configuration: .init(services: [application], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
