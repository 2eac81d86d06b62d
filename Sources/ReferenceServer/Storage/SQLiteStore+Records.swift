import Foundation
import GRDB
import Logging
import PyAirtableModels
import Synchronization

/// A records list request resolved against a table: filters, sort, projection and page.
public struct RecordListPlan: Sendable {
    var filters: [Formula]
    var sort: [(field: Field, direction: SortSpec.Direction)]
    var visibleFields: Set<String>?
    var pageSize: Int
    var cursor: String?
    /// Binds a cursor to the query it came from.
    var queryHash: String
}

/// A page of records: each record's wire JSON, and the cursor of the next page (`nil` on the last).
public struct RecordListParts: Sendable {
    public var records: [[UInt8]]
    public var nextCursor: String?
}

extension SQLiteStore {
    static func jsonPath(_ field: FieldID) -> String { "$.\"\(field.rawValue)\"" }

    /// Decodes a stored row into a record with fields keyed by name (for formula evaluation and 412
    /// answers; served records are written by ``RecordJSON`` without decoding).
    static func record(from row: StoredRecord, schema: TableSchema) throws -> Record {
        let stored = try JSONCoding.decoder.decode([String: FieldValue].self, from: Data(row.fields.utf8))
        var fields: [String: FieldValue] = [:]
        fields.reserveCapacity(stored.count)
        for (fieldID, value) in stored {
            guard let field = schema.fieldsByID[fieldID] else { continue }
            fields[field.name] = value
        }
        return Record(
            id: RecordID(unchecked: row.id),
            tableID: schema.table.id,
            fields: fields,
            version: row.version,
            createdAt: Date(millisecondsSince1970: row.createdAt),
            updatedAt: Date(millisecondsSince1970: row.updatedAt)
        )
    }

    /// The table's schema from the cache when its version is current, else from the database.
    func schema(_ db: Database, table: TableID, version: Int) throws -> TableSchema {
        if let cached = schemaCache.withLock({ $0[table] }), cached.table.version == version {
            return cached
        }
        guard let schema = try Self.fetchTableSchema(db, id: table) else { throw StorageError.notFound("table") }
        schemaCache.withLock { $0[table] = schema }
        return schema
    }

    /// The table's schema, from the cache when its version is current.
    func cachedSchema(_ db: Database, table: TableID) throws -> TableSchema? {
        let statement = try db.cachedStatement(sql: "SELECT version FROM tables WHERE id = ?")
        guard let version = try Int.fetchOne(statement, arguments: [table.rawValue]) else { return nil }
        return try schema(db, table: table, version: version)
    }

    /// The table's schema (cached), checking the caller's role.
    func requireCachedTable(_ db: Database, id: TableID, user: UserID, minimum: Role) throws -> TableSchema {
        guard let schema = try cachedSchema(db, table: id) else { throw StorageError.notFound("table") }
        try Self.authorize(db, workspace: schema.workspaceID.rawValue, user: user, minimum: minimum, resource: "table")
        return schema
    }

    /// The `FROM` of a record with its table, base and the caller's membership `m` (arguments: the
    /// caller's user id, then the record id).
    static let recordWithAccess = """
        FROM records r
        JOIN tables t ON t.id = r.table_id
        JOIN bases b ON b.id = t.base_id
        LEFT JOIN members m ON m.workspace_id = b.workspace_id AND m.user_id = ?
        WHERE r.id = ?
        """

    /// A record's stored row and its table's schema (cached), checking the caller's role: one query.
    func requireStoredRecord(
        _ db: Database,
        id: RecordID,
        user: UserID,
        minimum: Role
    ) throws -> (schema: TableSchema, row: StoredRecord) {
        let statement = try db.cachedStatement(
            sql: "SELECT \(StoredRecord.columns), r.table_id, t.version, m.role \(Self.recordWithAccess)"
        )
        guard let row = try Row.fetchOne(statement, arguments: [user.rawValue, id.rawValue]) else {
            throw StorageError.notFound("record")
        }
        let first = StoredRecord.columnCount
        try Self.check(
            role: (row[first + 2] as String?).flatMap(Role.init(rawValue:)),
            minimum: minimum,
            resource: "record"
        )
        let schema = try schema(db, table: TableID(unchecked: row[first]), version: row[first + 1])
        return (schema, StoredRecord(row))
    }

    /// One record as wire JSON, checking the caller may read its workspace.
    ///
    /// Hot records come from the ``RecordReadCache`` without a trip to a reader connection.
    public func encodedRecord(id: RecordID, user: UserID) async throws -> EncodedRecord {
        let cache = database.recordCache
        switch cache.lookup(id: id.rawValue, user: user.rawValue) {
        case .record(let record): return record
        case .notMember: throw StorageError.notFound("record")
        case nil: break
        }
        // Taken before the read transaction begins: see RecordReadCache.
        let generation = cache.generation
        return try await database.read { db in
            let statement = try db.cachedStatement(
                sql: """
                    SELECT \(StoredRecord.columns), r.rowid, r.table_id, t.version, b.workspace_id, m.role
                    \(Self.recordWithAccess)
                    """
            )
            guard let row = try Row.fetchOne(statement, arguments: [user.rawValue, id.rawValue]) else {
                throw StorageError.notFound("record")
            }
            let first = StoredRecord.columnCount
            let rowID: Int64 = row[first]
            let workspaceID: String = row[first + 3]
            guard let role = (row[first + 4] as String?).flatMap(Role.init(rawValue:)) else {
                cache.store(
                    nil,
                    rowID: rowID,
                    id: id.rawValue,
                    workspaceID: workspaceID,
                    role: nil,
                    user: user.rawValue,
                    readAt: generation
                )
                throw StorageError.notFound("record")
            }
            let schema = try self.schema(db, table: TableID(unchecked: row[first + 1]), version: row[first + 2])
            let stored = StoredRecord(row)
            var json: [UInt8] = []
            json.reserveCapacity(stored.fields.utf8.count + 200)
            RecordJSON.append(
                to: &json,
                id: stored.id,
                storedFields: stored.fields,
                version: stored.version,
                createdAt: stored.createdAt,
                updatedAt: stored.updatedAt,
                schema: schema,
                visible: nil
            )
            let record = EncodedRecord(id: id, version: stored.version, json: json, schema: schema)
            cache.store(
                record,
                rowID: rowID,
                id: id.rawValue,
                workspaceID: workspaceID,
                role: role,
                user: user.rawValue,
                readAt: generation
            )
            return record
        }
    }

    /// The table's schema for a records request, checking the caller's role.
    public func tableSchema(id: TableID, user: UserID) async throws -> TableSchema {
        try await database.read { db in try self.requireCachedTable(db, id: id, user: user, minimum: .viewer) }
    }

    /// A page of records. Filters run in SQLite where they can; the rest is evaluated on the rows
    /// SQLite returns, reading further until the page is full.
    public func listRecords(schema: TableSchema, plan: RecordListPlan, user: UserID) async throws -> [UInt8] {
        let page = try await listRecordParts(schema: schema, plan: plan, user: user)
        var output: [UInt8] = []
        output.reserveCapacity(page.records.reduce(64) { $0 + $1.count + 1 })
        output.append(contentsOf: #"{"data":["#.utf8)
        for (index, record) in page.records.enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            output.append(contentsOf: record)
        }
        output.append(contentsOf: #"],"next_cursor":"#.utf8)
        if let nextCursor = page.nextCursor {
            RecordJSON.appendString(nextCursor, to: &output)
        } else {
            output.append(contentsOf: "null".utf8)
        }
        output.append(UInt8(ascii: "}"))
        return output
    }

    /// ``listRecords(schema:plan:user:)``'s page as its records' wire JSON and the next cursor.
    public func listRecordParts(
        schema: TableSchema,
        plan: RecordListPlan,
        user: UserID
    ) async throws
        -> RecordListParts
    {
        let cursor = try plan.cursor.map { try RecordCursor.decode($0, queryHash: plan.queryHash) }
        do {
            return try await listRecords(schema: schema, plan: plan, cursor: cursor, user: user, pushdown: true)
        } catch let error as DatabaseError where error.resultCode == .SQLITE_ERROR && !plan.filters.isEmpty {
            // SQL the compiler wrote that this SQLite cannot run (its parser's stack, expression depth or
            // argument limits are build options): the same filters, evaluated row by row instead.
            logger.warning(
                "a filter's SQL failed; evaluating it row by row",
                metadata: ["error": "\(error.message ?? "")"]
            )
            return try await listRecords(schema: schema, plan: plan, cursor: cursor, user: user, pushdown: false)
        }
    }

    /// A page of records, with the filters' SQL (`pushdown`) or evaluating them all on every row.
    private func listRecords(
        schema: TableSchema,
        plan: RecordListPlan,
        cursor: RecordCursor?,
        user: UserID,
        pushdown: Bool
    ) async throws -> RecordListParts {
        let columns = Dictionary(
            uniqueKeysWithValues: schema.table.fields.map { ($0.name, (id: $0.id.rawValue, type: $0.type)) }
        )
        var predicates: [String] = ["table_id = ?"]
        var arguments: [DatabaseValue] = [schema.table.id.rawValue.databaseValue]
        var residual: [Formula] = []
        for filter in plan.filters {
            let compiled =
                pushdown
                ? FormulaSQL.compile(filter, fields: columns)
                : FormulaSQLPlan(sql: nil, arguments: [], needsResidual: true)
            if let sql = compiled.sql {
                predicates.append("(\(sql))")
                arguments.append(contentsOf: compiled.arguments)
            }
            if compiled.needsResidual { residual.append(filter) }
        }
        let sortExpressions = plan.sort.map { "json_extract(fields, '\(Self.jsonPath($0.field.id))')" }
        let order =
            zip(sortExpressions, plan.sort).map { "\($0) \($1.direction == .asc ? "ASC" : "DESC")" } + ["seq ASC"]
        let keyColumns = sortExpressions.enumerated().map { "\($1) AS k\($0)" }
        // Read by position: the stored record's columns, seq, then the sort keys.
        let select = ([StoredRecord.columns, "seq"] + keyColumns).joined(separator: ", ")
        let chunk = residual.isEmpty ? plan.pageSize + 1 : max(plan.pageSize * 2, 256)
        let directions = plan.sort.map(\.direction)
        let pageSize = plan.pageSize
        let types = columns.mapValues(\.type)
        let basePredicates = predicates
        let baseArguments = arguments
        let residualFilters = residual
        let limits = self.limits

        return try await database.read { db in
            _ = try Self.authorize(
                db,
                workspace: schema.workspaceID.rawValue,
                user: user,
                minimum: .viewer,
                resource: "table"
            )
            // Rows read for the residual pass, bounded in count and time: a filter SQLite cannot narrow
            // would otherwise read the whole table for a page that fills slowly or never.
            let stopwatch = Stopwatch(clock: limits.clock)
            var scanned = 0
            var matched: [(json: [UInt8], cursor: RecordCursor)] = []
            var after = cursor
            scan: while true {
                var clauses = basePredicates
                var values = baseArguments
                if let after {
                    let (sql, keysetArguments) = Self.keysetPredicate(
                        expressions: sortExpressions,
                        directions: directions,
                        after: after
                    )
                    clauses.append(sql)
                    values.append(contentsOf: keysetArguments)
                }
                let sql = """
                    SELECT \(select) FROM records r WHERE \(clauses.joined(separator: " AND "))
                    ORDER BY \(order.joined(separator: ", ")) LIMIT \(chunk)
                    """
                let rows = try Row.fetchAll(db, sql: sql, arguments: StatementArguments(values))
                let seqColumn = StoredRecord.columnCount
                for row in rows {
                    let keys = (0..<sortExpressions.count).map {
                        RecordCursor.Value(row[seqColumn + 1 + $0] as DatabaseValue)
                    }
                    let position = RecordCursor(keys: keys, seq: row[seqColumn], queryHash: plan.queryHash)
                    after = position
                    let stored = StoredRecord(row)
                    if !residualFilters.isEmpty {
                        scanned += 1
                        if scanned > limits.maximumFilterScanRows {
                            throw StorageError.filterScanLimit(
                                "it needs more than \(limits.maximumFilterScanRows) rows read "
                                    + "(maximumFilterScanRows)"
                            )
                        }
                        if scanned % 256 == 0, stopwatch.elapsed > limits.maximumFilterScanDuration {
                            throw StorageError.filterScanLimit(
                                "it took longer than \(limits.maximumFilterScanDuration) (maximumFilterScanDuration)"
                            )
                        }
                        let full = try Self.record(from: stored, schema: schema)
                        let values = FormulaRecordValues(id: full.id.rawValue, values: full.fields, types: types)
                        guard residualFilters.allSatisfy({ $0.matches(values) }) else { continue }
                    }
                    var json: [UInt8] = []
                    json.reserveCapacity(256)
                    RecordJSON.append(
                        to: &json,
                        id: stored.id,
                        storedFields: stored.fields,
                        version: stored.version,
                        createdAt: stored.createdAt,
                        updatedAt: stored.updatedAt,
                        schema: schema,
                        visible: plan.visibleFields
                    )
                    matched.append((json, position))
                    if matched.count > pageSize { break scan }
                }
                if rows.count < chunk { break }
                if !residualFilters.isEmpty, stopwatch.elapsed > limits.maximumFilterScanDuration {
                    throw StorageError.filterScanLimit(
                        "it took longer than \(limits.maximumFilterScanDuration) (maximumFilterScanDuration)"
                    )
                }
            }
            let page = matched.prefix(pageSize)
            let nextCursor = matched.count > pageSize ? page.last?.cursor.encoded() : nil
            return RecordListParts(records: page.map(\.json), nextCursor: nextCursor)
        }
    }

    /// `(k0, k1, …, seq) > after` under each key's direction, with SQLite's NULLs-first ordering.
    static func keysetPredicate(
        expressions: [String],
        directions: [SortSpec.Direction],
        after: RecordCursor
    ) -> (String, [DatabaseValue]) {
        var sql = "seq > ?"
        var arguments: [DatabaseValue] = [after.seq.databaseValue]
        for index in stride(from: expressions.count - 1, through: 0, by: -1) {
            let expression = expressions[index]
            let value = index < after.keys.count ? after.keys[index] : .null
            let greater: String
            let equal: String
            var greaterArguments: [DatabaseValue] = []
            var equalArguments: [DatabaseValue] = []
            switch (directions[index], value) {
            case (.asc, .null):
                greater = "\(expression) IS NOT NULL"
                equal = "\(expression) IS NULL"
            case (.asc, _):
                greater = "\(expression) > ?"
                greaterArguments = [value.databaseValue]
                equal = "\(expression) = ?"
                equalArguments = [value.databaseValue]
            case (.desc, .null):
                greater = "0"
                equal = "\(expression) IS NULL"
            case (.desc, _):
                greater = "(\(expression) < ? OR \(expression) IS NULL)"
                greaterArguments = [value.databaseValue]
                equal = "\(expression) = ?"
                equalArguments = [value.databaseValue]
            }
            sql = "(\(greater) OR (\(equal) AND \(sql)))"
            arguments = greaterArguments + equalArguments + arguments
        }
        return (sql, arguments)
    }

    // MARK: Writes

    /// Validates `fields` (keyed by name) against the schema, returning stored cells keyed by field id.
    static func cells(
        _ db: Database,
        _ fields: [String: FieldValue],
        schema: TableSchema,
        user: UserID?
    ) throws -> [String: FieldValue?] {
        var cells: [String: FieldValue?] = [:]
        for (name, value) in fields {
            guard let field = schema.fieldsByName[name] else {
                throw StorageError.invalid("unknown field '\(name)' in table '\(schema.table.name)'", field: name)
            }
            let normalized = try FieldValueValidator.normalize(value, for: field)
            if field.type == .multipleRecordLinks, case .strings(let ids)? = normalized {
                try checkLinks(db, ids: ids, field: field)
            }
            if field.type == .multipleAttachments, case .attachments(let attachments)? = normalized {
                cells[field.id.rawValue] = .attachments(
                    try resolveAttachments(db, attachments, field: field, user: user)
                )
                continue
            }
            cells[field.id.rawValue] = normalized
        }
        return cells
    }

    private static func checkLinks(_ db: Database, ids: [String], field: Field) throws {
        guard let linked = field.options?.linkedTableID else { return }
        let placeholders = Array(repeating: "?", count: ids.count).joined(separator: ",")
        let found = try String.fetchSet(
            db,
            sql: "SELECT id FROM records WHERE table_id = ? AND id IN (\(placeholders))",
            arguments: StatementArguments([linked.rawValue] + ids)
        )
        if let missing = ids.first(where: { !found.contains($0) }) {
            throw StorageError.invalid(
                "field '\(field.name)' links to '\(missing)', which is not a record of the linked table",
                field: field.name
            )
        }
    }

    /// A record's wire JSON from its stored cells.
    static func encodeRecord(
        id: RecordID,
        storedFields: String,
        version: Int,
        createdAt: Int64,
        updatedAt: Int64,
        schema: TableSchema
    ) -> EncodedRecord {
        var json: [UInt8] = []
        json.reserveCapacity(storedFields.utf8.count + 200)
        RecordJSON.append(
            to: &json,
            id: id.rawValue,
            storedFields: storedFields,
            version: version,
            createdAt: createdAt,
            updatedAt: updatedAt,
            schema: schema,
            visible: nil
        )
        return EncodedRecord(id: id, version: version, json: json)
    }

    static func insertRecord(
        _ db: Database,
        fields: [String: FieldValue],
        schema: TableSchema,
        context: WriteContext
    ) throws -> EncodedRecord {
        var members: [String: [UInt8]] = [:]
        for (fieldID, value) in try cells(db, fields, schema: schema, user: context.actor) {
            if let value { members[fieldID] = try RecordJSON.cell(value) }
        }
        let id = RecordID.generate()
        let now = context.now.millisecondsSince1970
        let stored = RecordJSON.storedObject(members)
        try db.cachedStatement(
            sql: "INSERT INTO records (id, table_id, fields, version, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)"
        ).execute(arguments: [id.rawValue, schema.table.id.rawValue, stored, now, now])
        let record = encodeRecord(
            id: id,
            storedFields: stored,
            version: 1,
            createdAt: now,
            updatedAt: now,
            schema: schema
        )
        try appendEvent(
            db,
            type: .recordCreated,
            workspaceID: schema.workspaceID,
            baseID: schema.table.baseID,
            tableID: schema.table.id,
            recordID: id,
            payload: record,
            context: context
        )
        return record
    }

    /// Loads a record row of `schema`'s table for writing.
    static func storedRow(_ db: Database, id: RecordID, schema: TableSchema) throws -> StoredRecord {
        let statement = try db.cachedStatement(
            sql: "SELECT \(StoredRecord.columns) FROM records r WHERE r.id = ? AND r.table_id = ?"
        )
        guard let row = try Row.fetchOne(statement, arguments: [id.rawValue, schema.table.id.rawValue]) else {
            throw StorageError.notFound("record '\(id)'")
        }
        return StoredRecord(row)
    }

    /// Merges (or with `replace`, replaces) cells. Stored cells are moved as raw JSON, never decoded.
    static func updateRecordRow(
        _ db: Database,
        id: RecordID,
        fields: [String: FieldValue],
        replace: Bool,
        ifVersion: Int?,
        schema: TableSchema,
        storedRow: StoredRecord? = nil,
        context: WriteContext
    ) throws -> EncodedRecord {
        let row = try storedRow ?? Self.storedRow(db, id: id, schema: schema)
        let version = row.version
        try checkVersion(expected: ifVersion, actual: version, current: try record(from: row, schema: schema))
        // Cells of deleted fields are dropped on write.
        var members = replace ? [:] : RecordJSON.members(of: row.fields).filter { schema.fieldsByID[$0.key] != nil }
        for (fieldID, value) in try cells(db, fields, schema: schema, user: context.actor) {
            if let value {
                members[fieldID] = try RecordJSON.cell(value)
            } else {
                members.removeValue(forKey: fieldID)
            }
        }
        let stored = RecordJSON.storedObject(members)
        let now = context.now.millisecondsSince1970
        try db.cachedStatement(sql: "UPDATE records SET fields = ?, version = ?, updated_at = ? WHERE id = ?").execute(
            arguments: [stored, version + 1, now, id.rawValue]
        )
        let record = encodeRecord(
            id: id,
            storedFields: stored,
            version: version + 1,
            createdAt: row.createdAt,
            updatedAt: now,
            schema: schema
        )
        try appendEvent(
            db,
            type: .recordUpdated,
            workspaceID: schema.workspaceID,
            baseID: schema.table.baseID,
            tableID: schema.table.id,
            recordID: id,
            payload: record,
            context: context
        )
        return record
    }

    static func deleteRecordRow(
        _ db: Database,
        id: RecordID,
        ifVersion: Int?,
        schema: TableSchema,
        storedRow: StoredRecord? = nil,
        context: WriteContext
    ) throws {
        let row = try storedRow ?? Self.storedRow(db, id: id, schema: schema)
        try checkVersion(expected: ifVersion, actual: row.version, current: try record(from: row, schema: schema))
        try db.execute(sql: "DELETE FROM records WHERE id = ?", arguments: [id.rawValue])
        try appendEvent(
            db,
            type: .recordDeleted,
            workspaceID: schema.workspaceID,
            baseID: schema.table.baseID,
            tableID: schema.table.id,
            recordID: id,
            payload: DeletedRecord(id: id),
            context: context
        )
    }

    public func createRecord(
        table: TableID,
        fields: [String: FieldValue],
        context: WriteContext
    ) async throws
        -> WriteResult<EncodedRecord>
    {
        let actor = try context.requireActor()
        return try await perform(context, status: 201) { db in
            let schema = try self.requireCachedTable(db, id: table, user: actor, minimum: .editor)
            return try Self.insertRecord(db, fields: fields, schema: schema, context: context)
        }
    }

    public func updateRecord(
        id: RecordID,
        fields: [String: FieldValue],
        replace: Bool,
        ifVersion: Int?,
        context: WriteContext
    ) async throws -> WriteResult<EncodedRecord> {
        let actor = try context.requireActor()
        return try await perform(context) { db in
            let (schema, row) = try self.requireStoredRecord(db, id: id, user: actor, minimum: .editor)
            return try Self.updateRecordRow(
                db,
                id: id,
                fields: fields,
                replace: replace,
                ifVersion: ifVersion,
                schema: schema,
                storedRow: row,
                context: context
            )
        }
    }

    public func deleteRecord(
        id: RecordID,
        ifVersion: Int?,
        context: WriteContext
    ) async throws
        -> WriteResult<DeletedRecord>
    {
        let actor = try context.requireActor()
        return try await perform(context) { db in
            let (schema, row) = try self.requireStoredRecord(db, id: id, user: actor, minimum: .editor)
            try Self.deleteRecordRow(db, id: id, ifVersion: ifVersion, schema: schema, storedRow: row, context: context)
            return DeletedRecord(id: id)
        }
    }

    /// Applies up to 100 operations in one transaction: all of them, or none.
    public func batch(
        table: TableID,
        operations: [BatchOperation],
        context: WriteContext
    ) async throws
        -> WriteResult<EncodedJSON>
    {
        let actor = try context.requireActor()
        return try await perform(context) { db in
            let schema = try self.requireCachedTable(db, id: table, user: actor, minimum: .editor)
            var output: [UInt8] = Array(#"{"results":["#.utf8)
            for (index, operation) in operations.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                do {
                    switch operation {
                    case .create(let fields):
                        output += try Self.insertRecord(db, fields: fields, schema: schema, context: context).json
                    case .update(let id, let fields, let ifVersion), .replace(let id, let fields, let ifVersion):
                        var replace = false
                        if case .replace = operation { replace = true }
                        output += try Self.updateRecordRow(
                            db,
                            id: id,
                            fields: fields,
                            replace: replace,
                            ifVersion: ifVersion,
                            schema: schema,
                            context: context
                        ).json
                    case .delete(let id, let ifVersion):
                        try Self.deleteRecordRow(db, id: id, ifVersion: ifVersion, schema: schema, context: context)
                        output += Array(#"{"deleted":true,"id":"\#(id.rawValue)"}"#.utf8)
                    }
                } catch let error as StorageError {
                    throw StorageError.inOperation(index, error)
                }
            }
            output += Array("]}".utf8)
            return EncodedJSON(json: output)
        }
    }
}

/// A `records` row as the record routes read it, by position: GRDB's by-name lookups compare
/// lowercased column names at every call, which showed at thousands of requests a second.
struct StoredRecord {
    /// The columns, in the order ``init(_:)`` reads them, from the `records` table aliased `r`.
    static let columns = "r.id, r.fields, r.version, r.created_at, r.updated_at"
    /// The position of the first column after them.
    static let columnCount = 5

    var id: String
    var fields: String
    var version: Int
    var createdAt: Int64
    var updatedAt: Int64

    init(id: String, fields: String, version: Int, createdAt: Int64, updatedAt: Int64) {
        self.id = id
        self.fields = fields
        self.version = version
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// Reads ``columns`` from the start of `row`.
    init(_ row: Row) {
        id = row[0]
        fields = row[1]
        version = row[2]
        createdAt = row[3]
        updatedAt = row[4]
    }
}

/// Time elapsed since it was made, on any clock (the clock of ``RequestLimits``).
struct Stopwatch: Sendable {
    private let measure: @Sendable () -> Duration

    init(clock: any Clock<Duration>) {
        measure = Self.start(clock)
    }

    private static func start<C: Clock<Duration>>(_ clock: C) -> @Sendable () -> Duration {
        let start = clock.now
        return { start.duration(to: clock.now) }
    }

    /// The time since ``init(clock:)``.
    var elapsed: Duration { measure() }
}
