import Foundation
import HTTPTypes
import PyAirtableClient
import PyAirtableModels
import ReferenceServer
import ReferenceServerTesting
import Testing

@testable import PyAirtableClient

@Suite("Offline writes against the real server", .timeLimit(.minutes(15)))
struct OfflineWritesTests {
    /// A client of `url` with the offline queue in `directory`, no retries, session credentials.
    static func configuration(url: String, directory: URL) -> PyAirtableClient.Configuration {
        var configuration = PyAirtableClient.Configuration(
            serverURL: URL(string: url)!,
            credentials: .store(InMemoryTokenStore()),
            retry: RetryPolicy(maximumRetries: 0),
            circuitBreaker: .disabled
        )
        configuration.offline = .persistent(path: directory.appendingPathComponent("queue.sqlite").path)
        // These tests replay explicitly and count what the replay did.
        configuration.offline.replaysAutomatically = false
        return configuration
    }

    @Test("writes made while the server is down are queued, then replayed once each; a refused one is kept")
    func queueAndReplay() async throws {
        let server = RestartableServer()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-offline-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            try await server.start()
            try await withPyAirtableClient(configuration: Self.configuration(url: server.url, directory: directory)) {
                client in
                _ = try await client.auth.register(email: "offline@example.com", password: "correct horse", name: "Off")
                let table = try await Fixtures.makeTable(client)
                let kept = try await client.records.create(in: table.id, fields: ["Name": "kept", "Score": 1]).get()
                let doomed = try await client.records.create(in: table.id, fields: ["Name": "doomed"]).get()

                await server.stop()
                // A write the server cannot take is a result, not an error: queued, with its mutation id
                // and the record as reads now show it.
                let created = try #require(
                    try await client.records.create(in: table.id, fields: ["Name": "made offline"]).queued
                )
                #expect(created.temporaryID?.rawValue.hasPrefix("tmp_") == true)
                #expect(created.record == .temporary(try #require(created.temporaryID)))
                #expect(created.optimistic?.fields["Name"] == .string("made offline"))
                #expect(created.optimistic?.tableID == table.id)
                #expect(created.reason == .transportFailure || created.reason == .circuitOpen)
                #expect(
                    await client.records.pending(try #require(created.temporaryID))?.fields["Name"] == "made offline"
                )
                let update = try #require(try await client.records.update(kept.id, fields: ["Score": 2]).queued)
                #expect(update.mutationID > created.mutationID)
                #expect(update.record == .server(kept.id) && update.optimistic?.baseVersion == kept.version)
                #expect(
                    update.optimistic?.fields == ["Name": "kept", "Score": 2],
                    "the held record with the write applied"
                )
                let again = try await client.records.update(kept.id, fields: ["Score": 3])
                #expect(again.isQueued && again.saved == nil)
                #expect(throws: PyAirtableError.queuedOffline) { try again.get() }
                let deletion = try #require(try await client.records.delete(doomed.id).queued)
                #expect(deletion.optimistic == nil && deletion.record == .server(doomed.id))
                // A poison write: the record does not exist; the server will refuse it.
                #expect(try await client.records.update(RecordID.generate(), fields: ["Name": "ghost"]).isQueued)
                #expect(try await client.offline.counts().pending == 5)

                try await server.start()
                let report = try await client.offline.replay()
                #expect(report.replayed == 4)
                #expect(report.failed == 1)
                #expect(report.remaining == 0)
                let queue = try #require(try await client.offline.queue())
                let failed = try await queue.failed()
                #expect(failed.count == 1)
                #expect(failed.first?.lastFailure?.status == 404)

                let records = try await client.records.list(in: table.id, policy: .networkOnly).data
                #expect(records.filter { $0.fields["Name"] == .string("made offline") }.count == 1)
                #expect(records.first { $0.id == kept.id }?.fields["Score"] == .number(3), "updates in order")
                #expect(!records.contains { $0.id == doomed.id })
                #expect(try await client.offline.replay().replayed == 0, "nothing is sent twice")
            }
        } catch {
            await server.remove()
            throw error
        }
        await server.remove()
    }

    @Test("an offline chain — create, update it, link it from another record, delete it — replays after a restart")
    func offlineChain() async throws {
        let server = RestartableServer()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-offline-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            try await server.start()
            var configuration = Self.configuration(url: server.url, directory: directory)
            configuration.offline.replaysAutomatically = true
            try await withPyAirtableClient(configuration: configuration) { client in
                _ = try await client.auth.register(email: "chain@example.com", password: "correct horse", name: "Chain")
                let table = try await Fixtures.makeTable(client)
                _ = try await client.fields.create(
                    in: table.id,
                    field: CreateFieldRequest(
                        name: "Related",
                        type: .multipleRecordLinks,
                        options: FieldOptions(linkedTableID: table.id)
                    )
                )
                let other = try await client.records.create(in: table.id, fields: ["Name": "other"]).get()

                await server.stop()
                let creation = try #require(
                    try await client.records.create(in: table.id, fields: ["Name": "draft"]).queued
                )
                let temporary = try #require(creation.temporaryID)
                #expect(RecordID(temporary.rawValue) == nil, "a temporary id is never a record id")
                let rename = try #require(
                    try await client.records.update(temporary, fields: ["Name": "final", "Score": 7]).queued
                )
                #expect(rename.record == .temporary(temporary))
                #expect(rename.optimistic?.fields == ["Name": "final", "Score": 7])
                #expect(
                    try await client.records.update(other.id, fields: ["Related": .strings([temporary.rawValue])])
                        .isQueued
                )
                #expect(try await client.records.update(other.id, fields: ["Score": 1]).isQueued)
                #expect(try await client.records.delete(temporary).isQueued)
                #expect(await client.records.pending(temporary) == nil, "a pending delete removes it from reads")
                #expect(await client.records.resolve(temporary) == nil, "not on the server yet")
                // Pending, or in flight in a background replay that cannot reach the server.
                let counts = try await client.offline.counts()
                #expect(counts.pending + counts.inflight == 5)
                #expect(counts.failed == 0)
                #expect(try await client.offline.hasPendingWrites(for: other.id))
                #expect(try await client.offline.hasPendingWrites(for: temporary))

                // The server is back. An unrelated call no longer starts the replay as a side effect; the
                // explicit trigger does (the probe would too, on its interval).
                try await server.start()
                _ = try await client.users.me()
                client.offline.replayNow()
                try await client.offline.waitForPendingWrites()
                #expect(try await client.offline.counts().total == 0)
                #expect(try await !client.offline.hasPendingWrites(for: other.id))

                let records = try await client.records.list(in: table.id, policy: .networkOnly).data
                #expect(
                    !records.contains { $0.fields["Name"] == .string("draft") || $0.fields["Name"] == .string("final") }
                )
                let linked = try #require(records.first { $0.id == other.id })
                #expect(linked.fields["Score"] == .number(1))
                // The link was written with the server's id (the record was deleted after, so the
                // server may have dropped it from the link): never with the temporary one.
                if case .strings(let ids)? = linked.fields["Related"] {
                    #expect(!ids.contains { $0.hasPrefix("tmp_") })
                }
                let events = try await client.send(
                    PyAirtableClient.request(
                        .get,
                        "/api/v1/events/log",
                        query: [QueryItem("since", "0"), QueryItem("table_id", table.id.rawValue)],
                        operation: ClientOperation(service: "test", name: "log")
                    ),
                    as: EventLogPage.self
                ).data
                #expect(events.filter { $0.type == .recordCreated }.count == 2, "other, and the offline create: once")
                #expect(events.filter { $0.type == .recordDeleted }.count == 1)
            }
        } catch {
            await server.remove()
            throw error
        }
        await server.remove()
    }

    @Test("a write the server already applied (its answer lost) is not applied again on replay")
    func lostAnswerAppliedOnce() async throws {
        try await TestServer.withRunning { server in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-offline-\(UUID())")
            defer { try? FileManager.default.removeItem(at: directory) }
            try await withPyAirtableClient(configuration: Self.configuration(url: server.url, directory: directory)) {
                client in
                _ = try await client.auth.register(email: "lost@example.com", password: "correct horse", name: "Lost")
                let table = try await Fixtures.makeTable(client)
                let key = UUID().uuidString.lowercased()
                let body = Data(#"{"fields":{"Name":"once"}}"#.utf8)
                // The write reached the server...
                var fields: HTTPFields = [.contentType: "application/json", .accept: "application/json"]
                fields[HTTPField.Name("Idempotency-Key")!] = key
                _ = try await client.execute(
                    ClientRequest(
                        method: .post,
                        path: "/api/v1/tables/\(table.id)/records",
                        headerFields: fields,
                        body: HTTPBody(body),
                        operation: ClientOperation(service: "test", name: "create")
                    )
                )
                // ...but its answer was lost, so it was queued with its key.
                let queue = try #require(try await client.offline.queue())
                _ = try await queue.enqueue(
                    QueuedRequest(method: "POST", path: "/api/v1/tables/\(table.id)/records", body: body),
                    creates: [TemporaryID.generate()],
                    idempotencyKey: key
                )
                let report = try await client.offline.replay()
                #expect(report.replayed == 1)
                #expect(report.alreadyApplied == 1)
                let records = try await client.records.list(in: table.id, policy: .networkOnly).data
                #expect(records.filter { $0.fields["Name"] == .string("once") }.count == 1)
            }
        }
    }
}
