import Foundation
import HTTPTypes
import PyAirtableModels

/// Records: one page, all pages lazily, single-record reads and writes, batches.
public struct RecordsService: Sendable {
    let client: PyAirtableClient
    static func operation(_ name: String) -> ClientOperation { .init(service: "records", name: name) }

    /// One page of records matching `query` (view, fields, sort, filter, page size, cursor).
    ///
    /// With the cache on, the page is read under `policy` (by default the records rule: cache first,
    /// 2 minutes); ``listWithSource(in:query:policy:)`` also says where the answer came from, and
    /// carries records created by pending writes (``CachedResponse/pendingCreates``), which have no
    /// record id yet and so are not in this page's `data`.
    public func list(
        in table: TableID,
        query: RecordQuery = RecordQuery(),
        policy: FetchPolicy? = nil
    ) async throws -> Page<Record> {
        try await listWithSource(in: table, query: query, policy: policy).value
    }

    /// One page of records, with where the answer came from: the server or the cache, fresh or
    /// stale, or standing in for an unreachable server.
    ///
    /// Writes not yet confirmed (in flight, or queued offline) are applied to the page
    /// (``CachedResponse/hasPendingWrites``); with `FetchPolicy.networkOnly` the answer is the
    /// server's alone.
    ///
    /// The cached page provides the tag of each record in it, so a change to any of them — by this
    /// client, or reported by the server — drops the page.
    public func listWithSource(
        in table: TableID,
        query: RecordQuery = RecordQuery(),
        policy: FetchPolicy? = nil
    ) async throws -> CachedResponse<Page<Record>> {
        let confirmed = try await confirmedList(in: table, query, policy: policy)
        client.recentReads.remember(confirmed.value.data)
        // `networkOnly` asks for the server's data as it is: pending writes are not laid over it.
        guard policy != .networkOnly else { return confirmed }
        return await client.withPendingWrites(confirmed, table: table, query: query)
    }

    /// One page as the server (or the cache of its answers) has it, without pending writes.
    func confirmedList(
        in table: TableID,
        _ query: RecordQuery,
        policy: FetchPolicy?
    ) async throws -> CachedResponse<Page<Record>> {
        if let pageSize = query.pageSize, !(1...RecordQuery.maximumPageSize).contains(pageSize) {
            throw PyAirtableError.invalidArgument("page size must be from 1 to \(RecordQuery.maximumPageSize)")
        }
        return try await client.cachedRead(
            PyAirtableClient.request(
                .get,
                "/api/v1/tables/\(table)/records",
                query: query.queryItems.map { QueryItem($0.name, $0.value) },
                operation: Self.operation("list")
            ),
            as: Page<Record>.self,
            kind: .records,
            policy: policy
        ) { CacheKeys.tags(of: $0, table: table) }
    }

    /// Every record matching `query`, fetched a page at a time as the loop asks for more; breaking
    /// out of the loop stops fetching.
    ///
    /// ```swift
    /// for try await record in client.records.all(in: table, query: RecordQuery(sort: [.ascending("Name")])) {
    ///     print(record.fields["Name"] ?? .null)
    /// }
    /// ```
    public func all(
        in table: TableID,
        query: RecordQuery = RecordQuery(),
        policy: FetchPolicy? = nil
    ) -> PageSequence<Record> {
        PageSequence { cursor in
            var query = query
            query.cursor = cursor ?? query.cursor
            return try await list(in: table, query: query, policy: policy)
        }
    }

    /// One record; with the cache on, read under `policy` (by default cache first, 2 minutes).
    public func get(_ id: RecordID, policy: FetchPolicy? = nil) async throws -> Record {
        try await getWithSource(id, policy: policy).value
    }

    /// One record, with where the answer came from: the server or the cache, fresh or stale, or
    /// standing in for an unreachable server.
    ///
    /// Writes not yet confirmed are applied (``CachedResponse/hasPendingWrites``): a record a pending
    /// write deletes is not found. With `FetchPolicy.networkOnly` the answer is the server's alone.
    /// A record created offline has no `RecordID` yet: read it with
    /// ``pending(_:)``, and its server id, once the create landed, with ``resolve(_:)``.
    public func getWithSource(_ id: RecordID, policy: FetchPolicy? = nil) async throws -> CachedResponse<Record> {
        // `networkOnly` asks for the server's data as it is: pending writes are not laid over it.
        let layers = policy == .networkOnly ? [] : await client.pendingLayers()
        var answer = try await confirmedRecord(id, policy: policy)
        client.recentReads.remember([answer.value])
        let mine = layers.filter { $0.recordID == id }
        guard !mine.isEmpty else { return answer }
        guard let applied = OptimisticLayers.apply(mine, to: answer.value) else {
            throw PyAirtableError.pendingNotFound(id, operation: Self.operation("get"), deleted: true)
        }
        answer.value = applied
        answer.hasPendingWrites = true
        return answer
    }

    /// One record as the server (or the cache of its answers) has it, without pending writes.
    func confirmedRecord(_ id: RecordID, policy: FetchPolicy?) async throws -> CachedResponse<Record> {
        try await client.cachedRead(
            PyAirtableClient.request(.get, CacheKeys.record(id), operation: Self.operation("get")),
            as: Record.self,
            kind: .records,
            policy: policy
        ) { CacheKeys.tags(of: $0) }
    }

    /// A record created offline, as its pending writes make it; `nil` once its create landed (see
    /// ``resolve(_:)``) or when a pending write deletes it.
    public func pending(_ id: TemporaryRecordID) async -> PendingRecord? {
        await client.pendingRecord(RecordReference.temporary(id).internalID)
    }

    /// The server's id of a record created offline, once its create landed; `nil` while it waits.
    public func resolve(_ id: TemporaryRecordID) async -> RecordID? {
        await client.serverID(forTemporary: RecordReference.temporary(id).internalID)
    }

    /// Creates a record. Retries (after a lost answer) reuse the request's idempotency key, so the
    /// record is created once.
    ///
    /// While the create is on its way, or waits in the offline queue (``WriteResult/queued(_:)``,
    /// under a temporary id later writes may name), reads of the table's last page list it in
    /// ``CachedResponse/pendingCreates``; see ``MutationsControl``.
    @discardableResult
    public func create(in table: TableID, fields: [String: FieldValue]) async throws -> WriteResult<Record> {
        try await write(
            .create(table: table, fields: fields, temporaryID: TemporaryID.generate()),
            ifVersion: nil,
            base: nil,
            strategy: nil
        )
    }

    /// Changes the given fields and keeps the others.
    ///
    /// The write carries `If-Match` with the version it starts from: `ifVersion`, or else the version
    /// the cache holds (``ConflictSettings/sendsBaseVersion``). When the record changed meanwhile, the
    /// conflict is settled by `onConflict` (by default ``ConflictSettings/strategy``: a field-level
    /// merge) and reported; ``ConflictStrategy/fail`` throws ``PyAirtableError/preconditionFailed``
    /// carrying the current record (``PyAirtableError/currentRecord``). Reads show the change while it
    /// is pending; a write the server cannot take now is ``WriteResult/queued(_:)``.
    @discardableResult
    public func update(
        _ id: RecordID,
        fields: [String: FieldValue],
        ifVersion: Int? = nil,
        onConflict: ConflictStrategy? = nil
    ) async throws -> WriteResult<Record> {
        try await write(.update(id, fields: fields), ifVersion: ifVersion, base: nil, strategy: onConflict)
    }

    /// Changes the given fields of a record created offline: the write queues behind its create and
    /// goes out with the server's id once the create lands.
    @discardableResult
    public func update(_ id: TemporaryRecordID, fields: [String: FieldValue]) async throws -> WriteResult<Record> {
        try await update(RecordReference.temporary(id).internalID, fields: fields)
    }

    /// Changes the given fields of a record you read: the version you read is the base of the
    /// conflict check and of a merge.
    ///
    /// ```swift
    /// let task = try await client.records.get(id)
    /// let saved = try await client.records.update(task, fields: ["Status": "Done"]).get()
    /// ```
    @discardableResult
    public func update(
        _ record: Record,
        fields: [String: FieldValue],
        onConflict: ConflictStrategy? = nil
    ) async throws -> WriteResult<Record> {
        try await write(
            .update(record.id, fields: fields),
            ifVersion: record.version,
            base: record,
            strategy: onConflict
        )
    }

    /// Replaces all fields: those not given are cleared. Conflicts are detected and settled as for
    /// ``update(_:fields:ifVersion:onConflict:)``; a merge works on the whole field set.
    @discardableResult
    public func replace(
        _ id: RecordID,
        fields: [String: FieldValue],
        ifVersion: Int? = nil,
        onConflict: ConflictStrategy? = nil
    ) async throws -> WriteResult<Record> {
        try await write(.replace(id, fields: fields), ifVersion: ifVersion, base: nil, strategy: onConflict)
    }

    /// Replaces all fields of a record created offline (queued behind its create).
    @discardableResult
    public func replace(_ id: TemporaryRecordID, fields: [String: FieldValue]) async throws -> WriteResult<Record> {
        try await replace(RecordReference.temporary(id).internalID, fields: fields)
    }

    /// Deletes a record. On a conflict, ``ConflictStrategy/serverWins`` keeps the record and answers
    /// `DeletedRecord.deleted` `false`; the other strategies but ``ConflictStrategy/fail`` delete it
    /// over the current version.
    @discardableResult
    public func delete(
        _ id: RecordID,
        ifVersion: Int? = nil,
        onConflict: ConflictStrategy? = nil
    ) async throws -> WriteResult<DeletedRecord> {
        try await client.performRecordWrite(
            .delete(id),
            ifVersion: ifVersion,
            base: nil,
            strategy: onConflict
        ).map { answer in
            switch answer {
            case .deleted(let deleted): deleted
            case .record(let record): DeletedRecord(id: record.id, deleted: false)
            }
        }
    }

    /// Deletes a record created offline (queued behind its create).
    @discardableResult
    public func delete(_ id: TemporaryRecordID) async throws -> WriteResult<DeletedRecord> {
        try await delete(RecordReference.temporary(id).internalID)
    }

    /// Runs a write whose answer is a record.
    private func write(
        _ write: RecordWrite,
        ifVersion: Int?,
        base: Record?,
        strategy: ConflictStrategy?
    ) async throws -> WriteResult<Record> {
        try await client.performRecordWrite(write, ifVersion: ifVersion, base: base, strategy: strategy)
            .map(Self.record)
    }

    static func record(_ answer: RecordWriteAnswer) throws -> Record {
        switch answer {
        case .record(let record): return record
        case .deleted(let deleted):
            throw PyAirtableError.invalidArgument("record \(deleted.id) was deleted, not written")
        }
    }

    /// Up to 100 operations applied all or nothing.
    public func batch(in table: TableID, operations: [BatchOperation]) async throws -> [BatchResult] {
        guard (1...BatchRequest.maximumOperations).contains(operations.count) else {
            throw PyAirtableError.invalidArgument(
                "a batch carries 1 to \(BatchRequest.maximumOperations) operations, not \(operations.count)"
            )
        }
        let results = try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/tables/\(table)/records/batch",
                body: BatchRequest(operations: operations),
                operation: Self.operation("batch")
            ),
            as: BatchResponse.self
        ).results
        client.recentReads.remember(
            results.compactMap { result in
                if case .record(let record) = result { return record }
                return nil
            }
        )
        var tags: [CacheTag] = [.recordLists(of: table)]
        var stored: [CacheWrite] = []
        for result in results {
            switch result {
            case .record(let record):
                tags.append(.record(record.id))
                if let write = CacheWrite.record(record) { stored.append(write) }
            case .deleted(let id):
                tags.append(.record(id))
            }
        }
        await client.cacheAfterWrite(invalidating: tags, storing: stored)
        return results
    }
}
