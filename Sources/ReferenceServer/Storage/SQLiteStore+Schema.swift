import Foundation
import GRDB
import PyAirtableModels

/// Where a schema object sits: its workspace and base.
struct SchemaLocation: Sendable, Hashable {
    var workspaceID: WorkspaceID
    var baseID: BaseID
}

/// A table with lookups by field id and name, as the record routes use it.
///
/// Only storage makes one, from the table's row, and nothing outside the module can change one: a
/// repository given a schema may trust that its table lives in the workspace it names.
public struct TableSchema: Sendable {
    public internal(set) var table: PyAirtableModels.Table
    public internal(set) var workspaceID: WorkspaceID
    public internal(set) var fieldsByID: [String: Field]
    public internal(set) var fieldsByName: [String: Field]

    init(table: Table, workspaceID: WorkspaceID) {
        self.table = table
        self.workspaceID = workspaceID
        self.fieldsByID = Dictionary(uniqueKeysWithValues: table.fields.map { ($0.id.rawValue, $0) })
        self.fieldsByName = Dictionary(uniqueKeysWithValues: table.fields.map { ($0.name, $0) })
    }
}

extension SQLiteStore {
    // MARK: Bases

    static func decodeBase(from row: Row) -> Base {
        Base(
            id: row.id("id"),
            workspaceID: row.id("workspace_id"),
            name: row["name"],
            version: row["version"],
            createdAt: row.date("created_at"),
            updatedAt: row.date("updated_at")
        )
    }

    static func fetchBase(_ db: Database, id: BaseID, user: UserID, minimum: Role) throws -> Base {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM bases WHERE id = ?", arguments: [id.rawValue]) else {
            throw StorageError.notFound("base")
        }
        let base = decodeBase(from: row)
        try authorize(db, workspace: base.workspaceID.rawValue, user: user, minimum: minimum, resource: "base")
        return base
    }

    public func bases(workspace: WorkspaceID, user: UserID) async throws -> [Base] {
        try await database.read { db in
            try Self.authorize(db, workspace: workspace.rawValue, user: user, minimum: .viewer, resource: "workspace")
            return try Row.fetchAll(
                db,
                sql: "SELECT * FROM bases WHERE workspace_id = ? ORDER BY created_at, rowid",
                arguments: [workspace.rawValue]
            ).map(Self.decodeBase(from:))
        }
    }

    public func base(id: BaseID, user: UserID) async throws -> Base {
        try await database.read { db in try Self.fetchBase(db, id: id, user: user, minimum: .viewer) }
    }

    public func createBase(
        workspace: WorkspaceID,
        _ request: CreateBaseRequest,
        context: WriteContext
    ) async throws
        -> WriteResult<Base>
    {
        let actor = try context.requireActor()
        return try await perform(context, status: 201) { db in
            try Self.authorize(db, workspace: workspace.rawValue, user: actor, minimum: .creator, resource: "workspace")
            let base = Base(
                id: .generate(),
                workspaceID: workspace,
                name: request.name,
                createdAt: context.now,
                updatedAt: context.now
            )
            try db.execute(
                sql:
                    "INSERT INTO bases (id, workspace_id, name, version, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)",
                arguments: [
                    base.id.rawValue, workspace.rawValue, base.name, context.now.millisecondsSince1970,
                    context.now.millisecondsSince1970,
                ]
            )
            try Self.appendEvent(
                db,
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
        return try await perform(context) { db in
            var base = try Self.fetchBase(db, id: id, user: actor, minimum: .creator)
            try Self.checkVersion(expected: ifVersion, actual: base.version, current: base)
            if let name = request.name { base.name = name }
            base.version += 1
            base.updatedAt = context.now
            try db.execute(
                sql: "UPDATE bases SET name = ?, version = ?, updated_at = ? WHERE id = ?",
                arguments: [base.name, base.version, context.now.millisecondsSince1970, id.rawValue]
            )
            try Self.appendEvent(
                db,
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
        return try await perform(context, status: 204) { db in
            let base = try Self.fetchBase(db, id: id, user: actor, minimum: .creator)
            try Self.checkVersion(expected: ifVersion, actual: base.version, current: base)
            try db.execute(sql: "DELETE FROM bases WHERE id = ?", arguments: [id.rawValue])
            try Self.appendEvent(
                db,
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

    static func field(from row: Row) throws -> Field {
        let options: FieldOptions? = try (row["options"] as String?).map {
            try JSONCoding.decoder.decode(FieldOptions.self, from: Data($0.utf8))
        }
        return Field(
            id: row.id("id"),
            tableID: row.id("table_id"),
            name: row["name"],
            type: FieldType(rawValue: row["type"]),
            options: options,
            description: row["description"],
            version: row["version"],
            createdAt: row.date("created_at"),
            updatedAt: row.date("updated_at")
        )
    }

    static func decodeView(from row: Row) throws -> View {
        let sort: [SortSpec]? = try (row["sort"] as String?).map {
            try JSONCoding.decoder.decode([SortSpec].self, from: Data($0.utf8))
        }
        let fields: [String]? = try (row["visible_fields"] as String?).map {
            try JSONCoding.decoder.decode([String].self, from: Data($0.utf8))
        }
        return View(
            id: row.id("id"),
            tableID: row.id("table_id"),
            name: row["name"],
            type: row["type"],
            filter: row["filter"],
            sort: sort,
            fields: fields,
            version: row["version"],
            createdAt: row.date("created_at"),
            updatedAt: row.date("updated_at")
        )
    }

    /// Loads a table with its fields and views, and the workspace it is in.
    static func fetchTableSchema(_ db: Database, id: TableID) throws -> TableSchema? {
        guard
            let row = try Row.fetchOne(
                db,
                sql: "SELECT t.*, b.workspace_id FROM tables t JOIN bases b ON b.id = t.base_id WHERE t.id = ?",
                arguments: [id.rawValue]
            )
        else { return nil }
        let fields = try Row.fetchAll(
            db,
            sql: "SELECT * FROM fields WHERE table_id = ? ORDER BY position, rowid",
            arguments: [id.rawValue]
        ).map(field(from:))
        let views = try Row.fetchAll(
            db,
            sql: "SELECT * FROM views WHERE table_id = ? ORDER BY position, rowid",
            arguments: [id.rawValue]
        ).map(decodeView(from:))
        let table = Table(
            id: id,
            baseID: row.id("base_id"),
            name: row["name"],
            description: row["description"],
            primaryFieldID: row.id("primary_field_id"),
            fields: fields,
            views: views,
            version: row["version"],
            createdAt: row.date("created_at"),
            updatedAt: row.date("updated_at")
        )
        return TableSchema(table: table, workspaceID: row.id("workspace_id"))
    }

    /// The table's schema, checking the caller's role.
    static func requireTable(_ db: Database, id: TableID, user: UserID, minimum: Role) throws -> TableSchema {
        guard let schema = try fetchTableSchema(db, id: id) else { throw StorageError.notFound("table") }
        try authorize(db, workspace: schema.workspaceID.rawValue, user: user, minimum: minimum, resource: "table")
        return schema
    }

    /// Bumps a table's version after a change to it or its fields or views.
    static func touchTable(_ db: Database, id: TableID, context: WriteContext) throws {
        try db.execute(
            sql: "UPDATE tables SET version = version + 1, updated_at = ? WHERE id = ?",
            arguments: [context.now.millisecondsSince1970, id.rawValue]
        )
    }

    public func tables(base: BaseID, user: UserID) async throws -> [PyAirtableModels.Table] {
        try await database.read { db in
            _ = try Self.fetchBase(db, id: base, user: user, minimum: .viewer)
            let ids = try String.fetchAll(
                db,
                sql: "SELECT id FROM tables WHERE base_id = ? ORDER BY created_at, rowid",
                arguments: [base.rawValue]
            )
            return try ids.compactMap { try Self.fetchTableSchema(db, id: TableID(unchecked: $0))?.table }
        }
    }

    public func table(id: TableID, user: UserID) async throws -> PyAirtableModels.Table {
        try await database.read { db in try Self.requireTable(db, id: id, user: user, minimum: .viewer).table }
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
        return try await perform(context, status: 201) { db in
            let parent = try Self.fetchBase(db, id: base, user: actor, minimum: .creator)
            let tableID = TableID.generate()
            var fieldIDs: [FieldID] = []
            let now = context.now.millisecondsSince1970
            // The primary field id is known only after the fields exist; insert with the first one's id.
            let firstID = FieldID.generate()
            try db.execute(
                sql: """
                    INSERT INTO tables (id, base_id, name, description, primary_field_id, version, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, 1, ?, ?)
                    """,
                arguments: [
                    tableID.rawValue, base.rawValue, request.name, request.description, firstID.rawValue, now, now,
                ]
            )
            for (index, field) in request.fields.enumerated() {
                try Self.checkLinkedTable(db, options: field.options, base: base, field: field.name)
                let id = index == 0 ? firstID : FieldID.generate()
                try Self.insertField(
                    db,
                    id: id,
                    table: tableID,
                    field,
                    position: index,
                    maximumFields: maximumFields,
                    context: context
                )
                fieldIDs.append(id)
            }
            try Self.insertView(
                db,
                id: .generate(),
                table: tableID,
                CreateViewRequest(name: "Grid view"),
                position: 0,
                context: context
            )
            guard let table = try Self.fetchTableSchema(db, id: tableID)?.table else {
                throw StorageError.notFound("table")
            }
            try Self.appendEvent(
                db,
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
        return try await perform(context) { db in
            let schema = try Self.requireTable(db, id: id, user: actor, minimum: .creator)
            try Self.checkVersion(expected: ifVersion, actual: schema.table.version, current: schema.table)
            if let name = request.name {
                try db.execute(sql: "UPDATE tables SET name = ? WHERE id = ?", arguments: [name, id.rawValue])
            }
            if let description = request.description {
                try db.execute(
                    sql: "UPDATE tables SET description = ? WHERE id = ?",
                    arguments: [description.isEmpty ? nil : description, id.rawValue]
                )
            }
            return try Self.finishTableChange(db, id: id, schema: schema, context: context)
        }
    }

    /// Bumps the table's version, reloads it and logs `table.updated`.
    static func finishTableChange(
        _ db: Database,
        id: TableID,
        schema: TableSchema,
        context: WriteContext
    ) throws
        -> Table
    {
        try touchTable(db, id: id, context: context)
        guard let table = try fetchTableSchema(db, id: id)?.table else { throw StorageError.notFound("table") }
        try appendEvent(
            db,
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
        return try await perform(context, status: 204) { db in
            let schema = try Self.requireTable(db, id: id, user: actor, minimum: .creator)
            try Self.checkVersion(expected: ifVersion, actual: schema.table.version, current: schema.table)
            try db.execute(sql: "DELETE FROM tables WHERE id = ?", arguments: [id.rawValue])
            try Self.appendEvent(
                db,
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
    static func checkLinkedTable(_ db: Database, options: FieldOptions?, base: BaseID, field: String) throws {
        guard let linked = options?.linkedTableID else { return }
        let linkedBase = try String.fetchOne(
            db,
            sql: "SELECT base_id FROM tables WHERE id = ?",
            arguments: [linked.rawValue]
        )
        guard linkedBase == base.rawValue else {
            throw StorageError.invalid("linked_table_id '\(linked)' is not a table of this base", field: field)
        }
    }

    /// Inserts a field, refusing (422) a table that already has `maximumFields`: every way a field
    /// is added comes through here, so the limit holds whatever the route.
    static func insertField(
        _ db: Database,
        id: FieldID,
        table: TableID,
        _ field: CreateFieldRequest,
        position: Int,
        maximumFields: Int,
        context: WriteContext
    ) throws {
        let existing =
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM fields WHERE table_id = ?", arguments: [table.rawValue])
            ?? 0
        guard existing < maximumFields else {
            throw StorageError.invalid(
                "a table has at most \(maximumFields) fields; this one has \(existing): delete one first",
                field: "fields"
            )
        }
        let options = try field.options.map { String(decoding: try JSONCoding.encoder.encode($0), as: UTF8.self) }
        do {
            try db.execute(
                sql: """
                    INSERT INTO fields (id, table_id, name, type, options, description, position, version, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
                    """,
                arguments: [
                    id.rawValue, table.rawValue, field.name, field.type.rawValue, options, field.description, position,
                    context.now.millisecondsSince1970, context.now.millisecondsSince1970,
                ]
            )
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw StorageError.invalid(
                "a field named '\(field.name)' already exists in this table",
                field: field.name
            )
        }
    }

    public func fields(table: TableID, user: UserID) async throws -> [Field] {
        try await database.read { db in try Self.requireTable(db, id: table, user: user, minimum: .viewer).table.fields
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
        return try await perform(context, status: 201) { db in
            let schema = try Self.requireTable(db, id: table, user: actor, minimum: .creator)
            try Self.checkLinkedTable(db, options: request.options, base: schema.table.baseID, field: request.name)
            let id = FieldID.generate()
            let position = schema.table.fields.count
            try Self.insertField(
                db,
                id: id,
                table: table,
                request,
                position: position,
                maximumFields: maximumFields,
                context: context
            )
            try Self.touchTable(db, id: table, context: context)
            guard let field = try Self.fetchTableSchema(db, id: table)?.fieldsByID[id.rawValue] else {
                throw StorageError.notFound("field")
            }
            try Self.appendEvent(
                db,
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

    static func requireField(_ db: Database, id: FieldID, user: UserID, minimum: Role) throws -> (Field, TableSchema) {
        guard
            let tableID = try String.fetchOne(
                db,
                sql: "SELECT table_id FROM fields WHERE id = ?",
                arguments: [id.rawValue]
            ),
            let schema = try fetchTableSchema(db, id: TableID(unchecked: tableID)),
            let field = schema.fieldsByID[id.rawValue]
        else { throw StorageError.notFound("field") }
        try authorize(db, workspace: schema.workspaceID.rawValue, user: user, minimum: minimum, resource: "field")
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
        return try await perform(context) { db in
            var (field, schema) = try Self.requireField(db, id: id, user: actor, minimum: .creator)
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
                try Self.checkLinkedTable(db, options: options, base: schema.table.baseID, field: field.name)
                field.options = options
            }
            field.version += 1
            field.updatedAt = context.now
            let options = try field.options.map { String(decoding: try JSONCoding.encoder.encode($0), as: UTF8.self) }
            try db.execute(
                sql: """
                    UPDATE fields SET name = ?, description = ?, options = ?, version = ?, updated_at = ? WHERE id = ?
                    """,
                arguments: [
                    field.name, field.description, options, field.version, context.now.millisecondsSince1970,
                    id.rawValue,
                ]
            )
            try Self.touchTable(db, id: schema.table.id, context: context)
            try Self.appendEvent(
                db,
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
        return try await perform(context, status: 204) { db in
            let (field, schema) = try Self.requireField(db, id: id, user: actor, minimum: .creator)
            try Self.checkVersion(expected: ifVersion, actual: field.version, current: field)
            if schema.table.primaryFieldID == id {
                throw StorageError.invalid("the primary field of a table cannot be deleted", field: field.name)
            }
            try db.execute(sql: "DELETE FROM fields WHERE id = ?", arguments: [id.rawValue])
            // Drop the cells of the field so a later field can never read stale values.
            try db.execute(
                sql: "UPDATE records SET fields = json_remove(fields, ?) WHERE table_id = ?",
                arguments: ["$.\"\(id.rawValue)\"", schema.table.id.rawValue]
            )
            try Self.touchTable(db, id: schema.table.id, context: context)
            try Self.appendEvent(
                db,
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

    // MARK: Views

    static func insertView(
        _ db: Database,
        id: ViewID,
        table: TableID,
        _ view: CreateViewRequest,
        position: Int,
        context: WriteContext
    ) throws {
        let sort = try view.sort.map { String(decoding: try JSONCoding.encoder.encode($0), as: UTF8.self) }
        let fields = try view.fields.map { String(decoding: try JSONCoding.encoder.encode($0), as: UTF8.self) }
        do {
            try db.execute(
                sql: """
                    INSERT INTO views (id, table_id, name, type, filter, sort, visible_fields, position, version, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
                    """,
                arguments: [
                    id.rawValue, table.rawValue, view.name, view.type ?? "grid", view.filter, sort, fields, position,
                    context.now.millisecondsSince1970, context.now.millisecondsSince1970,
                ]
            )
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw StorageError.invalid("a view named '\(view.name)' already exists in this table", field: "name")
        }
    }

    public func views(table: TableID, user: UserID) async throws -> [View] {
        try await database.read { db in try Self.requireTable(db, id: table, user: user, minimum: .viewer).table.views }
    }

    public func createView(
        table: TableID,
        _ request: CreateViewRequest,
        context: WriteContext
    ) async throws
        -> WriteResult<View>
    {
        let actor = try context.requireActor()
        return try await perform(context, status: 201) { db in
            let schema = try Self.requireTable(db, id: table, user: actor, minimum: .creator)
            try ViewValidation.validate(
                filter: request.filter,
                sort: request.sort,
                fields: request.fields,
                schema: schema,
                limits: self.limits
            )
            let id = ViewID.generate()
            try Self.insertView(db, id: id, table: table, request, position: schema.table.views.count, context: context)
            try Self.touchTable(db, id: table, context: context)
            guard let view = try Self.fetchTableSchema(db, id: table)?.table.views.first(where: { $0.id == id }) else {
                throw StorageError.notFound("view")
            }
            try Self.appendEvent(
                db,
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

    static func requireView(_ db: Database, id: ViewID, user: UserID, minimum: Role) throws -> (View, TableSchema) {
        guard
            let tableID = try String.fetchOne(
                db,
                sql: "SELECT table_id FROM views WHERE id = ?",
                arguments: [id.rawValue]
            ),
            let schema = try fetchTableSchema(db, id: TableID(unchecked: tableID)),
            let view = schema.table.views.first(where: { $0.id == id })
        else { throw StorageError.notFound("view") }
        try authorize(db, workspace: schema.workspaceID.rawValue, user: user, minimum: minimum, resource: "view")
        return (view, schema)
    }

    public func view(id: ViewID, user: UserID) async throws -> View {
        try await database.read { db in try Self.requireView(db, id: id, user: user, minimum: .viewer).0 }
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
        return try await perform(context) { db in
            var (view, schema) = try Self.requireView(db, id: id, user: actor, minimum: .creator)
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
                limits: self.limits
            )
            view.version += 1
            view.updatedAt = context.now
            let sort = try view.sort.map { String(decoding: try JSONCoding.encoder.encode($0), as: UTF8.self) }
            let fields = try view.fields.map { String(decoding: try JSONCoding.encoder.encode($0), as: UTF8.self) }
            do {
                try db.execute(
                    sql: """
                        UPDATE views SET name = ?, filter = ?, sort = ?, visible_fields = ?, version = ?, updated_at = ?
                        WHERE id = ?
                        """,
                    arguments: [
                        view.name, view.filter, sort, fields, view.version, context.now.millisecondsSince1970,
                        id.rawValue,
                    ]
                )
            } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
                throw StorageError.invalid("a view named '\(view.name)' already exists in this table", field: "name")
            }
            try Self.touchTable(db, id: schema.table.id, context: context)
            try Self.appendEvent(
                db,
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
        return try await perform(context, status: 204) { db in
            let (view, schema) = try Self.requireView(db, id: id, user: actor, minimum: .creator)
            try Self.checkVersion(expected: ifVersion, actual: view.version, current: view)
            try db.execute(sql: "DELETE FROM views WHERE id = ?", arguments: [id.rawValue])
            try Self.touchTable(db, id: schema.table.id, context: context)
            try Self.appendEvent(
                db,
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
