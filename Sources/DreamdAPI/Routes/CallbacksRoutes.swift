import DreamdCore
import DreamdStore
import Foundation
import Hummingbird
import Logging
import Metrics

/// `POST /callbacks/{provider}/{token}`: an upstream reports that a job finished.
///
/// The unguessable per-submission token is the credential (only its hash is stored). The raw payload
/// is persisted first; then the kind's executor decides: usually the callback only makes the job due
/// for a poll, so the daemon confirms the state with its own key before any final transition.
/// Unknown tokens get 404 and change nothing; repeated or late callbacks change nothing either.
public struct CallbacksRoutes: Sendable {
    /// Callback bodies are job objects: 1 MB is far more than any.
    public static let bodyLimit = 1 << 20

    let callbacks: CallbackStore
    let jobs: JobStore
    let registry: ExecutorRegistry

    public init(callbacks: CallbackStore, jobs: JobStore, registry: ExecutorRegistry) {
        self.callbacks = callbacks
        self.jobs = jobs
        self.registry = registry
    }

    public func register(on router: Router<APIRequestContext>) {
        router.post("callbacks/:provider/:token", use: receive)
    }

    @Sendable func receive(_ request: Request, context: APIRequestContext) async throws -> Response {
        guard let provider = context.parameters.get("provider"), let token = context.parameters.get("token") else {
            throw APIError.notFound("unknown callback")
        }
        var request = request
        let buffer = try await request.collectBody(upTo: Self.bodyLimit)
        let text = String(buffer: buffer)
        let payload = try? DreamdJSON.decode(JSONValue.self, from: text)
        Counter(label: "dreamd_callbacks_received_total", dimensions: [("provider", provider)]).increment()
        guard let received = try await callbacks.receive(
            provider: provider, token: token, payload: text,
            upstreamJobID: payload?["job_id"]?.stringValue, upstreamState: payload?["state"]?.stringValue
        ) else {
            throw APIError.notFound("unknown callback")
        }
        var logger = context.logger
        logger[metadataKey: "job_id"] = "\(received.job.id)"
        logger[metadataKey: "kind"] = "\(received.job.kind)"
        do {
            let outcome = try await process(received, payload: payload, logger: logger)
            try await callbacks.markProcessed(inboxID: received.inboxID, outcome: outcome)
            logger.info("callback received", metadata: ["outcome": "\(outcome)"])
        } catch {
            // Stored, so nothing is lost: polling remains the safety net.
            logger.warning("callback stored but not processed", metadata: ["error": "\(String(reflecting: error))"])
        }
        return try JSONResponse.make(["received": true] as JSONValue, status: .accepted)
    }

    private func process(_ received: CallbackStore.Received, payload: JSONValue?, logger: Logger) async throws -> String {
        let job = received.job
        if job.state.isFinal { return "ignored: job already \(job.state.rawValue)" }
        guard let payload else { return "ignored: body is not JSON" }
        guard let executor = registry.executor(for: job.kind) else { return "ignored: no executor for \(job.kind)" }
        switch executor.callbackDecision(for: job, payload: payload) {
        case .ignore(let reason):
            return "ignored: \(reason)"
        case .confirmByPolling:
            return try await callbacks.pollSoon(jobID: job.id) ? "poll scheduled" : "poll already due or in progress"
        case .trust(let outcome):
            let owner = "callback:\(received.inboxID)"
            guard let claimed = try await callbacks.claimForCallback(jobID: job.id, owner: owner) else {
                return "ignored: job busy or not running"
            }
            let recorded = try await jobs.record(outcome, for: claimed, provider: executor.provider, owner: owner,
                                                 backoff: .jobRetry, actor: "callback")
            return "recorded \(recorded?.state.rawValue ?? "nothing")"
        }
    }
}
