import Foundation
import HTTPTypes
import PyAirtableClient
import PyAirtableModels
import PyAirtableTesting
import ReferenceServer
import ReferenceServerTesting
import TestSupport
import Testing

/// Dedup, exactly-once writes and lazy pagination, against the real server through a recording
/// transport.
@Suite("Request flow against the server", .timeLimit(.minutes(15)))
struct RequestFlowTests {
    @Test("50 identical concurrent GETs send one request; all 50 callers get the same record")
    func deduplicatesConcurrentGets() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let record = try await Fixtures.withClient(server, token: demo.token) { client in
                let table = try await Fixtures.makeTable(client)
                return try await client.records.create(in: table.id, fields: ["Name": "Ada", "Score": 3]).get()
            }

            let arrivals = ArrivalCounter()
            let mock = MockTransport(forwardingTo: AsyncHTTPClientTransport()) { _, _ in
                // Hold the leader until every caller has entered the client, so none of them can
                // miss the flight and start its own.
                await eventually { arrivals.arrivals >= 50 }
                for _ in 0..<100 { await Task.yield() }
                return .passThrough
            }
            try await Fixtures.withClient(
                server,
                token: demo.token,
                transport: mock,
                configure: { $0.middlewares = [arrivals] }
            ) { client in
                let results = try await withThrowingTaskGroup(of: Record.self) { group in
                    for _ in 0..<50 { group.addTask { try await client.records.get(record.id) } }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(results.count == 50)
                #expect(results.allSatisfy { $0 == record })
                #expect(arrivals.arrivals == 50)
                #expect(mock.requestCount == 1)
                #expect(mock.requests(path: "/api/v1/records/\(record.id)").count == 1)
            }
        }
    }

    @Test("GETs that differ are not merged, and writes never are")
    func deduplicationKeepsDifferentRequestsApart() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let mock = MockTransport(forwardingTo: AsyncHTTPClientTransport())
            try await Fixtures.withClient(server, token: demo.token, transport: mock) { client in
                let table = try await Fixtures.makeTable(client)
                let before = mock.requestCount
                let created = try await withThrowingTaskGroup(of: Record.self) { group in
                    for index in 0..<10 {
                        group.addTask {
                            try await client.records.create(in: table.id, fields: ["Score": .number(Double(index))])
                                .get()
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(Set(created.map(\.id)).count == 10)
                #expect(mock.requestCount == before + 10)

                let fetched = try await withThrowingTaskGroup(of: Record.self) { group in
                    for record in created { group.addTask { try await client.records.get(record.id) } }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(Set(fetched.map(\.id)) == Set(created.map(\.id)))
                #expect(mock.requestCount == before + 20)
            }
        }
    }

    @Test("a create whose answer is lost is retried with the same key and the server applies it once")
    func droppedResponseAppliesOnce() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let clock = TestClock()
            let creates = Counter()
            let mock = MockTransport(forwardingTo: AsyncHTTPClientTransport()) { request, _ in
                guard request.method == .post, request.path.hasSuffix("/records") else { return .passThrough }
                return creates.increment() == 1 ? .dropResponseAfterSending : .passThrough
            }
            try await Fixtures.withClient(server, token: demo.token, transport: mock, clock: clock) { client in
                let table = try await Fixtures.makeTable(client)
                let create = Task { try await client.records.create(in: table.id, fields: ["Name": "Once"]).get() }
                await clock.waitForSleepers(1)
                clock.advance(by: .seconds(1))
                let record = try await create.value

                let posts = mock.exchanges.filter { $0.request.path == "/api/v1/tables/\(table.id)/records" }
                #expect(posts.count == 2)
                let key = posts[0].request.headerFields[.idempotencyKey]
                #expect(key != nil)
                #expect(posts[1].request.headerFields[.idempotencyKey] == key)
                #expect((posts[0].error as? PyAirtableError) == .transportFailure)
                #expect(posts[1].response?.status == .created)
                #expect(posts[1].response?.headerFields[.idempotentReplayed] == "true")

                let stored = try await client.records.list(in: table.id).data
                #expect(stored.map(\.id) == [record.id])
                #expect(stored.first?.fields["Name"] == "Once")
            }
        }
    }

    @Test("a batch whose answer is lost is applied once")
    func droppedBatchAppliesOnce() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let clock = TestClock()
            let batches = Counter()
            let mock = MockTransport(forwardingTo: AsyncHTTPClientTransport()) { request, _ in
                guard request.path.hasSuffix("/records/batch") else { return .passThrough }
                return batches.increment() == 1 ? .dropResponseAfterSending : .passThrough
            }
            try await Fixtures.withClient(server, token: demo.token, transport: mock, clock: clock) { client in
                let table = try await Fixtures.makeTable(client)
                let batch = Task {
                    try await client.records.batch(
                        in: table.id,
                        operations: (0..<5).map { .create(fields: ["Score": .number(Double($0))]) }
                    )
                }
                await clock.waitForSleepers(1)
                clock.advance(by: .seconds(1))
                #expect(try await batch.value.count == 5)
                #expect(batches.current == 2)
                #expect(try await client.records.list(in: table.id).data.count == 5)
            }
        }
    }

    @Test("records.all() walks every page lazily and stops fetching when the loop breaks")
    func allIsLazy() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let mock = MockTransport(forwardingTo: AsyncHTTPClientTransport())
            try await Fixtures.withClient(server, token: demo.token, transport: mock) { client in
                let table = try await Fixtures.makeTable(client)
                let results = try await client.records.batch(
                    in: table.id,
                    operations: (0..<95).map {
                        .create(fields: ["Name": .string("R\($0)"), "Score": .number(Double($0))])
                    }
                )
                #expect(results.count == 95)
                let listPath = "/api/v1/tables/\(table.id)/records"
                let query = RecordQuery(sort: [SortSpec(field: "Score")], pageSize: 10)

                var scores: [Double] = []
                for try await record in client.records.all(in: table.id, query: query) {
                    if case .number(let score) = record.fields["Score"] { scores.append(score) }
                }
                #expect(scores == (0..<95).map(Double.init))
                #expect(mock.requests(path: listPath).count == 10)
                #expect(mock.requests(path: listPath).allSatisfy { $0.method == .get })

                var iterator = client.records.all(in: table.id, query: query).makeAsyncIterator()
                var count = 0
                while try await iterator.next() != nil { count += 1 }
                #expect(count == 95)
                #expect(iterator.pagesFetched == 10)

                let before = mock.requests(path: listPath).count
                var seen = 0
                for try await _ in client.records.all(in: table.id, query: query) {
                    seen += 1
                    if seen == 15 { break }
                }
                #expect(seen == 15)
                #expect(mock.requests(path: listPath).count - before == 2)
            }
        }
    }

    @Test("records.all() over an empty table fetches one page and yields nothing")
    func allOverEmptyTable() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let mock = MockTransport(forwardingTo: AsyncHTTPClientTransport())
            try await Fixtures.withClient(server, token: demo.token, transport: mock) { client in
                let table = try await Fixtures.makeTable(client)
                var count = 0
                for try await _ in client.records.all(in: table.id) { count += 1 }
                #expect(count == 0)
                #expect(mock.requests(path: "/api/v1/tables/\(table.id)/records").count == 1)
            }
        }
    }
}
