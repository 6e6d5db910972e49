import DreamdCore

/// Folds DreamGen's JSON-lines stream into the text so far, whichever style the server uses:
/// each line a delta, or each line the whole text so far. The style is settled by the first line
/// that tells them apart (a line that extends the text so far is cumulative).
struct CompletionStream: Sendable {
    enum Style: Sendable { case undecided, delta, cumulative }

    /// A `{"success": false}` line.
    struct StreamFailure: Error, Sendable {
        var message: String
        var status: Int?
    }

    private(set) var text = ""
    private(set) var style: Style = .undecided
    private(set) var lines = 0
    private(set) var finishReason: String?
    private(set) var usage: JSONValue?
    private var firstOutput: String?

    /// Applies one line of the stream.
    mutating func apply(_ line: JSONValue) throws(StreamFailure) {
        lines += 1
        if line["success"]?.boolValue == false {
            throw StreamFailure(message: line["message"]?.stringValue ?? "DreamGen reported a failure", status: line["status"]?.intValue)
        }
        if let reason = line["finishReason"]?.stringValue { finishReason = reason }
        if let usage = line["usage"], !usage.isNull { self.usage = usage }
        guard let output = line["output"]?.stringValue else { return }
        switch style {
        case .delta:
            text += output
        case .cumulative:
            text = output.count >= text.count ? output : text
        case .undecided:
            if firstOutput == nil {
                firstOutput = output
                text = output
            } else if !output.isEmpty, let first = firstOutput, !first.isEmpty {
                if output.hasPrefix(first), output.count > first.count {
                    style = .cumulative
                    text = output
                } else {
                    style = .delta
                    text += output
                }
            } else {
                text += output
            }
        }
    }

    var outputTokens: Int? { usage?["outputTokens"]?.intValue }
}
