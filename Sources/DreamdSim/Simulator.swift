import Foundation
import Hummingbird
import Logging
import Synchronization

/// `dreamd sim`: the upstream simulators (dreamlook.ai, Dream Engines) on one port (their paths do not collide).
public final class Simulator: Sendable {
    public struct Configuration: Sendable {
        public var host = "127.0.0.1"
        public var port = 9090
        public var dreamlookAPIKey: String?
        public var queueTime: Duration = .seconds(1)
        public var runTime: Duration = .seconds(2)
        public var faults = SimulatorFaults()
        /// How dreamlook checkpoint files are served.
        public var files = DreamlookFileSettings()
        public var dreamgenAPIKey: String?
        public var dreamgen = DreamGenSimulator.Behaviour()
        /// Bearer key Dream Engines requests must carry (`nil`: any or none, like a dev server).
        public var dreamAPIKey: String?
        /// How long the first rollout after start waits for the model to load (the real one: 70–90 s).
        public var dreamColdStart: Duration = .zero
        /// How long a warm rollout takes (the real one: about 3 s).
        public var dreamRolloutTime: Duration = .milliseconds(100)
        /// `/v1/rollouts` answers 404, as on a deployment that predates it.
        public var dreamLegacyOnly = false
        /// Prepaid balance in mils (1/10,000 USD); `nil` for unlimited.
        public var dreamBalanceMils: Int?
        public init() {}
    }

    public let configuration: Configuration
    public let dreamlook: DreamlookSimulator
    public let dreamgen: DreamGenSimulator
    public let dreamEngines: DreamEnginesSimulator
    private let boundPort: SendableBox

    public init(configuration: Configuration) {
        self.configuration = configuration
        let port = SendableBox(configuration.port)
        self.boundPort = port
        let host = configuration.host
        self.dreamgen = DreamGenSimulator(apiKey: configuration.dreamgenAPIKey, behaviour: configuration.dreamgen)
        self.dreamlook = DreamlookSimulator(
            apiKey: configuration.dreamlookAPIKey, queueTime: configuration.queueTime, runTime: configuration.runTime,
            faults: configuration.faults, files: configuration.files, baseURL: { "http://\(host):\(port.withLock { $0 })" }
        )
        self.dreamEngines = DreamEnginesSimulator(
            apiKey: configuration.dreamAPIKey, coldStart: configuration.dreamColdStart, rolloutTime: configuration.dreamRolloutTime,
            legacyOnly: configuration.dreamLegacyOnly, balanceMils: configuration.dreamBalanceMils, faults: configuration.faults,
            baseURL: { "http://\(host):\(port.withLock { $0 })" }
        )
    }

    /// The base URL clients use, valid once the server runs.
    public var baseURL: String { "http://\(configuration.host):\(boundPort.withLock { $0 })" }

    /// The HTTP application; `onServerRunning` receives the bound port.
    public func application(logger: Logger, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router()
        // Dream Engines' own liveness route answers JSON; it serves as the simulator's as well.
        router.get("healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"status": "ok"}"#)))
        }
        dreamlook.register(on: router)
        dreamgen.register(on: router)
        dreamEngines.register(on: router)
        let boundPort = self.boundPort
        return Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "dreamd-sim"),
            services: [dreamlook.callbackSender(logger: logger)],
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                boundPort.withLock { $0 = port }
                await onServerRunning(port)
            },
            logger: logger
        )
    }
}

/// A mutable port shared between the server's start-up callback and the URL builders.
final class SendableBox: Sendable {
    private let value: Mutex<Int>
    init(_ initial: Int) { value = Mutex(initial) }
    func withLock<T>(_ body: (inout Int) -> T) -> T { value.withLock { body(&$0) } }
}
