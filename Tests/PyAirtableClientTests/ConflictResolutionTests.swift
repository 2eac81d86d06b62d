import Foundation
import PyAirtableClient
import PyAirtableModels
import ReferenceServer
import ReferenceServerTesting
import Synchronization
import Testing

@testable import PyAirtableClient

@Suite("Three-way merge of record fields", .timeLimit(.minutes(15)))
struct ThreeWayMergeTests {
    @Test("an update: one-sided changes take that side; a two-sided change goes to the handler")
    func mergeUpdate() async {
        let base: [String: FieldValue] = ["Name": "Ada", "Score": 1, "Status": "Todo"]
        let server: [String: FieldValue] = ["Name": "Ada", "Score": 5, "Status": "Done"]
        let local: [String: FieldValue] = ["Name": "Ada L.", "Score": 9, "Status": "Done"]
        let kept = await ThreeWayMerge.mergeUpdate(base: base, local: local, server: server, handler: .keepServer)
        #expect(kept.send == ["Name": "Ada L."])
        #expect(kept.conflicts.map(\.field) == ["Score"])
        #expect(kept.conflicts.first?.base == .number(1))
        #expect(kept.conflicts.first?.server == .number(5))
        #expect(kept.conflicts.first?.local == .number(9))
        #expect(kept.conflicts.first?.choice == .server)
        let mine = await ThreeWayMerge.mergeUpdate(base: base, local: local, server: server, handler: .keepLocal)
        #expect(mine.send == ["Name": "Ada L.", "Score": 9])
        let custom = await ThreeWayMerge.mergeUpdate(
            base: base,
            local: local,
            server: server,
            handler: MergeHandler { conflict in .value(.number(100 + (conflict.server == .number(5) ? 5 : 0))) }
        )
        #expect(custom.send == ["Name": "Ada L.", "Score": 105])
    }

    @Test("without the base version every difference is a conflict; blanks equal absent cells")
    func unknownBase() async {
        let merged = await ThreeWayMerge.mergeUpdate(
            base: nil,
            local: ["Name": "B", "Score": .null, "Status": ""],
            server: ["Name": "A"],
            handler: .keepServer
        )
        #expect(merged.send.isEmpty)
        #expect(merged.conflicts.map(\.field) == ["Name"])
        #expect(merged.conflicts.first?.baseKnown == false)
    }

    @Test("a replace merges the whole field set: a cell the write clears and the server changed is a conflict")
    func mergeReplace() async {
        let base: [String: FieldValue] = ["Name": "Ada", "Score": 1, "Status": "Todo"]
        let server: [String: FieldValue] = ["Name": "Ada", "Score": 1, "Status": "Done"]
        // The write renames and drops Status; the server meanwhile set Status.
        let local: [String: FieldValue] = ["Name": "Grace", "Score": 1]
        let kept = await ThreeWayMerge.mergeReplace(base: base, local: local, server: server, handler: .keepServer)
        #expect(kept.fields == ["Name": "Grace", "Score": 1, "Status": "Done"])
        #expect(kept.changes)
        #expect(kept.conflicts.map(\.field) == ["Status"])
        let mine = await ThreeWayMerge.mergeReplace(base: base, local: local, server: server, handler: .keepLocal)
        #expect(mine.fields == ["Name": "Grace", "Score": 1])
        let same = await ThreeWayMerge.mergeReplace(base: base, local: base, server: server, handler: .keepServer)
        #expect(same.changes == false)
        #expect(same.conflicts.isEmpty)
    }
}

@Suite("Conflicts against real 412s", .timeLimit(.minutes(15)))
struct ConflictResolutionTests {
    /// Collects the conflicts a client reports through its callback.
    final class Reports: Sendable {
        private let list = Mutex<[ConflictReport]>([])
        var all: [ConflictReport] { list.withLock { $0 } }
        func add(_ report: ConflictReport) { list.withLock { $0.append(report) } }
    }

    /// Runs `body` with a table, a record in it, our client `mine` (with a cache, so it knows the
    /// version it starts from) and another user's client `theirs`.
    static func withConflict(
        strategy: ConflictStrategy = .merge(),
        configure: @escaping @Sendable (inout PyAirtableClient.Configuration) -> Void = { _ in },
        _ body:
            @Sendable (
                _ mine: PyAirtableClient, _ theirs: PyAirtableClient, _ record: Record, _ reports: Reports
            ) async throws -> Void
    ) async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-conflict-\(UUID())")
            defer { try? FileManager.default.removeItem(at: directory) }
            let reports = Reports()
            var configuration = Fixtures.configuration(server, token: demo.token)
            configuration.cache = .persistent(path: directory.appendingPathComponent("cache.sqlite").path)
            configuration.conflicts.strategy = strategy
            configuration.conflicts.onConflict = { reports.add($0) }
            configure(&configuration)
            try await withPyAirtableClient(configuration: configuration) { mine in
                try await Fixtures.withClient(server, token: demo.token) { theirs in
                    let table = try await Fixtures.makeTable(theirs)
                    let record = try await theirs.records.create(
                        in: table.id,
                        fields: ["Name": "Ada", "Score": 1, "Status": "Todo"]
                    ).get()
                    // Our client reads version 1: the version its edits start from.
                    #expect(try await mine.records.get(record.id).version == 1)
                    try await body(mine, theirs, record, reports)
                }
            }
        }
    }

    @Test("merge (the default): fields changed on one side each keep their change, and it is reported")
    func mergeDisjoint() async throws {
        try await Self.withConflict { mine, theirs, record, reports in
            let stream = mine.mutations.conflicts()
            _ = try await theirs.records.update(record.id, fields: ["Score": 5])
            // No ifVersion given: the client sends the version it holds, so the server answers 412.
            let saved = try await mine.records.update(record.id, fields: ["Name": "Ada Lovelace"]).get()
            #expect(saved.fields["Name"] == .string("Ada Lovelace"))
            #expect(saved.fields["Score"] == .number(5))
            #expect(saved.version == 3)
            let report = try #require(reports.all.first)
            #expect(reports.all.count == 1)
            #expect(report.strategy == "merge")
            #expect(report.outcome == .sentMerged)
            #expect(report.baseVersion == 1)
            #expect(report.server.version == 2)
            #expect(report.sent == ["Name": "Ada Lovelace"])
            #expect(report.fields.isEmpty)
            #expect(report.result == saved)
            var iterator = stream.makeAsyncIterator()
            #expect(await iterator.next()?.recordID == record.id)
            #expect(try await theirs.records.get(record.id) == saved)
        }
    }

    @Test("merge: a field changed on both sides keeps the server's value by default, or the handler's choice")
    func mergeBothSides() async throws {
        try await Self.withConflict { mine, theirs, record, reports in
            _ = try await theirs.records.update(record.id, fields: ["Score": 5])
            let kept = try await mine.records.update(record.id, fields: ["Score": 9]).get()
            #expect(kept.fields["Score"] == .number(5))
            #expect(kept.version == 2)
            #expect(reports.all.last?.outcome == .keptServer)
            #expect(reports.all.last?.fields.map(\.field) == ["Score"])
            #expect(reports.all.last?.fields.first?.choice == .server)
        }
        let handler = MergeHandler { conflict in conflict.field == "Score" ? .local : .server }
        try await Self.withConflict(strategy: .merge(handler)) { mine, theirs, record, reports in
            _ = try await theirs.records.update(record.id, fields: ["Score": 5, "Status": "Done"])
            let saved = try await mine.records.update(record.id, fields: ["Score": 9, "Status": "Todo", "Name": "A"])
                .get()
            #expect(saved.fields["Score"] == .number(9))
            #expect(saved.fields["Status"] == .string("Done"))
            #expect(saved.fields["Name"] == .string("A"))
            // Status was not changed by us (Todo is the base): no conflict for it.
            #expect(reports.all.last?.fields.map(\.field) == ["Score"])
        }
    }

    @Test("serverWins answers the server's record and sends nothing; clientWins overwrites; fail throws")
    func otherStrategies() async throws {
        try await Self.withConflict(strategy: .serverWins) { mine, theirs, record, reports in
            let theirsSaved = try await theirs.records.update(record.id, fields: ["Score": 5]).get()
            let answer = try await mine.records.update(record.id, fields: ["Score": 9, "Name": "Mine"]).get()
            #expect(answer == theirsSaved)
            #expect(try await theirs.records.get(record.id).version == 2)
            #expect(reports.all.last?.outcome == .keptServer)
            #expect(Set(reports.all.last?.fields.map(\.field) ?? []) == ["Score", "Name"])
            // The cache holds the server's version now.
            #expect(try await mine.records.getWithSource(record.id).value == theirsSaved)
        }
        try await Self.withConflict(strategy: .clientWins) { mine, theirs, record, reports in
            _ = try await theirs.records.update(record.id, fields: ["Score": 5, "Status": "Done"])
            let answer = try await mine.records.update(record.id, fields: ["Score": 9]).get()
            #expect(answer.fields["Score"] == .number(9))
            #expect(answer.fields["Status"] == .string("Done"))
            #expect(answer.version == 3)
            #expect(reports.all.last?.outcome == .sentLocal)
        }
        try await Self.withConflict(strategy: .fail) { mine, theirs, record, reports in
            let theirsSaved = try await theirs.records.update(record.id, fields: ["Score": 5]).get()
            let error = await #expect(throws: PyAirtableError.self) {
                try await mine.records.update(record.id, fields: ["Score": 9]).get()
            }
            #expect(error == .preconditionFailed)
            #expect(try error?.current(as: Record.self) == theirsSaved)
            #expect(reports.all.last?.outcome == .thrown)
        }
    }

    @Test("a per-call strategy overrides the configured one; update(record:) starts from the record given")
    func perCall() async throws {
        try await Self.withConflict(strategy: .fail) { mine, theirs, record, reports in
            _ = try await theirs.records.update(record.id, fields: ["Score": 5])
            let saved = try await mine.records.update(record, fields: ["Name": "Per call"], onConflict: .merge()).get()
            #expect(saved.fields["Score"] == .number(5))
            #expect(saved.fields["Name"] == .string("Per call"))
            #expect(reports.all.last?.baseVersion == 1)
        }
    }

    @Test("replace merges the whole field set; delete: serverWins keeps the record, merge deletes it")
    func replaceAndDelete() async throws {
        try await Self.withConflict { mine, theirs, record, reports in
            _ = try await theirs.records.update(record.id, fields: ["Status": "Done"])
            let replaced = try await mine.records.replace(record.id, fields: ["Name": "Grace", "Score": 1]).get()
            #expect(replaced.fields == ["Name": "Grace", "Score": 1, "Status": "Done"])
            #expect(reports.all.last?.write == .replace)
            #expect(reports.all.last?.fields.map(\.field) == ["Status"])

            _ = try await theirs.records.update(record.id, fields: ["Score": 2])
            let kept = try await mine.records.delete(record.id, onConflict: .serverWins).get()
            #expect(kept.deleted == false)
            #expect(try await theirs.records.get(record.id).fields["Score"] == .number(2))
            let gone = try await mine.records.delete(record.id, ifVersion: 1).get()
            #expect(gone.deleted)
            #expect(reports.all.last?.outcome == .deleted)
            await #expect(throws: PyAirtableError.notFound) { try await theirs.records.get(record.id) }
        }
    }

    @Test("a queued write meeting a 412 on replay is merged against the version it started from")
    func replayConflict() async throws {
        let queueDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-replay-\(UUID())")
        defer { try? FileManager.default.removeItem(at: queueDirectory) }
        let queuePath = queueDirectory.appendingPathComponent("queue.sqlite").path
        let offline: @Sendable (inout PyAirtableClient.Configuration) -> Void = { configuration in
            configuration.offline = .persistent(path: queuePath)
            configuration.offline.queueWithoutTrying = true
        }
        try await Self.withConflict(configure: offline) { mine, theirs, record, _ in
            let queued = try await mine.records.update(record.id, fields: ["Name": "Written offline"])
            #expect(queued.queued?.queuedBecause == "working offline")
            let failedWrite = try #require(try await mine.offline.queue()?.mutations().first)
            #expect(failedWrite.request.headers["If-Match"] == "\"1\"")
            #expect(failedWrite.request.conflictBase != nil)
            _ = try await theirs.records.update(record.id, fields: ["Score": 7])

            // Another client on the same queue replays it (as the app would once back online).
            var configuration = mine.configuration
            configuration.offline.queueWithoutTrying = false
            configuration.offline.replaysAutomatically = false
            configuration.cache = .disabled
            let reports = Reports()
            configuration.conflicts.onConflict = { reports.add($0) }
            try await withPyAirtableClient(configuration: configuration) { replayer in
                let report = try await replayer.offline.replay()
                #expect(report.replayed == 1)
                #expect(report.failed == 0)
            }
            let after = try await theirs.records.get(record.id)
            #expect(after.fields["Name"] == .string("Written offline"))
            #expect(after.fields["Score"] == .number(7))
            #expect(after.version == 3)
            let conflict = try #require(reports.all.first)
            #expect(conflict.duringReplay)
            #expect(conflict.outcome == .sentMerged)
            #expect(conflict.baseVersion == 1)
        }
    }

    @Test("without a cache, the version last read (a list) is where an edit starts; the client's own writes move it on")
    func baseFromRecentReads() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let reports = Reports()
            let configure: (inout PyAirtableClient.Configuration) -> Void = { configuration in
                configuration.conflicts.onConflict = { reports.add($0) }
            }
            try await Fixtures.withClient(server, token: demo.token, configure: configure) { mine in
                try await Fixtures.withClient(server, token: demo.token) { theirs in
                    let table = try await Fixtures.makeTable(theirs)
                    let record = try await theirs.records.create(in: table.id, fields: ["Name": "Ada", "Score": 1])
                        .get()
                    #expect(try await mine.records.list(in: table.id).data.map(\.id) == [record.id])
                    // Our own writes follow one another without conflicts.
                    #expect(try await mine.records.update(record.id, fields: ["Score": 2]).get().version == 2)
                    #expect(try await mine.records.update(record.id, fields: ["Score": 3]).get().version == 3)
                    #expect(reports.all.isEmpty)
                    // Someone else's change meanwhile is merged, not overwritten.
                    _ = try await theirs.records.update(record.id, fields: ["Name": "Ada Lovelace"])
                    let saved = try await mine.records.update(record.id, fields: ["Score": 4]).get()
                    #expect(saved.fields["Name"] == .string("Ada Lovelace"))
                    #expect(saved.fields["Score"] == .number(4))
                    #expect(reports.all.count == 1)
                    #expect(reports.all.first?.baseVersion == 3)
                    #expect(reports.all.first?.outcome == .sentMerged)
                }
            }
        }
    }
}
