import Foundation
import GRDB
import HTTPTypes
import PyAirtableModels
import TestSupport
import Testing

@testable import ReferenceServer

@Suite("Persistence across restarts, and group commit under concurrency", .timeLimit(.minutes(15)))
struct PersistenceTests {
    /// What the first run leaves behind, to compare after the restart.
    struct Snapshot: Sendable {
        var user: User
        var password: String
        var tokens: Tokens
        var personalToken: String
        var tokenID: AccessTokenID
        var workspace: Workspace
        var table: PyAirtableModels.Table
        var records: [PyAirtableModels.Record]
        var events: [Event]
    }

    @Test("durable commits sync the write-ahead log at every commit (synchronous = FULL on the writer)")
    func durableWriter() throws {
        let directory = try TemporaryDirectory()
        for (durable, expected) in [(true, 2), (false, 1)] {
            let database = try ServerDatabase(
                path: directory.path + "/durable-\(durable).sqlite",
                durable: durable,
                keys: StorageKeys(secret: Array(repeating: 7, count: 32)),
                logger: Harness.logger
            )
            let level = try database.pool.writeWithoutTransaction { db in
                try Int.fetchOne(db, sql: "PRAGMA synchronous")
            }
            #expect(level == expected, "durable: \(durable)")
        }
    }

    @Test("a restart on the same data directory keeps users, tokens, schema, records and events")
    func restart() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path
        let clock = ManualWallClock()
        let snapshot = try await Harness.withServer(dataDirectory: path, clock: clock) { api, _ in
            let auth = try await api.call(
                .post,
                "auth/register",
                json: RegisterRequest(email: "keep@example.com", password: "correct horse", name: "Keeper"),
                expect: .created,
                as: AuthResponse.self
            )
            let client = api.authorized(auth.tokens.accessToken)
            let pat = try await client.call(
                .post,
                "auth/tokens",
                json: CreateAccessTokenRequest(name: "cli"),
                expect: .created,
                as: AccessToken.self
            )
            let (workspace, _, table) = try await client.scaffold()
            _ = try await client.call(
                .post,
                "tables/\(table.id)/views",
                json: CreateViewRequest(name: "Sorted", sort: [.init(field: "Score")]),
                expect: .created,
                as: View.self
            )
            var records = try await client.seed(
                table.id,
                (0..<5).map { ["Name": .string("r\($0)"), "Score": .number(Double($0))] }
            )
            records[0] = try await client.call(
                .patch,
                "records/\(records[0].id)",
                json: RecordFieldsRequest(fields: ["Status": "Done"]),
                as: PyAirtableModels.Record.self
            )
            return Snapshot(
                user: auth.user,
                password: "correct horse",
                tokens: auth.tokens,
                personalToken: try #require(pat.token),
                tokenID: pat.id,
                workspace: workspace,
                table: try await client.table(table.id),
                records: try await client.allRecords(table.id),
                events: try await client.events()
            )
        }

        let secretPath = (path as NSString).appendingPathComponent("jwt-secret")
        let attributes = try FileManager.default.attributesOfItem(atPath: secretPath)
        #expect((attributes[.posixPermissions] as? Int).map { $0 & 0o777 } == 0o600)
        let secret = try #require(FileManager.default.contents(atPath: secretPath))
        #expect(secret.count >= 32)
        // A secret left readable by others is tightened on the next start.
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: secretPath)

        try await Harness.withServer(dataDirectory: path, clock: clock) { api, _ in
            // The access token from before the restart still verifies: the signing secret was kept.
            let client = api.authorized(snapshot.tokens.accessToken)
            #expect(try await client.call(.get, "users/me", as: User.self) == snapshot.user)
            let pat = api.authorized(snapshot.personalToken)
            #expect(try await pat.call(.get, "users/me", as: User.self).id == snapshot.user.id)
            #expect(
                try await client.call(.get, "auth/tokens", as: Page<AccessToken>.self).data.map(\.id) == [
                    snapshot.tokenID
                ]
            )
            let refreshed = try await api.call(
                .post,
                "auth/refresh",
                json: RefreshRequest(refreshToken: snapshot.tokens.refreshToken),
                as: RefreshResponse.self
            )
            #expect(try await api.authorized(refreshed.tokens.accessToken).send(.get, "users/me").status == .ok)
            let login = try await api.call(
                .post,
                "auth/login",
                json: LoginRequest(email: snapshot.user.email, password: snapshot.password),
                as: AuthResponse.self
            )
            #expect(login.user == snapshot.user)

            #expect(try await client.call(.get, "workspaces", as: Page<Workspace>.self).data == [snapshot.workspace])
            #expect(try await client.table(snapshot.table.id) == snapshot.table)
            #expect(try await client.allRecords(snapshot.table.id) == snapshot.records)
            #expect(
                try await client.allRecords(snapshot.table.id, "view=Sorted").map(\.id) == snapshot.records.map(\.id)
            )
            #expect(try await client.events() == snapshot.events)

            // New writes continue the sequence and the versions.
            let patched = try await client.call(
                .patch,
                "records/\(snapshot.records[0].id)",
                json: RecordFieldsRequest(fields: ["Score": 42]),
                as: PyAirtableModels.Record.self
            )
            #expect(patched.version == snapshot.records[0].version + 1)
            let last = try #require(snapshot.events.last).seq
            let next = try await client.events(since: last)
            #expect(next.map(\.type) == [.recordUpdated])
            #expect(next.first.map { $0.seq > last } == true)
        }

        let after = try FileManager.default.attributesOfItem(atPath: secretPath)
        #expect((after[.posixPermissions] as? Int).map { $0 & 0o777 } == 0o600)
        #expect(FileManager.default.contents(atPath: secretPath) == secret)
    }

    @Test("50 concurrent creates all succeed with distinct ids, and log 50 events with strictly increasing seq")
    func concurrentCreates() async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let before = try await client.stats()
            let responses = try await client.withConnections(50) { connections in
                try await withThrowingTaskGroup(of: APIResponse.self) { group in
                    for (index, connection) in connections.enumerated() {
                        group.addTask {
                            try await connection.send(
                                .post,
                                "tables/\(table.id)/records",
                                json: RecordFieldsRequest(fields: [
                                    "Name": .string("c\(index)"), "Score": .number(Double(index)),
                                ])
                            )
                        }
                    }
                    var responses: [APIResponse] = []
                    for try await response in group { responses.append(response) }
                    return responses
                }
            }
            #expect(responses.count == 50)
            #expect(responses.allSatisfy { $0.status == .created })
            let created = try responses.map { try $0.decode(PyAirtableModels.Record.self) }
            let ids = Set(created.map(\.id))
            #expect(ids.count == 50)
            #expect(Set(created.compactMap { $0.fields["Name"] }).count == 50)

            let events = try await client.events(since: before.lastEventSeq)
            #expect(events.count == 50)
            #expect(events.allSatisfy { $0.type == .recordCreated && $0.tableID == table.id })
            #expect(zip(events, events.dropFirst()).allSatisfy { $0.seq < $1.seq })
            #expect(Set(events.compactMap(\.recordID)) == ids)
            let after = try await client.stats()
            #expect(after.records == before.records + 50)
            #expect(after.events == before.events + 50)
            #expect(Set(try await client.allRecords(table.id).map(\.id)) == ids)
        }
    }

    @Test("failing writes among concurrent ones roll back alone; the others commit")
    func concurrentFailures() async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let before = try await client.stats()
            /// 0: a good create, 1: a create with a bad value, 2: a batch whose second operation fails.
            @Sendable func kind(_ index: Int) -> Int { index % 5 == 3 ? 1 : index % 5 == 4 ? 2 : 0 }
            let results = try await client.withConnections(50) { connections in
                try await withThrowingTaskGroup(of: (Int, APIResponse).self) { group in
                    for (index, connection) in connections.enumerated() {
                        group.addTask {
                            let path = "tables/\(table.id)/records"
                            switch kind(index) {
                            case 1:
                                return (
                                    index,
                                    try await connection.send(
                                        .post,
                                        path,
                                        json: RecordFieldsRequest(fields: ["Score": "high"])
                                    )
                                )
                            case 2:
                                let batch = BatchRequest(operations: [
                                    .create(fields: ["Name": .string("ghost\(index)")]),
                                    .create(fields: ["Status": "Unknown"]),
                                ])
                                return (index, try await connection.send(.post, "\(path)/batch", json: batch))
                            default:
                                return (
                                    index,
                                    try await connection.send(
                                        .post,
                                        path,
                                        json: RecordFieldsRequest(fields: ["Name": .string("good\(index)")])
                                    )
                                )
                            }
                        }
                    }
                    var results: [(Int, APIResponse)] = []
                    for try await result in group { results.append(result) }
                    return results
                }
            }
            var good: Set<RecordID> = []
            for (index, response) in results {
                if kind(index) == 0 {
                    #expect(response.status == .created, "\(index): \(response.text)")
                    good.insert(try response.decode(PyAirtableModels.Record.self).id)
                } else {
                    expectError(response, .unprocessableContent, .validation, "\(index)")
                }
            }
            #expect(good.count == 30)
            let stored = try await client.allRecords(table.id)
            #expect(Set(stored.map(\.id)) == good)
            let names = stored.compactMap { record -> String? in
                if case .string(let name)? = record.fields["Name"] { return name }
                return nil
            }
            #expect(names.count == 30)
            #expect(!names.contains { $0.hasPrefix("ghost") })
            let after = try await client.stats()
            #expect(after.records == before.records + 30)
            #expect(after.events == before.events + 30)
            let events = try await client.events(since: before.lastEventSeq)
            #expect(Set(events.compactMap(\.recordID)) == good)
        }
    }

    @Test("concurrent writes with the same If-Match: exactly one wins, the rest get 412")
    func concurrentConditionalWrites() async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let record = try await client.createRecord(in: table.id, ["Name": "contended", "Score": 0])
            let before = try await client.stats()
            let statuses = try await client.withConnections(20) { connections in
                try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                    for (index, connection) in connections.enumerated() {
                        group.addTask {
                            try await connection.send(
                                .patch,
                                "records/\(record.id)",
                                json: RecordFieldsRequest(fields: ["Score": .number(Double(index + 1))]),
                                headers: [.ifMatch: "\"1\""]
                            ).status
                        }
                    }
                    var statuses: [HTTPResponse.Status] = []
                    for try await status in group { statuses.append(status) }
                    return statuses
                }
            }
            #expect(statuses.filter { $0 == .ok }.count == 1)
            #expect(statuses.filter { $0 == .preconditionFailed }.count == 19)
            let current = try await client.record(record.id)
            #expect(current.version == 2)
            #expect(try await client.stats().events == before.events + 1)
        }
    }
}
