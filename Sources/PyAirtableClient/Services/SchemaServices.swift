import Foundation
import HTTPTypes
import PyAirtableModels

/// Bases of a workspace.
public struct BasesService: Sendable {
    let client: PyAirtableClient
    private static func operation(_ name: String) -> ClientOperation { .init(service: "bases", name: name) }

    public func list(in workspace: WorkspaceID) async throws -> [Base] {
        try await client.send(
            PyAirtableClient.request(.get, "/api/v1/workspaces/\(workspace)/bases", operation: Self.operation("list")),
            as: Page<Base>.self
        ).data
    }

    public func get(_ id: BaseID) async throws -> Base {
        try await client.send(
            PyAirtableClient.request(.get, "/api/v1/bases/\(id)", operation: Self.operation("get")),
            as: Base.self
        )
    }

    public func create(in workspace: WorkspaceID, name: String) async throws -> Base {
        try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/workspaces/\(workspace)/bases",
                body: CreateBaseRequest(name: name),
                operation: Self.operation("create")
            ),
            as: Base.self
        )
    }

    public func update(_ id: BaseID, name: String, ifVersion: Int? = nil) async throws -> Base {
        try await client.send(
            PyAirtableClient.request(
                .patch,
                "/api/v1/bases/\(id)",
                body: UpdateBaseRequest(name: name),
                operation: Self.operation("update"),
                ifMatch: ifVersion
            ),
            as: Base.self
        )
    }

    public func delete(_ id: BaseID, ifVersion: Int? = nil) async throws {
        try await client.execute(
            PyAirtableClient.request(
                .delete,
                "/api/v1/bases/\(id)",
                operation: Self.operation("delete"),
                ifMatch: ifVersion
            )
        )
    }
}

/// Tables of a base, created with their fields.
public struct TablesService: Sendable {
    let client: PyAirtableClient
    private static func operation(_ name: String) -> ClientOperation { .init(service: "tables", name: name) }

    public func list(in base: BaseID) async throws -> [Table] {
        try await client.send(
            PyAirtableClient.request(.get, "/api/v1/bases/\(base)/tables", operation: Self.operation("list")),
            as: Page<Table>.self
        ).data
    }

    /// A table with its fields and views.
    public func get(_ id: TableID) async throws -> Table {
        try await client.send(
            PyAirtableClient.request(.get, "/api/v1/tables/\(id)", operation: Self.operation("get")),
            as: Table.self
        )
    }

    /// Creates a table; the first field is the primary one.
    public func create(
        in base: BaseID,
        name: String,
        fields: [CreateFieldRequest],
        description: String? = nil
    ) async throws -> Table {
        try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/bases/\(base)/tables",
                body: CreateTableRequest(name: name, description: description, fields: fields),
                operation: Self.operation("create")
            ),
            as: Table.self
        )
    }

    public func update(_ id: TableID, _ changes: UpdateTableRequest, ifVersion: Int? = nil) async throws -> Table {
        try await client.send(
            PyAirtableClient.request(
                .patch,
                "/api/v1/tables/\(id)",
                body: changes,
                operation: Self.operation("update"),
                ifMatch: ifVersion
            ),
            as: Table.self
        )
    }

    public func delete(_ id: TableID, ifVersion: Int? = nil) async throws {
        try await client.execute(
            PyAirtableClient.request(
                .delete,
                "/api/v1/tables/\(id)",
                operation: Self.operation("delete"),
                ifMatch: ifVersion
            )
        )
    }
}

/// Fields of a table.
public struct FieldsService: Sendable {
    let client: PyAirtableClient
    private static func operation(_ name: String) -> ClientOperation { .init(service: "fields", name: name) }

    public func list(in table: TableID) async throws -> [Field] {
        try await client.send(
            PyAirtableClient.request(.get, "/api/v1/tables/\(table)/fields", operation: Self.operation("list")),
            as: Page<Field>.self
        ).data
    }

    public func create(in table: TableID, _ field: CreateFieldRequest) async throws -> Field {
        try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/tables/\(table)/fields",
                body: field,
                operation: Self.operation("create")
            ),
            as: Field.self
        )
    }

    public func update(_ id: FieldID, _ changes: UpdateFieldRequest, ifVersion: Int? = nil) async throws -> Field {
        try await client.send(
            PyAirtableClient.request(
                .patch,
                "/api/v1/fields/\(id)",
                body: changes,
                operation: Self.operation("update"),
                ifMatch: ifVersion
            ),
            as: Field.self
        )
    }

    public func delete(_ id: FieldID, ifVersion: Int? = nil) async throws {
        try await client.execute(
            PyAirtableClient.request(
                .delete,
                "/api/v1/fields/\(id)",
                operation: Self.operation("delete"),
                ifMatch: ifVersion
            )
        )
    }
}

/// Views of a table: saved filter, sort and visible fields.
public struct ViewsService: Sendable {
    let client: PyAirtableClient
    private static func operation(_ name: String) -> ClientOperation { .init(service: "views", name: name) }

    public func list(in table: TableID) async throws -> [View] {
        try await client.send(
            PyAirtableClient.request(.get, "/api/v1/tables/\(table)/views", operation: Self.operation("list")),
            as: Page<View>.self
        ).data
    }

    public func get(_ id: ViewID) async throws -> View {
        try await client.send(
            PyAirtableClient.request(.get, "/api/v1/views/\(id)", operation: Self.operation("get")),
            as: View.self
        )
    }

    public func create(in table: TableID, _ view: CreateViewRequest) async throws -> View {
        try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/tables/\(table)/views",
                body: view,
                operation: Self.operation("create")
            ),
            as: View.self
        )
    }

    public func update(_ id: ViewID, _ changes: UpdateViewRequest, ifVersion: Int? = nil) async throws -> View {
        try await client.send(
            PyAirtableClient.request(
                .patch,
                "/api/v1/views/\(id)",
                body: changes,
                operation: Self.operation("update"),
                ifMatch: ifVersion
            ),
            as: View.self
        )
    }

    public func delete(_ id: ViewID, ifVersion: Int? = nil) async throws {
        try await client.execute(
            PyAirtableClient.request(
                .delete,
                "/api/v1/views/\(id)",
                operation: Self.operation("delete"),
                ifMatch: ifVersion
            )
        )
    }
}
