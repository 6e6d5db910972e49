import DreamdCore
import Foundation

/// The simulated dreamlook.ai account: its jobs and the faults it injects.
actor DreamlookSimState {
    struct SimJob: Sendable {
        var jobType: String
        var jobID: String
        var config: JSONValue
        var tags: [JSONValue]
        var createdAt: Date
        var queueTime: Duration
        var runTime: Duration
        var fails: Bool
        var isDryRun: Bool
        var callbackURL: String?
        var callbackDone = false

        var finishesAt: Date { createdAt.addingTimeInterval(queueTime.seconds + runTime.seconds) }
    }

    /// Dry runs are never listed nor answered for, but their callback still comes.
    var dryRuns: [String: SimJob] = [:]
    var callbacksSent = 0

    var jobs: [String: SimJob] = [:]
    var order: [String] = []
    var faults: SimulatorFaults
    var forced = ForcedAnswers()
    var queueTime: Duration
    var runTime: Duration
    var requestCount = 0
    var files = DreamlookFileSettings()
    var fileRequests: [DreamlookFileRequest] = []

    init(faults: SimulatorFaults, queueTime: Duration, runTime: Duration, files: DreamlookFileSettings = .init()) {
        self.faults = faults
        self.files = files
        self.queueTime = queueTime
        self.runTime = runTime
    }

    func setFaults(_ faults: SimulatorFaults) { self.faults = faults }
    func setFiles(_ files: DreamlookFileSettings) { self.files = files }
    func recordFileRequest(_ request: DreamlookFileRequest) { fileRequests.append(request) }
    func force(statuses: [Int]) { forced.statuses.append(contentsOf: statuses) }
    func setTiming(queue: Duration, run: Duration) {
        queueTime = queue
        runTime = run
    }

    /// The status to answer instead of the real one, if a fault fires.
    func injectedStatus() -> Int? {
        requestCount += 1
        if let status = forced.next() { return status }
        if Double.random(in: 0..<1) < faults.rateLimitRate { return 429 }
        if Double.random(in: 0..<1) < faults.serverErrorRate { return [502, 503, 504].randomElement() ?? 503 }
        return nil
    }

    func create(jobType: String, body: JSONValue, dryRun: Bool) -> (job: SimJob, thenFail: Bool) {
        let prefix = dryRun ? "TEST_" : ["image_gen": "ig_", "dreambooth": "db_", "dreambooth_image_gen": "dbig_"][jobType] ?? "job_"
        var id: String
        repeat { id = prefix + String(format: "%08x", UInt32.random(in: .min ... .max)) } while jobs[id] != nil
        let job = SimJob(
            jobType: jobType, jobID: id, config: body, tags: body["tags"]?.arrayValue ?? [], createdAt: Date(),
            queueTime: dryRun ? .zero : queueTime, runTime: dryRun ? .milliseconds(100) : runTime,
            fails: !dryRun && Double.random(in: 0..<1) < faults.jobFailureRate, isDryRun: dryRun,
            callbackURL: body["callback"]?.stringValue
        )
        if dryRun {
            dryRuns[id] = job
        } else {
            jobs[id] = job
            order.append(id)
        }
        return (job, Double.random(in: 0..<1) < faults.createThenFailRate)
    }

    func job(_ id: String) -> SimJob? { jobs[id] }

    func recent(jobType: String, limit: Int = 50) -> [SimJob] {
        order.reversed().lazy.compactMap { self.jobs[$0] }.filter { $0.jobType == jobType }.prefix(limit).map { $0 }
    }

    /// Every job whose tag `key` has `value` (tests check "exactly once upstream").
    func jobs(taggedWith key: String, value: String) -> [SimJob] {
        order.compactMap { jobs[$0] }.filter { job in
            job.tags.contains { $0["key"]?.stringValue == key && $0["value"]?.stringValue == value }
        }
    }

    var jobCount: Int { jobs.count }

    /// How many jobs (not dry runs) carry each value of tag `key`: a value counted twice was paid twice.
    func tagCounts(key: String) -> [String: Int] {
        var counts: [String: Int] = [:]
        for job in jobs.values {
            for tag in job.tags where tag["key"]?.stringValue == key {
                if let value = tag["value"]?.stringValue { counts[value, default: 0] += 1 }
            }
        }
        return counts
    }

    /// Jobs whose callback is due now, marked as done; the caller sends them.
    func dueCallbacks(now: Date) -> [SimJob] {
        var due: [SimJob] = []
        for (id, job) in jobs where !job.callbackDone && job.callbackURL != nil && job.finishesAt.addingTimeInterval(faults.callbackDelay.seconds) <= now {
            jobs[id]?.callbackDone = true
            due.append(job)
        }
        for (id, job) in dryRuns where !job.callbackDone && job.callbackURL != nil && job.finishesAt <= now {
            dryRuns[id]?.callbackDone = true
            due.append(job)
        }
        return due
    }

    func countCallback() { callbacksSent += 1 }
}
