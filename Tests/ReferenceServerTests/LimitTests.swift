import AsyncHTTPClient
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import NIOWebSocket
import PyAirtableModels
import TestSupport
import Testing
import WSClient

@testable import ReferenceServer

/// Limits that used to have holes: fields added after a table's creation, files a user uploads,
/// realtime connections a user holds, and the bytes queued for one connection.
@Suite("Limits: fields per table, upload quota, realtime connections and buffered bytes", .timeLimit(.minutes(15)))
struct LimitTests {
    // MARK: Fields

    @Test("the 501st field is refused on every path that adds fields, and when two adds race for the last place")
    func fieldLimitOnEveryPath() async throws {
        #expect(ServerConfiguration().maximumFieldsPerTable == 500)
        try await Harness.withServer { api, _ in
            let (owner, _) = try await api.register()
            let workspace = try await owner.createWorkspace()
            let base = try await owner.createBase(in: workspace.id)
            let fields = (1...500).map { CreateFieldRequest(name: "F\($0)", type: .singleLineText) }

            // With the table.
            let tooWide = try await owner.send(
                .post,
                "bases/\(base.id)/tables",
                json: CreateTableRequest(name: "Too wide", fields: fields + [.init(name: "F501", type: .number)])
            )
            expectError(tooWide, .unprocessableContent, .validation)
            let table = try await owner.createTable(in: base.id, "Wide", fields: fields)
            #expect(table.fields.count == 500)

            // One by one.
            let added = try await owner.send(
                .post,
                "tables/\(table.id)/fields",
                json: CreateFieldRequest(name: "F501", type: .number)
            )
            let refusal = expectError(added, .unprocessableContent, .validation)
            #expect(refusal?.message.contains("at most 500 fields") == true, "\(refusal?.message ?? "")")

            // A table update carrying fields adds none, whether it is refused or the member ignored.
            let patched = try await owner.send(
                .patch,
                "tables/\(table.id)",
                raw: #"{"name": "Wider", "fields": [{"name": "F501", "type": "number"}]}"#
            )
            #expect([200, 400, 422].contains(patched.status.code), "\(patched.text)")
            func fieldCount() async throws -> Int {
                try await owner.call(.get, "tables/\(table.id)/fields", as: Page<Field>.self).data.count
            }
            #expect(try await fieldCount() == 500)

            // At 499, two concurrent adds: one takes the last place, the other is refused.
            let last = try #require(table.fields.last)
            #expect(try await owner.send(.delete, "fields/\(last.id)").status == .noContent)
            let statuses = try await owner.withConnections(2) { connections in
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for (index, connection) in connections.enumerated() {
                        group.addTask {
                            try await connection.send(
                                .post,
                                "tables/\(table.id)/fields",
                                json: CreateFieldRequest(name: "Racer \(index)", type: .number)
                            ).status.code
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }.sorted()
                }
            }
            #expect(statuses == [201, 422])
            #expect(try await fieldCount() == 500)
        }
    }

    @Test("the field limit is configuration: a smaller one holds on both paths")
    func configuredFieldLimit() async throws {
        let threeFields: (inout ServerConfiguration) -> Void = { $0.maximumFieldsPerTable = 3 }
        try await Harness.withServer(configure: threeFields) { api, _ in
            let (owner, _) = try await api.register()
            let workspace = try await owner.createWorkspace("Small")
            let smallBase = try await owner.createBase(in: workspace.id)
            let three = (1...3).map { CreateFieldRequest(name: "F\($0)", type: .number) }
            let table = try await owner.createTable(in: smallBase.id, "Three", fields: three)
            let fourth = try await owner.send(
                .post,
                "tables/\(table.id)/fields",
                json: CreateFieldRequest(name: "F4", type: .number)
            )
            #expect(expectError(fourth, .unprocessableContent, .validation)?.message.contains("at most 3") == true)
            let wide = try await owner.send(
                .post,
                "bases/\(smallBase.id)/tables",
                json: CreateTableRequest(name: "Four", fields: three + [.init(name: "F4", type: .number)])
            )
            expectError(wide, .unprocessableContent, .validation)
        }
    }

    // MARK: Upload quota

    @Test(
        "the upload quota refuses, with 413 and what is left, announced, streamed and keyed uploads; deleting frees it"
    )
    func uploadQuota() async throws {
        #expect(ServerConfiguration().uploadQuotaBytes == 10 << 30)
        let quota: (inout ServerConfiguration) -> Void = { $0.uploadQuotaBytes = 1000 }
        try await Harness.withServer(configure: quota) { api, services in
            let (ada, _) = try await api.register("Ada")
            let first = try await ada.upload(Array(repeating: 1, count: 600), name: "first.bin")

            let announced = try await ada.uploadResponse(Array(repeating: 2, count: 500), name: "announced.bin")
            let error = expectError(announced, .contentTooLarge, .payloadTooLarge)
            #expect(error?.message.contains("upload quota") == true, "\(error?.message ?? "")")
            #expect(error?.message.contains("600 of your 1000 bytes") == true, "\(error?.message ?? "")")

            // Chunked: no Content-Length, so the quota is found while streaming.
            let token = try #require(ada.token)
            let port = try #require(api.client.port)
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/v1/files?name=chunked")
            request.method = .POST
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            let chunks = AsyncStream<ByteBuffer> { continuation in
                for _ in 0..<8 { continuation.yield(ByteBuffer(repeating: 3, count: 100)) }
                continuation.finish()
            }
            request.body = .stream(chunks, length: .unknown)
            let streamed = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            let body = try await streamed.body.collect(upTo: 1 << 20)
            #expect(streamed.status.code == 413)
            let streamedError = try JSONCoding.decoder.decode(ErrorResponse.self, from: Data(body.readableBytesView))
            #expect(streamedError.error.message.contains("upload quota"), "\(streamedError.error.message)")

            // With an Idempotency-Key the transaction decides: a new upload is refused, a replay answered.
            let keyed = try await ada.uploadResponse(
                Array(repeating: 4, count: 300),
                name: "keyed.bin",
                headers: [.idempotencyKey: "upload-1"]
            )
            #expect(keyed.status == .created, "\(keyed.text)")
            let overKeyed = try await ada.uploadResponse(
                Array(repeating: 5, count: 200),
                name: "over.bin",
                headers: [.idempotencyKey: "upload-2"]
            )
            expectError(overKeyed, .contentTooLarge, .payloadTooLarge)
            let replay = try await ada.uploadResponse(
                Array(repeating: 4, count: 300),
                name: "keyed.bin",
                headers: [.idempotencyKey: "upload-1"]
            )
            #expect(replay.status == .created && replay.headers[.idempotentReplayed] == "true", "\(replay.text)")

            // The quota is each user's own.
            let (bob, _) = try await api.register("Bob")
            _ = try await bob.upload(Array(repeating: 6, count: 900), name: "bob.bin")

            try await ada.deleteFile(first.id)
            let afterDelete = try await ada.upload(Array(repeating: 7, count: 600), name: "again.bin")
            #expect(afterDelete.size == 600)
            #expect(
                try await services.store.uploadedBytes(user: try #require(afterDelete.createdBy)) == 900,
                "keyed.bin and again.bin"
            )
            #expect(try FileManager.default.contentsOfDirectory(atPath: services.blobs.temporaryDirectory).isEmpty)
        }
    }

    // MARK: Realtime connections per user

    @Test("a user past the realtime connection limit is refused: WebSocket 4429, SSE 429; others and polling are not")
    func realtimeConnectionsPerUser() async throws {
        #expect(RealtimeConfiguration().maximumConnectionsPerUser == 64)
        let realtime = RealtimeConfiguration(maximumConnectionsPerUser: 2)
        try await RealtimeServer.run(realtime: realtime) { server in
            let (ada, _) = try await server.api.register("Ada")
            let (bob, _) = try await server.api.register("Bob")
            let adaToken = try #require(ada.token)
            let first = server.socket(token: adaToken)
            defer { first.cancel() }
            try await first.subscribe("one")
            let second = try await server.serverSentEvents(token: adaToken)
            defer { second.cancel() }
            #expect(second.status == .ok)
            try await server.eventually("two connections") { await $0.connectionCount == 2 }

            let third = server.socket(token: adaToken)
            defer { third.cancel() }
            try third.send(.ping)
            let frame = await third.next()
            guard case .error(_, let error) = frame else {
                Issue.record("expected an error frame, got \(String(describing: frame))")
                return
            }
            #expect(error.type == .rateLimited && error.code == 429)
            #expect(error.message.contains("at most 2 realtime connections"), "\(error.message)")
            let close = await third.closed.next()
            #expect(close??.closeCode == .unknown(4429))

            let refusedStream = try await server.serverSentEvents(token: adaToken)
            #expect(refusedStream.status == .tooManyRequests)
            #expect(refusedStream.retryAfter == String(RealtimeHub.retryAfterSeconds))
            _ = await refusedStream.blocks.next()
            let body = try JSONCoding.decoder.decode(ErrorResponse.self, from: Data(refusedStream.body.utf8))
            #expect(body.error.type == .rateLimited && body.error.code == 429)

            // Polling holds no connection and is not counted; another user is not limited by Ada's.
            #expect(try await ada.send(.get, "events/log?since=0").status == .ok)
            let bobSocket = server.socket(token: bob.token)
            defer { bobSocket.close() }
            try await bobSocket.subscribe("bob")
            #expect(server.services.metrics.exposition().contains("pyat_realtime_connections_refused_total 2"))

            // A closed connection frees its place.
            first.close()
            try await server.eventually("Ada's WebSocket to go") { await $0.connectionCount == 2 }
            let again = server.socket(token: adaToken)
            defer { again.close() }
            try await again.subscribe("again")
        }
    }

    // MARK: Bytes queued for one connection

    @Test("a consumer that never reads is cut off by the byte bound long before the message bound", .heavy)
    func slowConsumerByBytes() async throws {
        #expect(RealtimeConfiguration().maximumBufferedBytes == 4 << 20)
        // The silent consumer answers no pings: on a loaded machine the idle timeout must not be
        // what ends it.
        let realtime = RealtimeConfiguration(
            bufferSize: 4096,
            maximumBufferedBytes: 256 * 1024,
            idleTimeout: .seconds(3600),
            pingInterval: .seconds(3600),
            closeTimeout: .milliseconds(200)
        )
        try await RealtimeServer.run(realtime: realtime, maximumBodySize: 1 << 20) { server in
            let (owner, _) = try await server.api.register("Ada")
            let (_, _, table) = try await owner.scaffold()
            let slow = server.socket(token: owner.token, reading: false)
            defer { slow.cancel() }
            try slow.send(
                .subscribe(id: "slow", channel: "events", filters: EventFilter(tableID: table.id), since: nil)
            )
            try await server.eventually("the slow connection to subscribe") { await $0.subscriptionCount == 1 }

            // 64 KiB events: the 256 KiB bound holds four of them, the 4096-message bound a thousand times more.
            let text = String(repeating: "x", count: 64 * 1024)
            var written = 0
            while await server.hub.connectionCount == 1, written < 1000 {
                _ = try await owner.createRecord(in: table.id, ["Name": .string(text)])
                written += 1
            }
            try await server.eventually("the slow consumer to be cut off") { await $0.connectionCount == 0 }
            #expect(written < 1000, "cut off after \(written) writes")
            #expect(server.services.metrics.exposition().contains("pyat_realtime_slow_consumer_disconnects_total 1"))
        }
    }
}
