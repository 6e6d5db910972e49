import DreamdCore
import Metrics
import ServiceLifecycle

/// Publishes each tracked upstream's state as swift-metrics gauges, every `interval`:
/// `dreamd_upstream_paused`, `dreamd_upstream_unhealthy` (0 or 1) and `dreamd_upstream_in_flight`,
/// each with an `upstream` dimension. They reach `/metrics` once a metrics backend is bootstrapped.
public struct UpstreamMetrics: Service {
    let registry: ExecutorRegistry
    let interval: Duration

    public init(registry: ExecutorRegistry, interval: Duration = .seconds(2)) {
        self.registry = registry
        self.interval = interval
    }

    public func run() async throws {
        let tracked = registry.executors.compactMap(\.health).map { health in
            let dimensions = [("upstream", health.name)]
            return (health: health,
                    paused: Gauge(label: "dreamd_upstream_paused", dimensions: dimensions),
                    unhealthy: Gauge(label: "dreamd_upstream_unhealthy", dimensions: dimensions),
                    inFlight: Gauge(label: "dreamd_upstream_in_flight", dimensions: dimensions))
        }
        // A service that returns early would end the whole group: run until the graceful shutdown.
        guard !tracked.isEmpty else {
            try? await gracefulShutdown()
            return
        }
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                for gauges in tracked {
                    let status = gauges.health.status
                    gauges.paused.record(status.state == .paused ? 1 : 0)
                    gauges.unhealthy.record(status.state == .unhealthy ? 1 : 0)
                    gauges.inFlight.record(status.inFlight)
                }
                try await Task.sleep(for: interval)
            }
        }
    }
}
