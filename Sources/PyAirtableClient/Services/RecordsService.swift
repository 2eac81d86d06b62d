import Foundation
import HTTPTypes
import PyAirtableModels

/// Records: one page, all pages lazily, single-record reads and writes, batches.
public struct RecordsService: Sendable {
    let client: PyAirtableClient
    static func operation(_ name: String) -> ClientOperation { .init(service: "records", name: name) }

    /// One page of records matching `query` (view, fields, sort, filter, page size, cursor).
    public func list(in table: TableID, _ query: RecordQuery = RecordQuery()) async throws -> Page<Record> {
        if let pageSize = query.pageSize, !(1...RecordQuery.maximumPageSize).contains(pageSize) {
            throw PyAirtableError.invalidArgument("page size must be from 1 to \(RecordQuery.maximumPageSize)")
        }
        return try await client.send(
            PyAirtableClient.request(
                .get,
                "/api/v1/tables/\(table)/records",
                query: query.queryItems.map { QueryItem($0.name, $0.value) },
                operation: Self.operation("list")
            ),
            as: Page<Record>.self
        )
    }

    /// Every record matching `query`, fetched a page at a time as the loop asks for more; breaking
    /// out of the loop stops fetching.
    ///
    /// ```swift
    /// for try await record in client.records.all(in: table, RecordQuery(sort: [.init(field: "Name")])) {
    ///     print(record.fields["Name"] ?? .null)
    /// }
    /// ```
    public func all(in table: TableID, _ query: RecordQuery = RecordQuery()) -> RecordSequence {
        RecordSequence(service: self, table: table, query: query)
    }

    public func get(_ id: RecordID) async throws -> Record {
        try await client.send(
            PyAirtableClient.request(.get, "/api/v1/records/\(id)", operation: Self.operation("get")),
            as: Record.self
        )
    }

    /// Creates a record. Retries (after a lost answer) reuse the request's idempotency key, so the
    /// record is created once.
    public func create(in table: TableID, fields: [String: FieldValue]) async throws -> Record {
        try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/tables/\(table)/records",
                body: RecordFieldsRequest(fields: fields),
                operation: Self.operation("create")
            ),
            as: Record.self
        )
    }

    /// Changes the given fields and keeps the others. With `ifVersion`, a record changed meanwhile
    /// fails with ``PyAirtableError/preconditionFailed`` carrying the current record.
    public func update(_ id: RecordID, fields: [String: FieldValue], ifVersion: Int? = nil) async throws -> Record {
        try await client.send(
            PyAirtableClient.request(
                .patch,
                "/api/v1/records/\(id)",
                body: RecordFieldsRequest(fields: fields),
                operation: Self.operation("update"),
                ifMatch: ifVersion
            ),
            as: Record.self
        )
    }

    /// Replaces all fields: those not given are cleared.
    public func replace(_ id: RecordID, fields: [String: FieldValue], ifVersion: Int? = nil) async throws -> Record {
        try await client.send(
            PyAirtableClient.request(
                .put,
                "/api/v1/records/\(id)",
                body: RecordFieldsRequest(fields: fields),
                operation: Self.operation("replace"),
                ifMatch: ifVersion
            ),
            as: Record.self
        )
    }

    @discardableResult
    public func delete(_ id: RecordID, ifVersion: Int? = nil) async throws -> DeletedRecord {
        try await client.send(
            PyAirtableClient.request(
                .delete,
                "/api/v1/records/\(id)",
                operation: Self.operation("delete"),
                ifMatch: ifVersion
            ),
            as: DeletedRecord.self
        )
    }

    /// Up to 100 operations applied all or nothing.
    public func batch(in table: TableID, _ operations: [BatchOperation]) async throws -> [BatchResult] {
        guard (1...BatchRequest.maximumOperations).contains(operations.count) else {
            throw PyAirtableError.invalidArgument(
                "a batch carries 1 to \(BatchRequest.maximumOperations) operations, not \(operations.count)"
            )
        }
        return try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/tables/\(table)/records/batch",
                body: BatchRequest(operations: operations),
                operation: Self.operation("batch")
            ),
            as: BatchResponse.self
        ).results
    }
}

/// All records of a query, page by page, on demand.
public struct RecordSequence: AsyncSequence, Sendable {
    public typealias Element = Record

    let service: RecordsService
    let table: TableID
    let query: RecordQuery

    public func makeAsyncIterator() -> Iterator {
        Iterator(service: service, table: table, query: query)
    }

    /// Fetches the next page only when the current one is used up.
    public struct Iterator: AsyncIteratorProtocol {
        let service: RecordsService
        let table: TableID
        var query: RecordQuery
        var buffer: [Record] = []
        var index = 0
        var finished = false
        /// Pages fetched so far.
        public private(set) var pagesFetched = 0

        init(service: RecordsService, table: TableID, query: RecordQuery) {
            self.service = service
            self.table = table
            self.query = query
        }

        public mutating func next() async throws -> Record? {
            while index >= buffer.count {
                if finished { return nil }
                if Task.isCancelled { throw PyAirtableError.cancelledError }
                let page = try await service.list(in: table, query)
                pagesFetched += 1
                buffer = page.data
                index = 0
                if let cursor = page.nextCursor {
                    query.cursor = cursor
                } else {
                    finished = true
                }
            }
            defer { index += 1 }
            return buffer[index]
        }
    }
}
