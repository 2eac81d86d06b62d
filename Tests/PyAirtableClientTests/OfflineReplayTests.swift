import Foundation
import HTTPTypes
import OfflineQueue
import PyAirtableClient
import PyAirtableModels
import ReferenceServer
import ReferenceServerTesting
import TestSupport
import Testing

@testable import PyAirtableClient

@Suite("Batched replay of the offline queue against the real server", .heavy, .timeLimit(.minutes(15)))
struct OfflineReplayTests {
    /// A client of `url` with the offline queue in `directory`, no retries, replaying only when asked.
    static func configuration(url: String, directory: URL) -> PyAirtableClient.Configuration {
        var configuration = PyAirtableClient.Configuration(
            serverURL: URL(string: url)!,
            credentials: .store(InMemoryTokenStore()),
            retry: RetryPolicy(maximumRetries: 0),
            circuitBreaker: .disabled
        )
        configuration.offline = .persistent(path: directory.appendingPathComponent("queue.sqlite").path)
        configuration.offline.replaysAutomatically = false
        return configuration
    }

    /// Runs `body` with a signed-in client of a running server, its queue in a fresh directory.
    static func withClient(
        email: String,
        _ body: (PyAirtableClient, RestartableServer) async throws -> Void
    ) async throws {
        let server = RestartableServer()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-replay-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            try await server.start()
            try await withPyAirtableClient(configuration: configuration(url: server.url, directory: directory)) {
                client in
                _ = try await client.auth.register(email: email, password: "correct horse", name: "Replay")
                try await body(client, server)
            }
        } catch {
            await server.remove()
            throw error
        }
        await server.remove()
    }

    /// What `client.records.create` queues when the server cannot be reached.
    static func createItem(table: TableID, fields: [String: FieldValue]) throws -> QueueItem {
        let temporaryID = TemporaryID.generate()
        return QueueItem(
            request: QueuedRequest(
                method: "POST",
                path: "/api/v1/tables/\(table)/records",
                body: try JSONCoding.encoder.encode(RecordFieldsRequest(fields: fields))
            ),
            scope: temporaryID.rawValue,
            batchKey: table.rawValue,
            creates: [temporaryID],
            idempotencyKey: UUID().uuidString.lowercased()
        )
    }

    /// The names of the records of `table`, as the server holds them.
    static func names(in table: TableID, _ client: PyAirtableClient) async throws -> [String] {
        var names: [String] = []
        for try await record in client.records.all(in: table, query: RecordQuery(pageSize: 1000), policy: .networkOnly)
        {
            if case .string(let name) = record.fields["Name"] { names.append(name) }
        }
        return names.sorted()
    }

    @Test("writes queued across tables replay through batches, each applied once, temporary ids resolved")
    func batchedAcrossTables() async throws {
        try await Self.withClient(email: "batches@example.com") { client, server in
            let tables = [
                try await Fixtures.makeTable(client, name: "One"), try await Fixtures.makeTable(client, name: "Two"),
                try await Fixtures.makeTable(client, name: "Three"),
            ].map(\.id)
            let existing = try await client.records.create(in: tables[0], fields: ["Name": "existing", "Score": 0])
                .get()

            await server.stop()
            var temporary: [TemporaryRecordID] = []
            for index in 0..<240 {
                let result = try await client.records.create(
                    in: tables[index % 3],
                    fields: ["Name": .string("n\(index)")]
                )
                let queued = try #require(result.queued, "the create should have been queued")
                if index % 40 == 0, let id = queued.temporaryID { temporary.append(id) }
            }
            // Writes naming records created offline wait for their create (and go alone); a write to a
            // record whose table the client knows (it created the record) may join a batch.
            for id in temporary {
                #expect(try await client.records.update(id, fields: ["Score": 7]).isQueued)
            }
            #expect(try await client.records.update(existing.id, fields: ["Score": 1]).isQueued)
            let queue = try #require(try await client.offline.queue())
            let queued = try await queue.mutations()
            #expect(queued.count == 247)
            #expect(queued.filter { $0.batchKey != nil }.count == 241, "creates and the known record are batchable")

            try await server.start()
            let report = try await client.offline.replay()
            #expect(report.replayed == 247)
            #expect(report.alreadyApplied == 0)
            #expect(report.failed == 0)
            #expect(report.remaining == 0)

            var all: [String] = []
            for table in tables { all += try await Self.names(in: table, client) }
            #expect(all.filter { $0.hasPrefix("n") }.count == 240)
            #expect(Set(all).count == all.count, "no record twice")
            var scored = 0
            for table in tables {
                for try await record in client.records.all(in: table, policy: .networkOnly)
                where record.fields["Score"] == .number(7) {
                    scored += 1
                }
            }
            #expect(scored == 6, "updates of records created offline went to the server ids")
            #expect(try await client.records.get(existing.id, policy: .networkOnly).fields["Score"] == .number(1))
            #expect(try await client.offline.replay().replayed == 0, "nothing is sent twice")
        }
    }

    @Test("a batch sent by a driver that died before reporting is sent again whole, answered from the key store")
    func crashMidReplay() async throws {
        try await Self.withClient(email: "crash@example.com") { client, _ in
            let table = try await Fixtures.makeTable(client).id
            let queue = try #require(try await client.offline.queue())
            try await queue.enqueue(
                contentsOf: (0..<250).map { try Self.createItem(table: table, fields: ["Name": .string("c\($0)")]) }
            )

            // Another replay driver (as in another process) claims a batch, sends it, and dies.
            let sentKey: String
            do {
                let dying = try OfflineQueue(configuration: queue.configuration)
                let batch = try await dying.claimBatch()
                #expect(batch.count == 100)
                let request = try #require(OfflineControl.batchRequest(for: batch))
                sentKey = try #require(request.headerFields[.idempotencyKey])
                let response = try await client.execute(request)
                #expect(response.status == .ok)
                #expect(response.headerFields[.idempotentReplayed] == nil)
                try dying.close()
            }
            #expect(try await Self.names(in: table, client).count == 100, "the server applied the batch")

            let report = try await client.offline.replay()
            #expect(report.replayed == 250)
            #expect(report.alreadyApplied == 100, "the re-sent batch was answered from the idempotency store")
            #expect(report.remaining == 0)
            let names = try await Self.names(in: table, client)
            #expect(names.count == 250)
            #expect(Set(names).count == 250)
            #expect(!sentKey.isEmpty)
        }
    }

    @Test("a poison write inside a batch ends up alone in the failed list; the 99 others are applied once")
    func poisonInBatch() async throws {
        try await Self.withClient(email: "poison@example.com") { client, _ in
            let table = try await Fixtures.makeTable(client).id
            let queue = try #require(try await client.offline.queue())
            var items = try (0..<100).map { try Self.createItem(table: table, fields: ["Name": .string("p\($0)")]) }
            items[57] = try Self.createItem(table: table, fields: ["Name": "poison", "No such field": "x"])
            try await queue.enqueue(contentsOf: items)

            let report = try await client.offline.replay()
            #expect(report.replayed == 99)
            #expect(report.failed == 1)
            #expect(report.remaining == 0)
            let failed = try await queue.failed()
            #expect(failed.count == 1)
            #expect(failed.first?.idempotencyKey == items[57].idempotencyKey)
            #expect(failed.first?.batchIdempotencyKey == nil)
            #expect((400..<500).contains(failed.first?.lastFailure?.status ?? 0))
            let names = try await Self.names(in: table, client)
            #expect(names.count == 99)
            #expect(Set(names).count == 99)
            #expect(!names.contains("poison"))
            #expect(try await client.offline.replay().replayed == 0)
        }
    }
}
