import Foundation
import HTTPTypes
import PyAirtableModels
import TestSupport
import Testing

@testable import ReferenceServer

@Suite("Idempotency keys and the event log", .timeLimit(.minutes(15)))
struct IdempotencyAndEventsTests {
    // MARK: Idempotency

    @Test("the same key and body replays the stored answer: same status and bytes, one record, one event")
    func replay() async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let before = try await client.stats()
            // Raw bytes: a retry sends exactly what the first attempt sent.
            let body = #"{"fields": {"Name": "once", "Score": 1}}"#
            let key: HTTPFields = [.idempotencyKey: "create-once-1"]
            let first = try await client.send(.post, "tables/\(table.id)/records", raw: body, headers: key)
            #expect(first.status == .created)
            #expect(first.headers[.idempotentReplayed] == nil)
            for _ in 0..<3 {
                let again = try await client.send(.post, "tables/\(table.id)/records", raw: body, headers: key)
                #expect(again.status == first.status)
                #expect(again.body == first.body)
                #expect(again.headers[.eTag] == first.headers[.eTag])
                #expect(again.headers[.idempotentReplayed] == "true")
            }
            let after = try await client.stats()
            #expect(after.records == before.records + 1)
            #expect(after.events == before.events + 1)
            #expect(try await client.allRecords(table.id).count == 1)
        }
    }

    @Test("replays work for PATCH, PUT, DELETE and batch, and do not re-apply the change")
    func replayOtherMethods() async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let record = try await client.createRecord(in: table.id, ["Name": "a", "Score": 1])
            let patch = RecordFieldsRequest(fields: ["Score": 2])
            let first = try await client.send(
                .patch,
                "records/\(record.id)",
                json: patch,
                headers: [.idempotencyKey: "p"]
            )
            // Someone else changes the record meanwhile; the replay still answers what the key did.
            _ = try await client.call(
                .patch,
                "records/\(record.id)",
                json: RecordFieldsRequest(fields: ["Score": 3]),
                as: PyAirtableModels.Record.self
            )
            let replayed = try await client.send(
                .patch,
                "records/\(record.id)",
                json: patch,
                headers: [.idempotencyKey: "p"]
            )
            #expect(replayed.body == first.body)
            #expect(replayed.headers[.idempotentReplayed] == "true")
            #expect(try await client.record(record.id).fields["Score"] == 3)
            #expect(try await client.record(record.id).version == 3)

            let put = RecordFieldsRequest(fields: ["Name": "z"])
            let putFirst = try await client.send(
                .put,
                "records/\(record.id)",
                json: put,
                headers: [.idempotencyKey: "u"]
            )
            let putAgain = try await client.send(
                .put,
                "records/\(record.id)",
                json: put,
                headers: [.idempotencyKey: "u"]
            )
            #expect(putAgain.body == putFirst.body)
            #expect(try await client.record(record.id).version == 4)

            let deleteFirst = try await client.send(.delete, "records/\(record.id)", headers: [.idempotencyKey: "d"])
            #expect(deleteFirst.status == .ok)
            let deleteAgain = try await client.send(.delete, "records/\(record.id)", headers: [.idempotencyKey: "d"])
            #expect(deleteAgain.status == .ok)
            #expect(deleteAgain.body == deleteFirst.body)
            #expect(deleteAgain.headers[.idempotentReplayed] == "true")
            // Without the key, a second delete is a plain 404.
            expectError(try await client.send(.delete, "records/\(record.id)"), .notFound, .notFound)

            let batch =
                #"{"operations": [{"op": "create", "fields": {"Name": "b0"}}, {"op": "create", "fields": {"Name": "b1"}}]}"#
            let batchFirst = try await client.send(
                .post,
                "tables/\(table.id)/records/batch",
                raw: batch,
                headers: [.idempotencyKey: "b"]
            )
            let batchAgain = try await client.send(
                .post,
                "tables/\(table.id)/records/batch",
                raw: batch,
                headers: [.idempotencyKey: "b"]
            )
            #expect(batchAgain.headers[.idempotentReplayed] == "true")
            #expect(batchAgain.body == batchFirst.body)
            #expect(try await client.allRecords(table.id).count == 2)
        }
    }

    @Test("a retry whose JSON has the same content in another key order replays (the SDK's encoder does not sort keys)")
    func replayIgnoresKeyOrder() async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let key: HTTPFields = [.idempotencyKey: "reordered"]
            let first = try await client.send(
                .post,
                "tables/\(table.id)/records",
                raw: #"{"fields": {"Name": "once", "Score": 1}}"#,
                headers: key
            )
            #expect(first.status == .created)
            let again = try await client.send(
                .post,
                "tables/\(table.id)/records",
                raw: #"{"fields":{"Score":1,"Name":"once"}}"#,
                headers: key
            )
            #expect(again.status == .created, "\(again.text)")
            #expect(again.body == first.body)
            #expect(again.headers[.idempotentReplayed] == "true")
            #expect(try await client.allRecords(table.id).count == 1)
        }
    }

    @Test("the same key with a different body, or on another route, is 422; the first answer stays")
    func keyReuse() async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let key: HTTPFields = [.idempotencyKey: "k-1"]
            let first = try await client.send(
                .post,
                "tables/\(table.id)/records",
                json: RecordFieldsRequest(fields: ["Name": "a"]),
                headers: key
            )
            #expect(first.status == .created)
            let before = try await client.stats()
            let different = try await client.send(
                .post,
                "tables/\(table.id)/records",
                json: RecordFieldsRequest(fields: ["Name": "b"]),
                headers: key
            )
            #expect(expectError(different, .unprocessableContent, .validation)?.message.contains("k-1") == true)
            let otherRoute = try await client.send(
                .post,
                "workspaces",
                json: CreateWorkspaceRequest(name: "W"),
                headers: key
            )
            expectError(otherRoute, .unprocessableContent, .validation)
            let after = try await client.stats()
            #expect(after.lastEventSeq == before.lastEventSeq)
            #expect(after.workspaces == before.workspaces)
            let again = try await client.send(
                .post,
                "tables/\(table.id)/records",
                json: RecordFieldsRequest(fields: ["Name": "a"]),
                headers: key
            )
            #expect(again.body == first.body)
        }
    }

    @Test("a failed request does not use up its key: the corrected request with the same key runs")
    func failedRequestKeepsKeyFree() async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let key: HTTPFields = [.idempotencyKey: "retry-me"]
            let bad = try await client.send(
                .post,
                "tables/\(table.id)/records",
                json: RecordFieldsRequest(fields: ["Score": "x"]),
                headers: key
            )
            expectError(bad, .unprocessableContent, .validation)
            let good = try await client.send(
                .post,
                "tables/\(table.id)/records",
                json: RecordFieldsRequest(fields: ["Score": 1]),
                headers: key
            )
            #expect(good.status == .created)
            #expect(good.headers[.idempotentReplayed] == nil)
        }
    }

    @Test("keys belong to a user: another user with the same key and body gets their own fresh answer")
    func keysPerUser() async throws {
        try await Harness.withServer { api, _ in
            let (ada, _) = try await api.register("Ada")
            let (grace, graceUser) = try await api.register("Grace")
            let (workspace, _, table) = try await ada.scaffold()
            try await ada.addMember(workspace.id, user: graceUser.id, role: .editor)
            let body = RecordFieldsRequest(fields: ["Name": "same"])
            let key: HTTPFields = [.idempotencyKey: "shared-key"]
            let adaFirst = try await ada.send(.post, "tables/\(table.id)/records", json: body, headers: key)
            let graceFirst = try await grace.send(.post, "tables/\(table.id)/records", json: body, headers: key)
            #expect(adaFirst.status == .created)
            #expect(graceFirst.status == .created)
            #expect(graceFirst.headers[.idempotentReplayed] == nil)
            let adaRecord = try adaFirst.decode(PyAirtableModels.Record.self)
            let graceRecord = try graceFirst.decode(PyAirtableModels.Record.self)
            #expect(adaRecord.id != graceRecord.id)
            // Each user's replay gives their own record.
            let graceAgain = try await grace.send(.post, "tables/\(table.id)/records", json: body, headers: key)
            #expect(try graceAgain.decode(PyAirtableModels.Record.self).id == graceRecord.id)
            #expect(try await ada.allRecords(table.id).count == 2)
        }
    }

    @Test("a replayed register signs the same user in again with fresh tokens instead of failing as a duplicate")
    func registerReplay() async throws {
        try await Harness.withServer { api, _ in
            let body = #"{"email": "replay@example.com", "password": "correct horse", "name": "R"}"#
            let first = try await api.send(.post, "auth/register", raw: body, headers: [.idempotencyKey: "reg-1"])
            #expect(first.status == .created)
            let again = try await api.send(.post, "auth/register", raw: body, headers: [.idempotencyKey: "reg-1"])
            #expect(again.status == .created, "\(again.text)")
            #expect(again.headers[.idempotentReplayed] == "true")
            let original = try first.decode(AuthResponse.self)
            let replayed = try again.decode(AuthResponse.self)
            #expect(replayed.user == original.user)
            #expect(
                try await api.authorized(replayed.tokens.accessToken).call(.get, "users/me", as: User.self)
                    == original.user
            )
            #expect(try await api.authorized(original.tokens.accessToken).send(.get, "users/me").status == .ok)
            // Without the key, the same registration is a duplicate.
            expectError(try await api.send(.post, "auth/register", raw: body), .conflict, .conflict)
        }
    }

    // MARK: Events

    @Test("every mutation route logs exactly one event of its type, with its ids and actor")
    func oneEventPerMutation() async throws {
        try await Harness.withServer { api, _ in
            let (client, me) = try await api.register("Owner")
            let (_, other) = try await api.register("Other")

            /// Runs one mutation and checks the single event it logged. The expected ids are
            /// evaluated after the mutation, so creations can name what they created.
            func expectEvent(
                _ type: EventType,
                workspace: @autoclosure () -> WorkspaceID?,
                base: @autoclosure () -> BaseID? = nil,
                table: @autoclosure () -> TableID? = nil,
                record: @autoclosure () -> RecordID? = nil,
                sourceLocation: SourceLocation = #_sourceLocation,
                _ mutation: () async throws -> Void
            ) async throws {
                let before = try await client.stats()
                try await mutation()
                let after = try await client.stats()
                #expect(after.events == before.events + 1, "\(type)", sourceLocation: sourceLocation)
                let events = try await client.events(since: before.lastEventSeq)
                #expect(events.count == 1, "\(type): \(events.map(\.type))", sourceLocation: sourceLocation)
                guard let event = events.first else { return }
                #expect(event.seq > before.lastEventSeq, sourceLocation: sourceLocation)
                #expect(event.type == type, sourceLocation: sourceLocation)
                #expect(event.workspaceID == workspace(), "\(type)", sourceLocation: sourceLocation)
                #expect(event.baseID == base(), "\(type)", sourceLocation: sourceLocation)
                #expect(event.tableID == table(), "\(type)", sourceLocation: sourceLocation)
                #expect(event.recordID == record(), "\(type)", sourceLocation: sourceLocation)
                #expect(event.actor == me.id, "\(type)", sourceLocation: sourceLocation)
            }

            try await expectEvent(.userUpdated, workspace: nil) {
                _ = try await client.call(.patch, "users/me", json: UpdateUserRequest(name: "O"), as: User.self)
            }
            var workspace: Workspace?
            try await expectEvent(.workspaceCreated, workspace: workspace?.id) {
                workspace = try await client.createWorkspace()
            }
            let w = try #require(workspace).id
            try await expectEvent(.workspaceUpdated, workspace: w) {
                _ = try await client.call(
                    .patch,
                    "workspaces/\(w)",
                    json: UpdateWorkspaceRequest(name: "W"),
                    as: Workspace.self
                )
            }
            try await expectEvent(.memberAdded, workspace: w) {
                try await client.addMember(w, user: other.id, role: .viewer)
            }
            try await expectEvent(.memberUpdated, workspace: w) {
                _ = try await client.call(
                    .patch,
                    "workspaces/\(w)/members/\(other.id)",
                    json: UpdateMemberRequest(role: .editor),
                    as: Member.self
                )
            }
            try await expectEvent(.memberRemoved, workspace: w) {
                let status = try await client.send(.delete, "workspaces/\(w)/members/\(other.id)").status
                #expect(status == .noContent)
            }
            var base: Base?
            try await expectEvent(.baseCreated, workspace: w, base: base?.id) {
                base = try await client.createBase(in: w)
            }
            let b = try #require(base).id
            try await expectEvent(.baseUpdated, workspace: w, base: b) {
                _ = try await client.call(.patch, "bases/\(b)", json: UpdateBaseRequest(name: "B"), as: Base.self)
            }
            var table: PyAirtableModels.Table?
            try await expectEvent(.tableCreated, workspace: w, base: b, table: table?.id) {
                table = try await client.createTable(in: b)
            }
            let t = try #require(table).id
            try await expectEvent(.tableUpdated, workspace: w, base: b, table: t) {
                _ = try await client.call(
                    .patch,
                    "tables/\(t)",
                    json: UpdateTableRequest(name: "T"),
                    as: PyAirtableModels.Table.self
                )
            }
            var field: Field?
            try await expectEvent(.fieldCreated, workspace: w, base: b, table: t) {
                field = try await client.call(
                    .post,
                    "tables/\(t)/fields",
                    json: CreateFieldRequest(name: "F", type: .number),
                    expect: .created,
                    as: Field.self
                )
            }
            let f = try #require(field).id
            try await expectEvent(.fieldUpdated, workspace: w, base: b, table: t) {
                _ = try await client.call(.patch, "fields/\(f)", json: UpdateFieldRequest(name: "G"), as: Field.self)
            }
            try await expectEvent(.fieldDeleted, workspace: w, base: b, table: t) {
                let status = try await client.send(.delete, "fields/\(f)").status
                #expect(status == .noContent)
            }
            var view: View?
            try await expectEvent(.viewCreated, workspace: w, base: b, table: t) {
                view = try await client.call(
                    .post,
                    "tables/\(t)/views",
                    json: CreateViewRequest(name: "V"),
                    expect: .created,
                    as: View.self
                )
            }
            let v = try #require(view).id
            try await expectEvent(.viewUpdated, workspace: w, base: b, table: t) {
                _ = try await client.call(.patch, "views/\(v)", json: UpdateViewRequest(name: "V2"), as: View.self)
            }
            try await expectEvent(.viewDeleted, workspace: w, base: b, table: t) {
                let status = try await client.send(.delete, "views/\(v)").status
                #expect(status == .noContent)
            }
            var record: PyAirtableModels.Record?
            try await expectEvent(.recordCreated, workspace: w, base: b, table: t, record: record?.id) {
                record = try await client.createRecord(in: t, ["Name": "r"])
            }
            let r = try #require(record).id
            try await expectEvent(.recordUpdated, workspace: w, base: b, table: t, record: r) {
                _ = try await client.call(
                    .patch,
                    "records/\(r)",
                    json: RecordFieldsRequest(fields: ["Score": 1]),
                    as: PyAirtableModels.Record.self
                )
            }
            try await expectEvent(.recordUpdated, workspace: w, base: b, table: t, record: r) {
                _ = try await client.call(
                    .put,
                    "records/\(r)",
                    json: RecordFieldsRequest(fields: ["Name": "s"]),
                    as: PyAirtableModels.Record.self
                )
            }
            try await expectEvent(.recordDeleted, workspace: w, base: b, table: t, record: r) {
                let status = try await client.send(.delete, "records/\(r)").status
                #expect(status == .ok)
            }
            var batched: RecordID?
            try await expectEvent(.recordCreated, workspace: w, base: b, table: t, record: batched) {
                let response = try await client.call(
                    .post,
                    "tables/\(t)/records/batch",
                    json: BatchRequest(operations: [.create(fields: ["Name": "x"])]),
                    as: BatchResponse.self
                )
                if case .record(let created)? = response.results.first { batched = created.id }
            }
            #expect(batched != nil)
            try await expectEvent(.tableDeleted, workspace: w, base: b, table: t) {
                let status = try await client.send(.delete, "tables/\(t)").status
                #expect(status == .noContent)
            }
            try await expectEvent(.baseDeleted, workspace: w, base: b) {
                let status = try await client.send(.delete, "bases/\(b)").status
                #expect(status == .noContent)
            }
        }
    }

    @Test("the ids of created resources are on their creation events, and payloads carry the resource")
    func creationEventIDs() async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let (workspace, base, table) = try await client.scaffold()
            let record = try await client.createRecord(in: table.id, ["Name": "r"])
            let events = try await client.events()
            #expect(events.map(\.type) == [.workspaceCreated, .baseCreated, .tableCreated, .recordCreated])
            #expect(events[0].workspaceID == workspace.id)
            #expect(events[1].baseID == base.id)
            #expect(events[2].tableID == table.id)
            #expect(events[3].recordID == record.id)
            #expect(try events[3].payload.decode(as: PyAirtableModels.Record.self) == record)
            #expect(try events[2].payload.decode(as: PyAirtableModels.Table.self) == table)
            #expect(zip(events, events.dropFirst()).allSatisfy { $0.seq < $1.seq })
        }
    }

    @Test("deleting a workspace logs workspace.deleted where its former members can read it")
    func workspaceDeletedEvent() async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let workspace = try await client.createWorkspace()
            let before = try await client.stats()
            let status = try await client.send(.delete, "workspaces/\(workspace.id)").status
            #expect(status == .noContent)
            let after = try await client.stats()
            // Stats count the events the caller may read: the creation went with the workspace, the
            // deletion names its former members.
            #expect(before.events == 1 && after.events == 1, "\(before) \(after)")
            let events = try await client.events(since: before.lastEventSeq)
            #expect(
                events.map(\.type) == [.workspaceDeleted],
                "the deleting owner cannot see the deletion in /events/log"
            )
            #expect(events.first?.workspaceID == workspace.id)
        }
    }

    @Test("a failed mutation (422, 403, 404, 409, 412) logs nothing")
    func failuresLogNothing() async throws {
        try await Harness.withServer { api, _ in
            let (client, owner) = try await api.register("Owner")
            let (viewer, viewerUser) = try await api.register("Viewer")
            let (workspace, _, table) = try await client.scaffold()
            try await client.addMember(workspace.id, user: viewerUser.id, role: .viewer)
            let record = try await client.createRecord(in: table.id, ["Name": "r"])
            _ = try await client.call(
                .patch,
                "records/\(record.id)",
                json: RecordFieldsRequest(fields: ["Score": 1]),
                as: PyAirtableModels.Record.self
            )
            let before = try await client.stats()
            let attempts: [(String, APIResponse, HTTPResponse.Status)] = [
                (
                    "422",
                    try await client.send(
                        .post,
                        "tables/\(table.id)/records",
                        json: RecordFieldsRequest(fields: ["Score": "x"])
                    ), .unprocessableContent
                ),
                (
                    "403",
                    try await viewer.send(
                        .post,
                        "tables/\(table.id)/records",
                        json: RecordFieldsRequest(fields: ["Name": "v"])
                    ), .forbidden
                ),
                (
                    "412",
                    try await client.send(
                        .patch,
                        "records/\(record.id)",
                        json: RecordFieldsRequest(fields: ["Score": 2]),
                        headers: [.ifMatch: "\"1\""]
                    ), .preconditionFailed
                ),
                (
                    "404",
                    try await client.send(
                        .patch,
                        "records/\(RecordID.generate())",
                        json: RecordFieldsRequest(fields: ["Score": 2])
                    ), .notFound
                ),
                ("409", try await client.send(.delete, "workspaces/\(workspace.id)/members/\(owner.id)"), .conflict),
                ("400", try await client.send(.post, "tables/\(table.id)/records", raw: "{"), .badRequest),
            ]
            for (label, response, status) in attempts {
                #expect(response.status == status, "\(label): \(response.text)")
            }
            let after = try await client.stats()
            #expect(after.events == before.events)
            #expect(after.lastEventSeq == before.lastEventSeq)
            #expect(try await client.events(since: before.lastEventSeq).isEmpty)
        }
    }

    @Test("events/log pages with since and limit, and narrows by workspace, base, table and record")
    func paging() async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let (workspace, base, table) = try await client.scaffold()
            let other = try await client.createTable(in: base.id, "Other")
            let start = try await client.stats().lastEventSeq
            var records: [PyAirtableModels.Record] = []
            for index in 0..<7 {
                records.append(
                    try await client.createRecord(
                        in: index.isMultiple(of: 2) ? table.id : other.id,
                        ["Name": .string("r\(index)")]
                    )
                )
            }
            _ = try await client.call(
                .patch,
                "records/\(records[0].id)",
                json: RecordFieldsRequest(fields: ["Score": 1]),
                as: PyAirtableModels.Record.self
            )

            var collected: [Event] = []
            var since = start
            var pages = 0
            while true {
                let page = try await client.call(.get, "events/log?since=\(since)&limit=3", as: EventLogPage.self)
                #expect(page.data.count <= 3)
                if page.data.isEmpty {
                    #expect(page.nextSince == since)
                    break
                }
                #expect(page.nextSince == page.data.last?.seq)
                collected += page.data
                since = page.nextSince
                pages += 1
            }
            #expect(pages == 3)
            #expect(collected.count == 8)
            #expect(zip(collected, collected.dropFirst()).allSatisfy { $0.seq < $1.seq })
            #expect(collected.compactMap(\.recordID) == records.map(\.id) + [records[0].id])

            let byTable = try await client.call(
                .get,
                "events/log?since=\(start)&table_id=\(table.id)",
                as: EventLogPage.self
            )
            #expect(
                byTable.data.map(\.recordID) == [
                    records[0].id, records[2].id, records[4].id, records[6].id, records[0].id,
                ]
            )
            let byRecord = try await client.call(
                .get,
                "events/log?since=0&record_id=\(records[0].id)",
                as: EventLogPage.self
            )
            #expect(byRecord.data.map(\.type) == [.recordCreated, .recordUpdated])
            let byBase = try await client.call(.get, "events/log?since=0&base_id=\(base.id)", as: EventLogPage.self)
            #expect(byBase.data.count == 11)  // the base, two tables, then eight record events
            let byWorkspace = try await client.call(
                .get,
                "events/log?since=0&workspace_id=\(workspace.id)",
                as: EventLogPage.self
            )
            #expect(byWorkspace.data.count == 12)  // and the workspace
            let defaultLimit = try await client.call(.get, "events/log", as: EventLogPage.self)
            #expect(defaultLimit.data.count == 12)

            for query in ["since=-1", "since=abc", "limit=0", "limit=1001", "table_id=nope", "record_id=\(table.id)"] {
                let response = try await client.send(.get, "events/log?\(query)")
                expectError(response, .unprocessableContent, .validation, query)
            }
            expectError(try await api.send(.get, "events/log"), .unauthorized, .auth)
        }
    }

    @Test("a user never sees events of a workspace they are not a member of")
    func visibility() async throws {
        try await Harness.withServer { api, _ in
            let (ada, adaUser) = try await api.register("Ada")
            let (grace, graceUser) = try await api.register("Grace")
            let (adaWorkspace, _, adaTable) = try await ada.scaffold()
            let (graceWorkspace, _, graceTable) = try await grace.scaffold()
            _ = try await ada.createRecord(in: adaTable.id, ["Name": "secret"])
            _ = try await grace.createRecord(in: graceTable.id, ["Name": "hers"])
            _ = try await ada.call(.patch, "users/me", json: UpdateUserRequest(name: "Ada L."), as: User.self)

            let adaEvents = try await ada.events()
            let graceEvents = try await grace.events()
            #expect(
                adaEvents.allSatisfy {
                    $0.workspaceID == adaWorkspace.id || ($0.workspaceID == nil && $0.actor == adaUser.id)
                }
            )
            #expect(graceEvents.allSatisfy { $0.workspaceID == graceWorkspace.id })
            #expect(!graceEvents.contains { $0.type == .userUpdated })
            #expect(adaEvents.count == 5)
            #expect(graceEvents.count == 4)
            // Filtering by a foreign id does not reveal anything either.
            let peek = try await grace.call(.get, "events/log?table_id=\(adaTable.id)", as: EventLogPage.self)
            #expect(peek.data.isEmpty)

            // A removed member stops seeing new events of the workspace.
            try await ada.addMember(adaWorkspace.id, user: graceUser.id, role: .viewer)
            #expect(
                try await grace.call(.get, "events/log?workspace_id=\(adaWorkspace.id)", as: EventLogPage.self).data
                    .count > 0
            )
            #expect(
                try await ada.send(.delete, "workspaces/\(adaWorkspace.id)/members/\(graceUser.id)").status
                    == .noContent
            )
            let mark = try await ada.stats().lastEventSeq
            _ = try await ada.createRecord(in: adaTable.id, ["Name": "after removal"])
            #expect(try await grace.events(since: mark).isEmpty)
        }
    }

    @Test("after the log is trimmed, an old since is 410 RESYNC_REQUIRED and a recent one still works")
    func resync() async throws {
        let clock = ManualWallClock()
        try await Harness.withServer(clock: clock) { api, services in
            let (session, _) = try await api.register()
            // A personal access token outlives the eight days the clock moves.
            let pat = try await session.call(
                .post,
                "auth/tokens",
                json: CreateAccessTokenRequest(name: "sync"),
                expect: .created,
                as: AccessToken.self
            )
            let client = api.authorized(try #require(pat.token))
            let (_, _, table) = try await client.scaffold()
            for index in 0..<3 { _ = try await client.createRecord(in: table.id, ["Name": .string("old\(index)")]) }
            let oldHead = try await client.stats().lastEventSeq
            #expect(try await client.events(since: 0).count == Int(oldHead))

            clock.advance(by: 8 * 24 * 3600)
            let recent = [
                try await client.createRecord(in: table.id, ["Name": "new0"]),
                try await client.createRecord(in: table.id, ["Name": "new1"]),
            ]
            let trimmed = try await services.store.trimEvents(olderThan: clock.now.addingTimeInterval(-7 * 24 * 3600))
            #expect(trimmed == Int(oldHead))

            for since in [0, oldHead - 1] {
                let gone = try await client.send(.get, "events/log?since=\(since)")
                expectError(gone, .gone, .resyncRequired, "since=\(since)")
            }
            expectError(try await client.send(.get, "events/log"), .gone, .resyncRequired, "no since")
            let current = try await client.call(.get, "events/log?since=\(oldHead)", as: EventLogPage.self)
            #expect(current.data.map(\.recordID) == recent.map(\.id))
            let later = try await client.call(.get, "events/log?since=\(oldHead + 1)", as: EventLogPage.self)
            #expect(later.data.map(\.recordID) == [recent[1].id])
            // The data itself is untouched by trimming.
            #expect(try await client.allRecords(table.id).count == 5)
        }
    }
}
