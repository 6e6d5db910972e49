import DreamdCore
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// A stand-in for DreamGen's completion API (`upstream-apis.md` §3): JSON lines streamed at a set token
/// rate, in either style (each line a delta, or each line the whole text so far), with mid-stream
/// errors and stalls on request.
public final class DreamGenSimulator: Sendable {
    public enum StreamStyle: String, Sendable, CaseIterable { case delta, cumulative }

    /// How the next streams behave.
    public struct Behaviour: Sendable {
        public var style: StreamStyle = .delta
        /// Time between tokens.
        public var tokenInterval: Duration = .milliseconds(10)
        /// How many tokens a completion has when `maxTokens` does not stop it first.
        public var naturalLength = 24
        /// After this many tokens, send `{"success": false, "status": errorStatus}` and end.
        public var errorAfterTokens: Int?
        public var errorStatus: Int = 503
        /// After this many tokens, go silent for `stallFor` (then end without a final line).
        public var stallAfterTokens: Int?
        public var stallFor: Duration = .seconds(60)
        /// Faults apply to this many requests, then the behaviour reverts to clean streams (nil: all).
        public var faultyRequests: Int?
        public init() {}
    }

    let apiKey: String?
    private let behaviour: Mutex<Behaviour>
    private let requests = Mutex(0)

    public init(apiKey: String?, behaviour: Behaviour = .init()) {
        self.apiKey = apiKey
        self.behaviour = Mutex(behaviour)
    }

    public func setBehaviour(_ behaviour: Behaviour) { self.behaviour.withLock { $0 = behaviour } }
    public var requestCount: Int { requests.withLock { $0 } }

    public func register<Context: RequestContext>(on router: Router<Context>) {
        router.post("api/v1/model/completion") { request, context in
            try await self.complete(request, context: context)
        }
    }

    func complete(_ request: Request, context: some RequestContext) async throws -> Response {
        if let apiKey, request.headers[.authorization] != "Bearer \(apiKey)" {
            return try json(["success": false, "message": "Unauthorized"], status: .unauthorized)
        }
        var request = request
        let buffer = try await request.collectBody(upTo: 2 << 20)
        guard let body = try? DreamdJSON.decoder().decode(JSONValue.self, from: Data(buffer.readableBytesView)),
              let model = body["modelId"]?.stringValue, let input = body["input"]?.stringValue else {
            return try json(["success": false, "message": "modelId and input are required"], status: .badRequest)
        }
        let sampling = body["samplingParams"]
        if let kind = sampling?["kind"]?.stringValue, kind != "basic" {
            return try json(["success": false, "message": "unsupported samplingParams.kind"], status: .badRequest)
        }
        let number = requests.withLock { count -> Int in count += 1; return count }
        var behaviour = self.behaviour.withLock { $0 }
        if let faulty = behaviour.faultyRequests, number > faulty {
            behaviour.errorAfterTokens = nil
            behaviour.stallAfterTokens = nil
        }
        let maxTokens = sampling?["maxTokens"]?.intValue
        let length = min(maxTokens ?? behaviour.naturalLength, behaviour.naturalLength)
        let finishReason = maxTokens.map { $0 <= behaviour.naturalLength ? "length" : "stop" } ?? "stop"
        let words = Self.words(for: input, model: model, count: length)
        let inputTokens = input.split(separator: " ").count
        let plan = behaviour
        return Response(
            status: .ok,
            headers: [.contentType: "application/x-ndjson"],
            body: ResponseBody { writer in
                var text = ""
                for (index, word) in words.enumerated() {
                    if let errorAfter = plan.errorAfterTokens, index == errorAfter {
                        try await writer.write(Self.line(["success": false, "message": "simulated mid-stream failure", "status": .number(Double(plan.errorStatus))]))
                        try await writer.finish(nil)
                        return
                    }
                    if let stallAfter = plan.stallAfterTokens, index == stallAfter {
                        // Silent until the stall is over, or the simulator stops (a stopping server waits for
                        // its open responses).
                        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: plan.stallFor) }
                        try await writer.finish(nil)
                        return
                    }
                    try await Task.sleep(for: plan.tokenInterval)
                    text += word
                    let output = plan.style == .delta ? word : text
                    try await writer.write(Self.line(["success": true, "output": .string(output)]))
                }
                let usage: JSONValue = [
                    "inputTokens": .number(Double(inputTokens)),
                    "outputTokens": .number(Double(words.count)),
                    "completionCredits": .number(Double(inputTokens + words.count) / 1000),
                ]
                try await writer.write(Self.line([
                    "success": true, "output": .string(plan.style == .delta ? "" : text),
                    "finishReason": .string(finishReason), "usage": usage,
                ]))
                try await writer.finish(nil)
            }
        )
    }

    static func line(_ value: JSONValue) -> ByteBuffer {
        var data = (try? DreamdJSON.encoder().encode(value)) ?? Data("{}".utf8)
        data.append(UInt8(ascii: "\n"))
        return ByteBuffer(bytes: data)
    }

    /// Deterministic text for an input: the same request streams the same words.
    public static func words(for input: String, model: String, count: Int) -> [String] {
        let vocabulary = ["the", "dream", "engine", "hums", "softly", "while", "a", "fox", "paints", "rivers", "of", "light",
                          "across", "quiet", "hills", "and", "every", "frame", "remembers", "its", "first", "morning", "sky", "again"]
        var seed = UInt64(truncatingIfNeeded: (input + model).utf8.reduce(5381) { ($0 &* 33) &+ Int($1) })
        return (0..<count).map { index in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let word = vocabulary[Int((seed >> 33) % UInt64(vocabulary.count))]
            return (index == 0 ? word.capitalized : word) + (index == count - 1 ? "." : " ")
        }
    }

    func json(_ value: JSONValue, status: HTTPResponse.Status) throws -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(bytes: try DreamdJSON.encoder().encode(value))))
    }
}
