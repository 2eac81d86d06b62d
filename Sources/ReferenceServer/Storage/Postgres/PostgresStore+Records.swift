import Foundation
import Logging
import PostgresNIO
import PyAirtableModels
import Synchronization

extension PostgresStore: RecordRepository, StorageStatistics {
    /// No per-process record cache: with several instances writing, every read goes to the database,
    /// so a read on any instance sees every acknowledged write.
    public var recordCacheStatistics: (entries: Int, bytes: Int, hits: Int, misses: Int)? { nil }

    // MARK: Schema for records

    /// The table's schema from the cache when its version is current, else from the database. The
    /// version is the `tables` row's, which every schema change bumps whichever instance made it.
    func schema(_ transaction: PostgresTransaction, table: TableID, version: Int) async throws -> TableSchema {
        if let cached = schemaCache.withLock({ $0[table] }), cached.table.version == version {
            return cached
        }
        guard let schema = try await Self.fetchTableSchema(transaction, id: table) else {
            throw StorageError.notFound("table")
        }
        schemaCache.withLock { $0[table] = schema }
        return schema
    }

    /// The table's schema (cached), checking the caller's role.
    func requireCachedTable(
        _ transaction: PostgresTransaction,
        id: TableID,
        user: UserID,
        minimum: Role
    ) async throws -> TableSchema {
        guard
            let row = try await transaction.row(
                """
                SELECT t.version, m.role FROM tables t JOIN bases b ON b.id = t.base_id
                LEFT JOIN members m ON m.workspace_id = b.workspace_id AND m.user_id = \(user.rawValue)
                WHERE t.id = \(id.rawValue)
                """
            )
        else { throw StorageError.notFound("table") }
        try SQLiteStore.check(
            role: try row.get("role", as: String?.self).flatMap(Role.init(rawValue:)),
            minimum: minimum,
            resource: "table"
        )
        return try await schema(transaction, table: id, version: try row.get("version", as: Int.self))
    }

    /// A record's stored row and its table's schema, checking the caller's role; with `lock`, the
    /// record's row stays locked until the transaction ends (a version check no concurrent write on
    /// another instance can pass).
    func requireStoredRecord(
        _ transaction: PostgresTransaction,
        id: RecordID,
        user: UserID,
        minimum: Role,
        lock: Bool
    ) async throws -> (schema: TableSchema, row: StoredRecord) {
        if lock, let hit = transaction.takePrefetched(record: id.rawValue, user: user.rawValue) {
            try SQLiteStore.check(role: hit.role.flatMap(Role.init(rawValue:)), minimum: minimum, resource: "record")
            let schema = try await schema(
                transaction,
                table: TableID(unchecked: hit.tableID),
                version: hit.tableVersion
            )
            return (schema, hit.row)
        }
        if lock, transaction.prefetchMissed(record: id.rawValue) { throw StorageError.notFound("record") }
        let query: PostgresQuery =
            lock
            ? """
            SELECT r.id, r.fields, r.version, r.created_at, r.updated_at, r.table_id, t.version, m.role
            FROM records r JOIN tables t ON t.id = r.table_id JOIN bases b ON b.id = t.base_id
            LEFT JOIN members m ON m.workspace_id = b.workspace_id AND m.user_id = \(user.rawValue)
            WHERE r.id = \(id.rawValue) FOR UPDATE OF r
            """
            : """
            SELECT r.id, r.fields, r.version, r.created_at, r.updated_at, r.table_id, t.version, m.role
            FROM records r JOIN tables t ON t.id = r.table_id JOIN bases b ON b.id = t.base_id
            LEFT JOIN members m ON m.workspace_id = b.workspace_id AND m.user_id = \(user.rawValue)
            WHERE r.id = \(id.rawValue)
            """
        guard let row = try await transaction.row(query) else { throw StorageError.notFound("record") }
        try SQLiteStore.check(
            role: try row[7].decode(String?.self, context: .default).flatMap(Role.init(rawValue:)),
            minimum: minimum,
            resource: "record"
        )
        let schema = try await schema(
            transaction,
            table: TableID(unchecked: try row[5].decode(String.self, context: .default)),
            version: try row[6].decode(Int.self, context: .default)
        )
        return (schema, try StoredRecord(row))
    }

    // MARK: Reads

    public func encodedRecord(id: RecordID, user: UserID) async throws -> EncodedRecord {
        try await database.read { transaction in
            let (schema, stored) = try await self.requireStoredRecord(
                transaction,
                id: id,
                user: user,
                minimum: .viewer,
                lock: false
            )
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
            return EncodedRecord(id: id, version: stored.version, json: json, schema: schema)
        }
    }

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

    /// A page of records in the order SQLite's store gives them, with keyset cursors.
    ///
    /// Each sort field orders by three keys that reproduce SQLite's ordering of `json_extract`
    /// values: blank first, then numbers (and checkboxes, as 0/1) by value, then text by bytes (and
    /// arrays by their JSON text); the cursor carries those keys exactly. Filters run in PostgreSQL as
    /// far as ``PostgresFormulaSQL`` can translate them exactly; the rest is evaluated on the rows
    /// read, within the request's scan limits. Should PostgreSQL refuse a filter's SQL, the page is
    /// read again with every filter evaluated row by row.
    public func listRecordParts(
        schema: TableSchema,
        plan: RecordListPlan,
        user: UserID
    ) async throws
        -> RecordListParts
    {
        do {
            return try await listRecordParts(schema: schema, plan: plan, user: user, pushdown: true)
        } catch let error as PSQLError where !plan.filters.isEmpty && Self.isRefusedFilterSQL(error) {
            logger.warning(
                "a filter's SQL failed; evaluating it row by row",
                metadata: ["error": "\(error.serverInfo?[.message] ?? "")"]
            )
            return try await listRecordParts(schema: schema, plan: plan, user: user, pushdown: false)
        }
    }

    /// Whether PostgreSQL refused a statement for what its SQL asks (a data exception, a syntax or
    /// access rule, a program limit such as `max_stack_depth`) rather than for the connection's or
    /// the server's state.
    private static func isRefusedFilterSQL(_ error: PSQLError) -> Bool {
        guard let state = error.serverInfo?[.sqlState] else { return false }
        return state.hasPrefix("22") || state.hasPrefix("42") || state.hasPrefix("54")
    }

    /// A page of records, with the filters' SQL (`pushdown`) or evaluating them all on every row read
    /// (as this store did before filters ran in PostgreSQL; the tests compare the two).
    func listRecordParts(
        schema: TableSchema,
        plan: RecordListPlan,
        user: UserID,
        pushdown: Bool
    ) async throws -> RecordListParts {
        let cursor = try plan.cursor.map { try RecordCursor.decode($0, queryHash: plan.queryHash) }
        let sortKeys = try plan.sort.map { sort -> SortKey in
            guard Self.isSafeIdentifier(sort.field.id.rawValue) else {
                throw StorageError.invalid("cannot sort on field '\(sort.field.name)'", field: sort.field.name)
            }
            return SortKey(fieldID: sort.field.id.rawValue, descending: sort.direction == .desc)
        }
        if let cursor, cursor.keys.count != sortKeys.count * 3 {
            throw StorageError.invalid("the cursor is malformed", field: "cursor")
        }
        let columns = Dictionary(
            uniqueKeysWithValues: schema.table.fields.map { ($0.name, (id: $0.id.rawValue, type: $0.type)) }
        )
        let compiled = plan.filters.map { filter in
            pushdown
                ? PostgresFormulaSQL.compile(filter, fields: columns, recordIDColumn: "r.id", fieldsJSON: "fx.j")
                : .residualOnly
        }
        let filter = PageFilter(plans: compiled)
        // Filters every row read must pass in Swift; the others only where their verdict is NULL.
        let residual = zip(plan.filters, compiled).filter { $0.1.needsResidual }.map(\.0)
        let allFilters = plan.filters
        let types = columns.mapValues(\.type)
        let readsMany = !residual.isEmpty || compiled.contains(where: \.verdictMayBeUnknown)
        let chunk = readsMany ? max(plan.pageSize * 2, 256) : plan.pageSize + 1
        let pageSize = plan.pageSize
        let limits = self.limits
        let queryHash = plan.queryHash
        let visible = plan.visibleFields

        return try await database.snapshot { transaction in
            try await Self.authorize(
                transaction,
                workspace: schema.workspaceID.rawValue,
                user: user,
                minimum: .viewer,
                resource: "table"
            )
            // Rows evaluated in Swift, bounded in count and time: a filter PostgreSQL cannot narrow
            // would otherwise read the whole table for a page that fills slowly or never.
            let stopwatch = Stopwatch(clock: limits.clock)
            var scanned = 0
            var matched: [(json: [UInt8], cursor: RecordCursor)] = []
            var after = cursor
            scan: while true {
                let query = Self.pageQuery(
                    table: schema.table.id,
                    sortKeys: sortKeys,
                    after: after,
                    limit: chunk,
                    filter: filter
                )
                let rows = try await transaction.rows(query)
                for row in rows {
                    let stored = try StoredRecord(row)
                    let seq = try row[5].decode(Int64.self, context: .default)
                    var keys: [RecordCursor.Value] = []
                    keys.reserveCapacity(sortKeys.count * 3)
                    for index in 0..<sortKeys.count {
                        keys.append(.integer(try row[6 + index * 3].decode(Int64.self, context: .default)))
                        keys.append(.text(try row[7 + index * 3].decode(String.self, context: .default)))
                        keys.append(.text(try row[8 + index * 3].decode(String.self, context: .default)))
                    }
                    let position = RecordCursor(keys: keys, seq: seq, queryHash: queryHash)
                    after = position
                    let unsure =
                        try !filter.verdicts.isEmpty
                        && row[6 + sortKeys.count * 3].decode(Bool.self, context: .default)
                    let swiftFilters = unsure ? allFilters : residual
                    if !swiftFilters.isEmpty {
                        scanned += 1
                        if scanned > limits.maximumFilterScanRows {
                            throw StorageError.filterScanLimit(
                                "it needs more than \(limits.maximumFilterScanRows) rows read (maximumFilterScanRows)"
                            )
                        }
                        if scanned % 256 == 0, stopwatch.elapsed > limits.maximumFilterScanDuration {
                            throw StorageError.filterScanLimit(
                                "it took longer than \(limits.maximumFilterScanDuration) (maximumFilterScanDuration)"
                            )
                        }
                        let full = try SQLiteStore.record(from: stored, schema: schema)
                        let values = FormulaRecordValues(id: full.id.rawValue, values: full.fields, types: types)
                        guard swiftFilters.allSatisfy({ $0.matches(values) }) else { continue }
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
                        visible: visible
                    )
                    matched.append((json, position))
                    if matched.count > pageSize { break scan }
                }
                if rows.count < chunk { break }
                if scanned > 0, stopwatch.elapsed > limits.maximumFilterScanDuration {
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

    /// The SQL side of a page's filters: the exact conditions, which go straight into `WHERE`, and the
    /// verdicts, which may be NULL for rows to evaluate in Swift (see ``PostgresFormulaSQLPlan``).
    struct PageFilter: Sendable {
        var conditions: [PostgresFormulaSQL.Clause] = []
        var verdicts: [PostgresFormulaSQL.Clause] = []

        init(plans: [PostgresFormulaSQLPlan] = []) {
            conditions = plans.compactMap(\.condition)
            verdicts = plans.compactMap(\.verdict)
        }

        /// Whether some verdict reads the parsed fields, which the query must then parse.
        var readsFields: Bool { verdicts.contains(where: \.readsFields) }
    }

    struct SortKey: Sendable {
        var fieldID: String
        var descending: Bool
    }

    /// Field ids go into the SQL text of sort keys: only letters and digits pass.
    static func isSafeIdentifier(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 64
            && text.utf8.allSatisfy { (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) }
    }

    /// One page's query: the stored columns, seq, then per sort field its rank (0 blank, 1 number,
    /// 2 text), numeric value (as text, exact) and text value; after the cursor's position.
    /// With filters, their exact conditions join the `WHERE`, and so do their verdicts, over the row's
    /// fields parsed once in a lateral subquery: rows where one is FALSE are left out, and a last column
    /// says whether any was NULL (the row must be evaluated in Swift). The filter changes which rows
    /// come, never their order or keys.
    static func pageQuery(
        table: TableID,
        sortKeys: [SortKey],
        after: RecordCursor?,
        limit: Int,
        filter: PageFilter = PageFilter()
    ) -> PostgresQuery {
        var binds = PostgresBindings()
        func bind(_ value: some PostgresDynamicTypeEncodable) -> String {
            binds.append(value)
            return "$\(binds.count)"
        }
        let tableParameter = bind(table.rawValue)
        var keyColumns: [String] = []
        var components: [(expression: String, descending: Bool)] = []
        for (index, key) in sortKeys.enumerated() {
            let value = "(x.j -> '\(key.fieldID)')"
            let rank = """
                CASE jsonb_typeof(\(value)) WHEN 'number' THEN 1 WHEN 'boolean' THEN 1 WHEN 'string' THEN 2 \
                WHEN 'array' THEN 2 WHEN 'object' THEN 2 ELSE 0 END
                """
            let number = """
                CASE jsonb_typeof(\(value)) WHEN 'number' THEN (\(value))::numeric \
                WHEN 'boolean' THEN CASE WHEN (\(value))::boolean THEN 1 ELSE 0 END ELSE 0 END
                """
            let text = """
                CASE jsonb_typeof(\(value)) WHEN 'string' THEN \(value) #>> '{}' \
                WHEN 'array' THEN (\(value))::text WHEN 'object' THEN (\(value))::text ELSE '' END
                """
            keyColumns.append("\(rank) AS r\(index), \(number) AS n\(index), (\(text)) COLLATE \"C\" AS t\(index)")
            components.append(("k.r\(index)", key.descending))
            components.append(("k.n\(index)", key.descending))
            components.append(("k.t\(index)", key.descending))
        }
        var sql = "SELECT r.id, r.fields, r.version, r.created_at, r.updated_at, r.seq"
        for index in 0..<sortKeys.count {
            sql += ", k.r\(index)::bigint, k.n\(index)::text, k.t\(index)"
        }
        // The verdicts are written twice (the WHERE, and the column saying whether one was NULL) with the
        // same parameters; the column is computed only for the rows the WHERE kept. (In a lateral
        // subquery of its own, the planner would cache it by the parsed JSON, hashing every row's.)
        let verdict =
            filter.verdicts.isEmpty
            ? nil : "(" + filter.verdicts.map { "(\($0.render(into: &binds)))" }.joined(separator: " AND ") + ")"
        if let verdict { sql += ", \(verdict) IS NULL" }
        sql += " FROM records r"
        if !sortKeys.isEmpty {
            // `jsonb` refuses the escape `\u0000` (a NUL in text): sorted as U+0001 instead, the lowest
            // character it takes, so a list never fails on such a cell and its order differs from
            // SQLite's only between text with a NUL and text with U+0001 at the same place.
            sql += ", LATERAL (SELECT replace(r.fields, E'\\\\u0000', E'\\\\u0001')::jsonb AS j) x"
            sql += ", LATERAL (SELECT \(keyColumns.joined(separator: ", "))) k"
        }
        if filter.readsFields {
            // OFFSET 0 keeps the subquery: pulled up, every reference to `fx.j` would parse the JSON again.
            sql += ", LATERAL (SELECT \(PostgresFormulaSQL.fieldsJSONExpression("r.fields")) AS j OFFSET 0) fx"
        }
        sql += " WHERE r.table_id = \(tableParameter)"
        for condition in filter.conditions {
            sql += " AND (\(condition.render(into: &binds)))"
        }
        if let verdict { sql += " AND \(verdict) IS NOT FALSE" }
        if let after {
            // (c0, c1, …, seq) after the cursor, each component in its field's direction.
            var predicate = "r.seq > \(bind(after.seq))"
            for index in stride(from: components.count - 1, through: 0, by: -1) {
                let component = components[index]
                let parameter: String
                switch index % 3 {
                case 0:
                    if case .integer(let rank) = after.keys[index] {
                        parameter = bind(rank)
                    } else {
                        parameter = bind(Int64(0))
                    }
                case 1:
                    if case .text(let number) = after.keys[index] {
                        parameter = "\(bind(number))::numeric"
                    } else {
                        parameter = "0::numeric"
                    }
                default:
                    if case .text(let text) = after.keys[index] {
                        parameter = "\(bind(text)) COLLATE \"C\""
                    } else {
                        parameter = "''"
                    }
                }
                let beyond = component.descending ? "<" : ">"
                predicate =
                    "(\(component.expression) \(beyond) \(parameter) OR (\(component.expression) = \(parameter) AND \(predicate)))"
            }
            sql += " AND \(predicate)"
        }
        let order = components.map { "\($0.expression) \($0.descending ? "DESC" : "ASC")" } + ["r.seq ASC"]
        sql += " ORDER BY \(order.joined(separator: ", ")) LIMIT \(limit)"
        return PostgresQuery(unsafeSQL: sql, binds: binds)
    }

    // MARK: Writes

    /// Validates `fields` (keyed by name) against the schema, returning stored cells keyed by field id.
    static func cells(
        _ transaction: PostgresTransaction,
        _ fields: [String: FieldValue],
        schema: TableSchema,
        user: UserID?
    ) async throws -> [String: FieldValue?] {
        var cells: [String: FieldValue?] = [:]
        for (name, value) in fields {
            guard let field = schema.fieldsByName[name] else {
                throw StorageError.invalid("unknown field '\(name)' in table '\(schema.table.name)'", field: name)
            }
            let normalized = try FieldValueValidator.normalize(value, for: field)
            if field.type == .multipleRecordLinks, case .strings(let ids)? = normalized {
                try await checkLinks(transaction, ids: ids, field: field)
            }
            if field.type == .multipleAttachments, case .attachments(let attachments)? = normalized {
                cells[field.id.rawValue] = .attachments(
                    try await resolveRecordAttachments(transaction, attachments, field: field, user: user)
                )
                continue
            }
            cells[field.id.rawValue] = normalized
        }
        return cells
    }

    private static func checkLinks(_ transaction: PostgresTransaction, ids: [String], field: Field) async throws {
        guard let linked = field.options?.linkedTableID, !ids.isEmpty else { return }
        let found = Set(
            try await transaction.rows(
                "SELECT id FROM records WHERE table_id = \(linked.rawValue) AND id = ANY(\(ids))"
            ).map { try $0.get("id", as: String.self) }
        )
        if let missing = ids.first(where: { !found.contains($0) }) {
            throw StorageError.invalid(
                "field '\(field.name)' links to '\(missing)', which is not a record of the linked table",
                field: field.name
            )
        }
    }

    /// Attachments name uploaded files the writer may read; the stored cell carries each file's
    /// current name, type, size and URL (see ``SQLiteStore/resolveAttachments(_:_:field:user:)``).
    private static func resolveRecordAttachments(
        _ transaction: PostgresTransaction,
        _ attachments: [Attachment],
        field: Field,
        user: UserID?
    ) async throws -> [Attachment] {
        var seen = Set<FileID>()
        var resolved: [Attachment] = []
        for attachment in attachments where seen.insert(attachment.id).inserted {
            let unknown = StorageError.invalid(
                "field '\(field.name)': file '\(attachment.id)' does not exist or you cannot read it",
                field: field.name
            )
            guard let user,
                let row = try await transaction.row(
                    """
                    SELECT f.id, f.name, f.content_type, f.size FROM files f
                    WHERE f.id = \(attachment.id.rawValue) AND (
                        (f.workspace_id IS NULL AND f.created_by = \(user.rawValue))
                        OR f.workspace_id IN (SELECT workspace_id FROM members WHERE user_id = \(user.rawValue)))
                    """
                )
            else { throw unknown }
            let id: FileID = try row.id("id")
            resolved.append(
                Attachment(
                    id: id,
                    filename: try row.get("name"),
                    contentType: try row.get("content_type"),
                    size: try row.get("size", as: Int.self),
                    url: "/api/v1/files/\(id.rawValue)/content"
                )
            )
        }
        return resolved
    }

    static func insertRecord(
        _ transaction: PostgresTransaction,
        fields: [String: FieldValue],
        schema: TableSchema,
        context: WriteContext
    ) async throws -> EncodedRecord {
        var members: [String: [UInt8]] = [:]
        for (fieldID, value) in try await cells(transaction, fields, schema: schema, user: context.actor) {
            if let value { members[fieldID] = try RecordJSON.cell(value) }
        }
        let id = RecordID.generate()
        let now = context.now.millisecondsSince1970
        let stored = RecordJSON.storedObject(members)
        try await transaction.execute(
            """
            INSERT INTO records (id, table_id, fields, version, created_at, updated_at)
            VALUES (\(id.rawValue), \(schema.table.id.rawValue), \(stored), 1, \(now), \(now))
            """
        )
        let record = SQLiteStore.encodeRecord(
            id: id,
            storedFields: stored,
            version: 1,
            createdAt: now,
            updatedAt: now,
            schema: schema
        )
        try transaction.appendEvent(
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

    /// Loads (and locks) a record row of `schema`'s table for writing.
    static func storedRow(
        _ transaction: PostgresTransaction,
        id: RecordID,
        schema: TableSchema
    ) async throws
        -> StoredRecord
    {
        guard
            let row = try await transaction.row(
                """
                SELECT id, fields, version, created_at, updated_at FROM records
                WHERE id = \(id.rawValue) AND table_id = \(schema.table.id.rawValue) FOR UPDATE
                """
            )
        else { throw StorageError.notFound("record '\(id)'") }
        return try StoredRecord(row)
    }

    /// Merges (or with `replace`, replaces) cells. Stored cells are moved as raw JSON, never decoded.
    static func updateRecordRow(
        _ transaction: PostgresTransaction,
        id: RecordID,
        fields: [String: FieldValue],
        replace: Bool,
        ifVersion: Int?,
        schema: TableSchema,
        storedRow: StoredRecord? = nil,
        context: WriteContext
    ) async throws -> EncodedRecord {
        let row: StoredRecord
        if let storedRow {
            row = storedRow
        } else {
            row = try await Self.storedRow(transaction, id: id, schema: schema)
        }
        let version = row.version
        try checkVersion(
            expected: ifVersion,
            actual: version,
            current: try SQLiteStore.record(from: row, schema: schema)
        )
        // Cells of deleted fields are dropped on write.
        var members = replace ? [:] : RecordJSON.members(of: row.fields).filter { schema.fieldsByID[$0.key] != nil }
        for (fieldID, value) in try await cells(transaction, fields, schema: schema, user: context.actor) {
            if let value {
                members[fieldID] = try RecordJSON.cell(value)
            } else {
                members.removeValue(forKey: fieldID)
            }
        }
        let stored = RecordJSON.storedObject(members)
        let now = context.now.millisecondsSince1970
        // The row is locked (read `FOR UPDATE`): its update may go with the batch's next statement.
        transaction.deferUpdate(
            .init(id: id.rawValue, fields: stored, version: version + 1, updatedAt: now, previousVersion: version)
        )
        let record = SQLiteStore.encodeRecord(
            id: id,
            storedFields: stored,
            version: version + 1,
            createdAt: row.createdAt,
            updatedAt: now,
            schema: schema
        )
        try transaction.appendEvent(
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
        _ transaction: PostgresTransaction,
        id: RecordID,
        ifVersion: Int?,
        schema: TableSchema,
        storedRow: StoredRecord? = nil,
        context: WriteContext
    ) async throws {
        let row: StoredRecord
        if let storedRow {
            row = storedRow
        } else {
            row = try await Self.storedRow(transaction, id: id, schema: schema)
        }
        try checkVersion(
            expected: ifVersion,
            actual: row.version,
            current: try SQLiteStore.record(from: row, schema: schema)
        )
        try await transaction.execute("DELETE FROM records WHERE id = \(id.rawValue)")
        try transaction.appendEvent(
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
        return try await perform(context, status: 201) { transaction in
            let schema = try await self.requireCachedTable(transaction, id: table, user: actor, minimum: .editor)
            return try await Self.insertRecord(transaction, fields: fields, schema: schema, context: context)
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
        let lock = PostgresTransaction.RecordLock(record: id.rawValue, user: actor.rawValue)
        return try await perform(context, locking: [lock]) { transaction in
            let (schema, row) = try await self.requireStoredRecord(
                transaction,
                id: id,
                user: actor,
                minimum: .editor,
                lock: true
            )
            return try await Self.updateRecordRow(
                transaction,
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
        let lock = PostgresTransaction.RecordLock(record: id.rawValue, user: actor.rawValue)
        return try await perform(context, locking: [lock]) { transaction in
            let (schema, row) = try await self.requireStoredRecord(
                transaction,
                id: id,
                user: actor,
                minimum: .editor,
                lock: true
            )
            try await Self.deleteRecordRow(
                transaction,
                id: id,
                ifVersion: ifVersion,
                schema: schema,
                storedRow: row,
                context: context
            )
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
        return try await perform(context) { transaction in
            let schema = try await self.requireCachedTable(transaction, id: table, user: actor, minimum: .editor)
            var output: [UInt8] = Array(#"{"results":["#.utf8)
            for (index, operation) in operations.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                do {
                    switch operation {
                    case .create(let fields):
                        output += try await Self.insertRecord(
                            transaction,
                            fields: fields,
                            schema: schema,
                            context: context
                        ).json
                    case .update(let id, let fields, let ifVersion), .replace(let id, let fields, let ifVersion):
                        var replace = false
                        if case .replace = operation { replace = true }
                        output += try await Self.updateRecordRow(
                            transaction,
                            id: id,
                            fields: fields,
                            replace: replace,
                            ifVersion: ifVersion,
                            schema: schema,
                            context: context
                        ).json
                    case .delete(let id, let ifVersion):
                        try await Self.deleteRecordRow(
                            transaction,
                            id: id,
                            ifVersion: ifVersion,
                            schema: schema,
                            context: context
                        )
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

extension StoredRecord {
    /// Reads `id, fields, version, created_at, updated_at` from the start of a PostgreSQL row.
    init(_ row: PostgresRandomAccessRow) throws {
        self.init(
            id: try row[0].decode(String.self, context: .default),
            fields: try row[1].decode(String.self, context: .default),
            version: try row[2].decode(Int.self, context: .default),
            createdAt: try row[3].decode(Int64.self, context: .default),
            updatedAt: try row[4].decode(Int64.self, context: .default)
        )
    }
}
