import DreamdCore
import Testing

@Suite("Job states")
struct JobStateTests {
    @Test("final states change only by a person's retry (failed/cancelled → queued); succeeded never",
          arguments: [JobState.succeeded, .failed, .cancelled])
    func finalStatesAreFinal(state: JobState) {
        #expect(state.isFinal)
        for next in JobState.allCases {
            let retry = state != .succeeded && next == .queued
            #expect(state.canTransition(to: next) == retry)
        }
    }

    @Test("the documented paths are allowed and shortcuts are not")
    func transitions() {
        #expect(JobState.scheduled.canTransition(to: .queued))
        #expect(JobState.queued.canTransition(to: .submitting))
        #expect(JobState.submitting.canTransition(to: .running))
        #expect(JobState.running.canTransition(to: .succeeded))
        #expect(JobState.running.canTransition(to: .scheduled))
        #expect(JobState.queued.canTransition(to: .cancelled))
        #expect(!JobState.queued.canTransition(to: .succeeded))
        #expect(!JobState.scheduled.canTransition(to: .running))
        #expect(JobState.cancellable == [.scheduled, .queued, .submitting, .running])
    }
}

@Suite("Backoff")
struct BackoffTests {
    @Test("doubles per attempt up to the cap")
    func nominal() {
        let policy = BackoffPolicy(base: .seconds(10), cap: .seconds(60), jitter: 0)
        #expect(policy.nominalDelay(afterAttempt: 1) == .seconds(10))
        #expect(policy.nominalDelay(afterAttempt: 2) == .seconds(20))
        #expect(policy.nominalDelay(afterAttempt: 3) == .seconds(40))
        #expect(policy.nominalDelay(afterAttempt: 4) == .seconds(60))
        #expect(policy.nominalDelay(afterAttempt: 400) == .seconds(60))
    }

    @Test("jitter stays within its band and varies")
    func jitter() {
        let policy = BackoffPolicy(base: .seconds(100), cap: .seconds(1000), jitter: 0.2)
        let delays = (0..<200).map { _ in policy.delay(afterAttempt: 1).seconds }
        #expect(delays.allSatisfy { $0 >= 80 && $0 <= 120 })
        #expect(Set(delays.map { Int($0) }).count > 10)
    }
}

@Suite("Durations")
struct DurationTests {
    @Test("parses the contract's forms", arguments: [
        ("500ms", Duration.milliseconds(500)), ("5s", .seconds(5)), ("10m", .seconds(600)), ("48h", .seconds(172_800)),
        ("1h30m", .seconds(5400)), ("2d", .seconds(172_800)), ("1.5s", .milliseconds(1500)),
    ])
    func parses(text: String, expected: Duration) throws {
        #expect(try DurationParser.parse(text) == expected)
    }

    @Test("refuses what it cannot read", arguments: ["", "5", "s", "5x", "-5s", "5 s s", "abc"])
    func refuses(text: String) {
        #expect(throws: DurationParser.ParseError.self) { try DurationParser.parse(text) }
    }

    @Test("formats with the largest exact unit")
    func formats() {
        #expect(DurationParser.format(.seconds(172_800)) == "2d")
        #expect(DurationParser.format(.seconds(90)) == "90s")
        #expect(DurationParser.format(.milliseconds(1500)) == "1500ms")
    }
}
