import DreamdCore
import DreamdStore

/// Refuses jobs that name a trained checkpoint dreamd knows to be expired (`POST /v1/jobs` and every
/// row of `POST /v1/jobs/bulk`).
struct ExpiredCheckpointCheck: Sendable {
    /// `nil`: no checkpoint tracking, nothing refused.
    let checkpoints: CheckpointStore?

    /// 422 `checkpoint_expired` when the job names a checkpoint dreamd knows to be expired. Checkpoints
    /// dreamd does not know (trained outside it) are left to the upstream.
    func refuseExpiredCheckpoints(_ submission: JobSubmission) async throws {
        if let refusal = try await refusals([submission])[0] { throw refusal }
    }

    /// The refusal of each submission (by index) that names an expired checkpoint, from one query for all.
    func refusals(_ submissions: [JobSubmission]) async throws -> [Int: APIError] {
        guard let checkpoints else { return [:] }
        let references = submissions.map { $0.executor.referencedCheckpoints(kind: $0.kind, params: $0.params) }
        let ids = Set(references.joined().map(\.checkpointID))
        guard !ids.isEmpty else { return [:] }
        let expiredAt = Dictionary(try await checkpoints.expired(among: Array(ids)).map { ($0.upstreamCheckpointID, $0.expiredAt) }) { first, _ in first }
        var refusals: [Int: APIError] = [:]
        for (index, names) in references.enumerated() {
            guard let reference = names.first(where: { expiredAt[$0.checkpointID] != nil }), let at = expiredAt[reference.checkpointID] else { continue }
            let when = DreamdJSON.formatDate(at)
            refusals[index] = APIError(.unprocessableContent, code: "checkpoint_expired",
                                       message: "\(reference.field): checkpoint \(reference.checkpointID) expired at \(when); dreamlook has deleted it",
                                       details: ["field": .string(reference.field), "checkpoint_id": .string(reference.checkpointID), "expired_at": .string(when)])
        }
        return refusals
    }
}
