import Foundation
import Hummingbird
import PyAirtableModels

/// Bases, tables, fields and views.
struct SchemaController {
    let services: ServerServices
    let store: any SchemaRepository
    var now: Date { services.configuration.now() }

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("workspaces/{id}/bases", use: listBases)
        group.post("workspaces/{id}/bases", use: createBase)
        group.get("bases/{id}", use: getBase)
        group.patch("bases/{id}", use: updateBase)
        group.delete("bases/{id}", use: deleteBase)

        group.get("bases/{id}/tables", use: listTables)
        group.post("bases/{id}/tables", use: createTable)
        group.get("tables/{id}", use: getTable)
        group.patch("tables/{id}", use: updateTable)
        group.delete("tables/{id}", use: deleteTable)

        group.get("tables/{id}/fields", use: listFields)
        group.post("tables/{id}/fields", use: createField)
        group.patch("fields/{id}", use: updateField)
        group.delete("fields/{id}", use: deleteField)

        group.get("tables/{id}/views", use: listViews)
        group.post("tables/{id}/views", use: createView)
        group.get("views/{id}", use: getView)
        group.patch("views/{id}", use: updateView)
        group.delete("views/{id}", use: deleteView)
    }

    // MARK: Bases

    @Sendable func listBases(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        return try .listJSON(
            Page(data: try await store.bases(workspace: try context.id("id", "workspace"), user: user)),
            request: request
        )
    }

    @Sendable func createBase(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        var body = try await request.decodeJSON(as: CreateBaseRequest.self)
        body.name = try InputRules.name(body.name)
        return .stored(
            try await store.createBase(
                workspace: try context.id("id", "workspace"),
                body,
                context: context.write(now: now)
            )
        )
    }

    @Sendable func getBase(_ request: Request, context: AppRequestContext) async throws -> Response {
        let base = try await store.base(id: try context.id("id", "base"), user: try context.requireUser())
        if request.matchesNoneMatch(version: base.version) { return .notModified(version: base.version) }
        return try .json(base, eTag: VersionTag.format(base.version))
    }

    @Sendable func updateBase(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        var body = try await request.decodeJSON(as: UpdateBaseRequest.self)
        body.name = try InputRules.optionalName(body.name)
        return .stored(
            try await store.updateBase(
                id: try context.id("id", "base"),
                body,
                ifVersion: try request.ifMatchVersion(),
                context: context.write(now: now)
            )
        )
    }

    @Sendable func deleteBase(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        return .stored(
            try await store.deleteBase(
                id: try context.id("id", "base"),
                ifVersion: try request.ifMatchVersion(),
                context: context.write(now: now)
            )
        )
    }

    // MARK: Tables

    @Sendable func listTables(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        return try .listJSON(
            Page(data: try await store.tables(base: try context.id("id", "base"), user: user)),
            request: request
        )
    }

    @Sendable func createTable(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        let body = try SchemaValidation.table(
            try await request.decodeJSON(as: CreateTableRequest.self),
            maximumFields: services.configuration.maximumFieldsPerTable
        )
        return .stored(
            try await store.createTable(base: try context.id("id", "base"), body, context: context.write(now: now))
        )
    }

    @Sendable func getTable(_ request: Request, context: AppRequestContext) async throws -> Response {
        let table = try await store.table(id: try context.id("id", "table"), user: try context.requireUser())
        if request.matchesNoneMatch(version: table.version) { return .notModified(version: table.version) }
        return try .json(table, eTag: VersionTag.format(table.version))
    }

    @Sendable func updateTable(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        var body = try await request.decodeJSON(as: UpdateTableRequest.self)
        body.name = try InputRules.optionalName(body.name)
        return .stored(
            try await store.updateTable(
                id: try context.id("id", "table"),
                body,
                ifVersion: try request.ifMatchVersion(),
                context: context.write(now: now)
            )
        )
    }

    @Sendable func deleteTable(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        return .stored(
            try await store.deleteTable(
                id: try context.id("id", "table"),
                ifVersion: try request.ifMatchVersion(),
                context: context.write(now: now)
            )
        )
    }

    // MARK: Fields

    @Sendable func listFields(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        return try .listJSON(
            Page(data: try await store.fields(table: try context.id("id", "table"), user: user)),
            request: request
        )
    }

    @Sendable func createField(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        let body = try SchemaValidation.field(try await request.decodeJSON(as: CreateFieldRequest.self))
        return .stored(
            try await store.createField(table: try context.id("id", "table"), body, context: context.write(now: now))
        )
    }

    @Sendable func updateField(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        var body = try await request.decodeJSON(as: UpdateFieldRequest.self)
        body.name = try InputRules.optionalName(body.name)
        if let name = body.name, name.contains("{") || name.contains("}") {
            throw ServerError.validation("field names may not contain braces", field: name)
        }
        return .stored(
            try await store.updateField(
                id: try context.id("id", "field"),
                body,
                ifVersion: try request.ifMatchVersion(),
                context: context.write(now: now)
            )
        )
    }

    @Sendable func deleteField(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        return .stored(
            try await store.deleteField(
                id: try context.id("id", "field"),
                ifVersion: try request.ifMatchVersion(),
                context: context.write(now: now)
            )
        )
    }

    // MARK: Views

    @Sendable func listViews(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        return try .listJSON(
            Page(data: try await store.views(table: try context.id("id", "table"), user: user)),
            request: request
        )
    }

    @Sendable func createView(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        var body = try await request.decodeJSON(as: CreateViewRequest.self)
        body.name = try InputRules.name(body.name)
        if let type = body.type, type != "grid" {
            throw ServerError.validation("view type must be 'grid'", field: "type")
        }
        return .stored(
            try await store.createView(table: try context.id("id", "table"), body, context: context.write(now: now))
        )
    }

    @Sendable func getView(_ request: Request, context: AppRequestContext) async throws -> Response {
        let view = try await store.view(id: try context.id("id", "view"), user: try context.requireUser())
        if request.matchesNoneMatch(version: view.version) { return .notModified(version: view.version) }
        return try .json(view, eTag: VersionTag.format(view.version))
    }

    @Sendable func updateView(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        var body = try await request.decodeJSON(as: UpdateViewRequest.self)
        body.name = try InputRules.optionalName(body.name)
        return .stored(
            try await store.updateView(
                id: try context.id("id", "view"),
                body,
                ifVersion: try request.ifMatchVersion(),
                context: context.write(now: now)
            )
        )
    }

    @Sendable func deleteView(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        return .stored(
            try await store.deleteView(
                id: try context.id("id", "view"),
                ifVersion: try request.ifMatchVersion(),
                context: context.write(now: now)
            )
        )
    }
}
