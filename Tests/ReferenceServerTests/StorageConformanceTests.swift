import Foundation
import Logging
import PyAirtableModels
import Synchronization
import TestSupport
import Testing

@testable import ReferenceServer

/// A storage implementation the conformance suite runs against: how to open a fresh, empty one in
/// a directory of its own.
///
/// A new implementation (PostgreSQL) is checked by adding its factory to ``all``.
struct StorageFactory: Sendable, CustomTestStringConvertible {
    var name: String
    /// Opens a fresh, empty store in `directory`, runs the body with it, and closes it.
    var with: @Sendable (_ directory: String, _ body: (any DataStore) async throws -> Void) async throws -> Void

    var testDescription: String { name }

    /// The SQLite store on a real file.
    static let sqlite = StorageFactory(name: "SQLite") { directory, body in
        try await body(try open(directory))
    }

    /// A SQLite store on a real file in `directory`, for tests that compare against it.
    static func open(_ directory: String) throws -> SQLiteStore {
        let database = try ServerDatabase(
            path: (directory as NSString).appendingPathComponent("conformance.sqlite"),
            durable: false,
            keys: StorageKeys(secret: Array(repeating: 7, count: 32)),
            logger: Harness.logger
        )
        return SQLiteStore(database: database, logger: Harness.logger)
    }

    /// The PostgreSQL store on a database of its own (see ``PostgresCluster``).
    static let postgres = StorageFactory(name: "PostgreSQL") { _, body in
        try await PostgresCluster.withStores { stores in try await body(stores[0]) }
    }

    /// Every implementation the suite checks.
    static let all: [StorageFactory] = [.sqlite, .postgres]
}

/// The behaviour every implementation of the repository protocols must have, whatever it stores
/// in: versions and 412s with the current resource, idempotent writes, a gap-free event log in
/// commit order, cursors that hold under inserts, cascading deletes and access checks.
///
/// Each test talks to the store through the protocols only (``DataStore``), never through an
/// implementation's own API, and matches ``StorageError`` cases, not messages.
@Suite("Storage conformance")
struct StorageConformanceTests {
    // MARK: Versions

    @Test(arguments: StorageFactory.all)
    func staleVersionIsRefusedWithTheCurrentResource(_ factory: StorageFactory) async throws {
        try await withStore(factory) { store, clock in
            let fixture = try await Fixture.make(store, clock: clock)
            let created = try #require(
                try await store.createRecord(
                    table: fixture.table,
                    fields: ["Name": .string("first")],
                    context: fixture.context()
                ).value
            )
            #expect(created.version == 1)
            let updated = try #require(
                try await store.updateRecord(
                    id: created.id,
                    fields: ["Name": .string("second")],
                    replace: false,
                    ifVersion: 1,
                    context: fixture.context()
                ).value
            )
            #expect(updated.version == 2)

            let stale = await #expect(throws: StorageError.self) {
                try await store.updateRecord(
                    id: created.id,
                    fields: ["Name": .string("third")],
                    replace: false,
                    ifVersion: 1,
                    context: fixture.context()
                )
            }
            guard case .versionMismatch(let current, let version)? = stale else {
                Issue.record("expected a version mismatch, got \(String(describing: stale))")
                return
            }
            #expect(version == 2)
            let record = try JSONCoding.decoder.decode(Record.self, from: JSONCoding.encoder.encode(current))
            #expect(record.version == 2)
            #expect(record.fields["Name"] == .string("second"))
            // The refused write changed nothing.
            let stored = try await fixture.record(created.id)
            #expect(stored.version == 2)
            #expect(stored.fields["Name"] == .string("second"))

            // Schema resources carry versions too.
            let workspaceStale = await #expect(throws: StorageError.self) {
                try await store.updateWorkspace(
                    id: fixture.workspace,
                    UpdateWorkspaceRequest(name: "Renamed"),
                    ifVersion: 99,
                    context: fixture.context()
                )
            }
            guard case .versionMismatch(let currentWorkspace, let workspaceVersion)? = workspaceStale else {
                Issue.record("expected a version mismatch, got \(String(describing: workspaceStale))")
                return
            }
            let workspace = try JSONCoding.decoder.decode(
                Workspace.self,
                from: JSONCoding.encoder.encode(currentWorkspace)
            )
            #expect(workspace.version == workspaceVersion)
            #expect(workspace.name == "Team")
        }
    }

    // MARK: Idempotency

    @Test(arguments: StorageFactory.all)
    func sameKeyAndRequestAnswersOnceAndADifferentRequestIsRefused(_ factory: StorageFactory) async throws {
        try await withStore(factory) { store, clock in
            let fixture = try await Fixture.make(store, clock: clock)
            let before = try await store.eventBounds().newest
            let claim = IdempotencyClaim(principal: fixture.user.rawValue, key: "key-1", requestHash: "request-a")
            let first = try await store.createRecord(
                table: fixture.table,
                fields: ["Name": .string("once")],
                context: fixture.context(idempotency: claim)
            )
            #expect(first.value != nil)
            #expect(!first.response.replayed)
            #expect(first.response.status == 201)
            #expect(first.response.eTag == VersionTag.format(1))

            let again = try await store.createRecord(
                table: fixture.table,
                fields: ["Name": .string("once")],
                context: fixture.context(idempotency: claim)
            )
            #expect(again.value == nil)
            #expect(again.response.replayed)
            #expect(again.response.body == first.response.body)
            #expect(again.response.status == first.response.status)
            #expect(again.response.eTag == first.response.eTag)

            let reused = await #expect(throws: StorageError.self) {
                try await store.createRecord(
                    table: fixture.table,
                    fields: ["Name": .string("other")],
                    context: fixture.context(
                        idempotency: IdempotencyClaim(
                            principal: fixture.user.rawValue,
                            key: "key-1",
                            requestHash: "request-b"
                        )
                    )
                )
            }
            #expect(reused == .idempotencyKeyReused(key: "key-1"))

            // One record, one event.
            #expect(try await fixture.allRecords().count == 1)
            let events = try await fixture.events(since: before)
            #expect(events.map(\.type) == [.recordCreated])

            // The same key of another principal is another key.
            let other = try await store.createRecord(
                table: fixture.table,
                fields: ["Name": .string("other")],
                context: fixture.context(
                    idempotency: IdempotencyClaim(principal: "someone-else", key: "key-1", requestHash: "request-b")
                )
            )
            #expect(other.value != nil)
        }
    }

    // MARK: Event log

    @Test(arguments: StorageFactory.all)
    func eventLogIsGapFreeAndInCommitOrderUnderConcurrentWriters(_ factory: StorageFactory) async throws {
        try await withStore(factory) { store, clock in
            let fixture = try await Fixture.make(store, clock: clock)
            let before = try await store.eventBounds().newest
            let writers = 6
            let writesEach = 8
            let written = try await withThrowingTaskGroup(of: (Int, [RecordID]).self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        var ids: [RecordID] = []
                        for index in 0..<writesEach {
                            let result = try await store.createRecord(
                                table: fixture.table,
                                fields: ["Name": .string("w\(writer)-\(index)")],
                                context: fixture.context()
                            )
                            ids.append(try #require(result.value).id)
                        }
                        return (writer, ids)
                    }
                }
                var all: [Int: [RecordID]] = [:]
                for try await (writer, ids) in group { all[writer] = ids }
                return all
            }

            let events = try await fixture.events(since: before)
            #expect(events.count == writers * writesEach)
            // Monotonic and gap-free: every seq after `before`, each once, in order.
            #expect(events.map(\.seq) == Array((before + 1)...(before + Int64(writers * writesEach))))
            #expect(events.allSatisfy { $0.type == .recordCreated && $0.tableID == fixture.table })
            // Each writer committed its records one after another: the log has them in that order.
            let position = Dictionary(
                uniqueKeysWithValues: events.enumerated().compactMap { index, event in
                    event.recordID.map { ($0, index) }
                }
            )
            for (writer, ids) in written {
                let positions = ids.compactMap { position[$0] }
                #expect(positions.count == ids.count, "writer \(writer)'s events are all in the log")
                #expect(positions == positions.sorted(), "writer \(writer)'s events are in commit order")
            }
            #expect(try await store.eventBounds().newest == before + Int64(writers * writesEach))

            // Reading from any point gives the rest of the log.
            let middle = before + Int64(writers * writesEach / 2)
            let tail = try await fixture.events(since: middle)
            #expect(tail.map(\.seq) == Array(events.map(\.seq).drop(while: { $0 <= middle })))
        }
    }

    // MARK: Cursors

    @Test(arguments: StorageFactory.all)
    func cursorsHoldUnderInserts(_ factory: StorageFactory) async throws {
        try await withStore(factory) { store, clock in
            let fixture = try await Fixture.make(store, clock: clock)
            var originals: [RecordID] = []
            for index in 0..<5 {
                originals.append(try await fixture.createRecord("original \(index)"))
            }
            let schema = try await store.tableSchema(id: fixture.table, user: fixture.user)

            // In creation order, and sorted by Name with the new records sorting before every page
            // served so far: an offset would then serve an earlier record again; a cursor must not.
            var insertedBefore: [RecordID] = []
            for sort in [[], [SortSpec(field: "Name")]] {
                var seen: [RecordID] = []
                var page = try await fixture.page(schema: schema, cursor: nil, size: 2, sort: sort)
                seen += page.data.map(\.id)
                // Records created while paging never make a later page repeat or skip an earlier one.
                var inserted: [RecordID] = []
                var pages = 1
                while let cursor = page.nextCursor {
                    inserted.append(
                        try await fixture.createRecord(sort.isEmpty ? "z inserted \(pages)" : "0 inserted \(pages)")
                    )
                    page = try await fixture.page(schema: schema, cursor: cursor, size: 2, sort: sort)
                    seen += page.data.map(\.id)
                    pages += 1
                    try #require(pages <= 20, "paging ends")
                }
                #expect(Set(seen).count == seen.count, "no record is served twice (sort \(sort))")
                #expect(seen.filter(originals.contains) == originals, "every original, once, in order (sort \(sort))")
                #expect(Set(seen).isSubset(of: Set(originals + insertedBefore + inserted)))
                if !sort.isEmpty {
                    #expect(Set(seen).isDisjoint(with: inserted), "records sorting before the cursor are not served")
                }
                insertedBefore += inserted
            }
        }
    }

    // MARK: Cascades

    @Test(arguments: StorageFactory.all)
    func deletingABaseOrATableRemovesWhatItHolds(_ factory: StorageFactory) async throws {
        try await withStore(factory) { store, clock in
            let fixture = try await Fixture.make(store, clock: clock)
            let record = try await fixture.createRecord("doomed")
            let second = try #require(
                try await store.createTable(
                    base: fixture.base,
                    CreateTableRequest(
                        name: "Second",
                        fields: [CreateFieldRequest(name: "Name", type: .singleLineText)]
                    ),
                    context: fixture.context()
                ).value
            )
            let secondRecord = try #require(
                try await store.createRecord(
                    table: second.id,
                    fields: ["Name": .string("x")],
                    context: fixture.context()
                )
                .value
            )

            // A table: its records go with it, and its event says which table went.
            var before = try await store.eventBounds().newest
            _ = try await store.deleteTable(id: second.id, ifVersion: nil, context: fixture.context())
            #expect(try await store.tables(base: fixture.base, user: fixture.user).map(\.id) == [fixture.table])
            await expectNotFound { try await store.table(id: second.id, user: fixture.user) }
            await expectNotFound { try await store.encodedRecord(id: secondRecord.id, user: fixture.user) }
            var events = try await fixture.events(since: before)
            #expect(events.map(\.type) == [.tableDeleted])
            #expect(events.first?.tableID == second.id)
            #expect(events.first?.baseID == fixture.base)

            // A base: its tables and their records go with it.
            before = try await store.eventBounds().newest
            _ = try await store.deleteBase(id: fixture.base, ifVersion: nil, context: fixture.context())
            #expect(try await store.bases(workspace: fixture.workspace, user: fixture.user).isEmpty)
            await expectNotFound { try await store.base(id: fixture.base, user: fixture.user) }
            await expectNotFound { try await store.table(id: fixture.table, user: fixture.user) }
            await expectNotFound { try await store.tableSchema(id: fixture.table, user: fixture.user) }
            await expectNotFound { try await store.encodedRecord(id: record, user: fixture.user) }
            events = try await fixture.events(since: before)
            #expect(events.map(\.type) == [.baseDeleted])
            #expect(events.first?.baseID == fixture.base)
            #expect(events.first?.workspaceID == fixture.workspace)
            #expect(try await store.stats(visibleTo: fixture.user).records == 0)
        }
    }

    // MARK: Access

    @Test(arguments: StorageFactory.all)
    func membersReadOnlyTheirWorkspacesAndWriteByRole(_ factory: StorageFactory) async throws {
        try await withStore(factory) { store, clock in
            let fixture = try await Fixture.make(store, clock: clock)
            let record = try await fixture.createRecord("private")
            let outsider = try await Fixture.createUser(store, email: "outsider@example.com", clock: clock)
            let asOutsider = WriteContext(actor: outsider, now: clock.now)

            // Another workspace's data is not there at all for an outsider: 404, not 403.
            await expectNotFound { try await store.workspace(id: fixture.workspace, user: outsider) }
            await expectNotFound { try await store.bases(workspace: fixture.workspace, user: outsider) }
            await expectNotFound { try await store.base(id: fixture.base, user: outsider) }
            await expectNotFound { try await store.tableSchema(id: fixture.table, user: outsider) }
            await expectNotFound { try await store.encodedRecord(id: record, user: outsider) }
            await expectNotFound { try await store.members(workspace: fixture.workspace, user: outsider) }
            await expectNotFound {
                try await store.createRecord(table: fixture.table, fields: [:], context: asOutsider)
            }
            await expectNotFound {
                try await store.updateRecord(
                    id: record,
                    fields: ["Name": .string("stolen")],
                    replace: false,
                    ifVersion: nil,
                    context: asOutsider
                )
            }
            await expectNotFound { try await store.deleteRecord(id: record, ifVersion: nil, context: asOutsider) }
            #expect(try await store.workspaces(user: outsider).isEmpty)
            let outsiderEvents = try await store.events(since: 0, filter: EventFilter(), limit: 1000, user: outsider)
            #expect(!outsiderEvents.data.contains { $0.workspaceID == fixture.workspace })
            #expect(try await fixture.record(record).fields["Name"] == .string("private"))

            // A viewer reads and cannot write.
            _ = try await store.addMember(
                workspace: fixture.workspace,
                AddMemberRequest(userID: outsider, role: .viewer),
                context: fixture.context()
            )
            let read = try await store.encodedRecord(id: record, user: outsider)
            #expect(read.id == record)
            #expect(try await store.workspaces(user: outsider).map(\.id) == [fixture.workspace])
            let refused = await #expect(throws: StorageError.self) {
                try await store.createRecord(table: fixture.table, fields: [:], context: asOutsider)
            }
            #expect(refused?.kind == "forbidden")
            let refusedSchema = await #expect(throws: StorageError.self) {
                try await store.createBase(
                    workspace: fixture.workspace,
                    CreateBaseRequest(name: "Mine"),
                    context: asOutsider
                )
            }
            #expect(refusedSchema?.kind == "forbidden")

            // An editor writes records but not schema.
            _ = try await store.updateMember(
                workspace: fixture.workspace,
                user: outsider,
                role: .editor,
                context: fixture.context()
            )
            let written = try await store.createRecord(
                table: fixture.table,
                fields: ["Name": .string("by the editor")],
                context: asOutsider
            )
            #expect(written.value != nil)
            let stillRefused = await #expect(throws: StorageError.self) {
                try await store.createBase(
                    workspace: fixture.workspace,
                    CreateBaseRequest(name: "Mine"),
                    context: asOutsider
                )
            }
            #expect(stillRefused?.kind == "forbidden")

            // Removed, the workspace is gone again.
            _ = try await store.removeMember(workspace: fixture.workspace, user: outsider, context: fixture.context())
            await expectNotFound { try await store.encodedRecord(id: record, user: outsider) }

            // A mutation needs an actor.
            let anonymous = await #expect(throws: StorageError.self) {
                try await store.createWorkspace(
                    CreateWorkspaceRequest(name: "Nobody's"),
                    context: WriteContext(actor: nil, now: clock.now)
                )
            }
            #expect(anonymous == .unauthenticated)
        }
    }

    // MARK: - Support

    /// Opens a fresh store of `factory` in a temporary directory for `body`.
    private func withStore(
        _ factory: StorageFactory,
        _ body: (any DataStore, ManualWallClock) async throws -> Void
    ) async throws {
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        try await factory.with(directory.path) { store in try await body(store, ManualWallClock()) }
    }

    private func expectNotFound(
        sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () async throws -> some Any
    ) async {
        let error = await #expect(throws: StorageError.self, sourceLocation: sourceLocation) { _ = try await body() }
        #expect(
            error?.kind == "notFound",
            "expected notFound, got \(String(describing: error))",
            sourceLocation: sourceLocation
        )
    }
}

/// A user owning a workspace with a base and a table (`Name` text, `Score` number).
private struct Fixture: Sendable {
    let store: any DataStore
    let clock: ManualWallClock
    let user: UserID
    let workspace: WorkspaceID
    let base: BaseID
    let table: TableID

    static func createUser(_ store: any DataStore, email: String, clock: ManualWallClock) async throws -> UserID {
        let created = try await store.createUser(
            email: email,
            name: email,
            passwordHash: "not-a-real-hash",
            context: WriteContext(actor: nil, now: clock.now)
        )
        return try #require(created.value).id
    }

    static func make(_ store: any DataStore, clock: ManualWallClock) async throws -> Fixture {
        let user = try await createUser(store, email: "owner@example.com", clock: clock)
        let context = WriteContext(actor: user, now: clock.now)
        let workspace = try #require(
            try await store.createWorkspace(CreateWorkspaceRequest(name: "Team"), context: context).value
        )
        let base = try #require(
            try await store.createBase(workspace: workspace.id, CreateBaseRequest(name: "Base"), context: context)
                .value
        )
        let table = try #require(
            try await store.createTable(
                base: base.id,
                CreateTableRequest(
                    name: "Items",
                    fields: [
                        CreateFieldRequest(name: "Name", type: .singleLineText),
                        CreateFieldRequest(name: "Score", type: .number),
                    ]
                ),
                context: context
            ).value
        )
        return Fixture(store: store, clock: clock, user: user, workspace: workspace.id, base: base.id, table: table.id)
    }

    func context(idempotency: IdempotencyClaim? = nil) -> WriteContext {
        WriteContext(actor: user, now: clock.now, idempotency: idempotency)
    }

    func createRecord(_ name: String) async throws -> RecordID {
        try #require(
            try await store.createRecord(table: table, fields: ["Name": .string(name)], context: context()).value
        ).id
    }

    func record(_ id: RecordID) async throws -> Record {
        try JSONCoding.decoder.decode(Record.self, from: Data(try await store.encodedRecord(id: id, user: user).json))
    }

    struct Page: Decodable {
        var data: [Record]
        var nextCursor: String?

        enum CodingKeys: String, CodingKey {
            case data
            case nextCursor = "next_cursor"
        }
    }

    func page(schema: TableSchema, cursor: String?, size: Int, sort: [SortSpec] = []) async throws -> Page {
        let plan = RecordListPlan(
            filters: [],
            sort: try sort.map { spec in
                (field: try #require(schema.fieldsByName[spec.field]), direction: spec.direction)
            },
            visibleFields: nil,
            pageSize: size,
            cursor: cursor,
            queryHash: "conformance \(SortSpec.format(sort))"
        )
        let bytes = try await store.listRecords(schema: schema, plan: plan, user: user)
        return try JSONCoding.decoder.decode(Page.self, from: Data(bytes))
    }

    func allRecords() async throws -> [Record] {
        let schema = try await store.tableSchema(id: table, user: user)
        var records: [Record] = []
        var cursor: String?
        repeat {
            let page = try await page(schema: schema, cursor: cursor, size: 100)
            records += page.data
            cursor = page.nextCursor
        } while cursor != nil
        return records
    }

    /// Every event after `since` the owner may read, across pages.
    func events(since: Int64) async throws -> [Event] {
        var events: [Event] = []
        var since = since
        while true {
            let page = try await store.events(since: since, filter: EventFilter(), limit: 25, user: user)
            events += page.data
            if page.data.isEmpty || page.nextSince <= since { return events }
            since = page.nextSince
        }
    }
}

extension StorageError {
    /// The case's name, to match a case whatever its message.
    fileprivate var kind: String {
        switch self {
        case .notFound: "notFound"
        case .invalid: "invalid"
        case .conflict: "conflict"
        case .forbidden: "forbidden"
        case .unauthenticated: "unauthenticated"
        case .versionMismatch: "versionMismatch"
        case .idempotencyKeyReused: "idempotencyKeyReused"
        case .idempotentAnswerUnreadable: "idempotentAnswerUnreadable"
        case .filterScanLimit: "filterScanLimit"
        case .uploadQuotaExceeded: "uploadQuotaExceeded"
        case .eventsTrimmed: "eventsTrimmed"
        case .unavailable: "unavailable"
        case .inOperation: "inOperation"
        }
    }
}
