import Foundation
import HTTPTypes
import PyAirtableModels

/// Bases of a workspace.
///
/// With the cache on, reads follow the bases rule (stale-while-revalidate, 5 minutes) unless a call
/// names a policy, and this client's writes drop what they change.
public struct BasesService: Sendable {
    let client: PyAirtableClient
    private static func operation(_ name: String) -> ClientOperation { .init(service: "bases", name: name) }

    /// Every base of a workspace (every page).
    public func list(in workspace: WorkspaceID, policy: FetchPolicy? = nil) async throws -> [Base] {
        try await listWithSource(in: workspace, policy: policy).value
    }

    /// The bases of a workspace, with where the answer came from.
    public func listWithSource(
        in workspace: WorkspaceID,
        policy: FetchPolicy? = nil
    ) async throws -> CachedResponse<[Base]> {
        try await client.cachedCollection(
            "/api/v1/workspaces/\(workspace)/bases",
            operation: Self.operation("list"),
            kind: .bases,
            policy: policy
        ) { (page: Page<Base>) in [.bases(of: workspace)] + page.data.map { .base($0.id) } }
    }

    /// A base.
    public func get(_ id: BaseID, policy: FetchPolicy? = nil) async throws -> Base {
        try await getWithSource(id, policy: policy).value
    }

    /// A base, with where the answer came from.
    public func getWithSource(_ id: BaseID, policy: FetchPolicy? = nil) async throws -> CachedResponse<Base> {
        try await client.cachedRead(
            PyAirtableClient.request(.get, "/api/v1/bases/\(id)", operation: Self.operation("get")),
            as: Base.self,
            kind: .bases,
            policy: policy
        ) { _ in [.base(id)] }
    }

    public func create(in workspace: WorkspaceID, name: String) async throws -> Base {
        let base = try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/workspaces/\(workspace)/bases",
                body: CreateBaseRequest(name: name),
                operation: Self.operation("create")
            ),
            as: Base.self
        )
        await client.cacheAfterWrite(invalidating: [.bases(of: workspace)])
        return base
    }

    public func update(_ id: BaseID, name: String, ifVersion: Int? = nil) async throws -> Base {
        let base = try await client.send(
            PyAirtableClient.request(
                .patch,
                "/api/v1/bases/\(id)",
                body: UpdateBaseRequest(name: name),
                operation: Self.operation("update"),
                ifMatch: ifVersion
            ),
            as: Base.self
        )
        await client.cacheAfterWrite(invalidating: [.base(id)])
        return base
    }

    /// Deletes a base with its tables and records; the account's cache is cleared, since the cached
    /// tables and records of the base are not all known by tag.
    public func delete(_ id: BaseID, ifVersion: Int? = nil) async throws {
        try await client.execute(
            PyAirtableClient.request(
                .delete,
                "/api/v1/bases/\(id)",
                operation: Self.operation("delete"),
                ifMatch: ifVersion
            )
        )
        await client.cacheAfterWrite(invalidating: [], everything: true)
    }
}

/// Tables of a base, created with their fields.
///
/// With the cache on, reads follow the schema rule (cache first, 30 minutes) unless a call names a
/// policy, and this client's writes drop what they change.
public struct TablesService: Sendable {
    let client: PyAirtableClient
    private static func operation(_ name: String) -> ClientOperation { .init(service: "tables", name: name) }

    /// Every table of a base (every page), with their fields and views.
    public func list(in base: BaseID, policy: FetchPolicy? = nil) async throws -> [Table] {
        try await listWithSource(in: base, policy: policy).value
    }

    /// The tables of a base, with where the answer came from.
    public func listWithSource(in base: BaseID, policy: FetchPolicy? = nil) async throws -> CachedResponse<[Table]> {
        try await client.cachedCollection(
            "/api/v1/bases/\(base)/tables",
            operation: Self.operation("list"),
            kind: .schema,
            policy: policy
        ) { (page: Page<Table>) in [.tables(of: base)] + page.data.map { .table($0.id) } }
    }

    /// A table with its fields and views.
    public func get(_ id: TableID, policy: FetchPolicy? = nil) async throws -> Table {
        try await getWithSource(id, policy: policy).value
    }

    /// A table with its fields and views, with where the answer came from.
    public func getWithSource(_ id: TableID, policy: FetchPolicy? = nil) async throws -> CachedResponse<Table> {
        try await client.cachedRead(
            PyAirtableClient.request(.get, "/api/v1/tables/\(id)", operation: Self.operation("get")),
            as: Table.self,
            kind: .schema,
            policy: policy
        ) { CacheKeys.tags(of: $0) }
    }

    /// Creates a table; the first field is the primary one.
    public func create(
        in base: BaseID,
        name: String,
        fields: [CreateFieldRequest],
        description: String? = nil
    ) async throws -> Table {
        let table = try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/bases/\(base)/tables",
                body: CreateTableRequest(name: name, description: description, fields: fields),
                operation: Self.operation("create")
            ),
            as: Table.self
        )
        await client.cacheAfterWrite(invalidating: [.tables(of: base)])
        return table
    }

    /// Renames a table or changes its description.
    public func update(_ id: TableID, with changes: UpdateTableRequest, ifVersion: Int? = nil) async throws -> Table {
        let table = try await client.send(
            PyAirtableClient.request(
                .patch,
                "/api/v1/tables/\(id)",
                body: changes,
                operation: Self.operation("update"),
                ifMatch: ifVersion
            ),
            as: Table.self
        )
        await client.cacheAfterWrite(invalidating: [.table(id), .records(of: id)])
        return table
    }

    /// Deletes a table with its records; their cached entries go with it.
    public func delete(_ id: TableID, ifVersion: Int? = nil) async throws {
        try await client.execute(
            PyAirtableClient.request(
                .delete,
                "/api/v1/tables/\(id)",
                operation: Self.operation("delete"),
                ifMatch: ifVersion
            )
        )
        await client.cacheAfterWrite(invalidating: [.table(id), .records(of: id)])
    }
}

/// Fields of a table.
///
/// With the cache on, reads follow the schema rule; a field change drops the table's schema and its
/// records (whose cells it may change).
public struct FieldsService: Sendable {
    let client: PyAirtableClient
    private static func operation(_ name: String) -> ClientOperation { .init(service: "fields", name: name) }

    /// Every field of a table, in order.
    public func list(in table: TableID, policy: FetchPolicy? = nil) async throws -> [Field] {
        try await listWithSource(in: table, policy: policy).value
    }

    /// The fields of a table, with where the answer came from.
    public func listWithSource(in table: TableID, policy: FetchPolicy? = nil) async throws -> CachedResponse<[Field]> {
        try await client.cachedCollection(
            "/api/v1/tables/\(table)/fields",
            operation: Self.operation("list"),
            kind: .schema,
            policy: policy
        ) { (_: Page<Field>) in [.table(table)] }
    }

    /// Adds a field to a table: `client.fields.create(in: table, field: .number("Score", precision: 1))`.
    public func create(in table: TableID, field: CreateFieldRequest) async throws -> Field {
        let created = try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/tables/\(table)/fields",
                body: field,
                operation: Self.operation("create")
            ),
            as: Field.self
        )
        await client.cacheAfterWrite(invalidating: [.table(table), .records(of: table)])
        return created
    }

    /// Renames a field or changes its options.
    public func update(_ id: FieldID, with changes: UpdateFieldRequest, ifVersion: Int? = nil) async throws -> Field {
        let field = try await client.send(
            PyAirtableClient.request(
                .patch,
                "/api/v1/fields/\(id)",
                body: changes,
                operation: Self.operation("update"),
                ifMatch: ifVersion
            ),
            as: Field.self
        )
        await client.cacheAfterWrite(invalidating: [.table(field.tableID), .records(of: field.tableID)])
        return field
    }

    /// Deletes a field; its table is not named by the call, so every cached schema and record goes.
    public func delete(_ id: FieldID, ifVersion: Int? = nil) async throws {
        try await client.execute(
            PyAirtableClient.request(
                .delete,
                "/api/v1/fields/\(id)",
                operation: Self.operation("delete"),
                ifMatch: ifVersion
            )
        )
        await client.cacheAfterWrite(invalidating: [.every(.table), .every(.records)])
    }
}

/// Views of a table: saved filter, sort and visible fields.
///
/// With the cache on, reads follow the schema rule; a view change drops the table's schema and the
/// record lists read through views.
public struct ViewsService: Sendable {
    let client: PyAirtableClient
    private static func operation(_ name: String) -> ClientOperation { .init(service: "views", name: name) }

    /// Every view of a table.
    public func list(in table: TableID, policy: FetchPolicy? = nil) async throws -> [View] {
        try await listWithSource(in: table, policy: policy).value
    }

    /// The views of a table, with where the answer came from.
    public func listWithSource(in table: TableID, policy: FetchPolicy? = nil) async throws -> CachedResponse<[View]> {
        try await client.cachedCollection(
            "/api/v1/tables/\(table)/views",
            operation: Self.operation("list"),
            kind: .schema,
            policy: policy
        ) { (_: Page<View>) in [.table(table)] }
    }

    /// A view.
    public func get(_ id: ViewID, policy: FetchPolicy? = nil) async throws -> View {
        try await getWithSource(id, policy: policy).value
    }

    /// A view, with where the answer came from.
    public func getWithSource(_ id: ViewID, policy: FetchPolicy? = nil) async throws -> CachedResponse<View> {
        try await client.cachedRead(
            PyAirtableClient.request(.get, "/api/v1/views/\(id)", operation: Self.operation("get")),
            as: View.self,
            kind: .schema,
            policy: policy
        ) { view in [.table(view.tableID)] }
    }

    /// Adds a view to a table.
    public func create(in table: TableID, view: CreateViewRequest) async throws -> View {
        let created = try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/tables/\(table)/views",
                body: view,
                operation: Self.operation("create")
            ),
            as: View.self
        )
        await client.cacheAfterWrite(invalidating: [.table(table), .recordLists(of: table)])
        return created
    }

    /// Changes a view's name, filter, sort or visible fields.
    public func update(_ id: ViewID, with changes: UpdateViewRequest, ifVersion: Int? = nil) async throws -> View {
        let view = try await client.send(
            PyAirtableClient.request(
                .patch,
                "/api/v1/views/\(id)",
                body: changes,
                operation: Self.operation("update"),
                ifMatch: ifVersion
            ),
            as: View.self
        )
        await client.cacheAfterWrite(invalidating: [.table(view.tableID), .recordLists(of: view.tableID)])
        return view
    }

    /// Deletes a view; its table is not named by the call, so every cached schema and record list goes.
    public func delete(_ id: ViewID, ifVersion: Int? = nil) async throws {
        try await client.execute(
            PyAirtableClient.request(
                .delete,
                "/api/v1/views/\(id)",
                operation: Self.operation("delete"),
                ifMatch: ifVersion
            )
        )
        await client.cacheAfterWrite(invalidating: [.every(.table), .every(.recordLists)])
    }
}
