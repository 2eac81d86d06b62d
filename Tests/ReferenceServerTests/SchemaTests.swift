import Foundation
import HTTPTypes
import HummingbirdTesting
import PyAirtableModels
import Testing

@testable import ReferenceServer

@Suite("Schema: bases, tables, fields and views", .timeLimit(.minutes(15)))
struct SchemaTests {
    // MARK: Bases

    @Test("base create, list, get, rename and delete; deleting a base deletes its tables")
    func bases() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let workspace = try await client.createWorkspace()
            let created = try await client.send(
                .post,
                "workspaces/\(workspace.id)/bases",
                json: CreateBaseRequest(name: "CRM")
            )
            #expect(created.status == .created)
            #expect(created.headers[.eTag] == "\"1\"")
            let base = try created.decode(Base.self)
            #expect(base.workspaceID == workspace.id)
            #expect(base.name == "CRM")
            #expect(base.version == 1)
            #expect(BaseID.isValid(base.id.rawValue))
            let second = try await client.createBase(in: workspace.id, "Ops")

            let listed = try await client.call(.get, "workspaces/\(workspace.id)/bases", as: Page<Base>.self)
            // Both were created in the same millisecond of the test clock: compare as sets.
            #expect(Set(listed.data.map(\.id)) == [base.id, second.id])
            #expect(try await client.call(.get, "bases/\(base.id)", as: Base.self) == base)

            let renamed = try await client.call(
                .patch,
                "bases/\(base.id)",
                json: UpdateBaseRequest(name: "Sales"),
                as: Base.self
            )
            #expect(renamed.name == "Sales")
            #expect(renamed.version == 2)
            expectError(
                try await client.send(.post, "workspaces/\(workspace.id)/bases", json: CreateBaseRequest(name: "")),
                .unprocessableContent,
                .validation
            )

            let table = try await client.createTable(in: base.id)
            let record = try await client.createRecord(in: table.id, ["Name": "x"])
            #expect(try await client.send(.delete, "bases/\(base.id)").status == .noContent)
            expectError(try await client.send(.get, "bases/\(base.id)"), .notFound, .notFound)
            expectError(try await client.send(.get, "tables/\(table.id)"), .notFound, .notFound)
            expectError(try await client.send(.get, "records/\(record.id)"), .notFound, .notFound)
            let remaining = try await client.call(.get, "workspaces/\(workspace.id)/bases", as: Page<Base>.self)
            #expect(remaining.data.map(\.id) == [second.id])
        }
    }

    // MARK: Tables

    @Test("a table is created with its fields: the first is primary, and a 'Grid view' comes with it")
    func tableCreation() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let workspace = try await client.createWorkspace()
            let base = try await client.createBase(in: workspace.id)
            let created = try await client.send(
                .post,
                "bases/\(base.id)/tables",
                json: CreateTableRequest(
                    name: "Contacts",
                    description: "people",
                    fields: [
                        .init(name: "Name", type: .singleLineText),
                        .init(name: "Email", type: .email),
                        .init(name: "Age", type: .number, options: .init(precision: 0)),
                    ]
                )
            )
            #expect(created.status == .created)
            #expect(created.headers[.eTag] == "\"1\"")
            let table = try created.decode(PyAirtableModels.Table.self)
            #expect(table.name == "Contacts")
            #expect(table.description == "people")
            #expect(table.baseID == base.id)
            #expect(table.fields.map(\.name) == ["Name", "Email", "Age"])
            #expect(table.fields.map(\.type) == [.singleLineText, .email, .number])
            #expect(table.fields.allSatisfy { $0.tableID == table.id && $0.version == 1 })
            #expect(table.primaryFieldID == table.fields.first?.id)
            #expect(table.fields.last?.options?.precision == 0)
            #expect(table.views.map(\.name) == ["Grid view"])
            #expect(table.views.first?.type == "grid")
            #expect(table.version == 1)

            #expect(try await client.table(table.id) == table)
            let listed = try await client.call(.get, "bases/\(base.id)/tables", as: Page<PyAirtableModels.Table>.self)
            #expect(listed.data == [table])
            let fields = try await client.call(.get, "tables/\(table.id)/fields", as: Page<Field>.self)
            #expect(fields.data == table.fields)
            let views = try await client.call(.get, "tables/\(table.id)/views", as: Page<View>.self)
            #expect(views.data == table.views)

            let renamed = try await client.call(
                .patch,
                "tables/\(table.id)",
                json: UpdateTableRequest(name: "People", description: ""),
                as: PyAirtableModels.Table.self
            )
            #expect(renamed.name == "People")
            #expect(renamed.description == nil)
            #expect(renamed.version == 2)

            #expect(try await client.send(.delete, "tables/\(table.id)").status == .noContent)
            expectError(try await client.send(.get, "tables/\(table.id)"), .notFound, .notFound)
            expectError(try await client.send(.get, "tables/\(table.id)/records"), .notFound, .notFound)
        }
    }

    @Test(
        "bad table definitions are refused with 422",
        arguments: [
            ("no fields", [CreateFieldRequest]()),
            ("duplicate names", [.init(name: "A", type: .number), .init(name: "A", type: .singleLineText)]),
            ("unknown type", [.init(name: "A", type: FieldType(rawValue: "hologram"))]),
            ("checkbox primary", [.init(name: "A", type: .checkbox), .init(name: "B", type: .number)]),
            ("braces in a name", [.init(name: "{A}", type: .number)]),
            ("empty name", [.init(name: " ", type: .number)]),
            ("choices on a number", [.init(name: "A", type: .number, options: .init(choices: [.init(name: "x")]))]),
            (
                "duplicate choices",
                [.init(name: "A", type: .singleSelect, options: .init(choices: [.init(name: "x"), .init(name: "x")]))]
            ),
        ] as [(String, [CreateFieldRequest])]
    )
    func badTables(_ label: String, fields: [CreateFieldRequest]) async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let workspace = try await client.createWorkspace()
            let base = try await client.createBase(in: workspace.id)
            let response = try await client.send(
                .post,
                "bases/\(base.id)/tables",
                json: CreateTableRequest(name: "T", fields: fields)
            )
            expectError(response, .unprocessableContent, .validation, label)
            #expect(
                try await client.call(.get, "bases/\(base.id)/tables", as: Page<PyAirtableModels.Table>.self).data
                    .isEmpty
            )
        }
    }

    // MARK: Fields

    @Test("fields: create, rename, change options; duplicate name and unknown type are 422")
    func fields() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()

            let created = try await client.send(
                .post,
                "tables/\(table.id)/fields",
                json: CreateFieldRequest(
                    name: "Priority",
                    type: .singleSelect,
                    options: .init(choices: [.init(name: "Low"), .init(name: "High")]),
                    description: "how urgent"
                )
            )
            #expect(created.status == .created)
            #expect(created.headers[.eTag] == "\"1\"")
            let field = try created.decode(Field.self)
            #expect(field.name == "Priority")
            #expect(field.type == .singleSelect)
            #expect(field.tableID == table.id)
            #expect(field.options?.choices?.map(\.name) == ["Low", "High"])
            #expect(field.description == "how urgent")
            #expect(
                try await client.table(table.id).fields.map(\.name) == ["Name", "Status", "Score", "Done", "Priority"]
            )

            let renamed = try await client.call(
                .patch,
                "fields/\(field.id)",
                json: UpdateFieldRequest(name: "Urgency"),
                as: Field.self
            )
            #expect(renamed.name == "Urgency")
            #expect(renamed.version == 2)
            #expect(renamed.options == field.options)

            let options = try await client.call(
                .patch,
                "fields/\(field.id)",
                json: UpdateFieldRequest(
                    options: .init(choices: [.init(name: "Low"), .init(name: "Mid"), .init(name: "High")])
                ),
                as: Field.self
            )
            #expect(options.options?.choices?.map(\.name) == ["Low", "Mid", "High"])
            #expect(options.version == 3)
            // The new choice is accepted in records; the field answers under its new name.
            let record = try await client.createRecord(in: table.id, ["Urgency": "Mid"])
            #expect(record.fields["Urgency"] == "Mid")

            let duplicate = try await client.send(
                .post,
                "tables/\(table.id)/fields",
                json: CreateFieldRequest(name: "Score", type: .number)
            )
            expectError(duplicate, .unprocessableContent, .validation)
            let duplicateRename = try await client.send(
                .patch,
                "fields/\(field.id)",
                json: UpdateFieldRequest(name: "Name")
            )
            expectError(duplicateRename, .unprocessableContent, .validation)
            let unknownType = try await client.send(
                .post,
                "tables/\(table.id)/fields",
                raw: #"{"name": "Shape", "type": "hologram"}"#
            )
            let unknown = expectError(unknownType, .unprocessableContent, .validation)
            #expect(unknown?.message.contains("hologram") == true)
            let braces = try await client.send(.patch, "fields/\(field.id)", json: UpdateFieldRequest(name: "{x}"))
            expectError(braces, .unprocessableContent, .validation)
            #expect(try await client.table(table.id).fields.count == 5)
        }
    }

    @Test("PATCH of field options is checked like creation: choices only on select fields, distinct")
    func fieldOptionsOnUpdate() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let score = try #require(table.field(named: "Score"))
            let status = try #require(table.field(named: "Status"))
            let choicesOnNumber = try await client.send(
                .patch,
                "fields/\(score.id)",
                json: UpdateFieldRequest(options: .init(choices: [.init(name: "x")]))
            )
            expectError(choicesOnNumber, .unprocessableContent, .validation, "choices on a number field")
            let duplicateChoices = try await client.send(
                .patch,
                "fields/\(status.id)",
                json: UpdateFieldRequest(options: .init(choices: [.init(name: "a"), .init(name: "a")]))
            )
            expectError(duplicateChoices, .unprocessableContent, .validation, "duplicate choices")
            let precision = try await client.send(
                .patch,
                "fields/\(score.id)",
                json: UpdateFieldRequest(options: .init(precision: 42))
            )
            expectError(precision, .unprocessableContent, .validation, "precision 42")
        }
    }

    @Test("the primary field cannot be deleted; deleting another field drops its cells from records")
    func deleteFields() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let primary = try #require(table.fields.first)
            let primaryDelete = try await client.send(.delete, "fields/\(primary.id)")
            expectError(primaryDelete, .unprocessableContent, .validation)
            #expect(try await client.table(table.id).fields.count == 4)

            let record = try await client.createRecord(in: table.id, ["Name": "a", "Score": 7, "Status": "Done"])
            let score = try #require(table.field(named: "Score"))
            #expect(try await client.send(.delete, "fields/\(score.id)").status == .noContent)
            let after = try await client.table(table.id)
            #expect(after.fields.map(\.name) == ["Name", "Status", "Done"])
            let fetched = try await client.record(record.id)
            #expect(fetched.fields == ["Name": "a", "Status": "Done"])
            let listed = try await client.recordsPage(table.id)
            #expect(listed.data.first?.fields == ["Name": "a", "Status": "Done"])

            // A new field of the same name starts blank: the old cells are really gone.
            _ = try await client.call(
                .post,
                "tables/\(table.id)/fields",
                json: CreateFieldRequest(name: "Score", type: .number),
                expect: .created,
                as: Field.self
            )
            #expect(try await client.record(record.id).fields["Score"] == nil)
            // Sorting or filtering by the deleted field's old id finds nothing either.
            let sorted = try await client.recordsPage(table.id, "sort=Score:desc")
            #expect(sorted.data.map(\.id) == [record.id])
            #expect(sorted.data.first?.fields["Score"] == nil)
            expectError(try await client.send(.delete, "fields/\(score.id)"), .notFound, .notFound)
        }
    }

    @Test("a link field must name a table that exists")
    func linkFieldTarget() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let response = try await client.send(
                .post,
                "tables/\(table.id)/fields",
                json: CreateFieldRequest(
                    name: "Link",
                    type: .multipleRecordLinks,
                    options: .init(linkedTableID: .generate())
                )
            )
            expectError(response, .unprocessableContent, .validation, "link to a table that does not exist")
        }
    }

    // MARK: Views

    @Test("views: create with filter, sort and fields; rename; clear; delete")
    func views() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let request = CreateViewRequest(
                name: "Done first",
                filter: "{Status} = 'Done'",
                sort: [.init(field: "Score", direction: .desc)],
                fields: ["Name", "Score"]
            )
            let created = try await client.send(.post, "tables/\(table.id)/views", json: request)
            #expect(created.status == .created)
            let view = try created.decode(View.self)
            #expect(view.name == "Done first")
            #expect(view.type == "grid")
            #expect(view.filter == "{Status} = 'Done'")
            #expect(view.sort == [.init(field: "Score", direction: .desc)])
            #expect(view.fields == ["Name", "Score"])
            #expect(view.tableID == table.id)
            #expect(try await client.call(.get, "views/\(view.id)", as: View.self) == view)
            #expect(try await client.table(table.id).views.map(\.name) == ["Grid view", "Done first"])

            let updated = try await client.call(
                .patch,
                "views/\(view.id)",
                json: UpdateViewRequest(name: "Cleared", filter: "", sort: [], fields: []),
                as: View.self
            )
            #expect(updated.name == "Cleared")
            #expect(updated.filter == nil)
            #expect(updated.sort == nil)
            #expect(updated.fields == nil)
            #expect(updated.version == 2)

            let duplicate = try await client.send(
                .post,
                "tables/\(table.id)/views",
                json: CreateViewRequest(name: "Grid view")
            )
            expectError(duplicate, .unprocessableContent, .validation)
            let kanban = try await client.send(
                .post,
                "tables/\(table.id)/views",
                json: CreateViewRequest(name: "K", type: "kanban")
            )
            expectError(kanban, .unprocessableContent, .validation)

            #expect(try await client.send(.delete, "views/\(view.id)").status == .noContent)
            expectError(try await client.send(.get, "views/\(view.id)"), .notFound, .notFound)
            #expect(try await client.table(table.id).views.map(\.name) == ["Grid view"])
        }
    }

    @Test("unknown sort or visible fields in a view are 422")
    func badViewSortAndFields() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let sort = try await client.send(
                .post,
                "tables/\(table.id)/views",
                json: CreateViewRequest(name: "V", sort: [.init(field: "Nope")])
            )
            #expect(expectError(sort, .unprocessableContent, .validation)?.message.contains("Nope") == true)
            let fields = try await client.send(
                .post,
                "tables/\(table.id)/views",
                json: CreateViewRequest(name: "V", fields: ["Name", "Ghost"])
            )
            #expect(expectError(fields, .unprocessableContent, .validation)?.message.contains("Ghost") == true)
            let view = try #require(table.views.first)
            let patch = try await client.send(
                .patch,
                "views/\(view.id)",
                json: UpdateViewRequest(sort: [.init(field: "Nope")])
            )
            expectError(patch, .unprocessableContent, .validation)
            #expect(try await client.table(table.id).views == table.views)
        }
    }

    @Test("a view with a malformed or unknown-field filter is 422 with the position")
    func badViewFilter() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let malformed = try await client.send(
                .post,
                "tables/\(table.id)/views",
                json: CreateViewRequest(name: "V", filter: "AND({Score} > ")
            )
            #expect(expectError(malformed, .unprocessableContent, .validation)?.position != nil)
            let unknown = try await client.send(
                .post,
                "tables/\(table.id)/views",
                json: CreateViewRequest(name: "V", filter: "{Nope} = 1")
            )
            #expect(expectError(unknown, .unprocessableContent, .validation)?.message.contains("Nope") == true)
            let view = try #require(table.views.first)
            let patch = try await client.send(.patch, "views/\(view.id)", json: UpdateViewRequest(filter: "{Score} >"))
            expectError(patch, .unprocessableContent, .validation)
            #expect(try await client.table(table.id).views.map(\.name) == ["Grid view"])
        }
    }

    // MARK: Versions and conditional requests

    @Test("the table version bumps whenever the table, its fields or its views change")
    func tableVersion() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            var expected = 1
            func check(_ step: String) async throws {
                let response = try await client.send(.get, "tables/\(table.id)")
                let current = try response.decode(PyAirtableModels.Table.self)
                #expect(current.version == expected, "after \(step)")
                #expect(response.headers[.eTag] == "\"\(expected)\"", "after \(step)")
            }
            try await check("creation")
            let field = try await client.call(
                .post,
                "tables/\(table.id)/fields",
                json: CreateFieldRequest(name: "F", type: .number),
                expect: .created,
                as: Field.self
            )
            expected += 1
            try await check("field create")
            _ = try await client.call(.patch, "fields/\(field.id)", json: UpdateFieldRequest(name: "G"), as: Field.self)
            expected += 1
            try await check("field rename")
            #expect(try await client.send(.delete, "fields/\(field.id)").status == .noContent)
            expected += 1
            try await check("field delete")
            let view = try await client.call(
                .post,
                "tables/\(table.id)/views",
                json: CreateViewRequest(name: "V"),
                expect: .created,
                as: View.self
            )
            expected += 1
            try await check("view create")
            _ = try await client.call(
                .patch,
                "views/\(view.id)",
                json: UpdateViewRequest(sort: [.init(field: "Score")]),
                as: View.self
            )
            expected += 1
            try await check("view update")
            #expect(try await client.send(.delete, "views/\(view.id)").status == .noContent)
            expected += 1
            try await check("view delete")
            _ = try await client.call(
                .patch,
                "tables/\(table.id)",
                json: UpdateTableRequest(name: "T2"),
                as: PyAirtableModels.Table.self
            )
            expected += 1
            try await check("table rename")
            // Record writes are not schema changes.
            _ = try await client.createRecord(in: table.id, ["Name": "x"])
            try await check("record create")
        }
    }

    @Test("GET answers ETag; If-None-Match with it is 304, and 200 again once the resource changed")
    func notModified() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (workspace, base, table) = try await client.scaffold()
            let view = try #require(table.views.first)
            let record = try await client.createRecord(in: table.id, ["Name": "x"])
            let paths = [
                "workspaces/\(workspace.id)", "bases/\(base.id)", "tables/\(table.id)", "views/\(view.id)",
                "records/\(record.id)", "users/me",
            ]
            for path in paths {
                let first = try await client.send(.get, path)
                #expect(first.status == .ok, "\(path)")
                let tag = try #require(first.headers[.eTag], "\(path) has no ETag")
                #expect(tag == "\"1\"", "\(path)")
                let again = try await client.send(.get, path, headers: [.ifNoneMatch: tag])
                #expect(again.status == .notModified, "\(path)")
                #expect(again.body.isEmpty, "\(path)")
                let other = try await client.send(.get, path, headers: [.ifNoneMatch: "\"7\", \"8\""])
                #expect(other.status == .ok, "\(path)")
            }
            _ = try await client.call(.patch, "bases/\(base.id)", json: UpdateBaseRequest(name: "B2"), as: Base.self)
            let changed = try await client.send(.get, "bases/\(base.id)", headers: [.ifNoneMatch: "\"1\""])
            #expect(changed.status == .ok)
            #expect(changed.headers[.eTag] == "\"2\"")
        }
    }

    @Test("If-Match with a stale version is 412 CONFLICT carrying the resource as it is now")
    func staleIfMatch() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (workspace, base, table) = try await client.scaffold()
            let field = try #require(table.field(named: "Score"))
            let view = try #require(table.views.first)

            // Move each resource to version 2 first.
            _ = try await client.call(
                .patch,
                "workspaces/\(workspace.id)",
                json: UpdateWorkspaceRequest(name: "W2"),
                as: Workspace.self
            )
            _ = try await client.call(.patch, "bases/\(base.id)", json: UpdateBaseRequest(name: "B2"), as: Base.self)
            _ = try await client.call(
                .patch,
                "fields/\(field.id)",
                json: UpdateFieldRequest(description: "d"),
                as: Field.self
            )
            _ = try await client.call(.patch, "views/\(view.id)", json: UpdateViewRequest(name: "Grid"), as: View.self)
            let before = try await client.stats()

            func stale<T: Decodable & Equatable>(
                _ method: HTTPRequest.Method,
                _ path: String,
                json: (any Encodable)?,
                current: T,
                version: Int
            ) async throws {
                let response =
                    if let json {
                        try await client.send(method, path, json: AnyEncodable(json), headers: [.ifMatch: "\"1\""])
                    } else {
                        try await client.send(method, path, headers: [.ifMatch: "\"1\""])
                    }
                expectError(response, .preconditionFailed, .conflict, "\(method) \(path)")
                let body = try #require(response.error)
                let decoded = try #require(try body.current?.decode(as: T.self), "\(path) has no current")
                #expect(decoded == current, "\(method) \(path)")
                #expect(response.headers[.eTag] == "\"\(version)\"", "\(method) \(path)")
            }
            let currentWorkspace = try await client.call(.get, "workspaces/\(workspace.id)", as: Workspace.self)
            let currentBase = try await client.call(.get, "bases/\(base.id)", as: Base.self)
            let currentTable = try await client.table(table.id)
            let currentField = try #require(currentTable.field(named: "Score"))
            let currentView = try await client.call(.get, "views/\(view.id)", as: View.self)
            try await stale(
                .patch,
                "workspaces/\(workspace.id)",
                json: UpdateWorkspaceRequest(name: "x"),
                current: currentWorkspace,
                version: currentWorkspace.version
            )
            try await stale(
                .delete,
                "workspaces/\(workspace.id)",
                json: nil,
                current: currentWorkspace,
                version: currentWorkspace.version
            )
            try await stale(
                .patch,
                "bases/\(base.id)",
                json: UpdateBaseRequest(name: "x"),
                current: currentBase,
                version: currentBase.version
            )
            try await stale(.delete, "bases/\(base.id)", json: nil, current: currentBase, version: currentBase.version)
            try await stale(
                .patch,
                "tables/\(table.id)",
                json: UpdateTableRequest(name: "x"),
                current: currentTable,
                version: currentTable.version
            )
            try await stale(
                .delete,
                "tables/\(table.id)",
                json: nil,
                current: currentTable,
                version: currentTable.version
            )
            try await stale(
                .patch,
                "fields/\(field.id)",
                json: UpdateFieldRequest(name: "x"),
                current: currentField,
                version: currentField.version
            )
            try await stale(
                .delete,
                "fields/\(field.id)",
                json: nil,
                current: currentField,
                version: currentField.version
            )
            try await stale(
                .patch,
                "views/\(view.id)",
                json: UpdateViewRequest(name: "x"),
                current: currentView,
                version: currentView.version
            )
            try await stale(.delete, "views/\(view.id)", json: nil, current: currentView, version: currentView.version)
            // Nothing changed, nothing was logged.
            #expect(try await client.stats().lastEventSeq == before.lastEventSeq)
            #expect(try await client.table(table.id) == currentTable)

            // The current version, `*` and a weak tag all pass.
            let ok = try await client.send(
                .patch,
                "bases/\(base.id)",
                json: UpdateBaseRequest(name: "B3"),
                headers: [.ifMatch: "\"2\""]
            )
            #expect(ok.status == .ok)
            #expect(ok.headers[.eTag] == "\"3\"")
            let star = try await client.send(
                .patch,
                "bases/\(base.id)",
                json: UpdateBaseRequest(name: "B4"),
                headers: [.ifMatch: "*"]
            )
            #expect(star.status == .ok)
            let weak = try await client.send(
                .patch,
                "bases/\(base.id)",
                json: UpdateBaseRequest(name: "B5"),
                headers: [.ifMatch: "W/\"4\""]
            )
            #expect(weak.status == .ok)
            let garbage = try await client.send(
                .patch,
                "bases/\(base.id)",
                json: UpdateBaseRequest(name: "B6"),
                headers: [.ifMatch: "yesterday"]
            )
            expectError(garbage, .badRequest, .validation)
        }
    }
}
