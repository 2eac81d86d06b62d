import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import PyAirtableModels
import ReferenceServerTesting
import TestSupport
import Testing

@testable import ReferenceServer

/// Airtable's webhooks under `/v0/bases/{base}/webhooks`: payloads by cursor, one per write, pings.
@Suite("Airtable v0: webhooks", .timeLimit(.minutes(5)))
struct AirtableWebhookTests {
    typealias Meta = AirtableMetaTests

    static func object(
        _ response: APIResponse,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws
        -> [String: Any]
    {
        try Meta.object(response, sourceLocation: sourceLocation)
    }

    static func spec(_ types: [String] = ["tableData"], extra: String = "") -> String {
        let list = types.map { "\"\($0)\"" }.joined(separator: ",")
        return #"{"options": {"filters": {"dataTypes": [\#(list)]\#(extra)}}}"#
    }

    static func payloads(
        _ client: API,
        _ base: BaseID,
        _ hook: String,
        query: String = ""
    ) async throws
        -> [String: Any]
    {
        try object(try await client.send(.get, "/v0/bases/\(base)/webhooks/\(hook)/payloads\(query)"))
    }

    @Test("one payload per write with Airtable's shape, by cursor, with limit and mightHaveMore")
    func payloadsByCursor() async throws {
        let clock = ManualWallClock()
        try await Harness.withServer(clock: clock, via: .router) { api, _ in
            let (client, user) = try await api.register()
            let (_, base, table) = try await client.scaffold()
            let created = try Self.object(
                try await client.send(
                    .post,
                    "/v0/bases/\(base.id)/webhooks",
                    raw: #"{"notificationUrl": null, "specification": \#(Self.spec(extra: ""))}"#
                )
            )
            let hook = try #require(created["id"] as? String)
            #expect(hook.hasPrefix("ach") && hook.count == 17)
            let secretText = try #require(created["macSecretBase64"] as? String)
            let secret = try #require(Data(base64Encoded: secretText))
            #expect(secret.count == 32)
            #expect(
                created["expirationTime"] as? String == Timestamp.format(clock.now.addingTimeInterval(7 * 24 * 3600))
            )

            let path = "/v0/\(base.id)/\(table.id)"
            let score = try #require(table.fields.first { $0.name == "Score" })
            let name = try #require(table.fields.first { $0.name == "Name" })
            // A batch of three is one write: one payload.
            let batch = try AirtableRecordsTests.records(
                try await client.send(
                    .post,
                    path,
                    raw:
                        #"{"records": [{"fields": {"Name": "a", "Score": 1}}, {"fields": {"Name": "b"}}, {"fields": {"Name": "c"}}]}"#
                )
            )
            let ids = batch.compactMap { $0["id"] as? String }
            // A change: only the changed cell, by field id.
            _ = try await client.send(.patch, "\(path)/\(ids[0])", raw: #"{"fields": {"Score": 2}}"#)
            // A write through /api/v1 is a payload too.
            _ = try await client.send(.delete, "records/\(ids[1])")

            let page = try await Self.payloads(client, base.id, hook)
            let payloads = try #require(page["payloads"] as? [[String: Any]])
            #expect(payloads.count == 3)
            #expect(page["cursor"] as? Int == 4 && page["mightHaveMore"] as? Bool == false)
            let first = try #require(payloads.first)
            #expect(first["payloadFormat"] as? String == "v0" && first["baseTransactionNumber"] is Int)
            #expect(first["timestamp"] as? String == Timestamp.format(clock.now))
            let source = (first["actionMetadata"] as? [String: Any])?["sourceMetadata"] as? [String: Any]
            #expect((source?["user"] as? [String: Any])?["id"] as? String == user.id.rawValue)
            let tables = try #require(first["changedTablesById"] as? [String: [String: Any]])
            let createdRecords = try #require(
                tables[table.id.rawValue]?["createdRecordsById"] as? [String: [String: Any]]
            )
            #expect(Set(createdRecords.keys) == Set(ids))
            let cells = createdRecords[ids[0]]?["cellValuesByFieldId"] as? [String: Any]
            #expect(cells?[name.id.rawValue] as? String == "a" && cells?[score.id.rawValue] as? Int == 1)
            let changed =
                (payloads[1]["changedTablesById"] as? [String: [String: Any]])?[table.id.rawValue]?[
                    "changedRecordsById"
                ] as? [String: [String: Any]]
            let current = (changed?[ids[0]]?["current"] as? [String: Any])?["cellValuesByFieldId"] as? [String: Any]
            #expect(current?.count == 1 && current?[score.id.rawValue] as? Int == 2)
            let destroyed =
                (payloads[2]["changedTablesById"] as? [String: [String: Any]])?[table.id.rawValue]?[
                    "destroyedRecordIds"
                ] as? [String]
            #expect(destroyed == [ids[1]])

            // Cursors: from 2, one at a time; past the end, the same cursor back and nothing.
            let second = try await Self.payloads(client, base.id, hook, query: "?cursor=2&limit=1")
            #expect((second["payloads"] as? [Any])?.count == 1)
            #expect(second["cursor"] as? Int == 3 && second["mightHaveMore"] as? Bool == true)
            let end = try await Self.payloads(client, base.id, hook, query: "?cursor=4")
            #expect((end["payloads"] as? [Any])?.isEmpty == true && end["cursor"] as? Int == 4)
            try Meta.expectAirtableError(
                try await client.send(.get, "/v0/bases/\(base.id)/webhooks/\(hook)/payloads?limit=51"),
                .unprocessableContent,
                "INVALID_REQUEST_UNKNOWN"
            )

            // A field change is not tableData; a hook that asks for tableFields sees it.
            let fieldsHook = try #require(
                try Self.object(
                    try await client.send(
                        .post,
                        "/v0/bases/\(base.id)/webhooks",
                        raw: #"{"specification": \#(Self.spec(["tableFields"]))}"#
                    )
                )["id"] as? String
            )
            _ = try await client.call(
                .post,
                "tables/\(table.id)/fields",
                json: CreateFieldRequest(name: "Notes", type: .multilineText),
                expect: .created,
                as: Field.self
            )
            #expect(try await Self.payloads(client, base.id, hook, query: "?cursor=4")["payloads"] as? [Any] != nil)
            #expect(
                (try await Self.payloads(client, base.id, hook, query: "?cursor=4")["payloads"] as? [Any])?.isEmpty
                    == true
            )
            let fieldPayloads = try #require(
                try await Self.payloads(client, base.id, fieldsHook)["payloads"] as? [[String: Any]]
            )
            #expect(fieldPayloads.count == 1)
            let createdFields =
                (fieldPayloads.first?["changedTablesById"] as? [String: [String: Any]])?[table.id.rawValue]?[
                    "createdFieldsById"
                ] as? [String: [String: Any]]
            #expect(createdFields?.values.first?["name"] as? String == "Notes")

            // The list: Airtable's keys, the cursor for the next payload.
            let list = try #require(
                try Self.object(try await client.send(.get, "/v0/bases/\(base.id)/webhooks"))["webhooks"]
                    as? [[String: Any]]
            )
            let listed = try #require(list.first { $0["id"] as? String == hook })
            #expect(listed["cursorForNextPayload"] as? Int == 4 && listed["isHookEnabled"] as? Bool == true)
            #expect(listed["areNotificationsEnabled"] as? Bool == true && listed["notificationUrl"] is NSNull)
            #expect(((listed["specification"] as? [String: Any])?["options"] as? [String: Any]) != nil)

            // Notifications off and on again; `enable` must be a boolean.
            let off = try await client.send(
                .post,
                "/v0/bases/\(base.id)/webhooks/\(hook)/enableNotifications",
                raw: #"{"enable": false}"#
            )
            #expect(off.status == .ok && off.text == "{}")
            let disabled = try #require(
                (try Self.object(try await client.send(.get, "/v0/bases/\(base.id)/webhooks"))["webhooks"]
                    as? [[String: Any]])?.first { $0["id"] as? String == hook }
            )
            #expect(disabled["areNotificationsEnabled"] as? Bool == false)
            try Meta.expectAirtableError(
                try await client.send(
                    .post,
                    "/v0/bases/\(base.id)/webhooks/\(hook)/enableNotifications",
                    raw: #"{"enable": "yes"}"#
                ),
                .unprocessableContent,
                "INVALID_REQUEST_UNKNOWN"
            )

            // Refresh moves the expiry (ten minutes on; the session's token lives fifteen); delete removes it.
            clock.advance(by: 600)
            let refreshed = try Self.object(
                try await client.send(.post, "/v0/bases/\(base.id)/webhooks/\(hook)/refresh")
            )
            #expect(
                refreshed["expirationTime"] as? String == Timestamp.format(clock.now.addingTimeInterval(7 * 24 * 3600))
            )
            #expect(try await client.send(.delete, "/v0/bases/\(base.id)/webhooks/\(hook)").status == .ok)
            try Meta.expectAirtableError(
                try await client.send(.get, "/v0/bases/\(base.id)/webhooks/\(hook)/payloads"),
                .notFound,
                "NOT_FOUND"
            )
        }
    }

    @Test("previous cell values when asked, recordChangeScope, watched fields; editors and strangers are refused")
    func filtersAndAccess() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (editor, editorUser) = try await api.register("Editor")
            let (stranger, _) = try await api.register("Stranger")
            let (workspace, base, table) = try await client.scaffold()
            try await client.addMember(workspace.id, user: editorUser.id, role: .editor)
            let other = try await client.createTable(in: base.id, "Other")
            let score = try #require(table.fields.first { $0.name == "Score" })
            let extra =
                #", "recordChangeScope": "\#(table.id)", "watchDataInFieldIds": ["\#(score.id)"]}, "includes": {"includePreviousCellValues": true"#
            let hook = try #require(
                try Self.object(
                    try await client.send(
                        .post,
                        "/v0/bases/\(base.id)/webhooks",
                        raw: #"{"specification": \#(Self.spec(extra: extra))}"#
                    )
                )["id"] as? String
            )
            let record = try await client.createRecord(in: table.id, ["Name": "a", "Score": 1])
            _ = try await client.createRecord(in: other.id, ["Name": "elsewhere"])
            _ = try await editor.send(
                .patch,
                "/v0/\(base.id)/\(table.id)/\(record.id)",
                raw: #"{"fields": {"Name": "b"}}"#
            )
            _ = try await editor.send(
                .patch,
                "/v0/\(base.id)/\(table.id)/\(record.id)",
                raw: #"{"fields": {"Score": 5}}"#
            )
            let payloads = try #require(try await Self.payloads(client, base.id, hook)["payloads"] as? [[String: Any]])
            // The create (it has a Score) and the Score change; not the other table, not the Name change.
            #expect(payloads.count == 2)
            let change =
                (payloads.last?["changedTablesById"] as? [String: [String: Any]])?[table.id.rawValue]?[
                    "changedRecordsById"
                ] as? [String: [String: Any]]
            let previous =
                (change?[record.id.rawValue]?["previous"] as? [String: Any])?["cellValuesByFieldId"]
                as? [String: Any]
            #expect(previous?[score.id.rawValue] as? Int == 1)

            // One write that changes a record twice is one change: the later cells, the earlier previous.
            let name = try #require(table.fields.first { $0.name == "Name" })
            let twice = try await client.send(
                .patch,
                "/v0/\(base.id)/\(table.id)",
                raw:
                    #"{"records": [{"id": "\#(record.id)", "fields": {"Score": 6}}, {"id": "\#(record.id)", "fields": {"Name": "c"}}]}"#
            )
            #expect(twice.status == .ok, "\(twice.text)")
            let all = try #require(try await Self.payloads(client, base.id, hook)["payloads"] as? [[String: Any]])
            #expect(all.count == 3)
            let merged =
                ((all.last?["changedTablesById"] as? [String: [String: Any]])?[table.id.rawValue]?[
                    "changedRecordsById"
                ] as? [String: [String: Any]])?[record.id.rawValue]
            let cells = (merged?["current"] as? [String: Any])?["cellValuesByFieldId"] as? [String: Any]
            #expect(cells?[score.id.rawValue] as? Int == 6 && cells?[name.id.rawValue] as? String == "c")
            let before = (merged?["previous"] as? [String: Any])?["cellValuesByFieldId"] as? [String: Any]
            #expect(before?[score.id.rawValue] as? Int == 5 && before?[name.id.rawValue] as? String == "b")

            try Meta.expectAirtableError(
                try await editor.send(.get, "/v0/bases/\(base.id)/webhooks"),
                .forbidden,
                "INVALID_PERMISSIONS"
            )
            try Meta.expectAirtableError(
                try await stranger.send(.get, "/v0/bases/\(base.id)/webhooks"),
                .forbidden,
                "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"
            )
            try Meta.expectAirtableError(
                try await client.send(.post, "/v0/bases/\(base.id)/webhooks", raw: #"{"specification": {}}"#),
                .unprocessableContent,
                "INVALID_REQUEST_UNKNOWN"
            )
            // Every member of the specification is checked against its declared type.
            for extra in [
                #", "changeTypes": ["add", "nope"]"#, #", "changeTypes": "add""#, #", "recordChangeScope": 3"#,
                #", "watchDataInFieldIds": [1]"#,
            ] {
                try Meta.expectAirtableError(
                    try await client.send(
                        .post,
                        "/v0/bases/\(base.id)/webhooks",
                        raw: #"{"specification": \#(Self.spec(extra: extra))}"#
                    ),
                    .unprocessableContent,
                    "INVALID_REQUEST_UNKNOWN"
                )
            }
            try Meta.expectAirtableError(
                try await client.send(
                    .post,
                    "/v0/bases/\(base.id)/webhooks",
                    raw:
                        #"{"specification": {"options": {"filters": {"dataTypes": ["tableData"]}, "includes": {"includePreviousCellValues": "yes"}}}}"#
                ),
                .unprocessableContent,
                "INVALID_REQUEST_UNKNOWN"
            )
            // Airtable's 10 a base.
            for _ in 0..<9 {
                _ = try await client.send(
                    .post,
                    "/v0/bases/\(base.id)/webhooks",
                    raw: #"{"specification": \#(Self.spec())}"#
                )
            }
            try Meta.expectAirtableError(
                try await client.send(
                    .post,
                    "/v0/bases/\(base.id)/webhooks",
                    raw: #"{"specification": \#(Self.spec())}"#
                ),
                .unprocessableContent,
                "INVALID_REQUEST_UNKNOWN"
            )
        }
    }

    @Test("a write pings the notification URL with X-Airtable-Content-MAC; failures are retried and reported")
    func pings() async throws {
        let firstFails: @Sendable (Int) async -> Int = { index in index == 0 ? 500 : 200 }
        try await WebhookReceiver.withRunning(respond: firstFails) { receiver in
            let configure: (inout ServerConfiguration) -> Void = {
                $0.webhooks.allowLoopbackTargets = true
                $0.airtable.maximumPingRetries = 3
            }
            let clock = ManualWallClock()
            try await Harness.withServer(clock: clock, via: .router, configure: configure) { api, services in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await AirtableWebhookPinger(services: services).run() }
                    defer { group.cancelAll() }
                    let (client, _) = try await api.register()
                    let (_, base, table) = try await client.scaffold()
                    let created = try Self.object(
                        try await client.send(
                            .post,
                            "/v0/bases/\(base.id)/webhooks",
                            raw: #"{"notificationUrl": "\#(receiver.url)", "specification": \#(Self.spec())}"#
                        )
                    )
                    let hook = try #require(created["id"] as? String)
                    let secretText = try #require(created["macSecretBase64"] as? String)
                    let secret = try #require(Data(base64Encoded: secretText))
                    _ = try await client.createRecord(in: table.id, ["Name": "ping me"])

                    // The first ping gets a 500; the retry, due 5 s later on the server's clock, succeeds.
                    try await receiver.waitFor { $0.count >= 1 }
                    let failed = try await Self.waitForResult(client, base.id, hook) { $0["success"] as? Bool == false }
                    #expect(failed["willBeRetried"] as? Bool == true)
                    clock.advance(by: 6)
                    // Something must wake the worker once the clock moved: any commit does.
                    _ = try await client.createRecord(in: table.id, ["Name": "second"])
                    try await receiver.waitFor { $0.count >= 2 }
                    _ = try await Self.waitForResult(client, base.id, hook) { $0["success"] as? Bool == true }

                    for delivery in receiver.deliveries {
                        let body = try #require(try JSONSerialization.jsonObject(with: delivery.body) as? [String: Any])
                        #expect((body["base"] as? [String: Any])?["id"] as? String == base.id.rawValue)
                        #expect((body["webhook"] as? [String: Any])?["id"] as? String == hook)
                        #expect(body["timestamp"] is String)
                        let mac = HMAC<SHA256>.authenticationCode(for: delivery.body, using: SymmetricKey(data: secret))
                        let expected = "hmac-sha256=" + mac.map { String(format: "%02x", $0) }.joined()
                        #expect(delivery.headers["x-airtable-content-mac"] == expected)
                    }
                    let listed = try #require(
                        (try Self.object(try await client.send(.get, "/v0/bases/\(base.id)/webhooks"))["webhooks"]
                            as? [[String: Any]])?.first
                    )
                    #expect(listed["lastSuccessfulNotificationTime"] is String)
                }
            }
        }
    }

    /// Waits (bounded) until the webhook's `lastNotificationResult` satisfies `condition`.
    static func waitForResult(
        _ client: API,
        _ base: BaseID,
        _ hook: String,
        _ condition: ([String: Any]) -> Bool
    ) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let list =
                try object(try await client.send(.get, "/v0/bases/\(base)/webhooks"))["webhooks"] as? [[String: Any]]
            if let result = list?.first(where: { $0["id"] as? String == hook })?["lastNotificationResult"]
                as? [String: Any],
                condition(result)
            {
                return result
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("the webhook's lastNotificationResult never matched")
        throw CancellationError()
    }
}
