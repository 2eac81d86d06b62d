import Foundation
import GRDB
import Logging

/// A durable queue of mutations that could not reach the server, replayed exactly once.
///
/// Every mutation is written to SQLite (WAL, `synchronous = FULL`) before
/// ``enqueue(_:scope:batchKey:creates:idempotencyKey:)`` returns, with the `Idempotency-Key` it will
/// carry on every attempt. A replay driver claims mutations
/// (``claimNext()``, ``claimBatch(maximum:)``), which marks them in flight in the same transaction that
/// picks them, sends them, and reports ``complete(_:resolving:)-(Int64,_)`` or ``fail(_:failure:retryable:)``.
///
/// - Ordering: within a ``QueuedMutation/scope`` (a record id, or the temporary id of a record created
///   offline) mutations are claimed strictly in ``QueuedMutation/id`` order, one scope at a time; other
///   scopes go in parallel. A failed mutation blocks its own scope only.
/// - Temporary ids: records created offline get ``TemporaryID``s; mutations naming one wait until the
///   create completes, and are then rewritten to the server id in the same transaction that records
///   the mapping.
/// - Crashes: a mutation in flight when its process died is pending again, with the same key, as soon
///   as another instance opens the file or claims; the server's idempotency store applies it once.
/// - Batches: mutations claimed together by ``claimBatch(maximum:)`` share one batch
///   ``QueuedMutation/batchIdempotencyKey``, written with the claim. The group is claimed again whole,
///   with that key, after a crash, and retried or dropped as a unit; a mutation once sent on its own
///   never joins a batch. So whatever was lost, the server sees each request again under its first key.
/// - Processes: several processes may share the file. A claim names its process and carries a lease,
///   so a live process's claims are never taken and a dead one's are.
///
/// ```swift
/// let queue = try OfflineQueue(
///     configuration: .init(path: path, namespace: QueueNamespace(serverURL: url, user: userID))
/// )
/// let recordID = TemporaryID.generate()
/// try await queue.enqueue(createRequest, scope: recordID.rawValue, creates: [recordID])
///
/// while let mutation = try await queue.claimNext() {
///     do {
///         let answer = try await send(mutation.request, idempotencyKey: mutation.idempotencyKey)
///         // The server ids of the records the mutation created offline.
///         let created = Dictionary(uniqueKeysWithValues: zip(mutation.createsTemporaryIDs, answer.createdIDs))
///         try await queue.complete(mutation.id, resolving: created)
///     } catch let error as APIError {
///         let failure = QueuedMutation.Failure(status: error.status, error: error.body, occurredAt: .now)
///         try await queue.fail(mutation.id, failure: failure, retryable: error.isRetryable)
///     }
/// }
/// ```
public final class OfflineQueue: Sendable {
    /// The configuration the queue was opened with.
    public let configuration: Configuration
    let namespace: String
    let database: QueueDatabase
    let owner: ClaimOwner
    let logger: Logger
    let observers = ChangeObservers()

    /// Opens the queue file (creating it and its directory if need be) and takes back the claims of
    /// processes that died mid-replay.
    /// - Parameters:
    ///   - configuration: The file, namespace, bounds and clock.
    ///   - logger: Where recoveries and ignored reports are logged.
    /// - Throws: When the file cannot be created or opened, or is not a queue file. A queue file is never
    ///   moved aside or recreated: it holds writes that exist nowhere else.
    public init(configuration: Configuration, logger: Logger = Logger(label: "pyat.queue")) throws {
        self.configuration = configuration
        self.logger = logger
        self.namespace = configuration.namespace.description
        let directory = (configuration.path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let database = try QueueDatabase(path: configuration.path)
        self.database = database
        let owner = ClaimOwner.current()
        self.owner = owner
        let now = configuration.now()
        let retention = configuration.temporaryIDRetention
        let recovered = try database.writer.write { db in
            let recovered = try Self.releaseAbandonedClaims(db, namespace: nil, now: now)
            try db.execute(
                sql: "DELETE FROM queue_temporary_ids WHERE server_id IS NOT NULL AND resolved_at < ?",
                arguments: [QueueDatabase.milliseconds(now.addingTimeInterval(-retention.timeInterval))]
            )
            return recovered
        }
        if !recovered.isEmpty {
            logger.warning(
                "Mutations left in flight by a stopped process are pending again",
                metadata: ["count": "\(recovered.count)", "path": "\(configuration.path)"]
            )
        }
        owner.register()
    }

    deinit {
        owner.unregister()
        observers.finish()
    }

    /// Closes the file. Mutations this instance claimed and did not report become claimable by others.
    /// - Throws: When the file cannot be closed cleanly.
    public func close() throws {
        owner.unregister()
        observers.finish()
        try database.writer.close()
    }

    // MARK: Enqueueing

    /// Persists a mutation; when this returns, the mutation survives a crash or a power cut.
    ///
    /// Temporary ids the request (or `scope`) names are handled here: one already resolved is replaced
    /// by its server id at once; one whose create is still queued makes this mutation wait for it.
    ///
    /// Enqueueing twice with the same `idempotencyKey` returns the mutation already queued, so a caller
    /// unsure whether its enqueue committed may simply repeat it.
    /// - Parameters:
    ///   - request: The request to replay.
    ///   - scope: The record (id or temporary id) the mutation concerns; same-scope mutations replay in
    ///     order. `nil` for a mutation that depends on nothing queued.
    ///   - batchKey: Mutations with equal batch keys may be claimed together, to go in one batch
    ///     request (for example `tbl…` for record writes to one table).
    ///   - creates: The temporary ids of the records this mutation creates.
    ///   - idempotencyKey: The key to send on every attempt. Pass the key of the attempt that just failed:
    ///     the server may have applied it before the connection dropped.
    /// - Returns: The queued mutation.
    /// - Throws: ``OfflineQueueError/queueFull(entries:bytes:)`` when the bounds would be exceeded (nothing
    ///   is written); ``OfflineQueueError/unknownTemporaryID(_:)`` when the request names a temporary id
    ///   no queued mutation creates; ``OfflineQueueError/duplicateTemporaryID(_:)``; database errors.
    @discardableResult
    public func enqueue(
        _ request: QueuedRequest,
        scope: String? = nil,
        batchKey: String? = nil,
        creates: [TemporaryID] = [],
        idempotencyKey: String = UUID().uuidString
    ) async throws -> QueuedMutation {
        try await enqueue(
            contentsOf: [
                QueueItem(
                    request: request,
                    scope: scope,
                    batchKey: batchKey,
                    creates: creates,
                    idempotencyKey: idempotencyKey
                )
            ]
        )[0]
    }

    /// Persists several mutations in one transaction, in order: all of them, or none.
    ///
    /// Faster than enqueueing one by one (one disk sync in all), for bulk writes made offline. A later
    /// item may name a temporary id an earlier one creates. Each item is handled as
    /// ``enqueue(_:scope:batchKey:creates:idempotencyKey:)`` describes.
    /// - Parameter items: The mutations, in replay order.
    /// - Returns: The queued mutations, in the same order.
    /// - Throws: As ``enqueue(_:scope:batchKey:creates:idempotencyKey:)``; when one item is refused,
    ///   nothing is enqueued.
    @discardableResult
    public func enqueue(contentsOf items: [QueueItem]) async throws -> [QueuedMutation] {
        guard !items.isEmpty else { return [] }
        let now = configuration.now()
        let results = try await database.writer.write { [namespace, configuration] db in
            try items.map { item in
                try Self.insert(db, item, namespace: namespace, configuration: configuration, now: now)
            }
        }
        let added = results.filter(\.isNew).map(\.mutation.id)
        if !added.isEmpty {
            await notify(.enqueued, added)
        }
        return results.map(\.mutation)
    }

    /// Inserts one item, unless its idempotency key is already queued.
    private static func insert(
        _ db: Database,
        _ item: QueueItem,
        namespace: String,
        configuration: Configuration,
        now: Date
    ) throws -> (mutation: QueuedMutation, isNew: Bool) {
        let existing = try db.cachedStatement(
            sql: """
                SELECT \(QueueDatabase.mutationColumns) FROM queue_mutations
                WHERE namespace = ? AND idempotency_key = ?
                """
        )
        if let row = try Row.fetchOne(existing, arguments: [namespace, item.idempotencyKey]) {
            return (try QueueDatabase.mutation(from: row), false)
        }
        var request = item.request
        var scope = item.scope
        let created = Set(item.creates)
        var mentioned = request.temporaryIDMentions
        if let scope { mentioned.formUnion(TemporaryID.mentions(in: scope)) }
        var waitsFor: [TemporaryID] = []
        for temporaryID in mentioned.subtracting(created).sorted() {
            guard let mapping = try Self.temporaryIDRow(db, namespace: namespace, temporaryID) else {
                throw OfflineQueueError.unknownTemporaryID(temporaryID)
            }
            if let serverID = mapping.serverID {
                request = request.replacing(temporaryID, with: serverID)
                scope = scope.map { temporaryID.replacingOccurrences(in: $0, with: serverID) }
            } else {
                waitsFor.append(temporaryID)
            }
        }
        for temporaryID in created where try Self.temporaryIDRow(db, namespace: namespace, temporaryID) != nil {
            throw OfflineQueueError.duplicateTemporaryID(temporaryID)
        }

        let size = request.size
        let totals = try Row.fetchOne(db.cachedStatement(sql: "SELECT entries, bytes FROM queue_totals WHERE id = 1"))
        let entries: Int = totals?[0] ?? 0
        let bytes: Int = totals?[1] ?? 0
        guard entries + 1 <= configuration.maximumEntries, bytes + size <= configuration.maximumBytes else {
            throw OfflineQueueError.queueFull(
                entries: (entries, configuration.maximumEntries),
                bytes: (bytes + size, configuration.maximumBytes)
            )
        }

        let createdAt = QueueDatabase.milliseconds(now)
        let createsList = item.creates.reduce(into: [TemporaryID]()) { list, id in
            if !list.contains(id) { list.append(id) }
        }
        let insert = try db.cachedStatement(
            sql: """
                INSERT INTO queue_mutations (namespace, created_at, idempotency_key, method, path, query, headers,
                body, scope, batch_key, creates, size, conflict_base, state)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')
                """
        )
        try insert.execute(
            arguments: [
                namespace, createdAt, item.idempotencyKey, request.method, request.path,
                try QueueDatabase.encodeJSON(request.query), try QueueDatabase.encodeJSON(request.headers),
                request.body, scope, item.batchKey, try QueueDatabase.encodeJSON(createsList), size,
                request.conflictBase,
            ]
        )
        let id = db.lastInsertedRowID
        for temporaryID in createsList {
            try db.execute(
                sql: """
                    INSERT INTO queue_temporary_ids (namespace, temporary_id, creator_id, created_at)
                    VALUES (?, ?, ?, ?)
                    """,
                arguments: [namespace, temporaryID.rawValue, id, createdAt]
            )
        }
        for temporaryID in waitsFor {
            try db.execute(
                sql: "INSERT INTO queue_dependencies (mutation_id, temporary_id) VALUES (?, ?)",
                arguments: [id, temporaryID.rawValue]
            )
        }
        let mutation = QueuedMutation(
            id: id,
            createdAt: QueueDatabase.date(milliseconds: createdAt),
            idempotencyKey: item.idempotencyKey,
            request: request,
            scope: scope,
            batchKey: item.batchKey,
            createsTemporaryIDs: createsList
        )
        return (mutation, true)
    }

    // MARK: Temporary ids

    /// Records that the record created offline as `temporaryID` has the server id `serverID`, and
    /// rewrites every queued mutation naming it (path, query, headers, JSON body — linked-record arrays
    /// included — and scope), all in one transaction.
    ///
    /// ``complete(_:resolving:)-(Int64,_)`` does this for the mutation that created the record; call this directly
    /// only when the server id is learnt another way.
    /// - Parameters:
    ///   - temporaryID: The temporary id.
    ///   - serverID: The id the server gave the record.
    /// - Returns: The ids of the mutations that were rewritten.
    /// - Throws: ``OfflineQueueError/unknownTemporaryID(_:)``, or
    ///   ``OfflineQueueError/conflictingResolution(_:existing:new:)`` when it was resolved to another id.
    @discardableResult
    public func resolve(_ temporaryID: TemporaryID, to serverID: String) async throws -> [Int64] {
        let now = configuration.now()
        let rewritten = try await database.writer.write { [namespace] db in
            try Self.resolve(db, namespace: namespace, temporaryID, to: serverID, now: now)
        }
        await notify(.resolved, rewritten)
        return rewritten
    }

    /// The server id `temporaryID` was resolved to, or `nil` while its create is still queued (or when
    /// it is unknown).
    public func serverID(for temporaryID: TemporaryID) async throws -> String? {
        try await database.writer.read { [namespace] db in
            try Self.temporaryIDRow(db, namespace: namespace, temporaryID)?.serverID
        }
    }

    /// Every remembered temporary id resolved to a server id.
    public func resolvedTemporaryIDs() async throws -> [TemporaryID: String] {
        try await database.writer.read { [namespace] db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT temporary_id, server_id FROM queue_temporary_ids
                    WHERE namespace = ? AND server_id IS NOT NULL
                    """,
                arguments: [namespace]
            )
            var mappings: [TemporaryID: String] = [:]
            for row in rows {
                if let temporaryID = TemporaryID(row[0] as String) { mappings[temporaryID] = row[1] }
            }
            return mappings
        }
    }

    struct TemporaryIDRow {
        var creatorID: Int64?
        var serverID: String?
    }

    static func temporaryIDRow(
        _ db: Database,
        namespace: String,
        _ temporaryID: TemporaryID
    ) throws
        -> TemporaryIDRow?
    {
        let statement = try db.cachedStatement(
            sql: "SELECT creator_id, server_id FROM queue_temporary_ids WHERE namespace = ? AND temporary_id = ?"
        )
        return try Row.fetchOne(statement, arguments: [namespace, temporaryID.rawValue]).map {
            TemporaryIDRow(creatorID: $0[0], serverID: $0[1])
        }
    }

    static func resolve(
        _ db: Database,
        namespace: String,
        _ temporaryID: TemporaryID,
        to serverID: String,
        now: Date,
        skipping completed: Set<Int64> = []
    ) throws -> [Int64] {
        guard let row = try temporaryIDRow(db, namespace: namespace, temporaryID) else {
            throw OfflineQueueError.unknownTemporaryID(temporaryID)
        }
        if let existing = row.serverID {
            guard existing == serverID else {
                throw OfflineQueueError.conflictingResolution(temporaryID, existing: existing, new: serverID)
            }
            return []
        }
        try db.cachedStatement(
            sql: """
                UPDATE queue_temporary_ids SET server_id = ?, resolved_at = ?
                WHERE namespace = ? AND temporary_id = ?
                """
        ).execute(arguments: [serverID, QueueDatabase.milliseconds(now), namespace, temporaryID.rawValue])
        // Ids first, each lookup on its own index through a cached statement: this runs once per record
        // a batch creates, and a single query with `OR` would scan the whole queue each time.
        let waiting = try Int64.fetchAll(
            db.cachedStatement(sql: "SELECT mutation_id FROM queue_dependencies WHERE temporary_id = ?"),
            arguments: [temporaryID.rawValue]
        )
        let scoped = try Int64.fetchAll(
            db.cachedStatement(sql: "SELECT id FROM queue_mutations WHERE namespace = ? AND scope = ?"),
            arguments: [namespace, temporaryID.rawValue]
        )
        // Mutations leaving the queue in the same transaction (the create itself) need no rewrite.
        let dependents = try Set(waiting + scoped).subtracting(completed).sorted().compactMap {
            try QueueDatabase.fetchMutation(db, id: $0, namespace: namespace)
        }
        for mutation in dependents {
            let request = mutation.request.replacing(temporaryID, with: serverID)
            let scope = mutation.scope.map { temporaryID.replacingOccurrences(in: $0, with: serverID) }
            try db.cachedStatement(
                sql: """
                    UPDATE queue_mutations SET path = ?, query = ?, headers = ?, body = ?, scope = ?, size = ?
                    WHERE id = ?
                    """
            ).execute(
                arguments: [
                    request.path, try QueueDatabase.encodeJSON(request.query),
                    try QueueDatabase.encodeJSON(request.headers), request.body, scope, request.size, mutation.id,
                ]
            )
            try db.cachedStatement(sql: "DELETE FROM queue_dependencies WHERE mutation_id = ? AND temporary_id = ?")
                .execute(arguments: [mutation.id, temporaryID.rawValue])
        }
        return dependents.map(\.id)
    }

    // MARK: Reading

    /// The mutation with this id, or `nil` when it is no longer queued.
    public func mutation(_ id: Int64) async throws -> QueuedMutation? {
        try await database.writer.read { [namespace] db in
            try QueueDatabase.fetchMutation(db, id: id, namespace: namespace)
        }
    }

    /// The queued mutations in these states, in id order.
    /// - Parameter states: The states to list; all by default.
    public func mutations(
        in states: Set<QueuedMutation.State> = Set(QueuedMutation.State.allCases)
    ) async throws
        -> [QueuedMutation]
    {
        let names = states.map(\.rawValue).sorted()
        let placeholders = Array(repeating: "?", count: names.count).joined(separator: ", ")
        return try await database.writer.read { [namespace] db in
            guard !names.isEmpty else { return [] }
            return try QueueDatabase.fetchMutations(
                db,
                namespace: namespace,
                where: "state IN (\(placeholders))",
                arguments: StatementArguments(names)
            )
        }
    }

    /// The failed list: mutations that failed in a way retrying cannot fix, with their errors.
    public func failed() async throws -> [QueuedMutation] {
        try await mutations(in: [.failed])
    }

    // MARK: The failed list

    /// Puts a failed mutation back in the queue, with its idempotency key unchanged.
    ///
    /// A mutation of a batch group (``QueuedMutation/batchIdempotencyKey``) goes back with its whole
    /// group: the server may have applied the batch, and only the same batch under the same key is
    /// answered from its idempotency store.
    /// - Throws: ``OfflineQueueError/mutationNotFound(_:)``, or ``OfflineQueueError/invalidState(_:_:)``
    ///   when it has not failed.
    public func retry(_ id: Int64) async throws {
        let ids = try await database.writer.write { [namespace] db in
            guard let mutation = try QueueDatabase.fetchMutation(db, id: id, namespace: namespace) else {
                throw OfflineQueueError.mutationNotFound(id)
            }
            guard mutation.state == .failed else { throw OfflineQueueError.invalidState(id, mutation.state) }
            guard let group = mutation.batchIdempotencyKey else {
                try db.execute(sql: "UPDATE queue_mutations SET state = 'pending' WHERE id = ?", arguments: [id])
                return [id]
            }
            let ids = try Int64.fetchAll(
                db,
                sql: """
                    SELECT id FROM queue_mutations
                    WHERE namespace = ? AND batch_idempotency_key = ? AND state = 'failed' ORDER BY id
                    """,
                arguments: [namespace, group]
            )
            try db.execute(
                sql: """
                    UPDATE queue_mutations SET state = 'pending'
                    WHERE namespace = ? AND batch_idempotency_key = ? AND state = 'failed'
                    """,
                arguments: [namespace, group]
            )
            return ids
        }
        await notify(.retried, ids)
    }

    /// Puts every failed mutation back in the queue.
    /// - Returns: The ids of the mutations retried.
    @discardableResult
    public func retryAllFailed() async throws -> [Int64] {
        let ids = try await database.writer.write { [namespace] db in
            let ids = try Int64.fetchAll(
                db,
                sql: "SELECT id FROM queue_mutations WHERE namespace = ? AND state = 'failed' ORDER BY id",
                arguments: [namespace]
            )
            try db.execute(
                sql: "UPDATE queue_mutations SET state = 'pending' WHERE namespace = ? AND state = 'failed'",
                arguments: [namespace]
            )
            return ids
        }
        await notify(.retried, ids)
        return ids
    }

    /// Removes a pending or failed mutation from the queue for good: it will never be sent.
    ///
    /// Mutations that name a temporary id this one creates can then never be rewritten; they stay in
    /// the queue, waiting, until they are dropped too.
    ///
    /// A mutation of a batch group (``QueuedMutation/batchIdempotencyKey``) is dropped with its whole
    /// group: the server applied all of the batch or none of it, and the rest of the group, sent without
    /// it, would no longer match the key the server may have stored.
    /// - Returns: The mutation removed.
    /// - Throws: ``OfflineQueueError/mutationNotFound(_:)``, or ``OfflineQueueError/invalidState(_:_:)``
    ///   when it (or its group) is in flight (a driver may be sending it).
    @discardableResult
    public func drop(_ id: Int64) async throws -> QueuedMutation {
        let (mutation, ids) = try await database.writer.write { [namespace] db in
            guard let mutation = try QueueDatabase.fetchMutation(db, id: id, namespace: namespace) else {
                throw OfflineQueueError.mutationNotFound(id)
            }
            guard mutation.state != .inflight else { throw OfflineQueueError.invalidState(id, mutation.state) }
            var ids = [id]
            if let group = mutation.batchIdempotencyKey {
                let members = try QueueDatabase.fetchMutations(
                    db,
                    namespace: namespace,
                    where: "batch_idempotency_key = ?",
                    arguments: [group]
                )
                if let busy = members.first(where: { $0.state == .inflight }) {
                    throw OfflineQueueError.invalidState(busy.id, busy.state)
                }
                ids = members.map(\.id)
            }
            for id in ids {
                try db.execute(sql: "DELETE FROM queue_mutations WHERE id = ?", arguments: [id])
                // The records it would have created will never exist: new requests may not name them.
                try db.execute(
                    sql: """
                        DELETE FROM queue_temporary_ids WHERE namespace = ? AND creator_id = ? AND server_id IS NULL
                        """,
                    arguments: [namespace, id]
                )
            }
            return (mutation, ids)
        }
        logger.notice(
            "Queued mutation dropped",
            metadata: [
                "id": "\(id)", "method": "\(mutation.request.method)", "path": "\(mutation.request.path)",
            ]
        )
        await notify(.dropped, ids)
        return mutation
    }
}

extension Duration {
    var timeInterval: TimeInterval {
        let (seconds, attoseconds) = components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
