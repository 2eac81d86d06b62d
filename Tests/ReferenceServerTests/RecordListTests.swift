import Foundation
import HTTPTypes
import HummingbirdTesting
import PyAirtableModels
import Synchronization
import Testing

@testable import ReferenceServer

@Suite("Records list: paging, projection, sort, views, formula filters and cursors", .timeLimit(.minutes(15)))
struct RecordListTests {
    // MARK: Page size

    @Test("page_size defaults to 100; the last page has no cursor")
    func defaultPageSize() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let seeded = try await client.seed(
                table.id,
                (0..<150).map { ["Name": .string("r\($0)"), "Score": .number(Double($0))] }
            )
            let first = try await client.recordsPage(table.id)
            #expect(first.data.count == 100)
            let cursor = try #require(first.nextCursor)
            let second = try await client.recordsPage(table.id, "cursor=\(queryValue(cursor))")
            #expect(second.data.count == 50)
            #expect(second.nextCursor == nil)
            // Unsorted lists come in creation order.
            #expect((first.data + second.data).map(\.id) == seeded.map(\.id))

            // The JSON always carries next_cursor, null on the last page.
            let raw = try await client.send(.get, "tables/\(table.id)/records?page_size=1000")
            #expect(raw.text.contains(#""next_cursor":null"#))
        }
    }

    @Test("page_size accepts 1 through 1000", arguments: [1, 7, 149, 150, 151, 1000])
    func pageSizes(size: Int) async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let seeded = try await client.seed(table.id, (0..<150).map { ["Score": .number(Double($0))] })
            let first = try await client.recordsPage(table.id, "page_size=\(size)")
            #expect(first.data.count == min(size, 150))
            #expect((first.nextCursor != nil) == (size < 150))
            let all = try await client.allRecords(table.id, "page_size=\(size)")
            #expect(all.map(\.id) == seeded.map(\.id))
        }
    }

    @Test(
        "page_size 0, 1001, -1, 'abc' or empty is 422 VALIDATION_ERROR",
        arguments: ["0", "1001", "-1", "abc", "", "1.5"]
    )
    func badPageSize(value: String) async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let response = try await client.send(.get, "tables/\(table.id)/records?page_size=\(queryValue(value))")
            #expect(
                expectError(response, .unprocessableContent, .validation, "page_size=\(value)")?.field == "page_size"
            )
        }
    }

    // MARK: Projection and sort

    @Test("fields projects the cells: a comma list, repeated parameters or fields[]")
    func projection() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            _ = try await client.seed(
                table.id,
                [
                    ["Name": "a", "Score": 1, "Status": "Done", "Done": true],
                    ["Name": "b", "Status": "Todo"],
                ]
            )
            for query in [
                "fields=\(queryValue("Name,Score"))", "fields=Name&fields=Score", "fields[]=Name&fields[]=Score",
            ] {
                let page = try await client.recordsPage(table.id, query)
                #expect(page.data.map(\.fields) == [["Name": "a", "Score": 1], ["Name": "b"]], "\(query)")
            }
            let one = try await client.recordsPage(table.id, "fields=Status")
            #expect(one.data.map(\.fields) == [["Status": "Done"], ["Status": "Todo"]])
            let unknown = try await client.send(.get, "tables/\(table.id)/records?fields=\(queryValue("Name,Ghost"))")
            #expect(expectError(unknown, .unprocessableContent, .validation)?.message.contains("Ghost") == true)
        }
    }

    @Test("sort ascending and descending: blanks first ascending, last descending; ties in creation order")
    func sort() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let r = try await client.seed(
                table.id,
                [
                    ["Name": "c", "Score": 3, "Status": "Todo"],
                    ["Name": "a", "Status": "Done"],
                    ["Name": "e", "Score": 1, "Status": "Done"],
                    ["Name": "b", "Score": 2, "Status": "Todo"],
                    ["Score": 2, "Status": "Doing"],
                    ["Name": "d", "Score": 10],
                ]
            )
            let ascending = try await client.allRecords(table.id, "sort=Score:asc")
            #expect(ascending.map(\.id) == [r[1].id, r[2].id, r[3].id, r[4].id, r[0].id, r[5].id])
            let descending = try await client.allRecords(table.id, "sort=Score:desc")
            #expect(descending.map(\.id) == [r[5].id, r[0].id, r[3].id, r[4].id, r[2].id, r[1].id])
            let byName = try await client.allRecords(table.id, "sort=Name")
            #expect(byName.map(\.id) == [r[4].id, r[1].id, r[3].id, r[0].id, r[5].id, r[2].id])
            let twoKeys = try await client.allRecords(table.id, "sort=\(queryValue("Status:asc,Score:desc"))")
            #expect(twoKeys.map(\.id) == [r[5].id, r[4].id, r[2].id, r[1].id, r[0].id, r[3].id])
            // The same orders hold when paging one record at a time (the cursor keeps the sort keys).
            #expect(
                try await client.allRecords(table.id, "sort=Score:desc&page_size=1").map(\.id) == descending.map(\.id)
            )
            #expect(
                try await client.allRecords(table.id, "sort=Score:asc&page_size=2").map(\.id) == ascending.map(\.id)
            )
            #expect(
                try await client.allRecords(table.id, "sort=\(queryValue("Status:asc,Score:desc"))&page_size=1").map(
                    \.id
                )
                    == twoKeys.map(\.id)
            )

            let unknown = try await client.send(.get, "tables/\(table.id)/records?sort=Nope:asc")
            #expect(expectError(unknown, .unprocessableContent, .validation)?.message.contains("Nope") == true)
            let direction = try await client.send(.get, "tables/\(table.id)/records?sort=Score:sideways")
            #expect(expectError(direction, .unprocessableContent, .validation)?.field == "sort")
        }
    }

    // MARK: Views

    @Test("a view applies its sort and visible fields; by name or id; an explicit sort overrides it")
    func viewSortAndFields() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let r = try await client.seed(
                table.id,
                [
                    ["Name": "a", "Score": 2, "Status": "Done"],
                    ["Name": "b", "Score": 5, "Status": "Todo"],
                    ["Name": "c", "Score": 1, "Status": "Done"],
                ]
            )
            let view = try await client.call(
                .post,
                "tables/\(table.id)/views",
                json: CreateViewRequest(
                    name: "Top scores",
                    sort: [.init(field: "Score", direction: .desc)],
                    fields: ["Name", "Score"]
                ),
                expect: .created,
                as: View.self
            )
            for reference in [view.name, view.id.rawValue] {
                let page = try await client.recordsPage(table.id, "view=\(queryValue(reference))")
                #expect(page.data.map(\.id) == [r[1].id, r[0].id, r[2].id], "\(reference)")
                #expect(page.data.allSatisfy { Set($0.fields.keys) == ["Name", "Score"] }, "\(reference)")
            }
            let resorted = try await client.recordsPage(table.id, "view=\(view.id)&sort=Name:asc")
            #expect(resorted.data.map(\.id) == [r[0].id, r[1].id, r[2].id])
            let reprojected = try await client.recordsPage(table.id, "view=\(view.id)&fields=Status")
            #expect(reprojected.data.map(\.fields) == [["Status": "Todo"], ["Status": "Done"], ["Status": "Done"]])
            let missing = try await client.send(.get, "tables/\(table.id)/records?view=Nope")
            expectError(missing, .unprocessableContent, .validation)
        }
    }

    @Test("a view applies its filter, and a filter parameter narrows it further")
    func viewFilter() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let r = try await client.seed(table.id, Self.filterRows)
            let view = try await client.call(
                .post,
                "tables/\(table.id)/views",
                json: CreateViewRequest(
                    name: "High",
                    filter: "{Score} > 3",
                    sort: [.init(field: "Score", direction: .desc)]
                ),
                expect: .created,
                as: View.self
            )
            let page = try await client.recordsPage(table.id, "view=\(view.id)")
            #expect(page.data.map(\.id) == [r[0].id, r[2].id, r[6].id])
            let narrowed = try await client.recordsPage(
                table.id,
                "view=\(view.id)&filter=\(queryValue("{Status} = 'Done'"))"
            )
            #expect(narrowed.data.map(\.id) == [r[0].id])
        }
    }

    // MARK: Formula filters

    /// Name, Status, Score, Done — chosen so each formula below matches a distinct set.
    static let filterRows: [[String: FieldValue]] = [
        ["Name": "alpha", "Status": "Done", "Score": 5, "Done": true],  // 0
        ["Name": "box", "Status": "Done", "Score": 1, "Done": true],  // 1
        ["Name": "xenon", "Status": "Doing", "Score": 4],  // 2
        ["Name": "delta", "Status": "Todo", "Score": 3],  // 3
        ["Status": "Done", "Score": 2],  // 4
        ["Name": "max"],  // 5
        ["Name": "echo", "Status": "Todo", "Score": 3.5],  // 6
    ]

    @Test(
        "filter formulas return exactly the matching records",
        arguments: [
            ("{Score} > 3", [0, 2, 6]),
            ("AND({Status} = 'Done', {Score} >= 2)", [0, 4]),
            ("{Name} = BLANK()", [4]),
            ("OR({Status} = 'Todo', {Score} = 5)", [0, 3, 6]),
            ("FIND('x', {Name})", [1, 2, 5]),
            ("{Done}", [0, 1]),
            ("NOT({Status} = 'Done')", [2, 3, 5, 6]),
            ("AND({Score} >= 3, {Score} < 5)", [2, 3, 6]),
            // Airtable's bare field names, as pyairtable writes them.
            ("Score > 3", [0, 2, 6]),
            ("AND(Status = 'Done', Score >= 2)", [0, 4]),
            ("Name != 'x'", [0, 1, 2, 3, 4, 5, 6]),
        ]
    )
    func filters(formula: String, expected: [Int]) async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let r = try await client.seed(table.id, Self.filterRows)
            let matched = try await client.allRecords(table.id, "filter=\(queryValue(formula))")
            #expect(matched.map(\.id) == expected.map { r[$0].id }, "\(formula)")
            // Paging through the filtered rows one at a time gives the same records.
            let paged = try await client.allRecords(table.id, "filter=\(queryValue(formula))&page_size=1")
            #expect(paged.map(\.id) == expected.map { r[$0].id }, "\(formula), page_size=1")
        }
    }

    @Test(
        "Airtable's formulas: dateTimes compared as instants and read as text, checkbox = TRUE(), escapes, and 500 record ids in one OR"
    )
    func airtableFormulas() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, base, _) = try await client.scaffold()
            let table = try await client.createTable(
                in: base.id,
                "Airtable",
                fields: [.singleLineText("Name"), .dateTime("When"), .checkbox("Done"), .number("Score")]
            )
            var rows: [[String: FieldValue]] = (0..<1_000).map { index in
                ["Name": .string("n\(index)"), "When": "2026-01-01T00:00:00.000Z", "Score": .number(Double(index))]
            }
            rows[7] = ["Name": "it's", "When": "2026-12-05T10:20:30.000Z", "Done": true]
            let r = try await client.seed(table.id, rows)
            func matching(_ formula: String) async throws -> [RecordID] {
                try await client.allRecords(table.id, "filter=\(queryValue(formula))&page_size=1000").map(\.id)
            }
            // The same instant written with another offset, and a dateTime used as text.
            #expect(try await matching("{When} = DATETIME_PARSE('2026-12-05T11:20:30+01:00')") == [r[7].id])
            #expect(try await matching("FIND('2026-12-05', {When})") == [r[7].id])
            #expect(try await matching("IS_AFTER(When, '2026-06-01')") == [r[7].id])
            #expect(try await matching("Done = TRUE()") == [r[7].id])
            #expect(try await matching(#"Name = 'it\'s'"#) == [r[7].id])
            #expect(try await matching("AND(Name != 'n1', Score < 3)").count == 3, "n0, n2 and the blank score of it's")
            // 500 ids in one OR, as pyairtable sends for table.all(formula=…) over a set of records.
            let wanted = stride(from: 0, to: 1_000, by: 2).map { r[$0].id }
            let anyOf = "OR(" + wanted.map { "RECORD_ID()='\($0)'" }.joined(separator: ",") + ")"
            #expect(anyOf.utf8.count > 15_000)
            #expect(try await matching(anyOf) == wanted)
        }
    }

    @Test("a filter matching few of many records still fills pages and ends with a null cursor")
    func sparseFilter() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let rows: [[String: FieldValue]] = (0..<600).map { index in
                ["Name": .string("r\(index)"), "Score": .number(index % 100 == 0 ? 1000 : Double(index % 7))]
            }
            let r = try await client.seed(table.id, rows)
            let expected = r.enumerated().filter { $0.offset % 100 == 0 }.map(\.element.id)
            let first = try await client.recordsPage(table.id, "filter=\(queryValue("{Score} > 100"))&page_size=4")
            #expect(first.data.map(\.id) == Array(expected.prefix(4)))
            #expect(first.nextCursor != nil)
            let all = try await client.allRecords(table.id, "filter=\(queryValue("{Score} > 100"))&page_size=4")
            #expect(all.count == expected.count)
            if all.count == expected.count { #expect(all.map(\.id) == expected) }
        }
    }

    @Test("a malformed formula is 422 with its position")
    func badFormula() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let response = try await client.send(
                .get,
                "tables/\(table.id)/records?filter=\(queryValue("AND({Score} > "))"
            )
            let error = expectError(response, .unprocessableContent, .validation)
            #expect(error?.position != nil)
            #expect(error?.field == "filter")
        }
    }

    @Test("a formula naming an unknown field is 422 naming it")
    func unknownFieldFormula() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            for formula in ["{Nope} = 1", "Nope = 1"] {
                let response = try await client.send(.get, "tables/\(table.id)/records?filter=\(queryValue(formula))")
                #expect(expectError(response, .unprocessableContent, .validation)?.message.contains("Nope") == true)
            }
        }
    }

    // MARK: Cursors

    @Test("a cursor from another query, or a tampered cursor, is 422")
    func foreignAndTamperedCursors() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, base, table) = try await client.scaffold()
            let other = try await client.createTable(in: base.id, "Other")
            _ = try await client.seed(
                table.id,
                (0..<10).map { ["Name": .string("r\($0)"), "Score": .number(Double($0))] }
            )
            _ = try await client.seed(other.id, (0..<10).map { ["Name": .string("o\($0)")] })
            let page = try await client.recordsPage(table.id, "sort=Score:asc&page_size=3")
            let cursor = try #require(page.nextCursor)
            // The same query (page size and projection may change) accepts it.
            let next = try await client.recordsPage(
                table.id,
                "sort=Score:asc&page_size=5&fields=Name&cursor=\(queryValue(cursor))"
            )
            #expect(next.data.map { $0.fields["Name"] } == ["r3", "r4", "r5", "r6", "r7"])

            let foreign = [
                "tables/\(table.id)/records?sort=Score:desc&cursor=\(queryValue(cursor))",
                "tables/\(table.id)/records?cursor=\(queryValue(cursor))",
                "tables/\(table.id)/records?sort=Score:asc&filter=\(queryValue("{Score} > 1"))&cursor=\(queryValue(cursor))",
                "tables/\(table.id)/records?view=\(queryValue("Grid view"))&sort=Score:asc&cursor=\(queryValue(cursor))",
                "tables/\(other.id)/records?sort=Score:asc&cursor=\(queryValue(cursor))",
            ]
            for path in foreign {
                let response = try await client.send(.get, path)
                #expect(expectError(response, .unprocessableContent, .validation, path)?.field == "cursor")
            }

            // Tampered: truncated, garbage, a rewritten query binding, a wrong key shape.
            var forged = try RecordCursor.decode(cursor, queryHash: Self.queryHash(of: cursor))
            forged.queryHash = "0000000000000000"
            let json = #"{"k":[{"x":"1"}],"s":3,"q":"\#(Self.queryHash(of: cursor))"}"#
            let wrongShape = Data(json.utf8).base64EncodedString()
            for tampered in [
                String(cursor.prefix(cursor.count / 2)), "!!!not-a-cursor!!!", forged.encoded(), wrongShape, "e30",
            ] {
                let response = try await client.send(
                    .get,
                    "tables/\(table.id)/records?sort=Score:asc&cursor=\(queryValue(tampered))"
                )
                #expect(expectError(response, .unprocessableContent, .validation, tampered)?.field == "cursor")
            }
        }
    }

    /// The query binding inside a cursor (its JSON `q`), read without the server's help.
    static func queryHash(of cursor: String) -> String {
        var base64 = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return "" }
        return object["q"] as? String ?? ""
    }

    @Test(
        "paging stays exact while another client inserts: each original record exactly once, no id twice",
        arguments: [Optional("Score:desc"), nil]
    )
    func cursorStability(sort: String?) async throws {
        try await Harness.withServer { api, _ in  // live: a second connection inserts while this one pages
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            // Ties and blanks on purpose: the keyset must break them by creation order.
            let original = try await client.seed(
                table.id,
                (0..<250).map { index in
                    index % 25 == 0
                        ? ["Name": .string("o\(index)")]
                        : ["Name": .string("o\(index)"), "Score": .number(Double(index % 17))]
                }
            )
            let query = sort.map { "sort=\(queryValue($0))&page_size=40" } ?? "page_size=40"

            let (inserted, seen) = try await client.withConnections(1) { connections in
                let writer = connections[0]
                let (progress, continuation) = AsyncStream.makeStream(of: Int.self)
                async let inserts: [RecordID] = {
                    defer { continuation.finish() }
                    var ids: [RecordID] = []
                    for index in 0..<100 {
                        let score: FieldValue = index % 10 == 0 ? .null : .number(Double((index * 7) % 20))
                        let response = try await writer.send(
                            .post,
                            "tables/\(table.id)/records",
                            json: RecordFieldsRequest(fields: ["Name": .string("n\(index)"), "Score": score])
                        )
                        #expect(response.status == .created)
                        ids.append(try response.decode(PyAirtableModels.Record.self).id)
                        continuation.yield(ids.count)
                    }
                    return ids
                }()
                // Page through; between pages, wait until the writer has landed more inserts, so
                // inserts fall both before and after the cursor's position.
                var seen: [PyAirtableModels.Record] = []
                var cursor: String?
                var iterator = progress.makeAsyncIterator()
                var landed = 0
                var pages = 0
                repeat {
                    let target = min(100, (pages + 1) * 15)
                    while landed < target, let count = await iterator.next() { landed = count }
                    let suffix = cursor.map { "&cursor=\(queryValue($0))" } ?? ""
                    let page = try await client.recordsPage(table.id, query + suffix)
                    seen += page.data
                    cursor = page.nextCursor
                    pages += 1
                } while cursor != nil
                return (try await inserts, seen)
            }

            let seenIDs = seen.map(\.id)
            #expect(Set(seenIDs).count == seenIDs.count, "an id came twice")
            let counts = Dictionary(seenIDs.map { ($0, 1) }, uniquingKeysWith: +)
            for record in original {
                #expect(counts[record.id] == 1, "\(record.id) seen \(counts[record.id] ?? 0) times")
            }
            #expect(Set(seenIDs).isSubset(of: Set(original.map(\.id) + inserted)))
            if sort != nil {
                // Non-increasing scores, blanks last.
                let scores = seen.map { number($0.fields["Score"]) ?? -.infinity }
                #expect(zip(scores, scores.dropFirst()).allSatisfy { $0 >= $1 })
            } else {
                // Unsorted pages are in creation order, with every original before any insert.
                let originalSeen = seenIDs.filter { id in original.contains { $0.id == id } }
                #expect(originalSeen == original.map(\.id))
            }
            #expect(try await client.allRecords(table.id).count == 350)
        }
    }
}
