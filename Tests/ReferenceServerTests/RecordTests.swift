import Foundation
import HTTPTypes
import HummingbirdTesting
import PyAirtableModels
import Testing

@testable import ReferenceServer

@Suite("Records: CRUD, value validation, conflicts and batches", .timeLimit(.minutes(15)))
struct RecordTests {
    /// A table with one field of every type; `Link` links to a second table `People`.
    static func typedTable(_ client: API) async throws -> (PyAirtableModels.Table, PyAirtableModels.Table) {
        let workspace = try await client.createWorkspace()
        let base = try await client.createBase(in: workspace.id)
        let people = try await client.createTable(
            in: base.id,
            "People",
            fields: [.init(name: "Name", type: .singleLineText)]
        )
        let table = try await client.createTable(
            in: base.id,
            "Everything",
            fields: [
                .init(name: "Name", type: .singleLineText),
                .init(name: "Notes", type: .multilineText),
                .init(name: "Score", type: .number),
                .init(name: "Done", type: .checkbox),
                .init(
                    name: "Status",
                    type: .singleSelect,
                    options: .init(choices: [.init(name: "Todo"), .init(name: "Done")])
                ),
                .init(
                    name: "Tags",
                    type: .multipleSelects,
                    options: .init(choices: ["a", "b", "c"].map { .init(name: $0) })
                ),
                .init(name: "Due", type: .date),
                .init(name: "At", type: .dateTime),
                .init(name: "Email", type: .email),
                .init(name: "Site", type: .url),
                .init(name: "Files", type: .multipleAttachments),
                .init(name: "Link", type: .multipleRecordLinks, options: .init(linkedTableID: people.id)),
            ]
        )
        return (table, people)
    }

    // MARK: CRUD

    @Test("create, get, PATCH merges, PUT replaces, DELETE; versions and ETags follow")
    func crud() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()

            let created = try await client.send(
                .post,
                "tables/\(table.id)/records",
                json: RecordFieldsRequest(fields: ["Name": "Ada", "Score": 3, "Status": "Todo"])
            )
            #expect(created.status == .created)
            #expect(created.headers[.eTag] == "\"1\"")
            let record = try created.decode(PyAirtableModels.Record.self)
            #expect(RecordID.isValid(record.id.rawValue))
            #expect(record.tableID == table.id)
            #expect(record.fields == ["Name": "Ada", "Score": 3, "Status": "Todo"])
            #expect(record.version == 1)
            #expect(record.createdAt == record.updatedAt)

            let fetched = try await client.send(.get, "records/\(record.id)")
            #expect(fetched.headers[.eTag] == "\"1\"")
            #expect(try fetched.decode(PyAirtableModels.Record.self) == record)

            let patched = try await client.send(
                .patch,
                "records/\(record.id)",
                json: RecordFieldsRequest(fields: ["Score": 4, "Done": true])
            )
            #expect(patched.status == .ok)
            #expect(patched.headers[.eTag] == "\"2\"")
            let merged = try patched.decode(PyAirtableModels.Record.self)
            #expect(merged.fields == ["Name": "Ada", "Score": 4, "Status": "Todo", "Done": true])
            #expect(merged.version == 2)
            #expect(merged.createdAt == record.createdAt)

            // null clears one cell; an unchecked checkbox and an empty string are blank.
            let cleared = try await client.call(
                .patch,
                "records/\(record.id)",
                json: RecordFieldsRequest(fields: ["Status": .null, "Done": false]),
                as: PyAirtableModels.Record.self
            )
            #expect(cleared.fields == ["Name": "Ada", "Score": 4])
            #expect(cleared.version == 3)

            let replaced = try await client.send(
                .put,
                "records/\(record.id)",
                json: RecordFieldsRequest(fields: ["Name": "Grace"])
            )
            #expect(replaced.status == .ok)
            #expect(replaced.headers[.eTag] == "\"4\"")
            let put = try replaced.decode(PyAirtableModels.Record.self)
            #expect(put.fields == ["Name": "Grace"])
            #expect(put.version == 4)
            #expect(try await client.record(record.id) == put)

            let deleted = try await client.send(.delete, "records/\(record.id)")
            #expect(deleted.status == .ok)
            #expect(try deleted.decode(DeletedRecord.self) == DeletedRecord(id: record.id))
            expectError(try await client.send(.get, "records/\(record.id)"), .notFound, .notFound)
            expectError(try await client.send(.delete, "records/\(record.id)"), .notFound, .notFound)
            expectError(
                try await client.send(.patch, "records/\(record.id)", json: RecordFieldsRequest(fields: ["Name": "x"])),
                .notFound,
                .notFound
            )
            #expect(try await client.recordsPage(table.id).data.isEmpty)
        }
    }

    @Test("every field type stores a valid value, and values come back normalized")
    func everyType() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (table, people) = try await Self.typedTable(client)
            let person = try await client.createRecord(in: people.id, ["Name": "Linus"])
            let fields: [String: FieldValue] = [
                "Name": "Ada", "Notes": "line 1\nline 2", "Score": 2.5, "Done": true, "Status": "Done",
                "Tags": .strings(["a", "c"]), "Due": "2026-02-28", "At": "2026-01-02T03:04:05Z",
                "Email": "ada@example.com", "Site": "https://example.com/x?y=1",
                "Link": .strings([person.id.rawValue]),
            ]
            let record = try await client.createRecord(in: table.id, fields)
            #expect(record.fields["At"] == "2026-01-02T03:04:05.000Z")
            #expect(record.fields["Link"] == .strings([person.id.rawValue]))
            // Attachments name uploaded files: FileTests covers them.
            for name in ["Name", "Notes", "Score", "Done", "Status", "Tags", "Due", "Email", "Site"] {
                #expect(record.fields[name] == fields[name], "\(name)")
            }
            #expect(try await client.record(record.id) == record)
        }
    }

    @Test("a record linked twice to the same record stores the link once, in order")
    func duplicateLinks() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (table, people) = try await Self.typedTable(client)
            let ada = try await client.createRecord(in: people.id, ["Name": "Ada"])
            let linus = try await client.createRecord(in: people.id, ["Name": "Linus"])
            let links = [linus.id.rawValue, ada.id.rawValue, linus.id.rawValue]
            let record = try await client.createRecord(in: table.id, ["Link": .strings(links)])
            #expect(record.fields["Link"] == .strings([linus.id.rawValue, ada.id.rawValue]))
            #expect(
                try await client.record(record.id).fields["Link"] == .strings([linus.id.rawValue, ada.id.rawValue])
            )
        }
    }

    @Test(
        "a value of the wrong JSON kind is 422 VALIDATION_ERROR naming the field",
        arguments: [
            ("Name", "5"), ("Notes", "true"), ("Score", #""5""#), ("Done", #""yes""#), ("Status", "1"),
            ("Tags", #""a""#), ("Due", "20260101"), ("At", "false"), ("Email", "5"), ("Site", #"["x"]"#),
            ("Files", "5"), ("Link", #""rec0123456789ABCD""#), ("Score", #"["1"]"#), ("Done", "1"),
        ]
    )
    func wrongKind(field: String, json: String) async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (table, _) = try await Self.typedTable(client)
            let response = try await client.send(
                .post,
                "tables/\(table.id)/records",
                raw: #"{"fields": {"\#(field)": \#(json)}}"#
            )
            let error = expectError(response, .unprocessableContent, .validation, "\(field) = \(json)")
            #expect(error?.field == field)
            #expect(error?.message.contains(field) == true)
            #expect(try await client.recordsPage(table.id).data.isEmpty)
        }
    }

    @Test(
        "values breaking the field's rules are 422 naming the field",
        arguments: [
            ("Status", FieldValue.string("Maybe")), ("Tags", .strings(["a", "zzz"])), ("Email", "not-an-email"),
            ("Email", "ada@localhost"), ("Email", "a b@example.com"), ("Site", "not a url"), ("Site", "example.com"),
            ("Due", "2026-02-30"), ("Due", "2026-1-1"), ("Due", "01/02/2026"), ("At", "yesterday"),
            ("Name", "two\nlines"), ("Files", .strings(["not-a-file"])), ("Link", .strings(["nope"])),
        ]
    )
    func badValues(field: String, value: FieldValue) async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (table, _) = try await Self.typedTable(client)
            let response = try await client.send(
                .post,
                "tables/\(table.id)/records",
                json: RecordFieldsRequest(fields: [field: value])
            )
            let error = expectError(response, .unprocessableContent, .validation, "\(field) = \(value)")
            #expect(error?.field == field)
            // The same rule holds on PATCH and PUT of an existing record, which stays as it was.
            let record = try await client.createRecord(in: table.id, ["Name": "ok"])
            for method in [HTTPRequest.Method.patch, .put] {
                let update = try await client.send(
                    method,
                    "records/\(record.id)",
                    json: RecordFieldsRequest(fields: [field: value])
                )
                expectError(update, .unprocessableContent, .validation, "\(method) \(field)")
            }
            #expect(try await client.record(record.id) == record)
        }
    }

    @Test("an unknown field name is 422 naming it")
    func unknownField() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let response = try await client.send(
                .post,
                "tables/\(table.id)/records",
                json: RecordFieldsRequest(fields: ["Name": "x", "Colour": "red"])
            )
            let error = expectError(response, .unprocessableContent, .validation)
            #expect(error?.field == "Colour")
            #expect(error?.message.contains("Colour") == true)
            // Field names are case-sensitive.
            let lower = try await client.send(
                .post,
                "tables/\(table.id)/records",
                json: RecordFieldsRequest(fields: ["name": "x"])
            )
            expectError(lower, .unprocessableContent, .validation)
            #expect(try await client.recordsPage(table.id).data.isEmpty)
        }
    }

    @Test("multipleRecordLinks to a record that does not exist, or is in another table, is 422")
    func links() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (table, people) = try await Self.typedTable(client)
            let person = try await client.createRecord(in: people.id, ["Name": "Linus"])
            let elsewhere = try await client.createRecord(in: table.id, ["Name": "not a person"])
            for target in [RecordID.generate(), elsewhere.id] {
                let response = try await client.send(
                    .post,
                    "tables/\(table.id)/records",
                    json: RecordFieldsRequest(fields: ["Link": .strings([person.id.rawValue, target.rawValue])])
                )
                let error = expectError(response, .unprocessableContent, .validation, "link to \(target)")
                #expect(error?.field == "Link")
                #expect(error?.message.contains(target.rawValue) == true)
            }
            let linked = try await client.createRecord(in: table.id, ["Link": .strings([person.id.rawValue])])
            #expect(linked.fields["Link"] == .strings([person.id.rawValue]))
            #expect(try await client.recordsPage(table.id).data.count == 2)
        }
    }

    // MARK: Conflicts

    @Test("If-Match with a stale version is 412 with the current record and its ETag; nothing changes")
    func staleIfMatch() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let record = try await client.createRecord(in: table.id, ["Name": "a", "Score": 1])
            let v2 = try await client.call(
                .patch,
                "records/\(record.id)",
                json: RecordFieldsRequest(fields: ["Score": 2]),
                as: PyAirtableModels.Record.self,
                headers: [.ifMatch: "\"1\""]
            )
            #expect(v2.version == 2)
            let v3 = try await client.call(
                .patch,
                "records/\(record.id)",
                json: RecordFieldsRequest(fields: ["Score": 3]),
                as: PyAirtableModels.Record.self
            )
            #expect(v3.version == 3)
            let before = try await client.stats()

            for method in [HTTPRequest.Method.patch, .put, .delete] {
                let response =
                    method == .delete
                    ? try await client.send(method, "records/\(record.id)", headers: [.ifMatch: "\"2\""])
                    : try await client.send(
                        method,
                        "records/\(record.id)",
                        json: RecordFieldsRequest(fields: ["Score": 99]),
                        headers: [.ifMatch: "\"2\""]
                    )
                expectError(response, .preconditionFailed, .conflict, "\(method)")
                #expect(response.headers[.eTag] == "\"3\"", "\(method)")
                let current = try #require(response.error?.current, "\(method)")
                #expect(try current.decode(as: PyAirtableModels.Record.self) == v3, "\(method)")
            }
            #expect(try await client.record(record.id) == v3)
            #expect(try await client.stats().lastEventSeq == before.lastEventSeq)

            let v4 = try await client.call(
                .put,
                "records/\(record.id)",
                json: RecordFieldsRequest(fields: ["Name": "b"]),
                as: PyAirtableModels.Record.self,
                headers: [.ifMatch: "\"3\""]
            )
            #expect(v4.version == 4)
            let deleted = try await client.send(.delete, "records/\(record.id)", headers: [.ifMatch: "\"4\""])
            #expect(deleted.status == .ok)
        }
    }

    // MARK: Batch

    @Test("a batch of mixed create, update, replace and delete applies every operation, in order")
    func batch() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let first = try await client.createRecord(in: table.id, ["Name": "first", "Score": 1])
            let second = try await client.createRecord(in: table.id, ["Name": "second", "Score": 2])
            let third = try await client.createRecord(in: table.id, ["Name": "third", "Score": 3])
            let before = try await client.stats()

            let response = try await client.call(
                .post,
                "tables/\(table.id)/records/batch",
                json: BatchRequest(operations: [
                    .create(fields: ["Name": "new", "Status": "Doing"]),
                    .update(id: first.id, fields: ["Score": 10], ifVersion: 1),
                    .delete(id: second.id, ifVersion: nil),
                    .replace(id: third.id, fields: ["Status": "Done"], ifVersion: nil),
                ]),
                as: BatchResponse.self
            )
            #expect(response.results.count == 4)
            guard case .record(let created) = response.results[0], case .record(let updated) = response.results[1],
                case .deleted(let deletedID) = response.results[2], case .record(let replaced) = response.results[3]
            else {
                Issue.record("unexpected results \(response.results)")
                return
            }
            #expect(created.fields == ["Name": "new", "Status": "Doing"])
            #expect(updated.fields == ["Name": "first", "Score": 10])
            #expect(updated.version == 2)
            #expect(deletedID == second.id)
            #expect(replaced.fields == ["Status": "Done"])

            #expect(try await client.record(created.id) == created)
            #expect(try await client.record(first.id) == updated)
            #expect(try await client.record(third.id) == replaced)
            expectError(try await client.send(.get, "records/\(second.id)"), .notFound, .notFound)
            let events = try await client.events(since: before.lastEventSeq)
            #expect(events.map(\.type) == [.recordCreated, .recordUpdated, .recordDeleted, .recordUpdated])
            #expect(events.map(\.recordID) == [created.id, first.id, second.id, third.id])
        }
    }

    /// How the failing fourth operation (index 3) of a batch goes wrong.
    enum BatchFailure: String, CaseIterable, Sendable {
        case badValue, staleVersion, missingRecord, deletedEarlierInBatch
    }

    @Test("a batch whose operation 3 fails applies none of its operations", arguments: BatchFailure.allCases)
    func batchAllOrNothing(failure: BatchFailure) async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let first = try await client.createRecord(in: table.id, ["Name": "first", "Score": 1])
            let second = try await client.createRecord(in: table.id, ["Name": "second", "Score": 2])
            let recordsBefore = try await client.allRecords(table.id)
            let statsBefore = try await client.stats()
            let eventsBefore = try await client.events()

            let failing: BatchOperation
            let status: HTTPResponse.Status
            switch failure {
            case .badValue:
                failing = .create(fields: ["Score": "lots"])
                status = .unprocessableContent
            case .staleVersion:
                failing = .update(id: first.id, fields: ["Score": 5], ifVersion: 1)  // op 0 moved it to 2
                status = .preconditionFailed
            case .missingRecord:
                failing = .update(id: .generate(), fields: ["Score": 5], ifVersion: nil)
                status = .notFound
            case .deletedEarlierInBatch:
                failing = .update(id: second.id, fields: ["Score": 5], ifVersion: nil)  // op 2 deleted it
                status = .notFound
            }
            let response = try await client.send(
                .post,
                "tables/\(table.id)/records/batch",
                json: BatchRequest(operations: [
                    .update(id: first.id, fields: ["Score": 100], ifVersion: nil),
                    .create(fields: ["Name": "ghost"]),
                    .delete(id: second.id, ifVersion: nil),
                    failing,
                    .create(fields: ["Name": "after"]),
                ])
            )
            #expect(response.status == status, "\(response.text)")
            let error = try #require(response.error)
            #expect(error.error.message.contains("operation 3"), "\(error.error.message)")
            #expect(!error.error.message.contains("operation 2"))

            #expect(try await client.allRecords(table.id) == recordsBefore)
            let statsAfter = try await client.stats()
            #expect(statsAfter.records == statsBefore.records)
            #expect(statsAfter.events == statsBefore.events)
            #expect(statsAfter.lastEventSeq == statsBefore.lastEventSeq)
            #expect(try await client.events() == eventsBefore)
        }
    }

    @Test("a batch is 1…100 operations; malformed operations are refused")
    func batchLimits() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let path = "tables/\(table.id)/records/batch"
            let tooMany = BatchRequest(operations: (0..<101).map { .create(fields: ["Name": .string("r\($0)")]) })
            let over = try await client.send(.post, path, json: tooMany)
            #expect(expectError(over, .unprocessableContent, .validation)?.message.contains("101") == true)
            let empty = try await client.send(.post, path, json: BatchRequest(operations: []))
            expectError(empty, .unprocessableContent, .validation)
            let unknownOp = try await client.send(
                .post,
                path,
                raw: #"{"operations": [{"op": "upsert", "fields": {}}]}"#
            )
            expectError(unknownOp, .badRequest, .validation)
            let badID = try await client.send(
                .post,
                path,
                raw: #"{"operations": [{"op": "delete", "id": "tbl0123456789ABCD"}]}"#
            )
            expectError(badID, .badRequest, .validation)
            #expect(try await client.recordsPage(table.id).data.isEmpty)

            let exactly = BatchRequest(operations: (0..<100).map { .create(fields: ["Name": .string("r\($0)")]) })
            let full = try await client.call(.post, path, json: exactly, as: BatchResponse.self)
            #expect(full.results.count == 100)
            #expect(try await client.allRecords(table.id).count == 100)
        }
    }

    @Test("a batch cannot touch a record of another table")
    func batchOtherTable() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, base, table) = try await client.scaffold()
            let other = try await client.createTable(in: base.id, "Other")
            let foreign = try await client.createRecord(in: other.id, ["Name": "foreign"])
            let response = try await client.send(
                .post,
                "tables/\(table.id)/records/batch",
                json: BatchRequest(operations: [.delete(id: foreign.id, ifVersion: nil)])
            )
            #expect(response.status.code >= 400 && response.status.code < 500)
            #expect(try await client.record(foreign.id) == foreign)
        }
    }
}
