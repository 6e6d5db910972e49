import DreamdCore
import DreamdStore
import Foundation
import Hummingbird
import Logging
import Metrics

/// `POST /callbacks/{provider}/{token}`: an upstream reports that a job finished.
///
/// The unguessable per-submission token is the credential (only its hash is stored). The raw payload
/// is persisted first, with callback tokens replaced by a marker; then the kind's executor decides
/// (`CallbackProcessor`; a callback for a job being submitted or polled waits and is applied after):
/// usually the callback only makes the job due for a poll, so the daemon confirms the state with its own
/// key before any final transition. Unknown tokens, and tokens whose job has been final for longer than
/// the grace period, get 404 and change nothing (and count against the caller's address, like a bad
/// key); a token that has stored its allowance of callbacks gets 429; repeated or late callbacks change
/// nothing either. The token is never logged: logs name the route pattern.
public struct CallbacksRoutes: Sendable {
    /// Callback bodies are job objects: 1 MB is far more than any.
    public static let bodyLimit = 1 << 20

    let callbacks: CallbackStore
    let jobs: JobStore
    let registry: ExecutorRegistry
    let policy: CallbackStore.TokenPolicy
    let failures: AddressRateLimiter?

    public init(callbacks: CallbackStore, jobs: JobStore, registry: ExecutorRegistry,
                policy: CallbackStore.TokenPolicy = .init(), failures: AddressRateLimiter? = nil) {
        self.callbacks = callbacks
        self.jobs = jobs
        self.registry = registry
        self.policy = policy
        self.failures = failures
    }

    public func register(on router: Router<APIRequestContext>) {
        router.post("callbacks/:provider/:token", use: receive)
    }

    @Sendable func receive(_ request: Request, context: APIRequestContext) async throws -> Response {
        guard let provider = context.parameters.get("provider"), let token = context.parameters.get("token") else {
            throw APIError.notFound("unknown callback")
        }
        let address = context.clientAddress
        if let failures, let wait = failures.wait(for: address) {
            throw APIError.rateLimited("too many unknown callback tokens from this address; retry after \(wait) s", retryAfter: wait)
        }
        var request = request
        let buffer = try await request.collectBody(upTo: Self.bodyLimit)
        let body = Array(buffer.readableBytesView)
        let payload = try? JSONValue.parse(String(decoding: body, as: UTF8.self))
        Counter(label: "dreamd_callbacks_received_total", dimensions: [("provider", provider)]).increment()
        let receipt = try await callbacks.receive(
            provider: provider, token: token, body: body,
            upstreamJobID: payload?["job_id"]?.stringValue, upstreamState: payload?["state"]?.stringValue, policy: policy
        )
        let received: CallbackStore.Received
        switch receipt {
        case .stored(let stored):
            received = stored
        case .unknownToken:
            _ = failures?.admit(address)
            throw APIError.notFound("unknown callback")
        case .limitReached(let limit):
            throw APIError(.tooManyRequests, code: "callback_limit", message: "this callback URL has stored its \(limit) callbacks; the job is polled")
        }
        var logger = context.logger
        logger[metadataKey: "job_id"] = "\(received.job.id)"
        logger[metadataKey: "kind"] = "\(received.job.kind)"
        do {
            let processor = CallbackProcessor(callbacks: callbacks, jobs: jobs, registry: registry, logger: logger)
            let result = try await processor.process(inboxID: received.inboxID, job: received.job, payload: payload)
            logger.info("callback received", metadata: ["outcome": "\(result)"])
        } catch {
            // Stored, so nothing is lost: polling remains the safety net.
            logger.warning("callback stored but not processed", metadata: ["error": "\(String(reflecting: error))"])
        }
        return try JSONResponse.make(["received": true] as JSONValue, status: .accepted)
    }

}
