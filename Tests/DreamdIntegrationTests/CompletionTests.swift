import DreamdCore
import DreamdSim
@testable import DreamdUpstreams
import Foundation
import Testing

@Suite("DreamGen completions", .hangGuard)
struct CompletionTests {
    static func body(_ input: String = "Once upon a time", maxTokens: Int? = nil) -> String {
        let sampling = maxTokens.map { #", "sampling": {"temperature": 0.8, "maxTokens": \#($0), "maxTotalTokens": 4096}"# } ?? ""
        return #"{"kind": "completion", "params": {"model": "opus-v1-sm", "input": "\#(input)"\#(sampling)}}"#
    }

    static func expected(_ input: String = "Once upon a time", count: Int = 24) -> String {
        DreamGenSimulator.words(for: input, model: "opus-v1-sm", count: count).joined()
    }

    @Test("both stream styles give the full text with finishReason and usage", arguments: DreamGenSimulator.StreamStyle.allCases)
    func streamStyles(style: DreamGenSimulator.StreamStyle) async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                var behaviour = DreamGenSimulator.Behaviour()
                behaviour.style = style
                sim.dreamgen.setBehaviour(behaviour)
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let id = try #require(try await daemon.submit(Self.body(maxTokens: 10)).json["id"]?.stringValue)
                    let job = try await daemon.waitFinal(id)
                    #expect(job["state"]?.stringValue == "succeeded")
                    #expect(job["result"]?["text"]?.stringValue == Self.expected(count: 10))
                    #expect(job["result"]?["finishReason"]?.stringValue == "length")
                    #expect(job["result"]?["usage"]?["outputTokens"]?.intValue == 10)
                    #expect(job["result"]?["usage"]?["inputTokens"]?.intValue == 4)
                    #expect(job["progress"]?["output_length"]?.intValue == Self.expected(count: 10).unicodeScalars.count)
                }
            }
        }
    }

    @Test("while streaming, the job shows its output so far")
    func progress() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                var behaviour = DreamGenSimulator.Behaviour()
                behaviour.tokenInterval = .milliseconds(150)
                sim.dreamgen.setBehaviour(behaviour)
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let id = try #require(try await daemon.submit(Self.body()).json["id"]?.stringValue)
                    let full = Self.expected()
                    let sawPartial = try await eventually(timeout: .seconds(10)) {
                        let job = try await daemon.job(id)
                        let length = job["progress"]?["output_length"]?.intValue ?? 0
                        return job["state"]?.stringValue == "submitting" && length > 0 && length < full.unicodeScalars.count
                    }
                    #expect(sawPartial)
                    let partial = try await daemon.request(.GET, "/v1/jobs/\(id)/output").json
                    let text = try #require(partial["text"]?.stringValue)
                    #expect(!text.isEmpty && full.hasPrefix(text))
                    #expect(partial["final"] == false)
                    let job = try await daemon.waitFinal(id)
                    #expect(job["state"]?.stringValue == "succeeded")
                    let rest = try await daemon.request(.GET, "/v1/jobs/\(id)/output?offset=\(text.unicodeScalars.count)").json
                    #expect(text + (rest["text"]?.stringValue ?? "") == full)
                    #expect(rest["final"] == true)
                }
            }
        }
    }

    @Test("a retryable mid-stream error is retried; a final one fails the job")
    func midStreamErrors() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                var behaviour = DreamGenSimulator.Behaviour()
                behaviour.errorAfterTokens = 3
                behaviour.errorStatus = 503
                behaviour.faultyRequests = 1
                sim.dreamgen.setBehaviour(behaviour)
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let retried = try await daemon.waitFinal(try #require(try await daemon.submit(Self.body()).json["id"]?.stringValue))
                    #expect(retried["state"]?.stringValue == "succeeded")
                    #expect(retried["attempt"]?.intValue == 2)
                    #expect(retried["result"]?["text"]?.stringValue == Self.expected())

                    var permanent = DreamGenSimulator.Behaviour()
                    permanent.errorAfterTokens = 3
                    permanent.errorStatus = 400
                    sim.dreamgen.setBehaviour(permanent)
                    let failed = try await daemon.waitFinal(try #require(try await daemon.submit(Self.body("Another")).json["id"]?.stringValue))
                    #expect(failed["state"]?.stringValue == "failed")
                    #expect(failed["attempt"]?.intValue == 1)
                    #expect(failed["error"]?["code"]?.stringValue == "upstream_stream_error")
                    #expect(failed["error"]?["message"]?.stringValue?.contains("simulated mid-stream failure") == true)
                }
            }
        }
    }

    @Test("a stream that stalls past the idle timeout is aborted and retried")
    func stalls() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                var behaviour = DreamGenSimulator.Behaviour()
                behaviour.stallAfterTokens = 3
                behaviour.stallFor = .seconds(30)
                behaviour.faultyRequests = 1
                sim.dreamgen.setBehaviour(behaviour)
                try await withDaemon(database: db, simulator: sim, overrides: ["DREAMD_COMPLETION_IDLE_TIMEOUT": "600ms"]) { daemon in
                    let started = ContinuousClock.now
                    let job = try await daemon.waitFinal(try #require(try await daemon.submit(Self.body()).json["id"]?.stringValue))
                    #expect(job["state"]?.stringValue == "succeeded")
                    #expect(job["attempt"]?.intValue == 2)
                    #expect(ContinuousClock.now - started < .seconds(20))
                    let codes = try await db.values("SELECT detail->'error'->>'code' FROM job_events WHERE to_state = 'scheduled'", as: String.self)
                    #expect(codes == ["upstream_stalled"])
                }
            }
        }
    }

    @Test("sampling params are validated at submit, naming the field")
    func validation() async throws {
        try await TestDatabase.with { db in
            try await withSimulator { sim in
                try await withDaemon(database: db, simulator: sim) { daemon in
                    let cases: [(String, String)] = [
                        (#"{"kind": "completion", "params": {"model": "opus-v1-sm"}}"#, "params.input"),
                        (#"{"kind": "completion", "params": {"input": "x"}}"#, "params.model"),
                        (#"{"kind": "completion", "params": {"model": "opus-v1-sm", "input": "x", "sampling": {"maxTokens": 500, "maxTotalTokens": 100}}}"#, "params.sampling.maxTokens"),
                        (#"{"kind": "completion", "params": {"model": "opus-v1-sm", "input": "x", "sampling": {"kind": "fancy"}}}"#, "params.sampling.kind"),
                        (#"{"kind": "completion", "params": {"model": "opus-v1-sm", "input": "x", "sampling": {"topP": 1.5}}}"#, "params.sampling.topP"),
                        (#"{"kind": "completion", "params": {"model": "opus-v1-sm", "input": "x", "sampling": {"stopSequences": [1]}}}"#, "params.sampling.stopSequences"),
                        (#"{"kind": "completion", "params": {"model": "opus-v1-sm", "input": "x", "sampling": {"temprature": 1}}}"#, "params.sampling.temprature"),
                    ]
                    for (body, field) in cases {
                        let answer = try await daemon.submit(body)
                        #expect(answer.status == 422, "\(body)")
                        #expect(answer.json["error"]?["details"]?["field"]?.stringValue == field, "\(body)")
                    }
                }
            }
        }
    }

    @Test("the stream folder tells delta from cumulative lines")
    func streamFolding() throws {
        var delta = CompletionStream()
        for piece in ["Hel", "lo", " world"] { try delta.apply(["success": true, "output": .string(piece)]) }
        #expect(delta.text == "Hello world")
        var cumulative = CompletionStream()
        for piece in ["Hel", "Hello", "Hello world", ""] { try cumulative.apply(["success": true, "output": .string(piece)]) }
        #expect(cumulative.text == "Hello world")
        var failing = CompletionStream()
        #expect(throws: CompletionStream.StreamFailure.self) {
            try failing.apply(["success": false, "message": "boom", "status": 500])
        }
    }
}
