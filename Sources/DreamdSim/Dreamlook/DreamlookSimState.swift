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
    /// Jobs with a callback still to send, soonest finish first (a job's finish is fixed at creation).
    var pendingCallbacks: [PendingCallback] = []

    struct PendingCallback: Sendable {
        var finishesAt: Date
        var id: String
        var isDryRun: Bool
    }

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
        if job.callbackURL != nil {
            let pending = PendingCallback(finishesAt: job.finishesAt, id: id, isDryRun: dryRun)
            var low = 0, high = pendingCallbacks.count   // the first later finish: jobs mostly come in order
            while low < high {
                let middle = (low + high) / 2
                if pendingCallbacks[middle].finishesAt > pending.finishesAt { high = middle } else { low = middle + 1 }
            }
            pendingCallbacks.insert(pending, at: low)
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

    /// Jobs whose callback is due now, taken off the pending list; the caller sends them. A dry run's
    /// callback comes when it finishes, a job's after the `callbackDelay` fault, if any.
    func dueCallbacks(now: Date) -> [SimJob] {
        let delay = faults.callbackDelay.seconds
        var due: [SimJob] = []
        var kept: [PendingCallback] = []
        var taken = 0
        for pending in pendingCallbacks {
            guard pending.finishesAt <= now else { break }
            taken += 1
            if !pending.isDryRun, pending.finishesAt.addingTimeInterval(delay) > now {
                kept.append(pending)
                continue
            }
            if pending.isDryRun {
                dryRuns[pending.id]?.callbackDone = true
                if let job = dryRuns[pending.id] { due.append(job) }
            } else {
                jobs[pending.id]?.callbackDone = true
                if let job = jobs[pending.id] { due.append(job) }
            }
        }
        pendingCallbacks.replaceSubrange(0..<taken, with: kept)
        return due
    }

    /// When the first pending callback is due, if any is pending (a later dry run may be due sooner:
    /// the sender never sleeps long).
    var nextCallbackDue: Date? {
        guard let first = pendingCallbacks.first else { return nil }
        return first.isDryRun ? first.finishesAt : first.finishesAt.addingTimeInterval(faults.callbackDelay.seconds)
    }

    /// When each finished job carrying tag `key` finished upstream, by the tag's value, in seconds since
    /// 1970 (the end-to-end benchmark measures from here to the webhook).
    func finishTimes(tagKey key: String, now: Date) -> [String: Double] {
        var times: [String: Double] = [:]
        for job in jobs.values where job.finishesAt <= now {
            for tag in job.tags where tag["key"]?.stringValue == key {
                if let value = tag["value"]?.stringValue { times[value] = job.finishesAt.timeIntervalSince1970 }
            }
        }
        return times
    }

    func countCallback() { callbacksSent += 1 }
}
