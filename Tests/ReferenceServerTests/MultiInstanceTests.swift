import Foundation
import HTTPTypes
import PyAirtableModels
import TestSupport
import Testing

@testable import ReferenceServer

/// Two `pyat serve` instances on one PostgreSQL database, each a real server on its own port: what a
/// client sees through a load balancer that sends each request anywhere.
@Suite("Several instances on PostgreSQL", .timeLimit(.minutes(5)))
struct MultiInstanceTests {
    /// Runs two servers sharing one fresh database and the secrets instances must share.
    static func withTwoInstances(
        _ body: @escaping @Sendable (RealtimeServer, RealtimeServer) async throws -> Void
    ) async throws {
        try await PostgresCluster.withDatabase { location in
            let share: @Sendable (inout ServerConfiguration) -> Void = { configuration in
                configuration.database = .postgres(location, poolSize: 4)
                configuration.jwtSecret = String(repeating: "j", count: 40)
                configuration.storageSecret = String(repeating: "s", count: 40)
            }
            try await RealtimeServer.run(configure: share) { first in
                try await RealtimeServer.run(configure: share) { second in
                    try await body(first, second)
                }
            }
        }
    }

    @Test("a write on one instance reaches a WebSocket subscriber of the other, once, in seq order")
    func realtimeAcrossInstances() async throws {
        try await Self.withTwoInstances { a, b in
            let (ownerOnA, _) = try await a.api.register("Ada")
            let ownerOnB = b.api.authorized(try #require(ownerOnA.token))
            let (_, _, table) = try await ownerOnA.scaffold()
            let socket = b.socket(token: ownerOnB.token)
            defer { socket.close() }
            let head = try await socket.subscribe("s", filters: EventFilter(tableID: table.id))

            var created: [RecordID] = []
            for index in 0..<5 {
                // Alternate instances: B's subscriber sees its own and A's writes alike.
                let writer = index % 2 == 0 ? ownerOnA : ownerOnB
                created.append(try await writer.createRecord(in: table.id, ["Name": .string("r\(index)")]).id)
            }
            var seen: [Event] = []
            for _ in created {
                seen.append(try await socket.nextEvent(timeout: .seconds(10)).event)
            }
            #expect(seen.map(\.recordID) == created)
            #expect(seen.map(\.seq) == seen.map(\.seq).sorted())
            #expect(seen.first.map { $0.seq > head } == true)
            try await socket.expectPong()
        }
    }

    @Test("a subscriber resuming on the other instance by seq gets exactly what it missed")
    func resumeOnAnotherInstance() async throws {
        try await Self.withTwoInstances { a, b in
            let (ownerOnA, _) = try await a.api.register("Ada")
            let ownerOnB = b.api.authorized(try #require(ownerOnA.token))
            let (_, _, table) = try await ownerOnA.scaffold()
            let first = a.socket(token: ownerOnA.token)
            let since = try await first.subscribe("s", filters: EventFilter(tableID: table.id))
            first.cancel()

            var missed: [RecordID] = []
            for index in 0..<4 {
                let writer = index % 2 == 0 ? ownerOnA : ownerOnB
                missed.append(try await writer.createRecord(in: table.id, ["Name": .string("m\(index)")]).id)
            }
            let resumed = b.socket(token: ownerOnB.token)
            defer { resumed.close() }
            try await resumed.subscribe("s", filters: EventFilter(tableID: table.id), since: since)
            var replayed: [RecordID?] = []
            for _ in missed { replayed.append(try await resumed.nextEvent(timeout: .seconds(10)).event.recordID) }
            #expect(replayed == missed)
            try await resumed.expectPong()
        }
    }

    @Test("read-your-writes through either instance; If-Match and Idempotency-Key hold across them")
    func versionsAndKeysAcrossInstances() async throws {
        try await Self.withTwoInstances { a, b in
            let (ownerOnA, _) = try await a.api.register("Ada")
            let ownerOnB = b.api.authorized(try #require(ownerOnA.token))
            let (_, _, table) = try await ownerOnA.scaffold()
            let record = try await ownerOnA.createRecord(in: table.id, ["Name": .string("v1")])

            // Written on A, read at once on B.
            let updated = try await ownerOnA.call(
                .patch,
                "records/\(record.id)",
                json: RecordFieldsRequest(fields: ["Name": .string("v2")]),
                as: PyAirtableModels.Record.self,
                headers: [.ifMatch: "\"1\""]
            )
            #expect(updated.version == 2)
            #expect(try await ownerOnB.record(record.id).fields["Name"] == .string("v2"))

            // A stale If-Match on B is a 412 with the current record.
            let stale = try await ownerOnB.send(
                .patch,
                "records/\(record.id)",
                json: RecordFieldsRequest(fields: ["Name": .string("v3")]),
                headers: [.ifMatch: "\"1\""]
            )
            #expect(stale.status == .preconditionFailed)

            // One idempotency key sent to both instances: one record, the same answer twice.
            let body = RecordFieldsRequest(fields: ["Name": .string("once")])
            async let onA = ownerOnA.send(
                .post,
                "tables/\(table.id)/records",
                json: body,
                headers: [.idempotencyKey: "k-1"]
            )
            async let onB = ownerOnB.send(
                .post,
                "tables/\(table.id)/records",
                json: body,
                headers: [.idempotencyKey: "k-1"]
            )
            let answers = try await [onA, onB]
            #expect(answers.map(\.status) == [.created, .created])
            #expect(answers[0].body == answers[1].body)
            let names = try await ownerOnB.events(since: 0).compactMap { event -> String? in
                guard event.type == .recordCreated, case .object(let fields)? = event.payload["fields"],
                    case .string(let name)? = fields["Name"]
                else { return nil }
                return name
            }
            #expect(names.filter { $0 == "once" }.count == 1)
        }
    }
}
