import Foundation
import HTTPTypes
import PyAirtableModels
import Synchronization
import Testing

@testable import ReferenceServer

@Suite("Record read cache: hot reads skip the database and never show a write undone", .timeLimit(.minutes(15)))
struct RecordReadCacheTests {
    static func cache(_ services: ServerServices) throws -> RecordReadCache {
        try #require(services.store as? SQLiteStore).database.recordCache
    }

    @Test("a cached record follows every write to it, to its fields and to its table")
    func followsWrites() async throws {
        try await Harness.withServer { api, services in
            let cache = try Self.cache(services)
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let record = try await client.createRecord(in: table.id, ["Name": "Ada", "Score": 1])

            _ = try await client.record(record.id)
            let before = cache.statistics.hits
            #expect(try await client.record(record.id).fields["Name"] == "Ada")
            #expect(cache.statistics.hits == before + 1, "the second read is answered from the cache")

            _ = try await client.call(
                .patch,
                "records/\(record.id)",
                json: RecordFieldsRequest(fields: ["Score": 2]),
                as: PyAirtableModels.Record.self
            )
            let patched = try await client.record(record.id)
            #expect(patched.version == 2)
            #expect(patched.fields["Score"] == 2)

            _ = try await client.call(
                .put,
                "records/\(record.id)",
                json: RecordFieldsRequest(fields: ["Name": "Grace"]),
                as: PyAirtableModels.Record.self
            )
            let replaced = try await client.record(record.id)
            #expect(replaced.version == 3)
            #expect(replaced.fields == ["Name": "Grace"])

            // A batch writes through another path.
            let batch = try await client.send(
                .post,
                "tables/\(table.id)/records/batch",
                json: BatchRequest(operations: [.update(id: record.id, fields: ["Score": 9], ifVersion: nil)])
            )
            #expect(batch.status == .ok, "\(batch.text)")
            #expect(try await client.record(record.id).fields["Score"] == 9)

            // Renaming a field changes the record's keys without touching its row.
            _ = try await client.record(record.id)
            let name = try #require(table.fields.first { $0.name == "Name" })
            _ = try await client.call(
                .patch,
                "fields/\(name.id)",
                json: UpdateFieldRequest(name: "Title"),
                as: Field.self
            )
            let renamed = try await client.record(record.id)
            #expect(renamed.fields["Title"] == "Grace")
            #expect(renamed.fields["Name"] == nil)

            // A conditional read of the cached record answers 304 with the current version.
            let notModified = try await client.send(
                .get,
                "records/\(record.id)",
                headers: [.ifNoneMatch: "\"\(renamed.version)\""]
            )
            #expect(notModified.status == .notModified)

            #expect(try await client.send(.delete, "records/\(record.id)").status == .ok)
            expectError(try await client.send(.get, "records/\(record.id)"), .notFound, .notFound)

            let other = try await client.createRecord(in: table.id, ["Score": 5])
            _ = try await client.record(other.id)
            _ = try await client.record(other.id)
            #expect(try await client.send(.delete, "tables/\(table.id)").status == .noContent)
            expectError(try await client.send(.get, "records/\(other.id)"), .notFound, .notFound)
        }
    }

    @Test("membership changes reach cached reads at once: removed, re-added, workspace deleted")
    func followsAccess() async throws {
        try await Harness.withServer { api, services in
            let cache = try Self.cache(services)
            let (owner, _) = try await api.register("Owner")
            let (viewer, viewerUser) = try await api.register("Viewer")
            let (workspace, _, table) = try await owner.scaffold()
            let record = try await owner.createRecord(in: table.id, ["Name": "Ada"])

            // A stranger's refusal is remembered next to the owner's cached read, and stays a 404.
            _ = try await owner.record(record.id)
            expectError(try await viewer.send(.get, "records/\(record.id)"), .notFound, .notFound)
            expectError(try await viewer.send(.get, "records/\(record.id)"), .notFound, .notFound)

            try await owner.addMember(workspace.id, user: viewerUser.id, role: .viewer)
            #expect(try await viewer.record(record.id).fields["Name"] == "Ada")
            let hits = cache.statistics.hits
            #expect(try await viewer.record(record.id).fields["Name"] == "Ada")
            #expect(cache.statistics.hits == hits + 1)

            let members = "workspaces/\(workspace.id)/members"
            #expect(try await owner.send(.delete, "\(members)/\(viewerUser.id)").status == .noContent)
            expectError(try await viewer.send(.get, "records/\(record.id)"), .notFound, .notFound)

            try await owner.addMember(workspace.id, user: viewerUser.id, role: .editor)
            #expect(try await viewer.record(record.id).version == 1)

            #expect(try await owner.send(.delete, "workspaces/\(workspace.id)").status == .noContent)
            expectError(try await owner.send(.get, "records/\(record.id)"), .notFound, .notFound)
            expectError(try await viewer.send(.get, "records/\(record.id)"), .notFound, .notFound)
        }
    }

    @Test("reads racing writes: once a write is acknowledged, no read shows an older version")
    func readsRacingWrites() async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let record = try await client.createRecord(in: table.id, ["Score": 0])
            let progress = RaceProgress()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for score in 1...150 {
                        let updated = try await client.call(
                            .patch,
                            "records/\(record.id)",
                            json: RecordFieldsRequest(fields: ["Score": .number(Double(score))]),
                            as: PyAirtableModels.Record.self
                        )
                        progress.acknowledged.store(updated.version, ordering: .sequentiallyConsistent)
                        // Read-your-writes, right after the acknowledgement.
                        if try await client.record(record.id).version < updated.version {
                            progress.stale.add(1, ordering: .relaxed)
                        }
                    }
                }
                for _ in 0..<3 {
                    group.addTask {
                        while progress.acknowledged.load(ordering: .sequentiallyConsistent) < 151 {
                            let floor = progress.acknowledged.load(ordering: .sequentiallyConsistent)
                            if try await client.record(record.id).version < floor {
                                progress.stale.add(1, ordering: .relaxed)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(progress.stale.load(ordering: .relaxed) == 0)
            #expect(try await client.record(record.id).fields["Score"] == 150)
        }
    }

    @Test("an answer read before a commit is never stored after it; memory stays within the budget")
    func generationsAndBudget() throws {
        let cache = RecordReadCache(maximumBytes: 64 * 1024)
        let record = EncodedRecord(id: RecordID.generate(), version: 1, json: Array(repeating: 0x20, count: 100))
        let before = cache.generation
        cache.invalidate(rows: [42])
        cache.store(
            record,
            rowID: 1,
            id: record.id.rawValue,
            workspaceID: "wsp_a",
            role: .owner,
            user: "usr_a",
            readAt: before
        )
        #expect(cache.lookup(id: record.id.rawValue, user: "usr_a") == nil, "read before the commit, refused")

        cache.store(
            record,
            rowID: 1,
            id: record.id.rawValue,
            workspaceID: "wsp_a",
            role: .owner,
            user: "usr_a",
            readAt: cache.generation
        )
        guard case .record(let hit) = cache.lookup(id: record.id.rawValue, user: "usr_a") else {
            Issue.record("expected a hit")
            return
        }
        #expect(hit.version == 1)
        #expect(cache.lookup(id: record.id.rawValue, user: "usr_b") == nil, "another reader's role is unknown")
        cache.invalidate(rows: [1])
        #expect(cache.lookup(id: record.id.rawValue, user: "usr_a") == nil)

        for row in 0..<2000 {
            let id = RecordID.generate()
            cache.store(
                EncodedRecord(id: id, version: 1, json: Array(repeating: 0x20, count: 200)),
                rowID: Int64(row),
                id: id.rawValue,
                workspaceID: "wsp_a",
                role: .owner,
                user: "usr_a",
                readAt: cache.generation
            )
        }
        let statistics = cache.statistics
        #expect(statistics.bytes <= 64 * 1024)
        #expect(statistics.entries > 100)

        let off = RecordReadCache(maximumBytes: 0)
        off.store(record, rowID: 1, id: record.id.rawValue, workspaceID: "w", role: .owner, user: "u", readAt: 0)
        #expect(off.lookup(id: record.id.rawValue, user: "u") == nil)
    }
}

/// What the racing readers and the writer share.
private final class RaceProgress: Sendable {
    /// The newest version a write was acknowledged with.
    let acknowledged = Atomic<Int>(1)
    /// Reads that returned a version older than one already acknowledged.
    let stale = Atomic<Int>(0)
}
