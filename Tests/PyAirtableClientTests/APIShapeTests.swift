import Foundation
import PyAirtableClient
import PyAirtableModels
import PyAirtableTesting
import TestSupport
import Testing

/// The shapes of the SDK's API that are not a server's behaviour: listings follow cursors, typed
/// cache tags, short constructors.
@Suite("SDK API shapes", .timeLimit(.minutes(5)))
struct APIShapeTests {
    static func workspace(_ name: String) -> Workspace {
        Workspace(id: .generate(), name: name, role: .owner, createdAt: Date(), updatedAt: Date())
    }

    static func cursor(of request: ClientRequest) -> String? {
        request.query.first { $0.name == "cursor" }?.value
    }

    @Test("a small collection's list follows next_cursor to the last page")
    func collectionsFollowTheCursor() async throws {
        let first = Self.workspace("first")
        let second = Self.workspace("second")
        let mock = MockTransport { request, _ in
            switch Self.cursor(of: request) {
            case nil: try .json(Page(data: [first], nextCursor: "c1"))
            case "c1": try .json(Page(data: [second], nextCursor: nil))
            default: .status(400, message: "unexpected cursor")
            }
        }
        let client = Fixtures.mockClient(mock, clock: TestClock())
        let workspaces = try await client.workspaces.list()
        #expect(workspaces.map(\.id) == [first.id, second.id])
        #expect(mock.requests.map(Self.cursor(of:)) == [nil, "c1"])
        try await client.shutdown()
    }

    @Test("a cursor that does not move ends a listing instead of fetching the same page forever")
    func aStuckCursorEnds() async throws {
        let mock = MockTransport { _, _ in try .json(Page(data: [Self.workspace("again")], nextCursor: "same")) }
        let client = Fixtures.mockClient(mock, clock: TestClock())
        #expect(try await client.workspaces.list().count == 2)
        #expect(mock.requestCount == 2)
        let fetches = Counter()
        let pages = PageSequence<Workspace> { cursor in
            fetches.increment()
            return Page(data: [Self.workspace(cursor ?? "first")], nextCursor: "same")
        }
        #expect(try await pages.collect().map(\.name) == ["first", "same"])
        #expect(fetches.current == 2)
        try await client.shutdown()
    }

    @Test("every page of the files is fetched only as the loop asks for it")
    func filesPageLazily() async throws {
        let mock = MockTransport { request, index in
            let file = FileMetadata(
                id: .generate(),
                name: "file \(index)",
                contentType: "text/plain",
                size: 1,
                sha256: String(repeating: "0", count: 64),
                createdAt: Date()
            )
            return try .json(Page(data: [file], nextCursor: "after\(index)"))
        }
        let client = Fixtures.mockClient(mock, clock: TestClock())
        var seen: [String] = []
        for try await file in client.files.all(pageSize: 1) {
            seen.append(file.name)
            if seen.count == 3 { break }
        }
        #expect(seen == ["file 0", "file 1", "file 2"])
        #expect(mock.requestCount == 3, "breaking out of the loop fetches no further page")
        #expect(mock.requests.map(Self.cursor(of:)) == [nil, "after0", "after1"])
        try await client.shutdown()
    }

    @Test("typed cache tags are stored as the SDK has always named them, and match by RTK Query's rules")
    func typedCacheTags() {
        let record = RecordID.generate()
        let table = TableID.generate()
        let other = TableID.generate()
        #expect(CacheTag.record(record).rawValue == "record:\(record)")
        #expect(CacheTag.recordLists(of: table).rawValue == "list:\(table)")
        #expect(CacheTag.records(of: table).rawValue == "records:\(table)")
        #expect(CacheTag.workspaces.rawValue == "workspaces" && CacheTag.workspaces.isGeneral)
        #expect(CacheTag.every(.table).invalidates(.table(table)))
        #expect(!CacheTag.table(other).invalidates(.table(table)))
        #expect(!CacheTag.every(.recordLists).invalidates(.records(of: table)))
        #expect(CacheTag.table(table).type == "table" && CacheTag.table(table).id == Substring(table.rawValue))
    }

    @Test("short constructors build the same requests as the long forms")
    func shortConstructors() throws {
        #expect(
            CreateFieldRequest.singleSelect("Status", choices: ["Todo", "Done"])
                == CreateFieldRequest(
                    name: "Status",
                    type: .singleSelect,
                    options: FieldOptions(choices: [SelectChoice(name: "Todo"), SelectChoice(name: "Done")])
                )
        )
        #expect(
            CreateFieldRequest.number("Score", precision: 1)
                == CreateFieldRequest(name: "Score", type: .number, options: FieldOptions(precision: 1))
        )
        let linked = TableID.generate()
        #expect(CreateFieldRequest.links("Tasks", to: linked).options?.linkedTableID == linked)
        #expect(CreateFieldRequest.links("Tasks", to: linked).type == .multipleRecordLinks)
        #expect(SortSpec.descending("Score") == SortSpec(field: "Score", direction: .desc))
        #expect(SortSpec.ascending("Name") == SortSpec(field: "Name"))
    }
}
