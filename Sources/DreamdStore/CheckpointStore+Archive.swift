import DreamdCore
import Foundation
import Logging
import PostgresNIO

/// A checkpoint archive claimed by one archiver, with what it needs to download (and refresh the URL).
public struct ArchiveTask: Sendable, Hashable {
    public var id: UUID
    public var upstreamCheckpointID: String
    public var url: String?
    public var fileFormat: String?
    public var sizeBytes: Int64?
    /// Attempts so far, this one included.
    public var attempts: Int
    public var expiresAt: Date
    /// The dreamlook job that trained it (`GET /jobs/<jobType>/<upstreamJobID>` renders a fresh URL).
    public var jobType: String
    public var upstreamJobID: String?
    /// The claim's fencing token (`checkpoints.archive_lease_epoch` as the claim set it): renewals and
    /// results are accepted only while it matches, so an archiver whose lease ran out and was claimed
    /// again (by anyone, itself included) can record nothing.
    public var leaseEpoch: Int64 = 0
}

/// The archiver's side of the store: claims with a lease (`FOR UPDATE SKIP LOCKED`), so one daemon
/// downloads each checkpoint; a lease that runs out (a crashed archiver) makes the archive claimable again.
extension CheckpointStore {
    /// Claims up to `limit` archives that are due: `pending` ones whose next attempt has come, and
    /// `archiving` ones whose lease ran out. Expired checkpoints are never claimed.
    public func claimArchives(owner: String, limit: Int, leaseDuration: Duration) async throws -> [ArchiveTask] {
        guard limit > 0 else { return [] }
        let detail = try DreamdJSON.string(["owner": JSONValue.string(owner)] as JSONValue)
        let rows = try await client.rows("""
            WITH due AS (
                SELECT id FROM checkpoints
                WHERE state <> 'expired' AND expires_at > now()
                  AND ((archive_state = 'pending' AND COALESCE(archive_next_attempt_at, now()) <= now())
                       OR (archive_state = 'archiving' AND archive_lease_expires_at < now()))
                ORDER BY expires_at, id LIMIT \(limit) FOR UPDATE SKIP LOCKED
            )
            UPDATE checkpoints c SET archive_state = 'archiving', archive_attempts = c.archive_attempts + 1,
                archive_lease_owner = \(owner), archive_lease_epoch = c.archive_lease_epoch + 1,
                archive_lease_expires_at = now() + \(JobStore.millis(leaseDuration)) * interval '1 millisecond',
                audit_actor = 'archiver', audit_detail = \(detail)::jsonb
            FROM jobs j
            WHERE c.id = ANY(ARRAY(SELECT id FROM due)) AND j.id = c.job_id
            RETURNING c.id, c.upstream_checkpoint_id, c.url, c.file_format, c.size_bytes, c.archive_attempts, c.expires_at,
                      j.kind, j.upstream_job_id, c.archive_lease_epoch
            """, logger: logger).rows
        return try rows.map { row in
            let c = row.makeRandomAccess()
            return ArchiveTask(
                id: try c[0].decode(UUID.self), upstreamCheckpointID: try c[1].decode(String.self), url: try c[2].decode(String?.self),
                fileFormat: try c[3].decode(String?.self), sizeBytes: try c[4].decode(Int64?.self), attempts: try c[5].decode(Int.self),
                expiresAt: try c[6].decode(Date.self), jobType: try c[7].decode(String.self), upstreamJobID: try c[8].decode(String?.self),
                leaseEpoch: try c[9].decode(Int64.self)
            )
        }
    }

    /// Renews the leases of archives being downloaded, by their claims' tokens. Returns the ids still
    /// held: an archive missing from the answer was claimed again elsewhere and its download must stop.
    public func renewArchiveLeases(_ leases: [Lease], leaseDuration: Duration) async throws -> Set<UUID> {
        guard !leases.isEmpty else { return [] }
        let rows = try await client.rows("""
            UPDATE checkpoints c SET archive_lease_expires_at = now() + \(JobStore.millis(leaseDuration)) * interval '1 millisecond'
            FROM unnest(\(leases.map(\.id))::uuid[], \(leases.map(\.epoch))::int8[]) AS l(id, epoch)
            WHERE c.id = l.id AND c.archive_lease_epoch = l.epoch AND c.archive_state = 'archiving'
            RETURNING c.id
            """, logger: logger)
        return Set(try rows.decode(UUID.self).map { $0 })
    }

    /// Gives back the leases of downloads a stopping archiver did not finish: the archives are claimable
    /// again at once (the next attempt continues the `.part` file), and the released claims record nothing.
    public func releaseArchives(_ leases: [Lease]) async throws {
        guard !leases.isEmpty else { return }
        try await client.rows("""
            UPDATE checkpoints c SET archive_state = 'pending', archive_lease_owner = NULL, archive_lease_expires_at = NULL,
                archive_next_attempt_at = now(), archive_lease_epoch = c.archive_lease_epoch + 1,
                audit_actor = 'archiver', audit_detail = '{"reason": "released on shutdown"}'::jsonb
            FROM unnest(\(leases.map(\.id))::uuid[], \(leases.map(\.epoch))::int8[]) AS l(id, epoch)
            WHERE c.id = l.id AND c.archive_lease_epoch = l.epoch AND c.archive_state = 'archiving'
            """, logger: logger)
    }

    /// Stores a freshly signed download URL (read again from the upstream job).
    public func updateURL(id: UUID, url: String) async throws {
        try await client.rows("UPDATE checkpoints SET url = \(url), audit_actor = 'archiver' WHERE id = \(id)", logger: logger)
    }

    /// Records a finished archive (`checkpoint.archived` goes out with it). Returns false if the lease was lost.
    @discardableResult
    public func completeArchive(id: UUID, epoch: Int64, owner: String, path: String, bytes: Int64, sha256: String) async throws -> Bool {
        let detail = try DreamdJSON.string(["path": .string(path), "bytes": .number(Double(bytes)), "sha256": .string(sha256)] as JSONValue)
        let rows = try await client.rows("""
            UPDATE checkpoints SET archive_state = 'archived', archived_path = \(path), archived_bytes = \(bytes),
                archived_sha256 = \(sha256), archive_error = NULL, archived_at = now(),
                archive_lease_owner = NULL, archive_lease_expires_at = NULL, archive_next_attempt_at = NULL,
                audit_actor = 'archiver', audit_detail = \(detail)::jsonb
            WHERE id = \(id) AND archive_lease_epoch = \(epoch) AND archive_lease_owner = \(owner)
            RETURNING id
            """, logger: logger).rows
        return !rows.isEmpty
    }

    /// Records a failed attempt: `pending` again at `retryAt`, or `failed` for good when `final` or when the
    /// checkpoint expires before the retry (the error then says so).
    public func failArchive(id: UUID, epoch: Int64, owner: String, error: String, retryAt: Date, final: Bool) async throws {
        let detail = try DreamdJSON.string(["error": .string(error)] as JSONValue)
        try await client.rows("""
            UPDATE checkpoints SET
                archive_state = CASE WHEN \(final) OR state = 'expired' OR expires_at <= \(retryAt) THEN 'failed' ELSE 'pending' END,
                archive_error = CASE WHEN NOT \(final) AND (state = 'expired' OR expires_at <= \(retryAt))
                    THEN 'checkpoint expires at ' || dreamd_time(expires_at) || ' before the archive could be retried (last error: ' || \(error) || ')'
                    ELSE \(error) END,
                archive_next_attempt_at = \(retryAt),
                archive_lease_owner = NULL, archive_lease_expires_at = NULL,
                audit_actor = 'archiver', audit_detail = \(detail)::jsonb
            WHERE id = \(id) AND archive_lease_epoch = \(epoch) AND archive_lease_owner = \(owner)
            """, logger: logger)
    }

    /// Archived files older than `retention`: their ids and paths (the archiver deletes them, then `forgetArchive`).
    public func archivesOlderThan(_ retention: Duration, limit: Int = 100) async throws -> [(id: UUID, path: String)] {
        let rows = try await client.rows("""
            SELECT id, archived_path FROM checkpoints
            WHERE archive_state = 'archived' AND archived_path IS NOT NULL
              AND archived_at <= now() - \(JobStore.millis(retention)) * interval '1 millisecond'
            ORDER BY archived_at LIMIT \(limit)
            """, logger: logger)
        var found: [(UUID, String)] = []
        for (id, path) in try rows.decode((UUID, String).self) { found.append((id, path)) }
        return found.map { (id: $0.0, path: $0.1) }
    }

    /// Clears `archived_path` once the file was deleted by archive retention (size and hash stay as a record).
    public func forgetArchive(id: UUID, path: String) async throws {
        let detail = try DreamdJSON.string(["deleted_path": .string(path), "reason": "archive retention"] as JSONValue)
        try await client.rows("""
            UPDATE checkpoints SET archived_path = NULL, audit_actor = 'archiver', audit_detail = \(detail)::jsonb
            WHERE id = \(id) AND archived_path = \(path)
            """, logger: logger)
    }
}
