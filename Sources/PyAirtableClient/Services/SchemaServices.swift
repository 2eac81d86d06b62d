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

    public func list(in workspace: WorkspaceID, policy: FetchPolicy? = nil) async throws -> [Base] {
        try await fetchList(in: workspace, policy: policy).value
    }

    /// The bases of a workspace, saying whether the cache answered.
    public func fetchList(in workspace: WorkspaceID, policy: FetchPolicy? = nil) async throws -> CachedResponse<[Base]>
    {
        try await client.cachedRead(
            PyAirtableClient.request(.get, "/api/v1/workspaces/\(workspace)/bases", operation: Self.operation("list")),
            as: Page<Base>.self,
            kind: .bases,
            policy: policy
        ) { page in ["bases:\(workspace)"] + page.data.map { "base:\($0.id)" } }
        .map(\.data)
    }

    public func get(_ id: BaseID, policy: FetchPolicy? = nil) async throws -> Base {
        try await fetch(id, policy: policy).value
    }

    /// A base, saying whether the cache answered.
    public func fetch(_ id: BaseID, policy: FetchPolicy? = nil) async throws -> CachedResponse<Base> {
        try await client.cachedRead(
            PyAirtableClient.request(.get, "/api/v1/bases/\(id)", operation: Self.operation("get")),
            as: Base.self,
            kind: .bases,
            policy: policy
        ) { _ in ["base:\(id)"] }
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
        await client.cacheAfterWrite(invalidating: ["bases:\(workspace)"])
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
        await client.cacheAfterWrite(invalidating: ["base:\(id)"])
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

    public func list(in base: BaseID, policy: FetchPolicy? = nil) async throws -> [Table] {
        try await fetchList(in: base, policy: policy).value
    }

    /// The tables of a base, saying whether the cache answered.
    public func fetchList(in base: BaseID, policy: FetchPolicy? = nil) async throws -> CachedResponse<[Table]> {
        try await client.cachedRead(
            PyAirtableClient.request(.get, "/api/v1/bases/\(base)/tables", operation: Self.operation("list")),
            as: Page<Table>.self,
            kind: .schema,
            policy: policy
        ) { page in ["tables:\(base)"] + page.data.map { "table:\($0.id)" } }
        .map(\.data)
    }

    /// A table with its fields and views.
    public func get(_ id: TableID, policy: FetchPolicy? = nil) async throws -> Table {
        try await fetch(id, policy: policy).value
    }

    /// A table with its fields and views, saying whether the cache answered.
    public func fetch(_ id: TableID, policy: FetchPolicy? = nil) async throws -> CachedResponse<Table> {
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
        await client.cacheAfterWrite(invalidating: ["tables:\(base)"])
        return table
    }

    public func update(_ id: TableID, _ changes: UpdateTableRequest, ifVersion: Int? = nil) async throws -> Table {
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
        await client.cacheAfterWrite(invalidating: ["table:\(id)", "records:\(id)"])
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
        await client.cacheAfterWrite(invalidating: ["table:\(id)", "records:\(id)"])
    }
}

/// Fields of a table.
///
/// With the cache on, reads follow the schema rule; a field change drops the table's schema and its
/// records (whose cells it may change).
public struct FieldsService: Sendable {
    let client: PyAirtableClient
    private static func operation(_ name: String) -> ClientOperation { .init(service: "fields", name: name) }

    public func list(in table: TableID, policy: FetchPolicy? = nil) async throws -> [Field] {
        try await client.cachedRead(
            PyAirtableClient.request(.get, "/api/v1/tables/\(table)/fields", operation: Self.operation("list")),
            as: Page<Field>.self,
            kind: .schema,
            policy: policy
        ) { _ in ["table:\(table)"] }
        .value.data
    }

    public func create(in table: TableID, _ field: CreateFieldRequest) async throws -> Field {
        let created = try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/tables/\(table)/fields",
                body: field,
                operation: Self.operation("create")
            ),
            as: Field.self
        )
        await client.cacheAfterWrite(invalidating: ["table:\(table)", "records:\(table)"])
        return created
    }

    public func update(_ id: FieldID, _ changes: UpdateFieldRequest, ifVersion: Int? = nil) async throws -> Field {
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
        await client.cacheAfterWrite(invalidating: ["table:\(field.tableID)", "records:\(field.tableID)"])
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
        await client.cacheAfterWrite(invalidating: ["table", "records"])
    }
}

/// Views of a table: saved filter, sort and visible fields.
///
/// With the cache on, reads follow the schema rule; a view change drops the table's schema and the
/// record lists read through views.
public struct ViewsService: Sendable {
    let client: PyAirtableClient
    private static func operation(_ name: String) -> ClientOperation { .init(service: "views", name: name) }

    public func list(in table: TableID, policy: FetchPolicy? = nil) async throws -> [View] {
        try await client.cachedRead(
            PyAirtableClient.request(.get, "/api/v1/tables/\(table)/views", operation: Self.operation("list")),
            as: Page<View>.self,
            kind: .schema,
            policy: policy
        ) { _ in ["table:\(table)"] }
        .value.data
    }

    public func get(_ id: ViewID, policy: FetchPolicy? = nil) async throws -> View {
        try await client.cachedRead(
            PyAirtableClient.request(.get, "/api/v1/views/\(id)", operation: Self.operation("get")),
            as: View.self,
            kind: .schema,
            policy: policy
        ) { view in ["table:\(view.tableID)"] }
        .value
    }

    public func create(in table: TableID, _ view: CreateViewRequest) async throws -> View {
        let created = try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/tables/\(table)/views",
                body: view,
                operation: Self.operation("create")
            ),
            as: View.self
        )
        await client.cacheAfterWrite(invalidating: ["table:\(table)", "list:\(table)"])
        return created
    }

    public func update(_ id: ViewID, _ changes: UpdateViewRequest, ifVersion: Int? = nil) async throws -> View {
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
        await client.cacheAfterWrite(invalidating: ["table:\(view.tableID)", "list:\(view.tableID)"])
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
        await client.cacheAfterWrite(invalidating: ["table", "list"])
    }
}
