import Crypto
import Foundation
import Hummingbird
import PyAirtableModels

/// Records: list with view, fields, sort, formula filter and cursor paging; single-record CRUD; batch.
struct RecordsController {
    let services: ServerServices
    let store: any RecordRepository & SchemaRepository
    var now: Date { services.configuration.now() }

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("tables/{id}/records", use: list)
        group.post("tables/{id}/records", use: create)
        group.post("tables/{id}/records/batch", use: batch)
        group.get("records/{id}", use: get)
        group.patch("records/{id}", use: update)
        group.put("records/{id}", use: replace)
        group.delete("records/{id}", use: delete)
    }

    /// Resolves the list query (view, filter, sort, fields, page size, cursor) against the table.
    static func plan(for request: Request, schema: TableSchema, limits: RequestLimits) throws -> RecordListPlan {
        let query = request.uri.queryParameters
        var filters: [Formula] = []
        var sort: [SortSpec] = []
        var visible: [String]?
        var viewID = ""
        if let viewName = query.get("view"), !viewName.isEmpty {
            guard
                let view = schema.table.views.first(where: { $0.id.rawValue == viewName || $0.name == viewName })
            else { throw ServerError.validation("no view '\(viewName)' in this table", field: "view") }
            viewID = view.id.rawValue
            if let filter = view.filter, !filter.isEmpty {
                filters.append(
                    try ViewValidation.parseFilter(
                        filter,
                        schema: schema,
                        parameter: "view filter",
                        limits: limits.formula
                    )
                )
            }
            sort = view.sort ?? []
            visible = view.fields
        }
        let filterSource = query.get("filter") ?? ""
        if !filterSource.trimmingCharacters(in: .whitespaces).isEmpty {
            filters.append(
                try ViewValidation.parseFilter(
                    filterSource,
                    schema: schema,
                    parameter: "filter",
                    limits: limits.formula
                )
            )
        }
        let sortSource = query.get("sort") ?? ""
        if !sortSource.isEmpty {
            do {
                sort = try SortSpec.parseList(sortSource)
            } catch {
                throw ServerError.validation(error.description, field: "sort")
            }
        }
        try ViewValidation.checkSortKeyCount(sort.count, limits: limits)
        let resolvedSort = try sort.map { spec -> (field: Field, direction: SortSpec.Direction) in
            guard let field = schema.fieldsByName[spec.field] else {
                throw ServerError.validation("unknown field '\(spec.field)' in sort", field: "sort")
            }
            return (field, spec.direction)
        }
        let fieldParameters = query.getAll("fields") + query.getAll("fields[]")
        if !fieldParameters.isEmpty {
            // One value that is not itself a field name is a comma-separated list.
            let names =
                fieldParameters.count == 1 && schema.fieldsByName[fieldParameters[0]] == nil
                ? fieldParameters[0].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                : fieldParameters.map { String($0) }
            for name in names where schema.fieldsByName[name] == nil {
                throw ServerError.validation("unknown field '\(name)' in fields", field: "fields")
            }
            visible = names
        }
        var pageSize = RecordQuery.defaultPageSize
        if let raw = query.get("page_size") {
            guard let size = Int(raw), size >= 1 else {
                throw ServerError.validation(
                    "page_size must be a whole number from 1 to \(RecordQuery.maximumPageSize)",
                    field: "page_size"
                )
            }
            guard size <= RecordQuery.maximumPageSize else {
                throw ServerError.validation(
                    "page_size \(size) is over the limit of \(RecordQuery.maximumPageSize)",
                    field: "page_size"
                )
            }
            pageSize = size
        }
        var hasher = SHA256()
        for part in [schema.table.id.rawValue, viewID, filterSource, SortSpec.format(sort)] {
            hasher.update(data: Data(part.utf8))
            hasher.update(data: Data([0]))
        }
        let queryHash = Hex.encode(hasher.finalize().prefix(8))
        let cursor = query.get("cursor").flatMap { $0.isEmpty ? nil : $0 }
        if let cursor, cursor.utf8.count > limits.maximumCursorLength {
            throw ServerError.validation(
                "the cursor is longer than \(limits.maximumCursorLength) characters (maximumCursorLength): "
                    + "pass the next_cursor of the previous page as it is",
                field: "cursor"
            )
        }
        return RecordListPlan(
            filters: filters,
            sort: resolvedSort,
            visibleFields: visible.map(Set.init),
            pageSize: pageSize,
            cursor: cursor,
            queryHash: queryHash
        )
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let schema = try await store.tableSchema(id: try context.id("id", "table"), user: user)
        let plan = try Self.plan(for: request, schema: schema, limits: services.configuration.limits)
        return .listJSON(encoded: try await store.listRecords(schema: schema, plan: plan, user: user), request: request)
    }

    @Sendable func get(_ request: Request, context: AppRequestContext) async throws -> Response {
        let record = try await store.encodedRecord(id: try context.id("id", "record"), user: try context.requireUser())
        if request.matchesNoneMatch(version: record.version) { return .notModified(version: record.version) }
        return .jsonBytes(record.json, eTag: VersionTag.format(record.version))
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        let fields = try await request.decodeRecordFields()
        return .stored(
            try await store.createRecord(
                table: try context.id("id", "table"),
                fields: fields,
                context: context.write(now: now)
            )
        )
    }

    @Sendable func update(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await write(request, context: context, replace: false)
    }

    @Sendable func replace(_ request: Request, context: AppRequestContext) async throws -> Response {
        try await write(request, context: context, replace: true)
    }

    private func write(_ request: Request, context: AppRequestContext, replace: Bool) async throws -> Response {
        _ = try context.requireUser()
        let fields = try await request.decodeRecordFields()
        return .stored(
            try await store.updateRecord(
                id: try context.id("id", "record"),
                fields: fields,
                replace: replace,
                ifVersion: try request.ifMatchVersion(),
                context: context.write(now: now)
            )
        )
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        return .stored(
            try await store.deleteRecord(
                id: try context.id("id", "record"),
                ifVersion: try request.ifMatchVersion(),
                context: context.write(now: now)
            )
        )
    }

    @Sendable func batch(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        let body = try await request.decodeJSON(as: BatchRequest.self)
        guard !body.operations.isEmpty else {
            throw ServerError.validation("a batch needs at least one operation", field: "operations")
        }
        guard body.operations.count <= BatchRequest.maximumOperations else {
            throw ServerError.validation(
                "a batch carries at most \(BatchRequest.maximumOperations) operations, not \(body.operations.count)",
                field: "operations"
            )
        }
        return .stored(
            try await store.batch(
                table: try context.id("id", "table"),
                operations: body.operations,
                context: context.write(now: now)
            )
        )
    }
}
