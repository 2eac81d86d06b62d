import Foundation
import GRDB
import Logging

extension OfflineQueue {
    /// Claims the next mutation that may be sent now, on its own, marking it in flight before returning
    /// it.
    ///
    /// A pending mutation may be sent when no earlier mutation of its scope is still queued (pending, in
    /// flight or failed) and every temporary id it names has been resolved. Mutations of a batch group
    /// (see ``claimBatch(maximum:)``) are left to batch drivers. A mutation claimed here is sent with its
    /// own key, so it never joins a batch afterwards.
    /// - Returns: The claimed mutation, or `nil` when none may be sent now.
    /// - Throws: Database errors.
    public func claimNext() async throws -> QueuedMutation? {
        try await claim(maximum: 1, takingGroups: false).first
    }

    /// Claims mutations that may be sent now and together, in one batch request: the first claimable
    /// mutation and, when it has a ``QueuedMutation/batchKey``, later claimable ones with the same key,
    /// in id order. Mutations of one scope may share a batch (a batch applies its operations in order);
    /// a mutation whose scope has an earlier mutation outside the batch is left for later.
    ///
    /// When two or more are claimed, they form a batch group: a fresh
    /// ``QueuedMutation/batchIdempotencyKey`` is written on each in the same transaction as the claim.
    /// Should the driver die before reporting, the group is claimed again whole, with the same key, so
    /// the server answers a batch it applied from its idempotency store instead of applying it twice.
    /// A single mutation claimed here is sent on its own, with its own key, and never joins a batch
    /// afterwards.
    ///
    /// The claim is one transaction: another instance, in this process or another, cannot claim the
    /// same mutations.
    /// - Parameter maximum: The most mutations to claim for a new group; a group claimed again is
    ///   returned whole.
    /// - Returns: The claimed mutations, in id order; empty when none may be sent now.
    /// - Throws: Database errors.
    public func claimBatch(maximum: Int = 100) async throws -> [QueuedMutation] {
        try await claim(maximum: maximum, takingGroups: true)
    }

    private func claim(maximum: Int, takingGroups: Bool) async throws -> [QueuedMutation] {
        guard maximum > 0 else { return [] }
        let now = configuration.now()
        let lease = configuration.leaseDuration.timeInterval
        let (claimed, recovered) = try await database.writer.write { [namespace, owner] db in
            let recovered = try Self.releaseAbandonedClaims(db, namespace: namespace, now: now)
            guard
                let first = try QueueDatabase.fetchMutations(
                    db,
                    namespace: namespace,
                    where: """
                        state = 'pending' \(takingGroups ? "" : "AND batch_idempotency_key IS NULL")
                        AND (scope IS NULL OR NOT EXISTS (
                            SELECT 1 FROM queue_mutations AS earlier
                            WHERE earlier.namespace = queue_mutations.namespace AND earlier.scope = queue_mutations.scope
                            AND earlier.id < queue_mutations.id))
                        AND NOT EXISTS (SELECT 1 FROM queue_dependencies WHERE mutation_id = queue_mutations.id)
                        """,
                    limit: 1
                ).first
            else { return ([QueuedMutation](), recovered) }
            var ids = [first.id]
            var groupKey = first.batchIdempotencyKey
            if let key = groupKey {
                // A group claimed before: the same mutations, for the same key, or the server would see
                // a different request under a key it may have applied.
                ids = try Int64.fetchAll(
                    db,
                    sql: """
                        SELECT id FROM queue_mutations
                        WHERE namespace = ? AND batch_idempotency_key = ? AND state = 'pending' ORDER BY id
                        """,
                    arguments: [namespace, key]
                )
            } else if maximum > 1, let batchKey = first.batchKey, !(try Self.isSolo(db, first.id)) {
                ids += try Self.batchMates(db, namespace: namespace, of: first, batchKey: batchKey, maximum: maximum)
                if ids.count > 1 { groupKey = UUID().uuidString.lowercased() }
            }
            let claim = QueuedMutation.Claim(
                owner: owner.id,
                processID: owner.processID,
                host: owner.host,
                claimedAt: QueueDatabase.date(milliseconds: QueueDatabase.milliseconds(now)),
                leaseExpiresAt: QueueDatabase.date(
                    milliseconds: QueueDatabase.milliseconds(now.addingTimeInterval(lease))
                )
            )
            let list = ids.map(String.init).joined(separator: ",")
            try db.execute(
                sql: """
                    UPDATE queue_mutations SET state = 'inflight', claim_owner = ?, claim_pid = ?, claim_host = ?,
                    claimed_at = ?, lease_until = ?, batch_idempotency_key = ?, solo = ? WHERE id IN (\(list))
                    """,
                arguments: [
                    claim.owner, claim.processID, claim.host, QueueDatabase.milliseconds(claim.claimedAt),
                    QueueDatabase.milliseconds(claim.leaseExpiresAt), groupKey, groupKey == nil,
                ]
            )
            let claimed = try QueueDatabase.fetchMutations(db, namespace: namespace, where: "id IN (\(list))")
            return (claimed, recovered)
        }
        if !recovered.isEmpty {
            logger.warning("Mutations abandoned in flight are pending again", metadata: ["ids": "\(recovered)"])
            await notify(.recovered, recovered)
        }
        if !claimed.isEmpty {
            await notify(.claimed, claimed.map(\.id))
        }
        return claimed
    }

    private static func isSolo(_ db: Database, _ id: Int64) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT solo FROM queue_mutations WHERE id = ?", arguments: [id]) ?? false
    }

    /// Breaks up a batch group this instance holds, after the server refused the batch as a whole: each
    /// mutation is then sent on its own, with its own key, and never joins a batch again.
    ///
    /// Only call this when the server is known not to have applied the batch — it answered the batch
    /// request with a client error (a batch is all or nothing) — never after a lost answer: the server
    /// may have applied the batch under its key, and the mutations sent again on their own would be
    /// applied twice.
    /// - Parameter ids: The group's mutations; those this instance does not hold are skipped.
    /// - Throws: Database errors.
    public func dissolveBatch(_ ids: [Int64]) async throws {
        guard !ids.isEmpty else { return }
        let list = ids.map(String.init).joined(separator: ",")
        try await database.writer.write { [namespace, owner] db in
            try db.execute(
                sql: """
                    UPDATE queue_mutations SET batch_idempotency_key = NULL, solo = 1
                    WHERE namespace = ? AND state = 'inflight' AND claim_owner = ? AND id IN (\(list))
                    """,
                arguments: [namespace, owner.id]
            )
        }
    }

    /// The later pending mutations that may join `first` in one batch.
    private static func batchMates(
        _ db: Database,
        namespace: String,
        of first: QueuedMutation,
        batchKey: String,
        maximum: Int
    ) throws -> [Int64] {
        var mates: [Int64] = []
        // How many mutations of each scope are in the batch: a candidate may join only when every
        // earlier mutation of its scope is in it.
        var inBatch: [String: Int] = [:]
        if let scope = first.scope { inBatch[scope] = 1 }
        let rows = try Row.fetchAll(
            db,
            sql: """
                SELECT id, scope, batch_key,
                (SELECT count(*) FROM queue_mutations AS earlier
                 WHERE earlier.namespace = m.namespace AND earlier.scope = m.scope AND earlier.id < m.id),
                EXISTS (SELECT 1 FROM queue_dependencies WHERE mutation_id = m.id),
                solo OR batch_idempotency_key IS NOT NULL
                FROM queue_mutations AS m
                WHERE m.namespace = ? AND m.state = 'pending' AND m.id > ?
                ORDER BY m.id LIMIT ?
                """,
            arguments: [namespace, first.id, max(64, maximum * 4)]
        )
        for row in rows {
            guard mates.count + 1 < maximum else { break }
            let id: Int64 = row[0]
            let scope: String? = row[1]
            let key: String? = row[2]
            let earlier: Int = row[3]
            let waits: Bool = row[4]
            let alone: Bool = row[5]
            guard key == batchKey, !waits, !alone else { continue }
            if let scope {
                guard earlier == inBatch[scope, default: 0] else { continue }
                inBatch[scope, default: 0] += 1
            }
            mates.append(id)
        }
        return mates
    }

    /// Removes mutations the server applied, and records the server ids of the records they created —
    /// rewriting the mutations that name them — in the same transaction.
    ///
    /// A mutation no longer queued (completed by another instance that took over its claim) is skipped:
    /// the server applied it once either way, thanks to its idempotency key.
    /// - Parameters:
    ///   - ids: The mutations the server applied.
    ///   - resolving: The server id of each temporary id the mutations created.
    /// - Throws: ``OfflineQueueError/unresolvedTemporaryID(_:)`` when a completed mutation created a
    ///   temporary id that is given no server id (nothing is changed then); database errors.
    public func complete(_ ids: [Int64], resolving: [TemporaryID: String] = [:]) async throws {
        guard !ids.isEmpty || !resolving.isEmpty else { return }
        let now = configuration.now()
        let rewritten = try await database.writer.write { [namespace] db in
            var rewritten: [Int64] = []
            let completed = Set(ids)
            for (temporaryID, serverID) in resolving.sorted(by: { $0.key < $1.key }) {
                rewritten += try Self.resolve(
                    db,
                    namespace: namespace,
                    temporaryID,
                    to: serverID,
                    now: now,
                    skipping: completed
                )
            }
            let list = ids.map(String.init).joined(separator: ",")
            let creators = try Row.fetchAll(
                db,
                sql: "SELECT creates FROM queue_mutations WHERE namespace = ? AND id IN (\(list)) AND creates != '[]'",
                arguments: [namespace]
            )
            for row in creators {
                let creates = try JSONDecoder().decode([TemporaryID].self, from: Data((row[0] as String).utf8))
                for temporaryID in creates
                where try Self.temporaryIDRow(db, namespace: namespace, temporaryID)?.serverID == nil {
                    throw OfflineQueueError.unresolvedTemporaryID(temporaryID)
                }
            }
            try db.execute(
                sql: "DELETE FROM queue_mutations WHERE namespace = ? AND id IN (\(list))",
                arguments: [namespace]
            )
            return rewritten
        }
        if !rewritten.isEmpty { await notify(.resolved, rewritten) }
        await notify(.completed, ids)
    }

    /// Removes a mutation the server applied; see ``complete(_:resolving:)-([Int64],_)`` (the batch form).
    /// - Parameters:
    ///   - id: The mutation the server applied.
    ///   - resolving: The server id of each temporary id it created.
    public func complete(_ id: Int64, resolving: [TemporaryID: String] = [:]) async throws {
        try await complete([id], resolving: resolving)
    }

    /// Records a failed attempt at a mutation this instance claimed.
    ///
    /// A retryable failure (the server was unreachable, 5xx, 429) puts it back in the queue with the same
    /// idempotency key; any other moves it to the failed list with the error, where it blocks its scope
    /// until it is retried or dropped. Nothing is dropped silently.
    ///
    /// A report for a mutation this instance no longer holds (completed, or taken over after its lease
    /// ran out) is ignored, and `nil` returned.
    /// - Parameters:
    ///   - id: The mutation.
    ///   - failure: What went wrong.
    ///   - retryable: Whether sending it again may succeed.
    /// - Returns: The mutation as it now stands, or `nil` when the report was ignored.
    /// - Throws: Database errors.
    @discardableResult
    public func fail(_ id: Int64, failure: QueuedMutation.Failure, retryable: Bool) async throws -> QueuedMutation? {
        let maximumAttempts = configuration.maximumAttempts
        let updated = try await database.writer.write { [namespace, owner] db -> QueuedMutation? in
            guard let mutation = try QueueDatabase.fetchMutation(db, id: id, namespace: namespace),
                mutation.state == .inflight, mutation.claim?.owner == owner.id
            else { return nil }
            let attempts = mutation.attempts + 1
            let exhausted = maximumAttempts.map { attempts >= $0 } ?? false
            let state: QueuedMutation.State = retryable && !exhausted ? .pending : .failed
            try db.execute(
                sql: """
                    UPDATE queue_mutations SET state = ?, attempts = ?, last_failure = ?, claim_owner = NULL,
                    claim_pid = NULL, claim_host = NULL, claimed_at = NULL, lease_until = NULL WHERE id = ?
                    """,
                arguments: [state.rawValue, attempts, try QueueDatabase.json(failure), id]
            )
            return try QueueDatabase.fetchMutation(db, id: id, namespace: namespace)
        }
        guard let updated else {
            logger.debug("Failure reported for a mutation no longer held", metadata: ["id": "\(id)"])
            return nil
        }
        if updated.state == .failed {
            logger.warning(
                "Queued mutation failed for good",
                metadata: ["id": "\(id)", "path": "\(updated.request.path)", "error": "\(failure.message)"]
            )
        }
        await notify(updated.state == .failed ? .failed : .released, [id])
        return updated
    }

    /// Gives back claimed mutations without counting an attempt (for example, the driver went offline
    /// before sending them). Mutations this instance does not hold are skipped.
    /// - Parameter ids: The mutations to give back.
    public func release(_ ids: [Int64]) async throws {
        guard !ids.isEmpty else { return }
        let list = ids.map(String.init).joined(separator: ",")
        try await database.writer.write { [namespace, owner] db in
            try db.execute(
                sql: """
                    UPDATE queue_mutations SET state = 'pending', claim_owner = NULL, claim_pid = NULL,
                    claim_host = NULL, claimed_at = NULL, lease_until = NULL
                    WHERE namespace = ? AND state = 'inflight' AND claim_owner = ? AND id IN (\(list))
                    """,
                arguments: [namespace, owner.id]
            )
        }
        await notify(.released, ids)
    }

    /// Extends the lease of mutations this instance holds, for a request that runs longer than
    /// ``Configuration/leaseDuration`` (a large upload): another process would otherwise take them over.
    /// - Parameter ids: The mutations.
    /// - Returns: The ids whose lease was extended: those still held by this instance.
    /// - Throws: Database errors.
    @discardableResult
    public func extendLease(of ids: [Int64]) async throws -> [Int64] {
        guard !ids.isEmpty else { return [] }
        let until = QueueDatabase.milliseconds(
            configuration.now().addingTimeInterval(configuration.leaseDuration.timeInterval)
        )
        let list = ids.map(String.init).joined(separator: ",")
        return try await database.writer.write { [namespace, owner] db in
            let held = try Int64.fetchAll(
                db,
                sql: """
                    SELECT id FROM queue_mutations
                    WHERE namespace = ? AND state = 'inflight' AND claim_owner = ? AND id IN (\(list)) ORDER BY id
                    """,
                arguments: [namespace, owner.id]
            )
            try db.execute(
                sql: """
                    UPDATE queue_mutations SET lease_until = ?
                    WHERE namespace = ? AND state = 'inflight' AND claim_owner = ? AND id IN (\(list))
                    """,
                arguments: [until, namespace, owner.id]
            )
            return held
        }
    }

    /// Puts back in the queue the mutations whose claim was abandoned: the claiming process died (or
    /// its queue instance was closed), or the lease ran out. Each keeps its idempotency key, and the
    /// interrupted attempt is counted. Opening a queue and claiming do this already.
    /// - Returns: The ids of the mutations put back.
    /// - Throws: Database errors.
    @discardableResult
    public func recoverAbandonedClaims() async throws -> [Int64] {
        let now = configuration.now()
        let recovered = try await database.writer.write { [namespace] db in
            try Self.releaseAbandonedClaims(db, namespace: namespace, now: now)
        }
        if !recovered.isEmpty { await notify(.recovered, recovered) }
        return recovered
    }

    /// Puts abandoned in-flight mutations (of `namespace`, or of every namespace) back to pending.
    static func releaseAbandonedClaims(_ db: Database, namespace: String?, now: Date) throws -> [Int64] {
        let rows = try Row.fetchAll(
            db,
            sql: """
                SELECT id, claim_owner, claim_pid, claim_host, claimed_at, lease_until FROM queue_mutations
                WHERE state = 'inflight' \(namespace == nil ? "" : "AND namespace = ?") ORDER BY id
                """,
            arguments: namespace.map { [$0] } ?? []
        )
        var verdicts: [String: Bool] = [:]
        var abandoned: [Int64] = []
        for row in rows {
            let owner: String = row[1] ?? ""
            let claim = QueuedMutation.Claim(
                owner: owner,
                processID: row[2] ?? 0,
                host: row[3] ?? "",
                claimedAt: QueueDatabase.date(milliseconds: row[4] ?? 0),
                leaseExpiresAt: QueueDatabase.date(milliseconds: row[5] ?? 0)
            )
            // Leases differ per row, so only the liveness of the owner is shared across its rows.
            let isAbandoned: Bool
            if now >= claim.leaseExpiresAt {
                isAbandoned = true
            } else if let verdict = verdicts[owner] {
                isAbandoned = verdict
            } else {
                isAbandoned = ClaimOwner.isAbandoned(claim, now: now)
                verdicts[owner] = isAbandoned
            }
            if isAbandoned { abandoned.append(row[0]) }
        }
        guard !abandoned.isEmpty else { return [] }
        let list = abandoned.map(String.init).joined(separator: ",")
        try db.execute(
            sql: """
                UPDATE queue_mutations SET state = 'pending', attempts = attempts + 1, claim_owner = NULL,
                claim_pid = NULL, claim_host = NULL, claimed_at = NULL, lease_until = NULL WHERE id IN (\(list))
                """
        )
        return abandoned
    }
}
