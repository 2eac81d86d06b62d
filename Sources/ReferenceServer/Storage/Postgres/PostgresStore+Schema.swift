import Foundation
import PostgresNIO
import PyAirtableModels

extension PostgresStore: SchemaRepository {
    /// Whether `error` is PostgreSQL's unique violation (23505).
    static func isUniqueViolation(_ error: any Error) -> Bool {
        (error as? PSQLError)?.serverInfo?[.sqlState] == "23505"
    }

    // MARK: Bases

    static func decodeBase(from row: PostgresRandomAccessRow) throws -> Base {
        Base(
            id: try row.id("id"),
            workspaceID: try row.id("workspace_id"),
            name: try row.get("name"),
            version: try row.get("version", as: Int.self),
            createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at")
        )
    }

    static func fetchBase(
        _ transaction: PostgresTransaction,
        id: BaseID,
        user: UserID,
        minimum: Role,
        lock: Bool = false
    ) async throws -> Base {
        let query: PostgresQuery =
            lock
            ? "SELECT * FROM bases WHERE id = \(id.rawValue) FOR UPDATE"
            : "SELECT * FROM bases WHERE id = \(id.rawValue)"
        guard let row = try await transaction.row(query) else { throw StorageError.notFound("base") }
        let base = try decodeBase(from: row)
        try await authorize(
            transaction,
            workspace: base.workspaceID.rawValue,
            user: user,
            minimum: minimum,
            resource: "base"
        )
        return base
    }

    public func bases(workspace: WorkspaceID, user: UserID) async throws -> [Base] {
        try await database.read { transaction in
            try await Self.authorize(
                transaction,
                workspace: workspace.rawValue,
                user: user,
                minimum: .viewer,
                resource: "workspace"
            )
            return try await transaction.rows(
                "SELECT * FROM bases WHERE workspace_id = \(workspace.rawValue) ORDER BY created_at, ord"
            ).map(Self.decodeBase(from:))
        }
    }

    public func base(id: BaseID, user: UserID) async throws -> Base {
        try await database.read { transaction in
            try await Self.fetchBase(transaction, id: id, user: user, minimum: .viewer)
        }
    }

    public func createBase(
        workspace: WorkspaceID,
        _ request: CreateBaseRequest,
        context: WriteContext
    ) async throws
        -> WriteResult<Base>
    {
        let actor = try context.requireActor()
        return try await perform(context, status: 201) { transaction in
            try await Self.authorize(
                transaction,
                workspace: workspace.rawValue,
                user: actor,
                minimum: .creator,
                resource: "workspace"
            )
            let base = Base(
                id: .generate(),
                workspaceID: workspace,
                name: request.name,
                createdAt: context.now,
                updatedAt: context.now
            )
            let now = context.now.millisecondsSince1970
            try await transaction.execute(
                """
                INSERT INTO bases (id, workspace_id, name, version, created_at, updated_at)
                VALUES (\(base.id.rawValue), \(workspace.rawValue), \(base.name), 1, \(now), \(now))
                """
            )
            try transaction.appendEvent(
                type: .baseCreated,
                workspaceID: workspace,
                baseID: base.id,
                payload: base,
                context: context
            )
            return base
        }
    }

    public func updateBase(
        id: BaseID,
        _ request: UpdateBaseRequest,
        ifVersion: Int?,
        context: WriteContext
    ) async throws
        -> WriteResult<Base>
    {
        let actor = try context.requireActor()
        return try await perform(context) { transaction in
            var base = try await Self.fetchBase(transaction, id: id, user: actor, minimum: .creator, lock: true)
            try Self.checkVersion(expected: ifVersion, actual: base.version, current: base)
            if let name = request.name { base.name = name }
            base.version += 1
            base.updatedAt = context.now
            try await transaction.execute(
                """
                UPDATE bases SET name = \(base.name), version = \(base.version),
                    updated_at = \(context.now.millisecondsSince1970)
                WHERE id = \(id.rawValue)
                """
            )
            try transaction.appendEvent(
                type: .baseUpdated,
                workspaceID: base.workspaceID,
                baseID: id,
                payload: base,
                context: context
            )
            return base
        }
    }

    public func deleteBase(id: BaseID, ifVersion: Int?, context: WriteContext) async throws -> WriteResult<EmptyBody> {
        let actor = try context.requireActor()
        return try await perform(context, status: 204) { transaction in
            let base = try await Self.fetchBase(transaction, id: id, user: actor, minimum: .creator, lock: true)
            try Self.checkVersion(expected: ifVersion, actual: base.version, current: base)
            try await transaction.execute("DELETE FROM bases WHERE id = \(id.rawValue)")
            transaction.webhooksChanged = true
            try transaction.appendEvent(
                type: .baseDeleted,
                workspaceID: base.workspaceID,
                baseID: id,
                payload: ["id": id.rawValue],
                context: context
            )
            return EmptyBody()
        }
    }

    // MARK: Tables

    static func field(from row: PostgresRandomAccessRow) throws -> Field {
        let options: FieldOptions? = try (try row.get("options", as: String?.self)).map {
            try JSONCoding.decoder.decode(FieldOptions.self, from: Data($0.utf8))
        }
        return Field(
            id: try row.id("id"),
            tableID: try row.id("table_id"),
            name: try row.get("name"),
            type: FieldType(rawValue: try row.get("type", as: String.self)),
            options: options,
            description: try row.get("description", as: String?.self),
            version: try row.get("version", as: Int.self),
            createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at")
        )
    }

    static func decodeView(from row: PostgresRandomAccessRow) throws -> View {
        let sort: [SortSpec]? = try (try row.get("sort", as: String?.self)).map {
            try JSONCoding.decoder.decode([SortSpec].self, from: Data($0.utf8))
        }
        let fields: [String]? = try (try row.get("visible_fields", as: String?.self)).map {
            try JSONCoding.decoder.decode([String].self, from: Data($0.utf8))
        }
        return View(
            id: try row.id("id"),
            tableID: try row.id("table_id"),
            name: try row.get("name"),
            type: try row.get("type"),
            filter: try row.get("filter", as: String?.self),
            sort: sort,
            fields: fields,
            version: try row.get("version", as: Int.self),
            createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at")
        )
    }

    /// Loads a table with its fields and views, and the workspace it is in. With `lock`, the
    /// table's row is locked first: every change to a table, its fields or its views takes that
    /// lock, so changes of one table from several instances apply one after another.
    static func fetchTableSchema(
        _ transaction: PostgresTransaction,
        id: TableID,
        lock: Bool = false
    ) async throws -> TableSchema? {
        let query: PostgresQuery =
            lock
            ? """
            SELECT t.*, b.workspace_id FROM tables t JOIN bases b ON b.id = t.base_id WHERE t.id = \(id.rawValue)
            FOR UPDATE OF t
            """
            : "SELECT t.*, b.workspace_id FROM tables t JOIN bases b ON b.id = t.base_id WHERE t.id = \(id.rawValue)"
        guard let row = try await transaction.row(query) else { return nil }
        let fields = try await transaction.rows(
            "SELECT * FROM fields WHERE table_id = \(id.rawValue) ORDER BY position, ord"
        ).map(field(from:))
        let views = try await transaction.rows(
            "SELECT * FROM views WHERE table_id = \(id.rawValue) ORDER BY position, ord"
        ).map(decodeView(from:))
        let table = Table(
            id: id,
            baseID: try row.id("base_id"),
            name: try row.get("name"),
            description: try row.get("description", as: String?.self),
            primaryFieldID: try row.id("primary_field_id"),
            fields: fields,
            views: views,
            version: try row.get("version", as: Int.self),
            createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at")
        )
        return TableSchema(table: table, workspaceID: try row.id("workspace_id"))
    }

    /// The table's schema, checking the caller's role (and locking the table with `lock`).
    static func requireTable(
        _ transaction: PostgresTransaction,
        id: TableID,
        user: UserID,
        minimum: Role,
        lock: Bool = false
    ) async throws -> TableSchema {
        guard let schema = try await fetchTableSchema(transaction, id: id, lock: lock) else {
            throw StorageError.notFound("table")
        }
        try await authorize(
            transaction,
            workspace: schema.workspaceID.rawValue,
            user: user,
            minimum: minimum,
            resource: "table"
        )
        return schema
    }

    /// Bumps a table's version after a change to it or its fields or views.
    static func touchTable(_ transaction: PostgresTransaction, id: TableID, context: WriteContext) async throws {
        try await transaction.execute(
            """
            UPDATE tables SET version = version + 1, updated_at = \(context.now.millisecondsSince1970)
            WHERE id = \(id.rawValue)
            """
        )
    }

    public func tables(base: BaseID, user: UserID) async throws -> [PyAirtableModels.Table] {
        try await database.snapshot { transaction in
            _ = try await Self.fetchBase(transaction, id: base, user: user, minimum: .viewer)
            let ids = try await transaction.rows(
                "SELECT id FROM tables WHERE base_id = \(base.rawValue) ORDER BY created_at, ord"
            ).map { try $0.get("id", as: String.self) }
            var tables: [PyAirtableModels.Table] = []
            for id in ids {
                if let table = try await Self.fetchTableSchema(transaction, id: TableID(unchecked: id))?.table {
                    tables.append(table)
                }
            }
            return tables
        }
    }

    public func table(id: TableID, user: UserID) async throws -> PyAirtableModels.Table {
        try await database.snapshot { transaction in
            try await Self.requireTable(transaction, id: id, user: user, minimum: .viewer).table
        }
    }

    public func tableSchema(id: TableID, user: UserID) async throws -> TableSchema {
        try await database.snapshot { transaction in
            try await Self.requireTable(transaction, id: id, user: user, minimum: .viewer)
        }
    }

    public func createTable(
        base: BaseID,
        _ request: CreateTableRequest,
        context: WriteContext
    ) async throws
        -> WriteResult<PyAirtableModels.Table>
    {
        let actor = try context.requireActor()
        let maximumFields = maximumFieldsPerTable
        return try await perform(context, status: 201) { transaction in
            let parent = try await Self.fetchBase(transaction, id: base, user: actor, minimum: .creator)
            let tableID = TableID.generate()
            let now = context.now.millisecondsSince1970
            // The primary field id is known only after the fields exist; insert with the first one's id.
            let firstID = FieldID.generate()
            try await transaction.execute(
                """
                INSERT INTO tables (id, base_id, name, description, primary_field_id, version, created_at, updated_at)
                VALUES (\(tableID.rawValue), \(base.rawValue), \(request.name), \(request.description),
                    \(firstID.rawValue), 1, \(now), \(now))
                """
            )
            for field in request.fields {
                try await Self.checkLinkedTable(transaction, options: field.options, base: base, field: field.name)
            }
            try await Self.insertFieldsOfNewTable(
                transaction,
                firstID: firstID,
                table: tableID,
                request.fields,
                maximumFields: maximumFields,
                context: context
            )
            try await Self.insertView(
                transaction,
                id: .generate(),
                table: tableID,
                CreateViewRequest(name: "Grid view"),
                position: 0,
                context: context
            )
            guard let table = try await Self.fetchTableSchema(transaction, id: tableID)?.table else {
                throw StorageError.notFound("table")
            }
            try transaction.appendEvent(
                type: .tableCreated,
                workspaceID: parent.workspaceID,
                baseID: base,
                tableID: tableID,
                payload: table,
                context: context
            )
            return table
        }
    }

    public func updateTable(
        id: TableID,
        _ request: UpdateTableRequest,
        ifVersion: Int?,
        context: WriteContext
    ) async throws
        -> WriteResult<PyAirtableModels.Table>
    {
        let actor = try context.requireActor()
        return try await perform(context) { transaction in
            let schema = try await Self.requireTable(transaction, id: id, user: actor, minimum: .creator, lock: true)
            try Self.checkVersion(expected: ifVersion, actual: schema.table.version, current: schema.table)
            if let name = request.name {
                try await transaction.execute("UPDATE tables SET name = \(name) WHERE id = \(id.rawValue)")
            }
            if let description = request.description {
                let value: String? = description.isEmpty ? nil : description
                try await transaction.execute("UPDATE tables SET description = \(value) WHERE id = \(id.rawValue)")
            }
            return try await Self.finishTableChange(transaction, id: id, schema: schema, context: context)
        }
    }

    /// Bumps the table's version, reloads it and logs `table.updated`.
    static func finishTableChange(
        _ transaction: PostgresTransaction,
        id: TableID,
        schema: TableSchema,
        context: WriteContext
    ) async throws -> Table {
        try await touchTable(transaction, id: id, context: context)
        guard let table = try await fetchTableSchema(transaction, id: id)?.table else {
            throw StorageError.notFound("table")
        }
        try transaction.appendEvent(
            type: .tableUpdated,
            workspaceID: schema.workspaceID,
            baseID: table.baseID,
            tableID: id,
            payload: table,
            context: context
        )
        return table
    }

    public func deleteTable(id: TableID, ifVersion: Int?, context: WriteContext) async throws -> WriteResult<EmptyBody>
    {
        let actor = try context.requireActor()
        return try await perform(context, status: 204) { transaction in
            let schema = try await Self.requireTable(transaction, id: id, user: actor, minimum: .creator, lock: true)
            try Self.checkVersion(expected: ifVersion, actual: schema.table.version, current: schema.table)
            try await transaction.execute("DELETE FROM tables WHERE id = \(id.rawValue)")
            try transaction.appendEvent(
                type: .tableDeleted,
                workspaceID: schema.workspaceID,
                baseID: schema.table.baseID,
                tableID: id,
                payload: ["id": id.rawValue],
                context: context
            )
            return EmptyBody()
        }
    }

    // MARK: Fields

    /// A link field must name a table of the same base.
    static func checkLinkedTable(
        _ transaction: PostgresTransaction,
        options: FieldOptions?,
        base: BaseID,
        field: String
    ) async throws {
        guard let linked = options?.linkedTableID else { return }
        let linkedBase = try await transaction.scalar(
            "SELECT base_id FROM tables WHERE id = \(linked.rawValue)",
            as: String.self
        )
        guard linkedBase == base.rawValue else {
            throw StorageError.invalid("linked_table_id '\(linked)' is not a table of this base", field: field)
        }
    }

    /// Inserts a field, refusing (422) a table that already has `maximumFields`: every way a field
    /// is added comes through here (under the table's lock), so the limit holds whatever the route.
    static func insertField(
        _ transaction: PostgresTransaction,
        id: FieldID,
        table: TableID,
        _ field: CreateFieldRequest,
        position: Int,
        maximumFields: Int,
        context: WriteContext
    ) async throws {
        let existing =
            try await transaction.scalar(
                "SELECT count(*) FROM fields WHERE table_id = \(table.rawValue)",
                as: Int.self
            ) ?? 0
        guard existing < maximumFields else {
            throw StorageError.invalid(
                "a table has at most \(maximumFields) fields; this one has \(existing): delete one first",
                field: "fields"
            )
        }
        let options = try field.options.map { String(decoding: try JSONCoding.encoder.encode($0), as: UTF8.self) }
        let now = context.now.millisecondsSince1970
        do {
            try await transaction.execute(
                """
                INSERT INTO fields (id, table_id, name, type, options, description, position, version, created_at,
                    updated_at)
                VALUES (\(id.rawValue), \(table.rawValue), \(field.name), \(field.type.rawValue), \(options),
                    \(field.description), \(position), 1, \(now), \(now))
                """
            )
        } catch  where isUniqueViolation(error) {
            throw StorageError.invalid("a field named '\(field.name)' already exists in this table", field: field.name)
        }
    }

    /// Inserts a new table's fields in one statement (a table may have hundreds, and each statement
    /// is a round trip), with the checks ``insertField(_:id:table:_:position:maximumFields:context:)``
    /// makes one by one: the field limit, and one field per name.
    static func insertFieldsOfNewTable(
        _ transaction: PostgresTransaction,
        firstID: FieldID,
        table: TableID,
        _ fields: [CreateFieldRequest],
        maximumFields: Int,
        context: WriteContext
    ) async throws {
        guard fields.count <= maximumFields else {
            throw StorageError.invalid(
                "a table has at most \(maximumFields) fields; this one has \(maximumFields): delete one first",
                field: "fields"
            )
        }
        var names = Set<String>()
        for field in fields where !names.insert(field.name).inserted {
            throw StorageError.invalid("a field named '\(field.name)' already exists in this table", field: field.name)
        }
        guard !fields.isEmpty else { return }
        let now = context.now.millisecondsSince1970
        var sql = """
            INSERT INTO fields (id, table_id, name, type, options, description, position, version, created_at,
                updated_at) VALUES
            """
        var binds = PostgresBindings(capacity: fields.count * 7 + 1)
        binds.append(table.rawValue)
        binds.append(now)
        for (index, field) in fields.enumerated() {
            let options = try field.options.map { String(decoding: try JSONCoding.encoder.encode($0), as: UTF8.self) }
            let base = binds.count
            binds.append((index == 0 ? firstID : FieldID.generate()).rawValue)
            binds.append(field.name)
            binds.append(field.type.rawValue)
            binds.append(options)
            binds.append(field.description)
            binds.append(Int64(index))
            sql += index == 0 ? " " : ", "
            sql += "($\(base + 1), $1, $\(base + 2), $\(base + 3), $\(base + 4), $\(base + 5), $\(base + 6), 1, $2, $2)"
        }
        try await transaction.execute(PostgresQuery(unsafeSQL: sql, binds: binds))
    }

    public func fields(table: TableID, user: UserID) async throws -> [Field] {
        try await database.snapshot { transaction in
            try await Self.requireTable(transaction, id: table, user: user, minimum: .viewer).table.fields
        }
    }

    public func createField(
        table: TableID,
        _ request: CreateFieldRequest,
        context: WriteContext
    ) async throws
        -> WriteResult<Field>
    {
        let actor = try context.requireActor()
        let maximumFields = maximumFieldsPerTable
        return try await perform(context, status: 201) { transaction in
            let schema = try await Self.requireTable(transaction, id: table, user: actor, minimum: .creator, lock: true)
            try await Self.checkLinkedTable(
                transaction,
                options: request.options,
                base: schema.table.baseID,
                field: request.name
            )
            let id = FieldID.generate()
            try await Self.insertField(
                transaction,
                id: id,
                table: table,
                request,
                position: schema.table.fields.count,
                maximumFields: maximumFields,
                context: context
            )
            try await Self.touchTable(transaction, id: table, context: context)
            guard let field = try await Self.fetchTableSchema(transaction, id: table)?.fieldsByID[id.rawValue] else {
                throw StorageError.notFound("field")
            }
            try transaction.appendEvent(
                type: .fieldCreated,
                workspaceID: schema.workspaceID,
                baseID: schema.table.baseID,
                tableID: table,
                payload: field,
                context: context
            )
            return field
        }
    }

    /// A field, its table's schema (the table locked), and the caller's role checked.
    static func requireField(
        _ transaction: PostgresTransaction,
        id: FieldID,
        user: UserID,
        minimum: Role
    ) async throws -> (Field, TableSchema) {
        guard
            let tableID = try await transaction.scalar(
                "SELECT table_id FROM fields WHERE id = \(id.rawValue)",
                as: String.self
            ),
            let schema = try await fetchTableSchema(transaction, id: TableID(unchecked: tableID), lock: true),
            let field = schema.fieldsByID[id.rawValue]
        else { throw StorageError.notFound("field") }
        try await authorize(
            transaction,
            workspace: schema.workspaceID.rawValue,
            user: user,
            minimum: minimum,
            resource: "field"
        )
        return (field, schema)
    }

    public func updateField(
        id: FieldID,
        _ request: UpdateFieldRequest,
        ifVersion: Int?,
        context: WriteContext
    ) async throws
        -> WriteResult<Field>
    {
        let actor = try context.requireActor()
        return try await perform(context) { transaction in
            var (field, schema) = try await Self.requireField(transaction, id: id, user: actor, minimum: .creator)
            try Self.checkVersion(expected: ifVersion, actual: field.version, current: field)
            if let name = request.name, name != field.name {
                if schema.fieldsByName[name] != nil {
                    throw StorageError.invalid("a field named '\(name)' already exists in this table", field: name)
                }
                field.name = name
            }
            if let description = request.description { field.description = description.isEmpty ? nil : description }
            if let options = request.options {
                try SchemaValidation.options(options, type: field.type, name: field.name)
                try await Self.checkLinkedTable(
                    transaction,
                    options: options,
                    base: schema.table.baseID,
                    field: field.name
                )
                field.options = options
            }
            field.version += 1
            field.updatedAt = context.now
            let options = try field.options.map { String(decoding: try JSONCoding.encoder.encode($0), as: UTF8.self) }
            try await transaction.execute(
                """
                UPDATE fields SET name = \(field.name), description = \(field.description), options = \(options),
                    version = \(field.version), updated_at = \(context.now.millisecondsSince1970)
                WHERE id = \(id.rawValue)
                """
            )
            try await Self.touchTable(transaction, id: schema.table.id, context: context)
            try transaction.appendEvent(
                type: .fieldUpdated,
                workspaceID: schema.workspaceID,
                baseID: schema.table.baseID,
                tableID: schema.table.id,
                payload: field,
                context: context
            )
            return field
        }
    }

    public func deleteField(id: FieldID, ifVersion: Int?, context: WriteContext) async throws -> WriteResult<EmptyBody>
    {
        let actor = try context.requireActor()
        return try await perform(context, status: 204) { transaction in
            let (field, schema) = try await Self.requireField(transaction, id: id, user: actor, minimum: .creator)
            try Self.checkVersion(expected: ifVersion, actual: field.version, current: field)
            if schema.table.primaryFieldID == id {
                throw StorageError.invalid("the primary field of a table cannot be deleted", field: field.name)
            }
            try await transaction.execute("DELETE FROM fields WHERE id = \(id.rawValue)")
            try await Self.dropCells(transaction, of: id, table: schema.table.id)
            try await Self.touchTable(transaction, id: schema.table.id, context: context)
            try transaction.appendEvent(
                type: .fieldDeleted,
                workspaceID: schema.workspaceID,
                baseID: schema.table.baseID,
                tableID: schema.table.id,
                payload: ["id": id.rawValue],
                context: context
            )
            return EmptyBody()
        }
    }

    /// Drops a deleted field's cells from its table's records, so a later field can never read stale
    /// values. The stored objects are rewritten by ``RecordJSON`` (not by `jsonb`, which would
    /// reorder and re-space them), a page of records at a time.
    static func dropCells(_ transaction: PostgresTransaction, of field: FieldID, table: TableID) async throws {
        let needle = "%\"\(field.rawValue)\"%"
        var after: Int64 = 0
        while true {
            let rows = try await transaction.rows(
                """
                SELECT seq, fields FROM records
                WHERE table_id = \(table.rawValue) AND seq > \(after) AND fields LIKE \(needle)
                ORDER BY seq LIMIT 500
                """
            )
            guard let last = rows.last else { return }
            for row in rows {
                var members = RecordJSON.members(of: try row.get("fields", as: String.self))
                members.removeValue(forKey: field.rawValue)
                try await transaction.execute(
                    """
                    UPDATE records SET fields = \(RecordJSON.storedObject(members))
                    WHERE seq = \(try row.get("seq", as: Int64.self))
                    """
                )
            }
            after = try last.get("seq", as: Int64.self)
        }
    }

    // MARK: Views

    static func insertView(
        _ transaction: PostgresTransaction,
        id: ViewID,
        table: TableID,
        _ view: CreateViewRequest,
        position: Int,
        context: WriteContext
    ) async throws {
        let sort = try view.sort.map { String(decoding: try JSONCoding.encoder.encode($0), as: UTF8.self) }
        let fields = try view.fields.map { String(decoding: try JSONCoding.encoder.encode($0), as: UTF8.self) }
        let now = context.now.millisecondsSince1970
        do {
            try await transaction.execute(
                """
                INSERT INTO views (id, table_id, name, type, filter, sort, visible_fields, position, version,
                    created_at, updated_at)
                VALUES (\(id.rawValue), \(table.rawValue), \(view.name), \(view.type ?? "grid"), \(view.filter),
                    \(sort), \(fields), \(position), 1, \(now), \(now))
                """
            )
        } catch  where isUniqueViolation(error) {
            throw StorageError.invalid("a view named '\(view.name)' already exists in this table", field: "name")
        }
    }

    public func views(table: TableID, user: UserID) async throws -> [View] {
        try await database.snapshot { transaction in
            try await Self.requireTable(transaction, id: table, user: user, minimum: .viewer).table.views
        }
    }

    public func createView(
        table: TableID,
        _ request: CreateViewRequest,
        context: WriteContext
    ) async throws
        -> WriteResult<View>
    {
        let actor = try context.requireActor()
        let limits = self.limits
        return try await perform(context, status: 201) { transaction in
            let schema = try await Self.requireTable(transaction, id: table, user: actor, minimum: .creator, lock: true)
            try ViewValidation.validate(
                filter: request.filter,
                sort: request.sort,
                fields: request.fields,
                schema: schema,
                limits: limits
            )
            let id = ViewID.generate()
            try await Self.insertView(
                transaction,
                id: id,
                table: table,
                request,
                position: schema.table.views.count,
                context: context
            )
            try await Self.touchTable(transaction, id: table, context: context)
            guard
                let view = try await Self.fetchTableSchema(transaction, id: table)?.table.views.first(where: {
                    $0.id == id
                })
            else { throw StorageError.notFound("view") }
            try transaction.appendEvent(
                type: .viewCreated,
                workspaceID: schema.workspaceID,
                baseID: schema.table.baseID,
                tableID: table,
                payload: view,
                context: context
            )
            return view
        }
    }

    /// A view, its table's schema (the table locked with `lock`), and the caller's role checked.
    static func requireView(
        _ transaction: PostgresTransaction,
        id: ViewID,
        user: UserID,
        minimum: Role,
        lock: Bool = false
    ) async throws -> (View, TableSchema) {
        guard
            let tableID = try await transaction.scalar(
                "SELECT table_id FROM views WHERE id = \(id.rawValue)",
                as: String.self
            ),
            let schema = try await fetchTableSchema(transaction, id: TableID(unchecked: tableID), lock: lock),
            let view = schema.table.views.first(where: { $0.id == id })
        else { throw StorageError.notFound("view") }
        try await authorize(
            transaction,
            workspace: schema.workspaceID.rawValue,
            user: user,
            minimum: minimum,
            resource: "view"
        )
        return (view, schema)
    }

    public func view(id: ViewID, user: UserID) async throws -> View {
        try await database.snapshot { transaction in
            try await Self.requireView(transaction, id: id, user: user, minimum: .viewer).0
        }
    }

    public func updateView(
        id: ViewID,
        _ request: UpdateViewRequest,
        ifVersion: Int?,
        context: WriteContext
    ) async throws
        -> WriteResult<View>
    {
        let actor = try context.requireActor()
        let limits = self.limits
        return try await perform(context) { transaction in
            var (view, schema) = try await Self.requireView(
                transaction,
                id: id,
                user: actor,
                minimum: .creator,
                lock: true
            )
            try Self.checkVersion(expected: ifVersion, actual: view.version, current: view)
            if let name = request.name { view.name = name }
            if let filter = request.filter { view.filter = filter.isEmpty ? nil : filter }
            if let sort = request.sort { view.sort = sort.isEmpty ? nil : sort }
            if let fields = request.fields { view.fields = fields.isEmpty ? nil : fields }
            try ViewValidation.validate(
                filter: view.filter,
                sort: view.sort,
                fields: view.fields,
                schema: schema,
                limits: limits
            )
            view.version += 1
            view.updatedAt = context.now
            let sort = try view.sort.map { String(decoding: try JSONCoding.encoder.encode($0), as: UTF8.self) }
            let fields = try view.fields.map { String(decoding: try JSONCoding.encoder.encode($0), as: UTF8.self) }
            do {
                try await transaction.execute(
                    """
                    UPDATE views SET name = \(view.name), filter = \(view.filter), sort = \(sort),
                        visible_fields = \(fields), version = \(view.version),
                        updated_at = \(context.now.millisecondsSince1970)
                    WHERE id = \(id.rawValue)
                    """
                )
            } catch  where Self.isUniqueViolation(error) {
                throw StorageError.invalid("a view named '\(view.name)' already exists in this table", field: "name")
            }
            try await Self.touchTable(transaction, id: schema.table.id, context: context)
            try transaction.appendEvent(
                type: .viewUpdated,
                workspaceID: schema.workspaceID,
                baseID: schema.table.baseID,
                tableID: schema.table.id,
                payload: view,
                context: context
            )
            return view
        }
    }

    public func deleteView(id: ViewID, ifVersion: Int?, context: WriteContext) async throws -> WriteResult<EmptyBody> {
        let actor = try context.requireActor()
        return try await perform(context, status: 204) { transaction in
            let (view, schema) = try await Self.requireView(
                transaction,
                id: id,
                user: actor,
                minimum: .creator,
                lock: true
            )
            try Self.checkVersion(expected: ifVersion, actual: view.version, current: view)
            try await transaction.execute("DELETE FROM views WHERE id = \(id.rawValue)")
            try await Self.touchTable(transaction, id: schema.table.id, context: context)
            try transaction.appendEvent(
                type: .viewDeleted,
                workspaceID: schema.workspaceID,
                baseID: schema.table.baseID,
                tableID: schema.table.id,
                payload: ["id": id.rawValue],
                context: context
            )
            return EmptyBody()
        }
    }
}
