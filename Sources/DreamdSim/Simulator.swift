import Foundation
import Hummingbird
import Logging
import Synchronization

/// `dreamd sim`: the upstream simulators on one port (their paths do not collide).
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
        public init() {}
    }

    public let configuration: Configuration
    public let dreamlook: DreamlookSimulator
    public let dreamgen: DreamGenSimulator
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
    }

    /// The base URL clients use, valid once the server runs.
    public var baseURL: String { "http://\(configuration.host):\(boundPort.withLock { $0 })" }

    /// The HTTP application; `onServerRunning` receives the bound port.
    public func application(logger: Logger, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router()
        router.get("healthz") { _, _ in "ok" }
        dreamlook.register(on: router)
        dreamgen.register(on: router)
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
