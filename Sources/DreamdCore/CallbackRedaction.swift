/// Removes callback tokens from text that dreamd stores or shows.
///
/// A callback URL (`…/callbacks/<provider>/<token>`) is a credential: the token alone lets its bearer
/// make a job due for a poll. dreamlook echoes the URL in every job object (`config.callback`), so the
/// token would otherwise land in the callback inbox, in job results and in error messages. Only its
/// hash is meant to be kept: every such token is replaced by `marker`.
public enum CallbackRedaction {
    /// What a token is replaced with.
    public static let marker = "[redacted]"
    /// Tokens are 43 URL-safe base64 characters; shorter runs are left alone (not tokens).
    static let minimumTokenLength = 16

    /// `text` with the token of every callback URL in it replaced by `marker`.
    public static func redact(_ text: String) -> String {
        guard text.contains("/callbacks/") else { return text }
        var output = ""
        var rest = Substring(text)
        while let found = rest.range(of: "/callbacks/") {
            output += rest[..<found.upperBound]
            rest = rest[found.upperBound...]
            let provider = rest.prefix { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
            guard !provider.isEmpty, rest.dropFirst(provider.count).first == "/" else { continue }
            let afterSlash = rest.dropFirst(provider.count + 1)
            let token = afterSlash.prefix { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
            guard token.count >= minimumTokenLength else { continue }
            output += provider + "/" + marker
            rest = afterSlash.dropFirst(token.count)
        }
        return output + rest
    }

    /// `value` with `redact` applied to every string and object key in it.
    public static func redact(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let text): .string(redact(text))
        case .array(let items): .array(items.map(redact))
        case .object(let object):
            .object(Dictionary(object.map { (redact($0.key), redact($0.value)) }, uniquingKeysWith: { first, _ in first }))
        default: value
        }
    }

    /// `outcome` with every token removed from its result, error and audit detail.
    public static func redact(_ outcome: StepOutcome) -> StepOutcome {
        switch outcome {
        case .running(let id, let state, let nextCheck, let detail):
            .running(upstreamJobID: id, upstreamState: state, nextCheck: nextCheck, detail: detail.map(redact))
        case .succeeded(let result, let cost, let state, let checkpoints):
            .succeeded(result: redact(result), costUSD: cost, upstreamState: state, checkpoints: checkpoints)
        case .failed(let error, let state):
            .failed(redact(error), upstreamState: state)
        case .retry(let error, let retryAfter):
            .retry(redact(error), retryAfter: retryAfter)
        case .deferred(let until, let reason):
            .deferred(until: until, reason: redact(reason))
        case .unsettled(let error, let retryAfter, let hold, let since, let anchor):
            .unsettled(redact(error), retryAfter: retryAfter, holdSubmissions: hold, since: since, anchor: anchor)
        }
    }

    static func redact(_ error: JobError) -> JobError {
        JobError(code: error.code, message: redact(error.message))
    }
}
