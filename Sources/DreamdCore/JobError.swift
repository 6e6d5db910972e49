/// The `error` object recorded on a job: a stable snake_case code and a human message.
public struct JobError: Error, Sendable, Codable, Hashable {
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }
}
