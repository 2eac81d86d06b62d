import Foundation
import HTTPTypes
import HummingbirdTesting
import PyAirtableModels
import TestSupport
import Testing

@testable import ReferenceServer

/// Airtable's record routes under `/v0/{base}/{table}`, as pyairtable and airtable.js call them.
@Suite("Airtable v0: records", .timeLimit(.minutes(5)))
struct AirtableRecordsTests {
    typealias Meta = AirtableMetaTests

    /// A JSON object answer.
    static func object(
        _ response: APIResponse,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws
        -> [String: Any]
    {
        try Meta.object(response, sourceLocation: sourceLocation)
    }

    static func records(
        _ response: APIResponse,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws
        -> [[String: Any]]
    {
        #expect(response.status == .ok, "\(response.text)", sourceLocation: sourceLocation)
        let body = try object(response, sourceLocation: sourceLocation)
        return try #require(body["records"] as? [[String: Any]], "\(response.text)", sourceLocation: sourceLocation)
    }

    static func names(_ records: [[String: Any]]) -> [String] {
        records.compactMap { ($0["fields"] as? [String: Any])?["Name"] as? String }
    }

    /// Creates `count` records named `R01`… with Score 1… through `/v0`, 10 a request.
    static func seed(_ client: API, _ path: String, count: Int) async throws {
        for start in stride(from: 1, through: count, by: 10) {
            let items = (start...min(start + 9, count)).map {
                #"{"fields": {"Name": "R\#(String(format: "%02d", $0))", "Score": \#($0)}}"#
            }
            let response = try await client.send(.post, path, raw: #"{"records": [\#(items.joined(separator: ","))]}"#)
            #expect(response.status == .ok, "\(response.text)")
        }
    }

    @Test("create one and many: Airtable's record shape, empty cells left out, the same records under /api/v1")
    func create() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, base, table) = try await client.scaffold()
            let path = "/v0/\(base.id)/\(table.id)"
            let since = try await client.events().last?.seq ?? 0

            let one = try Self.object(
                try await client.send(
                    .post,
                    path,
                    raw: #"{"fields": {"Name": "Alpha", "Score": 0, "Done": false, "Status": "Todo"}}"#
                )
            )
            #expect(Set(one.keys) == ["id", "createdTime", "fields"])
            let id = try #require(one["id"] as? String)
            #expect(id.hasPrefix("rec") && id.count == 17)
            #expect((one["createdTime"] as? String)?.hasSuffix("Z") == true)
            let fields = try #require(one["fields"] as? [String: Any])
            // 0 is a value; false is not shown.
            #expect(Set(fields.keys) == ["Name", "Score", "Status"])
            #expect(fields["Score"] as? Int == 0)

            // Field ids work as keys without any flag; the table by name works too.
            let score = try #require(table.fields.first { $0.name == "Score" })
            let many = try Self.records(
                try await client.send(
                    .post,
                    "/v0/\(base.id)/Tasks/",
                    raw: #"{"records": [{"fields": {"Name": "B", "\#(score.id)": 2}}, {"fields": {"Name": "C"}}]}"#
                )
            )
            #expect(Self.names(many) == ["B", "C"])
            #expect((many[0]["fields"] as? [String: Any])?["Score"] as? Int == 2)

            // The same record, id and cells under /api/v1.
            let record = try await client.call(.get, "records/\(id)", as: PyAirtableModels.Record.self)
            #expect(record.fields["Name"] == "Alpha" && record.fields["Score"] == 0)
            // One event per record, like /api/v1 writes.
            let events = try await client.events(since: since)
            #expect(events.filter { $0.type == .recordCreated }.count == 3)
        }
    }

    @Test("list: pages of pageSize with maxRecords across them, fields[], sort[i], a formula with spaces sent as +")
    func listOptions() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, base, table) = try await client.scaffold()
            let path = "/v0/\(base.id)/\(table.id)"
            try await Self.seed(client, path, count: 30)

            var sizes: [Int] = []
            var seen: [String] = []
            var offset: String?
            repeat {
                var query = "pageSize=10&maxRecords=25"
                if let offset {
                    query += "&offset=" + (offset.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
                }
                let body = try Self.object(try await client.send(.get, "\(path)?\(query)"))
                let records = try #require(body["records"] as? [[String: Any]])
                sizes.append(records.count)
                seen += Self.names(records)
                offset = body["offset"] as? String
            } while offset != nil && sizes.count < 10
            #expect(sizes == [10, 10, 5])
            #expect(seen == (1...25).map { String(format: "R%02d", $0) })

            let sorted = try Self.records(
                try await client.send(
                    .get,
                    "\(path)?fields%5B%5D=Name&sort%5B0%5D%5Bfield%5D=Score&sort%5B0%5D%5Bdirection%5D=desc"
                        + "&filterByFormula=AND%28Score+%3E%3D+28%2C+Name+%21%3D+%27R29%27%29"
                )
            )
            #expect(Self.names(sorted) == ["R30", "R28"])
            #expect(sorted.allSatisfy { Set(($0["fields"] as? [String: Any])?.keys ?? [:].keys) == ["Name"] })

            // returnFieldsByFieldId keys cells by field id.
            let name = try #require(table.fields.first { $0.name == "Name" })
            let byID = try Self.records(
                try await client.send(.get, "\(path)?maxRecords=1&returnFieldsByFieldId=true")
            )
            #expect((byID.first?["fields"] as? [String: Any])?[name.id.rawValue] as? String == "R01")

            // The same through POST listRecords, with a long formula.
            let ids = try Self.records(try await client.send(.get, "\(path)?maxRecords=3")).compactMap {
                $0["id"] as? String
            }
            let terms = (ids + (0..<400).map { _ in RecordID.generate().rawValue }).map { "RECORD_ID()='\($0)'" }
            let formula = "OR(\(terms.joined(separator: ",")))"
            let posted = try Self.records(
                try await client.send(
                    .post,
                    "\(path)/listRecords",
                    raw: String(
                        decoding: try JSONSerialization.data(withJSONObject: [
                            "filterByFormula": formula, "sort": [["field": "Name", "direction": "desc"]],
                        ]),
                        as: UTF8.self
                    )
                )
            )
            #expect(Self.names(posted) == ["R03", "R02", "R01"])
        }
    }

    @Test("a view's filter and sort apply and its hidden fields are still returned; cellFormat=string")
    func viewsAndStrings() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, base, table) = try await client.scaffold()
            let path = "/v0/\(base.id)/\(table.id)"
            try await Self.seed(client, path, count: 5)
            _ = try await client.call(
                .post,
                "tables/\(table.id)/views",
                json: CreateViewRequest(
                    name: "Top",
                    filter: "{Score} >= 3",
                    sort: [SortSpec(field: "Score", direction: .desc)],
                    fields: ["Name"]
                ),
                expect: .created,
                as: View.self
            )
            let viewed = try Self.records(try await client.send(.get, "\(path)?view=Top"))
            #expect(Self.names(viewed) == ["R05", "R04", "R03"])
            #expect((viewed.first?["fields"] as? [String: Any])?["Score"] as? Int == 5)

            let strings = try Self.records(
                try await client.send(.get, "\(path)?maxRecords=1&cellFormat=string&timeZone=utc&userLocale=en-ie")
            )
            #expect((strings.first?["fields"] as? [String: Any])?["Score"] as? String == "1")
        }
    }

    @Test("PATCH merges, PUT replaces, batches by id, upsert creates and updates by merge fields")
    func updates() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, base, table) = try await client.scaffold()
            let path = "/v0/\(base.id)/\(table.id)"
            let created = try Self.object(
                try await client.send(.post, path, raw: #"{"fields": {"Name": "A", "Score": 1}}"#)
            )
            let id = try #require(created["id"] as? String)

            let patched = try Self.object(
                try await client.send(.patch, "\(path)/\(id)", raw: #"{"fields": {"Status": "Done"}}"#)
            )
            #expect(Set((patched["fields"] as? [String: Any])?.keys ?? [:].keys) == ["Name", "Score", "Status"])
            let replaced = try Self.object(
                try await client.send(.put, "\(path)/\(id)", raw: #"{"fields": {"Name": "A2"}}"#)
            )
            #expect(Set((replaced["fields"] as? [String: Any])?.keys ?? [:].keys) == ["Name"])

            let batch = try Self.records(
                try await client.send(
                    .patch,
                    path,
                    raw: #"{"records": [{"id": "\#(id)", "fields": {"Score": 9}}]}"#
                )
            )
            #expect((batch.first?["fields"] as? [String: Any])?["Score"] as? Int == 9)

            let upsert = try Self.object(
                try await client.send(
                    .patch,
                    path,
                    raw: #"""
                        {"performUpsert": {"fieldsToMergeOn": ["Name"]}, "records": [
                          {"fields": {"Name": "A2", "Score": 10}},
                          {"fields": {"Name": "New", "Score": 11}},
                          {"fields": {"Name": null, "Score": 7}}
                        ]}
                        """#
                )
            )
            #expect(upsert["updatedRecords"] as? [String] == [id])
            #expect((upsert["createdRecords"] as? [String])?.count == 2)
            let upserted = try #require(upsert["records"] as? [[String: Any]])
            #expect(upserted.compactMap { ($0["fields"] as? [String: Any])?["Score"] as? Int } == [10, 11, 7])
            #expect(Set(upsert.keys) == ["records", "createdRecords", "updatedRecords"])
        }
    }

    @Test("typecast converts text and adds select choices for an editor; without it, Airtable's 422 types")
    func typecastAndErrors() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (owner, _) = try await api.register("Owner")
            let (editor, editorUser) = try await api.register("Editor")
            let (workspace, base, table) = try await owner.scaffold()
            try await owner.addMember(workspace.id, user: editorUser.id, role: .editor)
            let path = "/v0/\(base.id)/\(table.id)"

            try Meta.expectAirtableError(
                try await editor.send(.post, path, raw: #"{"fields": {"Status": "Blocked"}}"#),
                .unprocessableContent,
                "INVALID_MULTIPLE_CHOICE_OPTIONS"
            )
            try Meta.expectAirtableError(
                try await editor.send(.post, path, raw: #"{"fields": {"Score": "12"}}"#),
                .unprocessableContent,
                "INVALID_VALUE_FOR_COLUMN"
            )
            try Meta.expectAirtableError(
                try await editor.send(.post, path, raw: #"{"fields": {"Nope": 1}}"#),
                .unprocessableContent,
                "UNKNOWN_FIELD_NAME"
            )
            let eleven = (0..<11).map { _ in #"{"fields": {}}"# }.joined(separator: ",")
            try Meta.expectAirtableError(
                try await editor.send(.post, path, raw: #"{"records": [\#(eleven)]}"#),
                .unprocessableContent,
                "INVALID_RECORDS"
            )

            let typed = try Self.object(
                try await editor.send(
                    .post,
                    path,
                    raw: #"{"typecast": true, "fields": {"Status": "Blocked", "Score": "12", "Done": "checked"}}"#
                )
            )
            let fields = try #require(typed["fields"] as? [String: Any])
            #expect(fields["Status"] as? String == "Blocked")
            #expect(fields["Score"] as? Int == 12)
            #expect(fields["Done"] as? Bool == true)
            let schema = try Self.object(try await owner.send(.get, "/v0/meta/bases/\(base.id)/tables"))
            let tables = try #require(schema["tables"] as? [[String: Any]])
            let status = try #require(
                (tables.first?["fields"] as? [[String: Any]])?.first { $0["name"] as? String == "Status" }
            )
            let choices = ((status["options"] as? [String: Any])?["choices"] as? [[String: Any]]) ?? []
            #expect(choices.compactMap { $0["name"] as? String } == ["Todo", "Doing", "Done", "Blocked"])
            _ = table
        }
    }

    @Test("deletes one and many in one transaction; unknown records, viewers and strangers get Airtable's errors")
    func deletesAndAccess() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (owner, _) = try await api.register("Owner")
            let (viewer, viewerUser) = try await api.register("Viewer")
            let (stranger, _) = try await api.register("Stranger")
            let (workspace, base, table) = try await owner.scaffold()
            try await owner.addMember(workspace.id, user: viewerUser.id, role: .viewer)
            let path = "/v0/\(base.id)/\(table.id)"
            try await Self.seed(owner, path, count: 3)
            let ids = try Self.records(try await owner.send(.get, path)).compactMap { $0["id"] as? String }
            #expect(ids.count == 3)

            // The viewer reads, but may not write; a stranger sees nothing.
            #expect(try Self.records(try await viewer.send(.get, path)).count == 3)
            try Meta.expectAirtableError(
                try await viewer.send(.delete, "\(path)/\(ids[0])"),
                .forbidden,
                "INVALID_PERMISSIONS"
            )
            try Meta.expectAirtableError(
                try await stranger.send(.get, path),
                .forbidden,
                "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"
            )
            try Meta.expectAirtableError(
                try await owner.send(.get, "/v0/\(base.id)/Nope"),
                .notFound,
                "TABLE_NOT_FOUND"
            )
            let missing = RecordID.generate().rawValue
            try Meta.expectAirtableError(
                try await owner.send(.get, "\(path)/\(missing)"),
                .notFound,
                "MODEL_ID_NOT_FOUND"
            )
            // All or nothing: one unknown id deletes none.
            try Meta.expectAirtableError(
                try await owner.send(.delete, "\(path)?records%5B%5D=\(ids[0])&records%5B%5D=\(missing)"),
                .notFound,
                "MODEL_ID_NOT_FOUND"
            )
            #expect(try Self.records(try await owner.send(.get, path)).count == 3)

            let one = try Self.object(try await owner.send(.delete, "\(path)/\(ids[0])"))
            #expect(one["id"] as? String == ids[0] && one["deleted"] as? Bool == true)
            let many = try Self.records(
                try await owner.send(.delete, "\(path)?records%5B%5D=\(ids[1])&records%5B%5D=\(ids[2])")
            )
            #expect(many.compactMap { $0["id"] as? String } == [ids[1], ids[2]])
            #expect(try Self.records(try await owner.send(.get, path)).isEmpty)
        }
    }

    @Test("tables by name are percent-decoded after the path is split; offsets and formulas are checked")
    func namesAndBadInput() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, base, _) = try await client.scaffold()
            _ = try await client.createTable(in: base.id, "Scripted / Tasks")
            let path = "/v0/\(base.id)/Scripted%20%2F%20Tasks"
            let created = try Self.object(try await client.send(.post, path, raw: #"{"fields": {"Name": "x"}}"#))
            #expect(created["id"] is String)
            #expect(Self.names(try Self.records(try await client.send(.get, path))) == ["x"])

            try Meta.expectAirtableError(
                try await client.send(.get, "\(path)?offset=garbage"),
                .unprocessableContent,
                "INVALID_OFFSET_VALUE"
            )
            try Meta.expectAirtableError(
                try await client.send(.get, "\(path)?filterByFormula=%7BNope%7D"),
                .unprocessableContent,
                "INVALID_FILTER_BY_FORMULA"
            )
            try Meta.expectAirtableError(
                try await client.send(.get, "\(path)?view=Nope"),
                .unprocessableContent,
                "VIEW_NAME_NOT_FOUND"
            )
            try Meta.expectAirtableError(
                try await client.send(.get, "\(path)?fields%5B%5D=Nope"),
                .unprocessableContent,
                "UNKNOWN_FIELD_NAME"
            )
            // The meta routes keep their own methods beside /v0/{base}/{table}.
            let patch = try await client.send(.patch, "/v0/meta/bases", raw: "{}")
            #expect(patch.status == .methodNotAllowed)
            #expect(patch.headers[.allow] == "GET")
        }
    }

    @Test("timeZone shapes dateTimes as text; bad zones, formats, bodies and sizes get Airtable's error types")
    func formatsAndBodies() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let workspace = try await client.createWorkspace()
            let base = try await client.createBase(in: workspace.id)
            let table = try await client.createTable(
                in: base.id,
                "Events",
                fields: [.init(name: "Name", type: .singleLineText), .init(name: "When", type: .dateTime)]
            )
            let path = "/v0/\(base.id)/\(table.id)"
            _ = try Self.object(
                try await client.send(
                    .post,
                    path,
                    raw: #"{"fields": {"Name": "late", "When": "2026-01-05T23:30:00.000Z"}}"#
                )
            )
            let tokyo = try Self.records(try await client.send(.get, "\(path)?cellFormat=string&timeZone=Asia%2FTokyo"))
            #expect((tokyo.first?["fields"] as? [String: Any])?["When"] as? String == "2026-01-06 08:30")
            let utc = try Self.records(try await client.send(.get, "\(path)?cellFormat=string&timeZone=utc"))
            #expect((utc.first?["fields"] as? [String: Any])?["When"] as? String == "2026-01-05 23:30")
            let json = try Self.records(try await client.send(.get, path))
            #expect((json.first?["fields"] as? [String: Any])?["When"] as? String == "2026-01-05T23:30:00.000Z")

            try Meta.expectAirtableError(
                try await client.send(.get, "\(path)?cellFormat=string&timeZone=Mars%2FOlympus"),
                .unprocessableContent,
                "INVALID_TIME_ZONE"
            )
            try Meta.expectAirtableError(
                try await client.send(.get, "\(path)?cellFormat=xml"),
                .unprocessableContent,
                "INVALID_REQUEST_UNKNOWN"
            )
            try Meta.expectAirtableError(
                try await client.send(.post, path, raw: "{}"),
                .unprocessableContent,
                "INVALID_REQUEST_MISSING_FIELDS"
            )
            let malformed = try await client.send(.post, path, raw: #"{"fields": "#)
            #expect(malformed.status == .badRequest || malformed.status == .unprocessableContent)
            #expect(
                (try Meta.object(malformed)["error"] as? [String: Any])?["type"] as? String == "INVALID_REQUEST_BODY"
            )
            let huge = String(repeating: "x", count: 300 * 1024)
            try Meta.expectAirtableError(
                try await client.send(.post, path, raw: #"{"fields": {"Name": "\#(huge)"}}"#),
                .contentTooLarge,
                "REQUEST_TOO_LARGE"
            )
            #expect(try Self.records(try await client.send(.get, path)).count == 1)
        }
    }
}

/// `pyat serve --airtable-limits`: Airtable's 5 requests a second per base, on the injected clock.
@Suite("Airtable v0: the rate limit", .timeLimit(.minutes(5)))
struct AirtableRateLimitTests {
    typealias Meta = AirtableMetaTests

    @Test(
        "past 5 requests a second to a base: 429 TOO_MANY_REQUESTS with Retry-After, and the refused POST wrote nothing"
    )
    func perBase() async throws {
        let clock = ManualWallClock()
        let limited: (inout ServerConfiguration) -> Void = { $0.airtable.enforceRateLimit = true }
        try await Harness.withServer(clock: clock, via: .router, configure: limited) { api, _ in
            let (client, _) = try await api.register()
            let (stranger, _) = try await api.register("Stranger")
            let (_, base, table) = try await client.scaffold()
            let (_, other, _) = try await client.scaffold()
            let path = "/v0/\(base.id)/\(table.id)"
            // Someone who cannot see the base gets 403s and does not use up its allowance.
            for _ in 0..<10 {
                #expect(try await stranger.send(.get, path).status == .forbidden)
            }
            for index in 0..<5 {
                let response = try await client.send(.post, path, raw: #"{"fields": {"Name": "r\#(index)"}}"#)
                #expect(response.status == .ok, "\(response.text)")
            }
            let refused = try await client.send(.post, path, raw: #"{"fields": {"Name": "refused"}}"#)
            try Meta.expectAirtableError(refused, .tooManyRequests, "TOO_MANY_REQUESTS")
            #expect(refused.headers[.retryAfter] == "1")
            // The meta route of the same base counts against it too; another base has its own allowance.
            try Meta.expectAirtableError(
                try await client.send(.get, "/v0/meta/bases/\(base.id)/tables"),
                .tooManyRequests,
                "TOO_MANY_REQUESTS"
            )
            #expect(try await client.send(.get, "/v0/meta/bases/\(other.id)/tables").status == .ok)
            // /api/v1 is not Airtable's API and is not limited; it sees the 5 records and not the refused one.
            let names = try await client.recordsPage(table.id).data.compactMap { $0.fields["Name"]?.displayText }
            #expect(Set(names) == Set((0..<5).map { "r\($0)" }))

            // A second later the base may make 5 more.
            clock.advance(by: 1.0)
            for _ in 0..<5 {
                #expect(try await client.send(.get, "\(path)?maxRecords=1").status == .ok)
            }
            #expect(try await client.send(.get, path).status == .tooManyRequests)
            // Half a second gives back 2.5 requests: 2 more, then refused.
            clock.advance(by: 0.5)
            #expect(try await client.send(.get, path).status == .ok)
            #expect(try await client.send(.get, path).status == .ok)
            #expect(try await client.send(.get, path).status == .tooManyRequests)
        }
    }

    @Test(
        "without --airtable-limits a burst of 30 is answered; 11 records a write and 101 a page are refused either way"
    )
    func offByDefault() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, base, table) = try await client.scaffold()
            let path = "/v0/\(base.id)/\(table.id)"
            for _ in 0..<30 {
                #expect(try await client.send(.get, "\(path)?maxRecords=1").status == .ok)
            }
            let eleven = (0..<11).map { #"{"fields": {"Name": "n\#($0)"}}"# }.joined(separator: ",")
            try Meta.expectAirtableError(
                try await client.send(.post, path, raw: #"{"records": [\#(eleven)]}"#),
                .unprocessableContent,
                "INVALID_RECORDS"
            )
            try Meta.expectAirtableError(
                try await client.send(.get, "\(path)?pageSize=101"),
                .unprocessableContent,
                "INVALID_REQUEST_UNKNOWN"
            )
            #expect(try await Self.count(client, path) == 0)
        }
    }

    static func count(_ client: API, _ path: String) async throws -> Int {
        try AirtableRecordsTests.records(try await client.send(.get, path)).count
    }
}
