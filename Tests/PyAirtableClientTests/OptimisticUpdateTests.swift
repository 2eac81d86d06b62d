import Foundation
import HTTPTypes
import PyAirtableClient
import PyAirtableModels
import ReferenceServer
import ReferenceServerTesting
import Synchronization
import Testing

@testable import PyAirtableClient

/// Holds the client's writes at the seam between the SDK and the real server until the test opens
/// the gate, and records the order in which writes reach it.
final class WriteGate: ClientMiddleware {
    private struct State {
        var closed = true
        var waiters: [(id: UUID, continuation: CheckedContinuation<Void, Never>)] = []
        var arrived: [String] = []
        var held = 0
    }

    private let state = Mutex(State())

    /// Writes that reached the gate, as `METHOD path body`, in order.
    var arrived: [String] { state.withLock { $0.arrived } }
    /// Writes waiting at the gate now.
    var held: Int { state.withLock { $0.held } }

    func open() {
        let waiters = state.withLock { state in
            state.closed = false
            state.held = 0
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.continuation.resume() }
    }

    func intercept(
        _ request: ClientRequest,
        next: @Sendable (ClientRequest) async throws -> ClientResponse
    ) async throws -> ClientResponse {
        guard request.method != .get else { return try await next(request) }
        let body = request.bodyData.map { String(decoding: $0, as: UTF8.self) } ?? ""
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let passes = state.withLock { state -> Bool in
                    state.arrived.append("\(request.method.rawValue) \(request.path) \(body)")
                    guard state.closed, !Task.isCancelled else { return true }
                    state.held += 1
                    state.waiters.append((id, continuation))
                    return false
                }
                if passes { continuation.resume() }
            }
        } onCancel: {
            // A cancelled test must not leave a write hanging at the gate.
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                state.held -= 1
                return state.waiters.remove(at: index).continuation
            }
            waiter?.resume()
        }
        try Task.checkCancellation()
        return try await next(request)
    }
}

/// Waits (yielding, never sleeping) until `condition` holds, for at most 30 s of wall time.
func waitUntil(_ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .seconds(30)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        await Task.yield()
    }
    return false
}

@Suite("Optimistic layers over the cache, against the real server", .timeLimit(.minutes(15)))
struct OptimisticUpdateTests {
    /// A client of `server` with a cache in a fresh directory and `gate` (when given) before the server.
    @discardableResult
    static func withClient<T: Sendable>(
        _ server: TestServer,
        token: String,
        gate: WriteGate? = nil,
        configure: (inout PyAirtableClient.Configuration) -> Void = { _ in },
        _ body: (PyAirtableClient) async throws -> T
    ) async throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-optimistic-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        var configuration = Fixtures.configuration(server, token: token)
        configuration.cache = .persistent(path: directory.appendingPathComponent("cache.sqlite").path)
        configuration.retry = RetryPolicy(maximumRetries: 0)
        if let gate { configuration.middlewares = [gate] }
        configure(&configuration)
        return try await withPyAirtableClient(configuration: configuration, body)
    }

    @Test("a pending update shows in reads and lists at once; the server's answer replaces it")
    func pendingUpdateVisible() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let table = try await Fixtures.withClient(server, token: demo.token) { try await Fixtures.makeTable($0) }
            let record = try await Fixtures.withClient(server, token: demo.token) {
                try await $0.records.create(in: table.id, fields: ["Name": "Ada", "Score": 1]).get()
            }
            let gate = WriteGate()
            try await Self.withClient(server, token: demo.token, gate: gate) { client in
                let changes = client.mutations.changes()
                let pending = Task {
                    try await client.records.update(record.id, fields: ["Score": 7], onConflict: .fail).get()
                }
                var iterator = changes.makeAsyncIterator()
                let applied = await iterator.next()
                #expect(applied?.kind == .applied)
                #expect(applied?.layer.recordID == record.id)
                #expect(try await client.mutations.hasPendingWrites(for: record.id))
                #expect(try await client.mutations.pendingCount() == 1)

                let seen = try await client.records.getWithSource(record.id)
                #expect(seen.value.fields["Score"] == .number(7))
                #expect(seen.hasPendingWrites)
                let page = try await client.records.listWithSource(in: table.id)
                #expect(page.value.data.first { $0.id == record.id }?.fields["Score"] == .number(7))
                #expect(page.hasPendingWrites)
                // The server has not seen it yet.
                let other = try await Fixtures.withClient(server, token: demo.token) { other in
                    try await other.records.get(record.id)
                }
                #expect(other.fields["Score"] == .number(1))
                gate.open()
                #expect(try await pending.value.fields["Score"] == .number(7))
            }
        }
    }

    @Test("confirmation swaps the layer for the server's answer; waitForPendingWrites returns after it")
    func confirmation() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            try await Self.withClient(server, token: demo.token) { client in
                let table = try await Fixtures.makeTable(client)
                let record = try await client.records.create(in: table.id, fields: ["Name": "Ada", "Score": 1]).get()
                let gate2 = WriteGate()
                try await Self.withClient(server, token: demo.token, gate: gate2) { writer in
                    _ = try await writer.records.get(record.id)
                    let changes = writer.mutations.changes()
                    let pending = Task { try await writer.records.update(record.id, fields: ["Score": 8]).get() }
                    var iterator = changes.makeAsyncIterator()
                    #expect(await iterator.next()?.kind == .applied)
                    let waiter = Task { try await writer.mutations.waitForPendingWrites() }
                    #expect(try await writer.records.get(record.id).fields["Score"] == .number(8))
                    gate2.open()
                    try await waiter.value
                    let saved = try await pending.value
                    #expect(saved.version == 2)
                    #expect(await iterator.next()?.kind == .confirmed)
                    let read = try await writer.records.getWithSource(record.id)
                    #expect(read.hasPendingWrites == false)
                    #expect(read.value == saved)
                    #expect(try await writer.mutations.pendingCount() == 0)
                    #expect(writer.mutations.statistics.confirmed == 1)
                    #expect(writer.mutations.statistics.successRate == 1)
                }
            }
        }
    }

    @Test("a refused write rolls back only its own layer; another record's pending write stays and lands")
    func rollbackOfOne() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            try await Self.withClient(server, token: demo.token) { client in
                let table = try await Fixtures.makeTable(client)
                let first = try await client.records.create(in: table.id, fields: ["Name": "First", "Score": 1]).get()
                let second = try await client.records.create(in: table.id, fields: ["Name": "Second", "Score": 2]).get()
                let gate2 = WriteGate()
                try await Self.withClient(server, token: demo.token, gate: gate2) { writer in
                    let changes = writer.mutations.changes()
                    // A number field given text: the server refuses it with 422.
                    let bad = Task { try await writer.records.update(first.id, fields: ["Score": "lots"]).get() }
                    let good = Task { try await writer.records.update(second.id, fields: ["Score": 20]).get() }
                    var iterator = changes.makeAsyncIterator()
                    #expect(await iterator.next()?.kind == .applied)
                    #expect(await iterator.next()?.kind == .applied)
                    let both = try await writer.records.list(in: table.id).data
                    #expect(both.first { $0.id == first.id }?.fields["Score"] == .string("lots"))
                    #expect(both.first { $0.id == second.id }?.fields["Score"] == .number(20))

                    gate2.open()
                    let error = await #expect(throws: PyAirtableError.self) { try await bad.value }
                    #expect(error?.status == 422)
                    #expect(try await good.value.fields["Score"] == .number(20))
                    var settled: [OptimisticChange] = []
                    while settled.count < 2, let change = await iterator.next() { settled.append(change) }
                    let rolledBack = try #require(settled.first { $0.kind == .rolledBack })
                    #expect(rolledBack.layer.recordID == first.id)
                    #expect(rolledBack.error?.status == 422)
                    #expect(settled.contains { $0.kind == .confirmed && $0.layer.recordID == second.id })

                    let after = try await writer.records.listWithSource(in: table.id)
                    #expect(after.hasPendingWrites == false)
                    #expect(after.value.data.first { $0.id == first.id }?.fields["Score"] == .number(1))
                    #expect(after.value.data.first { $0.id == second.id }?.fields["Score"] == .number(20))
                    let statistics = writer.mutations.statistics
                    #expect(statistics.confirmed == 1)
                    #expect(statistics.rolledBack == 1)
                    #expect(statistics.successRate == 0.5)
                }
            }
        }
    }

    @Test("writes to one record go out in the order made, one at a time; another record's write is not held up")
    func perRecordOrder() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            try await Self.withClient(server, token: demo.token) { client in
                let table = try await Fixtures.makeTable(client)
                let busy = try await client.records.create(in: table.id, fields: ["Name": "Busy", "Score": 0]).get()
                let free = try await client.records.create(in: table.id, fields: ["Name": "Free", "Score": 0]).get()
                let gate2 = WriteGate()
                try await Self.withClient(server, token: demo.token, gate: gate2) { writer in
                    let changes = writer.mutations.changes()
                    var iterator = changes.makeAsyncIterator()
                    var tasks: [Task<Record, any Error>] = []
                    for score in 1...10 {
                        tasks.append(
                            Task {
                                try await writer.records.update(busy.id, fields: ["Score": .number(Double(score))])
                                    .get()
                            }
                        )
                        // The next write is made only once this one's layer is on.
                        #expect(await iterator.next()?.kind == .applied)
                    }
                    // Only the first write to `busy` reaches the server; the others wait their turn.
                    #expect(try await waitUntil { gate2.held == 1 })
                    #expect(try await writer.records.get(busy.id).fields["Score"] == .number(10))

                    // A write to another record meanwhile reaches the server's door at once, while the
                    // nine later writes to `busy` still wait their turn.
                    let other = Task { try await writer.records.update(free.id, fields: ["Score": 99]).get() }
                    #expect(try await waitUntil { gate2.held == 2 })
                    gate2.open()
                    #expect(try await other.value.fields["Score"] == .number(99))
                    var versions: [Int] = []
                    for task in tasks { versions.append(try await task.value.version) }
                    #expect(versions == Array(2...11))
                    let sent = gate2.arrived.filter { $0.contains(busy.id.rawValue) }
                    #expect(sent.count == 10)
                    for (index, line) in sent.enumerated() {
                        #expect(line.contains("\"Score\":\(index + 1)"), "\(line)")
                    }
                    #expect(try await client.records.get(busy.id, policy: .networkOnly).fields["Score"] == .number(10))
                }
            }
        }
    }

    @Test("a live query shows the client's pending write before the server confirms it")
    func liveQuerySeesLayer() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            try await Self.withClient(server, token: demo.token) { client in
                let table = try await Fixtures.makeTable(client)
                let record = try await client.records.create(in: table.id, fields: ["Name": "Live", "Score": 1]).get()
                let gate2 = WriteGate()
                try await Self.withClient(server, token: demo.token, gate: gate2) { writer in
                    var pages = writer.records.watch(in: table.id).makeAsyncIterator()
                    var first = try #require(try await pages.next())
                    while first.fromCache { first = try #require(try await pages.next()) }
                    #expect(first.value.data.first?.fields["Score"] == .number(1))
                    let pending = Task { try await writer.records.update(record.id, fields: ["Score": 5]).get() }
                    let shown = try #require(try await pages.next())
                    #expect(shown.hasPendingWrites)
                    #expect(shown.value.data.first?.fields["Score"] == .number(5))
                    gate2.open()
                    _ = try await pending.value
                    var confirmed = try #require(try await pages.next())
                    while confirmed.hasPendingWrites { confirmed = try #require(try await pages.next()) }
                    #expect(confirmed.value.data.first?.fields["Score"] == .number(5))
                    #expect(confirmed.value.data.first?.version == 2)
                }
            }
        }
    }

    @Test("writes waiting in the offline queue show in reads, survive a new client, and go when replayed")
    func queuedLayers() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-layers-\(UUID())")
            defer { try? FileManager.default.removeItem(at: directory) }
            let queuePath = directory.appendingPathComponent("queue.sqlite").path
            let offline: (inout PyAirtableClient.Configuration) -> Void = { configuration in
                configuration.offline = .persistent(path: queuePath)
                configuration.offline.queueWithoutTrying = true
            }
            let table = try await Fixtures.withClient(server, token: demo.token) { try await Fixtures.makeTable($0) }
            let existing = try await Fixtures.withClient(server, token: demo.token) {
                try await $0.records.create(in: table.id, fields: ["Name": "Existing", "Score": 1]).get()
            }
            let temporary = try await Self.withClient(server, token: demo.token, configure: offline) { client in
                let created = try #require(
                    try await client.records.create(in: table.id, fields: ["Name": "Made offline", "Score": 3]).queued
                )
                let temporary = try #require(created.temporaryID)
                #expect(created.queuedBecause == "working offline")
                #expect(try await client.records.update(existing.id, fields: ["Score": 10]).isQueued)
                #expect(await client.records.pending(temporary)?.fields["Name"] == .string("Made offline"))
                #expect(try await client.records.get(existing.id).fields["Score"] == .number(10))
                // A list shows the pending create apart from the server's records: it has no record id yet.
                let page = try await client.records.listWithSource(in: table.id)
                #expect(page.value.data.map(\.id) == [existing.id])
                #expect(page.pendingCreates.map(\.id) == [.temporary(temporary)])
                #expect(page.pendingCreates.first?.fields["Score"] == .number(3))
                return temporary
            }
            // A new client (as after a restart) reads the queued writes back from the queue file.
            let restarted: (inout PyAirtableClient.Configuration) -> Void = { configuration in
                configuration.offline = .persistent(path: queuePath)
                configuration.offline.replaysAutomatically = false
            }
            try await Self.withClient(server, token: demo.token, configure: restarted) { client in
                var changes = client.mutations.changes().makeAsyncIterator()
                let page = try await client.records.listWithSource(in: table.id)
                #expect(page.hasPendingWrites)
                // Reading the queue file back announces each write found waiting there.
                let found = [await changes.next(), await changes.next()]
                #expect(found.map { $0?.kind } == [.queued, .queued])
                #expect(Set(found.compactMap { $0?.layer.record }) == [.temporary(temporary), .server(existing.id)])
                #expect(page.pendingCreates.map(\.id) == [.temporary(temporary)])
                #expect(page.pendingCreates.first?.fields["Name"] == .string("Made offline"))
                #expect(page.value.data.first { $0.id == existing.id }?.fields["Score"] == .number(10))
                #expect(try await client.mutations.pendingCount() == 2)

                let report = try await client.offline.replay()
                #expect(report.replayed == 2)
                let after = try await client.records.listWithSource(in: table.id)
                #expect(after.hasPendingWrites == false)
                #expect(after.value.data.count == 2 && after.pendingCreates.isEmpty)
                #expect(after.value.data.contains { $0.fields["Name"] == .string("Made offline") })
                #expect(after.value.data.first { $0.id == existing.id }?.fields["Score"] == .number(10))
                // The temporary id now resolves to the server's record.
                let serverID = try #require(await client.records.resolve(temporary))
                #expect(await client.records.pending(temporary) == nil)
                #expect(try await client.records.get(serverID).fields["Name"] == .string("Made offline"))
            }
        }
    }

    @Test("a write to a record with writes still queued goes behind them, so the server applies them in order")
    func behindQueuedWrites() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-behind-\(UUID())")
            defer { try? FileManager.default.removeItem(at: directory) }
            let queuePath = directory.appendingPathComponent("queue.sqlite").path
            let record = try await Fixtures.withClient(server, token: demo.token) { client in
                let table = try await Fixtures.makeTable(client)
                return try await client.records.create(in: table.id, fields: ["Name": "Ordered", "Score": 0]).get()
            }
            let offline: (inout PyAirtableClient.Configuration) -> Void = { configuration in
                configuration.offline = .persistent(path: queuePath)
                configuration.offline.queueWithoutTrying = true
            }
            try await Self.withClient(server, token: demo.token, configure: offline) { client in
                let result = try await client.records.update(record.id, fields: ["Score": 1])
                #expect(result.isQueued)
            }
            let online: (inout PyAirtableClient.Configuration) -> Void = { configuration in
                configuration.offline = .persistent(path: queuePath)
                configuration.offline.replaysAutomatically = false
            }
            try await Self.withClient(server, token: demo.token, configure: online) { client in
                // The server is up, but the earlier write has not been replayed: this one queues too.
                let queued = try #require(try await client.records.update(record.id, fields: ["Score": 2]).queued)
                #expect(queued.queuedBecause == "earlier writes of the record wait in the offline queue")
                #expect(queued.optimistic?.fields["Score"] == .number(2))
                #expect(try await client.records.get(record.id).fields["Score"] == .number(2))
                #expect(try await client.mutations.hasPendingWrites(for: record.id))
                let report = try await client.offline.replay()
                #expect(report.replayed == 2)
                let saved = try await client.records.get(record.id, policy: .networkOnly)
                #expect(saved.fields["Score"] == .number(2))
                #expect(saved.version == 3)
                #expect(try await client.mutations.hasPendingWrites(for: record.id) == false)
            }
        }
    }

    @Test("queued updates of records whose table is known replay through the batch endpoint, once each")
    func batchedUpdates() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-batched-\(UUID())")
            defer { try? FileManager.default.removeItem(at: directory) }
            let queuePath = directory.appendingPathComponent("queue.sqlite").path
            let (table, records) = try await Fixtures.withClient(server, token: demo.token) { client in
                let table = try await Fixtures.makeTable(client)
                let results = try await client.records.batch(
                    in: table.id,
                    operations: (0..<50).map { BatchOperation.create(fields: ["Name": .string("r\($0)"), "Score": 0]) }
                )
                return (table, results.compactMap { if case .record(let record) = $0 { record } else { nil } })
            }
            let offline: (inout PyAirtableClient.Configuration) -> Void = { configuration in
                configuration.offline = .persistent(path: queuePath)
                configuration.offline.queueWithoutTrying = true
            }
            try await Self.withClient(server, token: demo.token, configure: offline) { client in
                for (index, record) in records.enumerated() {
                    _ = try await client.records.get(record.id)
                    #expect(
                        try await client.records.update(record.id, fields: ["Score": .number(Double(index + 1))])
                            .isQueued
                    )
                }
                let queued = try #require(try await client.offline.queue()?.mutations())
                #expect(queued.allSatisfy { $0.batchKey == table.id.rawValue })
            }
            let counter = ArrivalCounter()
            let replaying: (inout PyAirtableClient.Configuration) -> Void = { configuration in
                configuration.offline = .persistent(path: queuePath)
                configuration.offline.replaysAutomatically = false
                configuration.middlewares = [counter]
            }
            try await Self.withClient(server, token: demo.token, configure: replaying) { client in
                let report = try await client.offline.replay()
                #expect(report.replayed == 50)
                #expect(counter.arrivals == 1, "one batch request carried the 50 updates")
                var byName: [String: Record] = [:]
                for try await record in client.records.all(in: table.id, policy: .networkOnly) {
                    byName[record.fields["Name"]?.displayText ?? ""] = record
                }
                for index in 0..<50 {
                    #expect(byName["r\(index)"]?.fields["Score"] == .number(Double(index + 1)))
                    #expect(byName["r\(index)"]?.version == 2)
                }
            }
        }
    }
}
