import Foundation
import Synchronization

/// The dreamlook job ids this process saw accepted lately, per job type, with when each answer came.
///
/// dreamlook lists only its 50 most recent jobs, newest first. An id whose acceptance was known *before* a
/// submission began is an anchor for it: a listing that still shows the anchor covers every job created
/// since, so a lost submission missing from it was never created.
public final class SubmissionLedger: Sendable {
    struct Entry: Sendable {
        var upstreamJobID: String
        var acceptedAt: Date
    }

    private let entries = Mutex<[String: [Entry]]>([:])
    /// How many ids are kept per job type (a listing holds 50).
    let capacity: Int

    public init(capacity: Int = 64) {
        self.capacity = capacity
    }

    /// Records that `jobType` job `upstreamJobID` was accepted now.
    public func accepted(_ upstreamJobID: String, jobType: String, at date: Date = Date()) {
        entries.withLock { entries in
            var list = entries[jobType, default: []]
            list.append(Entry(upstreamJobID: upstreamJobID, acceptedAt: date))
            if list.count > capacity { list.removeFirst(list.count - capacity) }
            entries[jobType] = list
        }
    }

    /// The newest id of `jobType` accepted before `date`, the anchor of a submission beginning then.
    public func anchor(jobType: String, before date: Date) -> String? {
        entries.withLock { $0[jobType]?.last { $0.acceptedAt < date }?.upstreamJobID }
    }

    /// Every id of `jobType` accepted before `date`.
    public func accepted(jobType: String, before date: Date) -> Set<String> {
        entries.withLock { Set(($0[jobType] ?? []).filter { $0.acceptedAt < date }.map(\.upstreamJobID)) }
    }
}
