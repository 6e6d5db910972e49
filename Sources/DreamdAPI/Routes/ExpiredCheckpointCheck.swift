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
        guard let checkpoints else { return }
        let executor = submission.executor
        let references = executor.referencedCheckpoints(kind: submission.kind, params: submission.params)
        guard !references.isEmpty else { return }
        let expired = try await checkpoints.expired(among: references.map(\.checkpointID))
        guard let reference = references.first(where: { ref in expired.contains { $0.upstreamCheckpointID == ref.checkpointID } }),
              let found = expired.first(where: { $0.upstreamCheckpointID == reference.checkpointID }) else { return }
        let expiredAt = DreamdJSON.formatDate(found.expiredAt)
        throw APIError(.unprocessableContent, code: "checkpoint_expired",
                       message: "\(reference.field): checkpoint \(reference.checkpointID) expired at \(expiredAt); dreamlook has deleted it",
                       details: ["field": .string(reference.field), "checkpoint_id": .string(reference.checkpointID), "expired_at": .string(expiredAt)])
    }
}
