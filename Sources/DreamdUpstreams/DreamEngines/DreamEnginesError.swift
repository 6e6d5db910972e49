import AsyncHTTPClient
import DreamdCore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// How a Dream Engines call failed, classified as the official SDK classifies it (`dream._retry`):
/// 429 (with `Retry-After`), 502/503/504 and transport errors are transient; 500, 400/415/422 and 404
/// are final; 401/403 are final and say the credentials are bad; 402 means the account is out of credits.
public enum DreamEnginesError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The upstream answered with a non-2xx status. `detail` is the body's `detail` (or the body).
    case status(code: Int, detail: String, retryAfter: Duration?)
    /// `/v1/rollouts` does not exist on this deployment (404 "Not Found"): use `/v1/predict`.
    case endpointMissing
    /// The connection failed, timed out or broke mid-answer.
    case transport(String)
    /// A 2xx answer that could not be read.
    case badResponse(String)
    /// The video could not be written to the data directory.
    case storage(String)
    /// The job's own input could not be fetched (`start_frame.url`). `transient` when a retry may help.
    case input(String, transient: Bool)
    /// A POST to a route that does not replay by `Idempotency-Key` (`/v1/predict`, `/v1/predict/batch`)
    /// may have been processed, and charged, though its answer was lost (502/503/504, a connection cut
    /// after sending, an unreadable 2xx answer). Sending it again could pay twice, so it is final.
    case outcomeUnknown(String)

    public var description: String { "\(jobError.code): \(jobError.message)" }

    /// Whether a later try may succeed (the SDK's `_is_retryable`).
    public var isRetryable: Bool {
        switch self {
        case .status(let code, _, _): [429, 502, 503, 504].contains(code)
        case .transport, .badResponse, .storage: true
        case .input(_, let transient): transient
        case .endpointMissing, .outcomeUnknown: false
        }
    }

    /// 401 or 403: the key is missing, wrong or revoked.
    public var isAuthFailure: Bool {
        if case .status(let code, _, _) = self { return code == 401 || code == 403 }
        return false
    }

    /// 402: the prepaid balance cannot cover the rollout (raised before any GPU work).
    public var isInsufficientCredits: Bool {
        if case .status(402, _, _) = self { return true }
        return false
    }

    public var retryAfter: Duration? {
        if case .status(_, _, let retryAfter) = self { return retryAfter }
        return nil
    }

    /// The error recorded on the job.
    public var jobError: JobError {
        switch self {
        case .status(let code, let detail, _):
            let message = "Dream Engines answered \(code): \(detail)"
            let name: String = switch code {
            case 401: "upstream_unauthorized"
            case 403: "upstream_forbidden"
            case 402: "upstream_insufficient_credits"
            case 404: "upstream_not_found"
            case 429: "upstream_rate_limited"
            case 502, 503, 504: "upstream_unavailable"
            case 500..<600: "upstream_server_error"
            default: "upstream_invalid_request"
            }
            return JobError(code: name, message: message)
        case .endpointMissing:
            return JobError(code: "upstream_not_found", message: "Dream Engines has no /v1/rollouts endpoint")
        case .transport(let message):
            return JobError(code: "upstream_unreachable", message: "Dream Engines could not be reached: \(message)")
        case .badResponse(let message):
            return JobError(code: "upstream_bad_response", message: message)
        case .storage(let message):
            return JobError(code: "storage_failed", message: message)
        case .input(let message, _):
            return JobError(code: "input_unavailable", message: message)
        case .outcomeUnknown(let message):
            return JobError(code: "upstream_outcome_unknown", message: message)
        }
    }

    /// Classifies a non-2xx answer. A 404 whose detail is FastAPI's bare "Not Found" on a route that
    /// may be missing becomes `.endpointMissing`.
    static func classify(status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer, routeMayBeMissing: Bool = false) -> DreamEnginesError {
        let text = String(buffer: body)
        var detail = text.isEmpty ? status.reasonPhrase : String(text.prefix(500))
        if let json = try? DreamdJSON.decode(JSONValue.self, from: text), let value = json["detail"] {
            detail = value.stringValue ?? ((try? DreamdJSON.string(value)) ?? detail)
            if routeMayBeMissing, status.code == 404, value.stringValue == "Not Found" { return .endpointMissing }
        } else if routeMayBeMissing, status.code == 404 {
            return .endpointMissing
        }
        var retryAfter: Duration?
        if status.code == 429 || status.code == 503, let value = headers.first(name: "retry-after"),
           let seconds = Double(value.trimmingCharacters(in: .whitespaces)), seconds >= 0 {
            retryAfter = .milliseconds(Int64(min(seconds, 3600) * 1000))
        }
        return .status(code: Int(status.code), detail: detail, retryAfter: retryAfter)
    }

    /// Whether a transport error happened before the request could be sent (no connection was made).
    static func failedToConnect(_ error: any Error) -> Bool {
        if let error = error as? HTTPClientError, error == .connectTimeout { return true }
        return error is NIOConnectionError
    }

    static func transport(_ error: any Error) -> DreamEnginesError {
        if let error = error as? DreamEnginesError { return error }
        return .transport(String(describing: error).prefix(300).description)
    }
}

/// The SDK's `RetryPolicy`: attempts in all (first included), exponential backoff from `baseDelay`
/// capped at `maxDelay`, each delay × uniform [0.5, 1.5] with `jitter`; a `Retry-After` wins (capped).
public struct RetryPolicy: Sendable, Hashable {
    public var maxAttempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration
    public var jitter: Bool

    /// The SDK's defaults: 3 attempts, 0.25 s, 4 s, jitter.
    public init(maxAttempts: Int = 3, baseDelay: Duration = .milliseconds(250), maxDelay: Duration = .seconds(4), jitter: Bool = true) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.jitter = jitter
    }

    /// The wait before retry number `attempt` (1-based: the wait after the first failure is attempt 1).
    public func delay(forAttempt attempt: Int, retryAfter: Duration?) -> Duration {
        if let retryAfter { return min(retryAfter, maxDelay) }
        var seconds = baseDelay.seconds * Double(1 << min(max(attempt - 1, 0), 30))
        seconds = min(seconds, maxDelay.seconds)
        if jitter { seconds *= Double.random(in: 0.5...1.5) }
        return .milliseconds(Int64(seconds * 1000))
    }

    /// Runs `body` until it succeeds, fails for good, or the attempts run out (the SDK's `call_with_retry`).
    func run<T: Sendable>(logger: Logger?, _ body: (Int) async throws(DreamEnginesError) -> T) async throws(DreamEnginesError) -> T {
        var attempt = 1
        while true {
            do throws(DreamEnginesError) {
                return try await body(attempt)
            } catch {
                guard error.isRetryable, attempt < maxAttempts, !Task.isCancelled else { throw error }
                let wait = delay(forAttempt: attempt, retryAfter: error.retryAfter)
                logger?.debug("Dream Engines call failed; retrying", metadata: ["error": "\(error)", "attempt": "\(attempt)", "wait_ms": "\(Int(wait.seconds * 1000))"])
                try? await Task.sleep(for: wait)
                attempt += 1
            }
        }
    }
}

