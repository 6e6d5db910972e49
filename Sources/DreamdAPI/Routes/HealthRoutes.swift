import DreamdCore
import Hummingbird

/// `/healthz` (the process answers) and `/readyz` (the database answers and its migrations are current).
public struct HealthRoutes: Sendable {
    /// Returns named checks; any failure makes `/readyz` answer 503.
    public typealias ReadinessProbe = @Sendable () async -> [String: Result<String, ReadinessFailure>]

    public struct ReadinessFailure: Error, Sendable {
        public var message: String
        public init(_ message: String) { self.message = message }
    }

    let probe: ReadinessProbe

    public init(probe: @escaping ReadinessProbe) { self.probe = probe }

    public func register(on router: Router<APIRequestContext>) {
        router.get("healthz") { _, _ in try JSONResponse.make(["status": "ok"] as JSONValue) }
        router.get("readyz") { _, _ in
            let results = await probe()
            var checks: [String: JSONValue] = [:]
            var ready = true
            for (name, result) in results {
                switch result {
                case .success(let detail): checks[name] = ["ok": true, "detail": .string(detail)]
                case .failure(let failure):
                    ready = false
                    checks[name] = ["ok": false, "detail": .string(failure.message)]
                }
            }
            let body: JSONValue = ["status": .string(ready ? "ready" : "unavailable"), "checks": .object(checks)]
            return try JSONResponse.make(body, status: ready ? .ok : .serviceUnavailable)
        }
    }
}
