import AsyncHTTPClient
import DreamdCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// How an upstream call failed, classified for the retry policy.
public enum UpstreamError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Worth trying again: 429, most 5xx, transport errors. `retryAfter` is the server's hint.
    case retryable(code: String, message: String, retryAfter: Duration?)
    /// Trying again will not help (bad key, invalid payload, unknown job, ...).
    case final(code: String, message: String)
    /// The request may or may not have reached the upstream (timeout, reset after sending, 5xx).
    /// A submission must look for an earlier copy before sending again.
    case outcomeUnknown(code: String, message: String)

    public var description: String {
        switch self {
        case .retryable(let code, let message, _), .final(let code, let message), .outcomeUnknown(let code, let message):
            "\(code): \(message)"
        }
    }

    /// The error to record on the job.
    public var jobError: JobError {
        switch self {
        case .retryable(let code, let message, _), .final(let code, let message), .outcomeUnknown(let code, let message):
            JobError(code: code, message: message)
        }
    }

    public var isRetryable: Bool {
        if case .final = self { return false }
        return true
    }

    /// The step outcome of a failed submission: retry with backoff, or fail for good.
    public var submitOutcome: StepOutcome {
        switch self {
        case .retryable(_, _, let retryAfter): .retry(jobError, retryAfter: retryAfter)
        case .outcomeUnknown: .retry(jobError, retryAfter: nil)
        case .final: .failed(jobError, upstreamState: nil)
        }
    }

    /// Classifies an HTTP answer that was not a success, by the provider's documented rules.
    public static func classify(provider: String, status: HTTPResponseStatus, headers: HTTPHeaders, body: String) -> UpstreamError {
        let detail = body.isEmpty ? status.reasonPhrase : String(body.prefix(500))
        let message = "\(provider) answered \(status.code): \(detail)"
        switch status.code {
        case 429:
            return .retryable(code: "upstream_rate_limited", message: message, retryAfter: retryAfter(headers))
        case 401:
            return .final(code: "upstream_unauthorized", message: message)
        case 403:
            return .final(code: "upstream_forbidden", message: message)
        case 422, 400, 415:
            return .final(code: "upstream_invalid_request", message: message)
        case 404:
            return .final(code: "upstream_not_found", message: message)
        case 300..<400:
            return .final(code: "upstream_redirect", message: message)
        case 500..<600:
            return .outcomeUnknown(code: "upstream_unavailable", message: message)
        default:
            return .final(code: "upstream_error", message: message)
        }
    }

    /// Classifies a transport error (connect failure, timeout, reset).
    public static func transport(provider: String, _ error: any Error, requestMayHaveBeenSent: Bool) -> UpstreamError {
        let message = "\(provider) could not be reached: \(String(describing: error))"
        if let clientError = error as? HTTPClientError, clientError == .connectTimeout {
            return .retryable(code: "upstream_unreachable", message: message, retryAfter: nil)
        }
        if error is NIOConnectionError {
            return .retryable(code: "upstream_unreachable", message: message, retryAfter: nil)
        }
        return requestMayHaveBeenSent
            ? .outcomeUnknown(code: "upstream_unreachable", message: message)
            : .retryable(code: "upstream_unreachable", message: message, retryAfter: nil)
    }

    /// Reads a numeric `Retry-After` (seconds), capped at one hour.
    public static func retryAfter(_ headers: HTTPHeaders) -> Duration? {
        guard let value = headers.first(name: "retry-after"), let seconds = Double(value.trimmingCharacters(in: .whitespaces)),
              seconds >= 0 else { return nil }
        return .milliseconds(Int64(min(seconds, 3600) * 1000))
    }
}
