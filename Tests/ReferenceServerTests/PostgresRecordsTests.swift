import Foundation
import PyAirtableModels
import Synchronization
import TestSupport
import Testing

@testable import ReferenceServer

/// Records on PostgreSQL answer as they do on SQLite: the same records in the same order for every
/// sort (blanks, numbers, checkboxes, text by bytes, both directions), the same pages through
/// cursors, the same filter results, and concurrent writers from several instances neither lose an
/// update nor pass a stale version.
@Suite("PostgreSQL records", .timeLimit(.minutes(5)))
struct PostgresRecordsTests {
    typealias Store = AccountRepository & WorkspaceRepository & SchemaRepository & RecordRepository

    /// A table with one field of each sortable kind and the same rows in each store.
    struct Setup: Sendable {
        let store: any Store
        let user: UserID
        let table: TableID

        static let now = Date(timeIntervalSince1970: 1_800_000_000)

        static func make(_ store: any Store, rows: [[String: FieldValue]]) async throws -> Setup {
            let created = try await store.createUser(
                email: "owner@example.com",
                name: "Owner",
                passwordHash: "x",
                context: WriteContext(actor: nil, now: now)
            )
            let user = try #require(created.value).id
            let context = WriteContext(actor: user, now: now)
            let workspace = try #require(try await store.createWorkspace(.init(name: "W"), context: context).value)
            let base = try #require(
                try await store.createBase(workspace: workspace.id, .init(name: "B"), context: context).value
            )
            let table = try #require(
                try await store.createTable(
                    base: base.id,
                    CreateTableRequest(
                        name: "T",
                        fields: [
                            CreateFieldRequest(name: "Name", type: .singleLineText),
                            CreateFieldRequest(name: "Score", type: .number),
                            CreateFieldRequest(name: "Done", type: .checkbox),
                            CreateFieldRequest(name: "Note", type: .multilineText),
                        ]
                    ),
                    context: context
                ).value
            )
            for row in rows {
                _ = try await store.createRecord(table: table.id, fields: row, context: context)
            }
            return Setup(store: store, user: user, table: table.id)
        }

        struct Page: Decodable {
            var data: [Record]
            var nextCursor: String?
            enum CodingKeys: String, CodingKey {
                case data
                case nextCursor = "next_cursor"
            }
        }

        /// Every record's name, page by page through cursors.
        func names(sort: [SortSpec], filter: String? = nil, pageSize: Int) async throws -> [String] {
            let schema = try await store.tableSchema(id: table, user: user)
            var names: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let plan = RecordListPlan(
                    filters: try filter.map { [try Formula.parse($0)] } ?? [],
                    sort: try sort.map {
                        (field: try #require(schema.fieldsByName[$0.field]), direction: $0.direction)
                    },
                    visibleFields: nil,
                    pageSize: pageSize,
                    cursor: cursor,
                    queryHash: "parity"
                )
                let page = try JSONCoding.decoder.decode(
                    Page.self,
                    from: Data(try await store.listRecords(schema: schema, plan: plan, user: user))
                )
                names += page.data.map { record in
                    if case .string(let name)? = record.fields["Name"] { return name }
                    return "?"
                }
                cursor = page.nextCursor
                pages += 1
            } while cursor != nil && pages < 1000
            return names
        }
    }

    /// Rows with ties, blanks, negative and fractional numbers, text that sorts differently by bytes
    /// than by locale (case, accents, emoji), text holding a NUL (which `jsonb` refuses to parse), and
    /// checkboxes.
    static let rows: [[String: FieldValue]] = {
        let notes = [
            "apple", "Apple", "banana", "", "Émile", "zebra", "😀", "a b", "ab", "10", "9", "apple", "a\u{0}b",
        ]
        let scores: [Double?] = [3, -1, 2.5, nil, 3, 0, 1e9, -0.25, nil, 42, 3, 7]
        return (0..<36).map { index in
            var row: [String: FieldValue] = ["Name": .string("r\(index)")]
            if let score = scores[index % scores.count] { row["Score"] = .number(score + Double(index / 12)) }
            if index % 3 == 0 { row["Done"] = .bool(true) }
            let note = notes[index % notes.count]
            if !note.isEmpty { row["Note"] = .string(note) }
            return row
        }
    }()

    @Test func sortsPagesAndFiltersAsSQLiteDoes() async throws {
        let directory = try TemporaryDirectory()
        let sqlite = try await Setup.make(
            try StorageFactory.open(directory.path),
            rows: Self.rows
        )
        try await PostgresCluster.withStores { stores in
            let postgres = try await Setup.make(stores[0], rows: Self.rows)
            let sorts: [[SortSpec]] = [
                [],
                [SortSpec(field: "Score", direction: .asc)],
                [SortSpec(field: "Score", direction: .desc)],
                [SortSpec(field: "Note", direction: .asc)],
                [SortSpec(field: "Note", direction: .desc)],
                [SortSpec(field: "Done", direction: .desc), SortSpec(field: "Score", direction: .asc)],
                [SortSpec(field: "Note", direction: .asc), SortSpec(field: "Score", direction: .desc)],
            ]
            for sort in sorts {
                for pageSize in [1, 5, 100] {
                    let expected = try await sqlite.names(sort: sort, pageSize: pageSize)
                    let actual = try await postgres.names(sort: sort, pageSize: pageSize)
                    #expect(expected.count == Self.rows.count)
                    #expect(actual == expected, "sort \(SortSpec.format(sort)), page size \(pageSize)")
                }
            }
            for filter in ["{Score} > 2", "AND({Done}, {Score} < 10)", "FIND('a', {Note})", "{Note} = BLANK()"] {
                let expected = try await sqlite.names(
                    sort: [SortSpec(field: "Score", direction: .asc)],
                    filter: filter,
                    pageSize: 4
                )
                let actual = try await postgres.names(
                    sort: [SortSpec(field: "Score", direction: .asc)],
                    filter: filter,
                    pageSize: 4
                )
                #expect(!expected.isEmpty)
                #expect(actual == expected, "filter \(filter)")
            }
        }
        withExtendedLifetime(directory) {}
    }

    /// Writers on three instances bump one record's counter with `If-Match`: every acknowledged
    /// update is one version, none is lost, and the losers get a 412.
    @Test func concurrentUpdatesAcrossInstancesNeitherLoseNorPassAStaleVersion() async throws {
        try await PostgresCluster.withStores(instances: 3) { stores in
            let setup = try await Setup.make(stores[0], rows: [["Name": .string("counter"), "Score": .number(0)]])
            let schema = try await stores[0].tableSchema(id: setup.table, user: setup.user)
            let id = try #require(
                try JSONCoding.decoder.decode(
                    Setup.Page.self,
                    from: Data(
                        try await stores[0].listRecords(
                            schema: schema,
                            plan: RecordListPlan(
                                filters: [],
                                sort: [],
                                visibleFields: nil,
                                pageSize: 10,
                                cursor: nil,
                                queryHash: "x"
                            ),
                            user: setup.user
                        )
                    )
                ).data.first
            ).id
            let acknowledged = try await withThrowingTaskGroup(of: Int.self) { group in
                for writer in 0..<12 {
                    let store = stores[writer % 3]
                    group.addTask {
                        var wins = 0
                        for _ in 0..<10 {
                            let current = try JSONCoding.decoder.decode(
                                Record.self,
                                from: Data(try await store.encodedRecord(id: id, user: setup.user).json)
                            )
                            guard case .number(let score)? = current.fields["Score"] else { return -1000 }
                            do {
                                _ = try await store.updateRecord(
                                    id: id,
                                    fields: ["Score": .number(score + 1)],
                                    replace: false,
                                    ifVersion: current.version,
                                    context: WriteContext(actor: setup.user, now: Setup.now)
                                )
                                wins += 1
                            } catch StorageError.versionMismatch {
                                continue
                            }
                        }
                        return wins
                    }
                }
                return try await group.reduce(0, +)
            }
            let final = try JSONCoding.decoder.decode(
                Record.self,
                from: Data(try await stores[1].encodedRecord(id: id, user: setup.user).json)
            )
            #expect(acknowledged > 0)
            #expect(final.fields["Score"] == .number(Double(acknowledged)))
            #expect(final.version == acknowledged + 1)
        }
    }

    @Test func batchIsAllOrNothingAndV0UpsertMatchesOnCells() async throws {
        try await PostgresCluster.withStores { stores in
            let store = stores[0]
            let setup = try await Setup.make(store, rows: [["Name": .string("a"), "Score": .number(1)]])
            let context = WriteContext(actor: setup.user, now: Setup.now)
            await #expect(throws: StorageError.self) {
                try await store.batch(
                    table: setup.table,
                    operations: [.create(fields: ["Name": .string("b")]), .create(fields: ["Nope": .string("x")])],
                    context: context
                )
            }
            #expect(try await setup.names(sort: [], pageSize: 10) == ["a"])

            let schema = try await store.tableSchema(id: setup.table, user: setup.user)
            let name = try #require(schema.fieldsByName["Name"]).id
            let score = try #require(schema.fieldsByName["Score"]).id
            _ = try await store.airtableWrite(
                table: setup.table,
                AirtableRecordWrite(
                    operations: [
                        .upsert(fields: ["Name": .string("a"), "Score": .number(5)], replace: false),
                        .upsert(fields: ["Name": .string("c"), "Score": .number(1)], replace: false),
                    ],
                    mergeOn: [name]
                ),
                context: context
            )
            #expect(
                try await setup.names(sort: [SortSpec(field: "Name", direction: .asc)], pageSize: 10) == ["a", "c"]
            )
            _ = try await store.airtableWrite(
                table: setup.table,
                AirtableRecordWrite(
                    operations: [.upsert(fields: ["Name": .string("z"), "Score": .number(1.0)], replace: false)],
                    mergeOn: [score]
                ),
                context: context
            )
            // Score 1 matched the record "c" (1 == 1.0): its name is now z; no third record.
            #expect(
                try await setup.names(sort: [SortSpec(field: "Name", direction: .asc)], pageSize: 10) == ["a", "z"]
            )
        }
    }

    /// Writes that share a batch lock their records in one statement and send their updates with the
    /// commit's: each still sees the ones before it (two updates of one record in a batch both count),
    /// a stale version, an unknown record or a stranger's write fails alone, and what is acknowledged
    /// is what the database and the event log hold.
    @Test func writesSharingABatchSeeEachOtherAndFailAlone() async throws {
        try await PostgresCluster.withStores { stores in
            let store = stores[0]
            let rows = (0..<20).map { ["Name": FieldValue.string("r\($0)"), "Score": .number(0)] }
            let setup = try await Setup.make(store, rows: rows)
            let schema = try await store.tableSchema(id: setup.table, user: setup.user)
            let page = try JSONCoding.decoder.decode(
                Setup.Page.self,
                from: Data(
                    try await store.listRecords(
                        schema: schema,
                        plan: RecordListPlan(
                            filters: [],
                            sort: [],
                            visibleFields: nil,
                            pageSize: 100,
                            cursor: nil,
                            queryHash: "x"
                        ),
                        user: setup.user
                    )
                )
            )
            let ids = page.data.map(\.id)
            try #require(ids.count == 20)
            let stranger = try #require(
                try await store.createUser(
                    email: "stranger@example.com",
                    name: "Stranger",
                    passwordHash: "x",
                    context: WriteContext(actor: nil, now: Setup.now)
                ).value
            ).id
            let shared = ids[0]
            let deleted = ids[1]
            _ = try await store.deleteRecord(
                id: deleted,
                ifVersion: nil,
                context: WriteContext(actor: setup.user, now: Setup.now)
            )
            let before = try await store.realtimeEvents(after: 0, limit: 10_000).last?.seq ?? 0

            enum Outcome: Sendable, Equatable {
                case applied(RecordID, Int)
                case refused(String)
            }
            let outcomes = try await withThrowingTaskGroup(of: Outcome.self) { group in
                for round in 0..<5 {
                    for (index, id) in ids.enumerated() {
                        let user = index == 2 ? stranger : setup.user
                        // Record 3 is written with a version it never has (1 is its first).
                        let ifVersion: Int? = index == 3 ? 99 : nil
                        group.addTask {
                            do {
                                let result = try await store.updateRecord(
                                    id: id,
                                    fields: ["Score": .number(Double(round * 100 + index))],
                                    replace: false,
                                    ifVersion: ifVersion,
                                    context: WriteContext(actor: user, now: Setup.now)
                                )
                                let record = try #require(result.value)
                                return .applied(id, record.version)
                            } catch let error as StorageError {
                                return .refused("\(id.rawValue) \(error)")
                            }
                        }
                    }
                    // The shared record, written four more times a round.
                    for extra in 0..<4 {
                        group.addTask {
                            let result = try await store.updateRecord(
                                id: shared,
                                fields: ["Note": .string("\(round)-\(extra)")],
                                replace: false,
                                ifVersion: nil,
                                context: WriteContext(actor: setup.user, now: Setup.now)
                            )
                            return .applied(shared, try #require(result.value).version)
                        }
                    }
                }
                return try await group.reduce(into: [Outcome]()) { $0.append($1) }
            }
            var applied: [RecordID: [Int]] = [:]
            var refused: [String] = []
            for outcome in outcomes {
                switch outcome {
                case .applied(let id, let version): applied[id, default: []].append(version)
                case .refused(let reason): refused.append(reason)
                }
            }
            // Refused: 5 writes each to the deleted record, the stranger's and the stale version's.
            #expect(refused.count == 15)
            #expect(applied[deleted] == nil)
            #expect(applied[ids[2]] == nil)
            #expect(applied[ids[3]] == nil)
            // Every acknowledged version is distinct and the row holds the last: none lost.
            for (id, versions) in applied {
                #expect(Set(versions).count == versions.count)
                #expect(versions.sorted() == Array(2...(versions.count + 1)))
                let stored = try JSONCoding.decoder.decode(
                    Record.self,
                    from: Data(try await store.encodedRecord(id: id, user: setup.user).json)
                )
                #expect(stored.version == versions.count + 1)
            }
            #expect(applied[shared]?.count == 25)
            #expect(applied.count == 17)
            // The untouched records kept their first version.
            let third = try JSONCoding.decoder.decode(
                Record.self,
                from: Data(try await store.encodedRecord(id: ids[3], user: setup.user).json)
            )
            #expect(third.version == 1)
            // One event per acknowledged write, in seq order, each with its write's version.
            let events = try await store.realtimeEvents(after: before, limit: 10_000)
            #expect(events.count == outcomes.count - refused.count)
            #expect(events.map(\.seq) == Array((before + 1)...(before + Int64(events.count))))
            var logged: [RecordID: [Int]] = [:]
            for event in events {
                let logEvent = try JSONCoding.decoder.decode(Event.self, from: Data(event.json.utf8))
                let payload = try JSONCoding.decoder.decode(
                    Record.self,
                    from: try JSONCoding.encoder.encode(logEvent.payload)
                )
                logged[payload.id, default: []].append(payload.version)
            }
            for (id, versions) in applied { #expect(logged[id] == versions.sorted()) }
        }
    }

    /// The ids of a setup's records, in creation order.
    static func recordIDs(_ setup: Setup) async throws -> [RecordID] {
        let schema = try await setup.store.tableSchema(id: setup.table, user: setup.user)
        let plan = RecordListPlan(
            filters: [],
            sort: [],
            visibleFields: nil,
            pageSize: 100,
            cursor: nil,
            queryHash: "ids"
        )
        return try JSONCoding.decoder.decode(
            Setup.Page.self,
            from: Data(try await setup.store.listRecords(schema: schema, plan: plan, user: setup.user))
        ).data.map(\.id)
    }

    static func stored(_ store: any Store, _ id: RecordID, user: UserID) async throws -> Record {
        try JSONCoding.decoder.decode(Record.self, from: Data(try await store.encodedRecord(id: id, user: user).json))
    }

    /// A batch of record updates runs first without a transaction (rows read unlocked, written in
    /// one statement only if their versions held). When another instance writes the record between
    /// that read and that statement, nothing of the batch is written: it runs again in a
    /// transaction, so neither write is lost, and a version given with the write is checked against
    /// the record as the other instance left it (412), not as it was read.
    @Test func anUnlockedBatchThatLostARaceRunsAgainInATransaction() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let setup = try await Setup.make(stores[0], rows: [["Name": .string("r"), "Score": .number(0)]])
            let id = try #require(try await Self.recordIDs(setup).first)
            let context = WriteContext(actor: setup.user, now: Setup.now)
            let other = stores[1]
            let interleaved = Mutex<[String]>([])
            let before = try await stores[0].realtimeEvents(after: 0, limit: 10_000).last?.seq ?? 0
            // The other instance has read the table once: its write can run without a transaction.
            _ = try await Self.stored(other, id, user: setup.user)
            func interleave(_ note: String) {
                stores[0].database.beforeUnlockedCommit { [other] in
                    let first = interleaved.withLock { notes -> Bool in
                        guard !notes.contains(note) else { return false }
                        notes.append(note)
                        return true
                    }
                    guard first else { return }
                    _ = try? await other.updateRecord(
                        id: id,
                        fields: ["Note": .string(note)],
                        replace: false,
                        ifVersion: nil,
                        context: context
                    )
                }
            }

            interleave("from the other instance")
            let result = try await stores[0].updateRecord(
                id: id,
                fields: ["Score": .number(5)],
                replace: false,
                ifVersion: nil,
                context: context
            )
            let record = try JSONCoding.decoder.decode(Record.self, from: Data(try #require(result.value).json))
            #expect(record.version == 3)
            #expect(record.fields["Score"] == .number(5))
            #expect(record.fields["Note"] == .string("from the other instance"))
            #expect(try await Self.stored(other, id, user: setup.user).fields == record.fields)
            #expect(stores[0].database.unlockedBatchFigures.retried == 1)
            #expect(stores[0].database.unlockedBatchFigures.committed == 0)
            #expect(stores[1].database.unlockedBatchFigures.committed == 1)

            // If-Match 3 held when read, not at the commit: the transaction answers 412 with version 4.
            interleave("again")
            await #expect(throws: StorageError.self) {
                _ = try await stores[0].updateRecord(
                    id: id,
                    fields: ["Score": .number(6)],
                    replace: false,
                    ifVersion: 3,
                    context: context
                )
            }
            stores[0].database.beforeUnlockedCommit(nil)
            let last = try await Self.stored(stores[0], id, user: setup.user)
            #expect(last.version == 4)
            #expect(last.fields["Score"] == .number(5))
            #expect(last.fields["Note"] == .string("again"))

            // The log: the other instance's write, then this one's, then the other's again.
            let events = try await stores[0].realtimeEvents(after: before, limit: 10_000)
            let versions = try events.map { event -> Int in
                let logEvent = try JSONCoding.decoder.decode(Event.self, from: Data(event.json.utf8))
                return try JSONCoding.decoder.decode(Record.self, from: try JSONCoding.encoder.encode(logEvent.payload))
                    .version
            }
            #expect(versions == [2, 3, 4])
            #expect(events.map(\.seq) == [before + 1, before + 2, before + 3])
        }
    }

    /// Two instances write distinct fields of the same records at once, each instance's writes
    /// batched without a transaction where they can be (how many can depends on timing: a batch
    /// with two writes of one record, or one that lost a race, runs in a transaction): every write
    /// lands (every field holds its writer's last value), every record's versions count every
    /// write, and the log has each write once in seq order.
    @Test func instancesWritingTheSameRecordsAtOnceLoseNoUpdate() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let writersPerInstance = 6
            let rounds = 4
            let setup = try await Setup.make(stores[0], rows: [])
            let context = WriteContext(actor: setup.user, now: Setup.now)
            let schema = try await stores[0].tableSchema(id: setup.table, user: setup.user)
            let base = schema.table.baseID
            let table = try #require(
                try await stores[0].createTable(
                    base: base,
                    CreateTableRequest(
                        name: "Shared",
                        fields: [CreateFieldRequest(name: "Name", type: .singleLineText)]
                            + (0..<(2 * writersPerInstance)).map {
                                CreateFieldRequest(name: "F\($0)", type: .number)
                            }
                    ),
                    context: context
                ).value
            ).id
            var ids: [RecordID] = []
            for index in 0..<4 {
                ids.append(
                    try #require(
                        try await stores[0].createRecord(
                            table: table,
                            fields: ["Name": .string("shared \(index)")],
                            context: context
                        ).value
                    ).id
                )
            }
            let before = try await stores[0].realtimeEvents(after: 0, limit: 100_000).last?.seq ?? 0
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<(2 * writersPerInstance) {
                    let store = stores[writer % 2]
                    let records = ids
                    group.addTask {
                        for round in 1...rounds {
                            // Each writer in its own order: fewer writes of one record per batch.
                            for offset in records.indices {
                                let id = records[(offset + writer) % records.count]
                                _ = try await store.updateRecord(
                                    id: id,
                                    fields: ["F\(writer)": .number(Double(round))],
                                    replace: false,
                                    ifVersion: nil,
                                    context: context
                                )
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let writes = 2 * writersPerInstance * rounds
            for id in ids {
                let record = try await Self.stored(stores[1], id, user: setup.user)
                #expect(record.version == 1 + writes)
                for writer in 0..<(2 * writersPerInstance) {
                    #expect(record.fields["F\(writer)"] == .number(Double(rounds)), "F\(writer) of \(id.rawValue)")
                }
            }
            let events = try await stores[1].realtimeEvents(after: before, limit: 100_000)
            #expect(events.count == writes * ids.count)
            #expect(events.map(\.seq) == Array((before + 1)...(before + Int64(events.count))))
            var versions: [String: [Int]] = [:]
            for event in events {
                let logEvent = try JSONCoding.decoder.decode(Event.self, from: Data(event.json.utf8))
                let record = try JSONCoding.decoder.decode(
                    Record.self,
                    from: try JSONCoding.encoder.encode(logEvent.payload)
                )
                versions[record.id.rawValue, default: []].append(record.version)
            }
            for id in ids { #expect(versions[id.rawValue] == Array(2...(1 + writes))) }
        }
    }

    /// A write with an `Idempotency-Key` runs without a transaction too, its key claimed by the
    /// commit's statement: the same key again, on either instance, is answered from the first
    /// write's stored answer and writes nothing; with another request it is refused (422); and two
    /// instances given one new key at once apply it once and answer the same.
    @Test func keyedWritesRunWithoutATransactionAndReplayOnAnyInstance() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let setup = try await Setup.make(stores[0], rows: [["Name": .string("r"), "Score": .number(0)]])
            let id = try #require(try await Self.recordIDs(setup).first)
            // Both instances have read the table once: their writes need no statement of their own.
            for store in stores { _ = try await Self.stored(store, id, user: setup.user) }
            func context(_ key: String, _ hash: String = "h1") -> WriteContext {
                WriteContext(
                    actor: setup.user,
                    now: Setup.now,
                    idempotency: IdempotencyClaim(principal: setup.user.rawValue, key: key, requestHash: hash)
                )
            }
            func write(
                _ store: PostgresStore,
                _ score: Double,
                _ context: WriteContext
            ) async throws
                -> WriteResult<EncodedRecord>
            {
                try await store.updateRecord(
                    id: id,
                    fields: ["Score": .number(score)],
                    replace: false,
                    ifVersion: nil,
                    context: context
                )
            }
            let before = try await stores[0].realtimeEvents(after: 0, limit: 10_000).last?.seq ?? 0

            let first = try await write(stores[0], 1, context("k1"))
            #expect(!first.response.replayed)
            #expect(stores[0].database.unlockedBatchFigures.committed == 1)
            #expect(stores[0].database.unlockedBatchFigures.retried == 0)
            // Again on the other instance: the stored answer, nothing written.
            let again = try await write(stores[1], 1, context("k1"))
            #expect(again.response.replayed)
            #expect(again.response.body == first.response.body)
            #expect(again.response.eTag == first.response.eTag)
            #expect(stores[1].database.unlockedBatchFigures.retried == 1)
            #expect(try await Self.stored(stores[1], id, user: setup.user).version == 2)
            // The key with another request: refused, nothing written.
            await #expect(throws: StorageError.self) {
                _ = try await write(stores[1], 5, context("k1", "h2"))
            }
            // One new key on both instances at once: applied once.
            async let onA = write(stores[0], 2, context("k2"))
            async let onB = write(stores[1], 2, context("k2"))
            let (a, b) = try await (onA, onB)
            #expect(a.response.body == b.response.body)
            #expect([a.response.replayed, b.response.replayed].filter { $0 }.count == 1)
            let record = try await Self.stored(stores[0], id, user: setup.user)
            #expect(record.version == 3)
            #expect(record.fields["Score"] == .number(2))
            let events = try await stores[0].realtimeEvents(after: before, limit: 10_000)
            #expect(events.map(\.seq) == [before + 1, before + 2])
        }
    }
}
