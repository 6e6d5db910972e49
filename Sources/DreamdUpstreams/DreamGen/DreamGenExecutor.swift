import DreamdCore
import Foundation
import Logging
import Synchronization

/// Runs `completion` jobs on DreamGen: one streaming call per attempt, progress published as the text
/// grows, the full text with `finishReason` and `usage` as the result.
public struct DreamGenExecutor: JobExecutor {
    public let client: DreamGenClient

    public var kinds: [JobKind] { [.completion] }
    public var provider: String { DreamGenClient.provider }

    public init(client: DreamGenClient) { self.client = client }

    public func paramsSchema(for kind: JobKind) -> JSONValue { CompletionParams.schema }

    public func validate(kind: JobKind, params: JSONValue) throws(ValidationError) {
        try CompletionParams.validate(params)
    }

    public func submit(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome {
        await submit(claimed, context: StepContext(logger: logger))
    }

    public func submit(_ claimed: ClaimedJob, context: StepContext) async -> StepOutcome {
        let stream = StreamState()
        do {
            try await client.complete(body: CompletionParams.requestBody(claimed.job.params), logger: context.logger) { line in
                let snapshot = try stream.withLock { stream throws(CompletionStream.StreamFailure) -> CompletionStream in
                    try stream.apply(line)
                    return stream
                }
                var counters: [String: JSONValue] = [
                    "output_length": .number(Double(snapshot.text.unicodeScalars.count)),
                    "lines": .number(Double(snapshot.lines)),
                ]
                if let tokens = snapshot.outputTokens { counters["output_tokens"] = .number(Double(tokens)) }
                await context.reportProgress(StepProgress(counters: .object(counters), partialOutput: snapshot.text))
            }
        } catch let failure as CompletionStream.StreamFailure {
            let error = JobError(code: "upstream_stream_error", message: "DreamGen: \(failure.message)")
            let retryable = failure.status.map { $0 == 429 || (500..<600).contains($0) && $0 != 500 } ?? false
            return retryable ? .retry(error, retryAfter: nil) : .failed(error, upstreamState: "error")
        } catch let error as UpstreamError {
            // A completion is idempotent to retry (nothing is created upstream), so unknown outcomes just retry.
            switch error {
            case .final: return .failed(error.jobError, upstreamState: nil)
            case .retryable(_, _, let retryAfter): return .retry(error.jobError, retryAfter: retryAfter)
            case .outcomeUnknown: return .retry(error.jobError, retryAfter: nil)
            }
        } catch {
            return .retry(JobError(code: "upstream_unreachable", message: "DreamGen: \(error)"), retryAfter: nil)
        }
        let final = stream.snapshot
        let result: JSONValue = [
            "text": .string(final.text),
            "finishReason": final.finishReason.map(JSONValue.string) ?? .null,
            "usage": final.usage ?? .null,
            "model": claimed.job.params["model"] ?? .null,
        ]
        let counters: JSONValue = [
            "output_length": .number(Double(final.text.unicodeScalars.count)),
            "output_tokens": final.outputTokens.map { .number(Double($0)) } ?? .null,
            "lines": .number(Double(final.lines)),
        ]
        await context.reportProgress(StepProgress(counters: counters, partialOutput: final.text))
        return .succeeded(result: result, costUSD: nil, upstreamState: final.finishReason ?? "stop")
    }

    public func poll(_ claimed: ClaimedJob, logger: Logger) async -> StepOutcome {
        .retry(JobError(code: "unexpected_poll", message: "completion jobs finish in their submission step"), retryAfter: nil)
    }
}

/// The stream's state, shared between the reading task and the step.
final class StreamState: Sendable {
    private let state = Mutex(CompletionStream())

    func withLock<T>(_ body: (inout CompletionStream) throws(CompletionStream.StreamFailure) -> T) throws(CompletionStream.StreamFailure) -> T {
        try state.withLock { stream throws(CompletionStream.StreamFailure) in try body(&stream) }
    }

    var snapshot: CompletionStream { state.withLock { $0 } }
}
