import Foundation
import HTTPTypes
import PyAirtableClient
import PyAirtableModels
import ReferenceServer
import ReferenceServerTesting
import Synchronization
import TestSupport
import Testing

@testable import PyAirtableClient

@Suite("Server-Sent Events parsing", .timeLimit(.minutes(15)))
struct ServerSentEventParserTests {
    @Test("messages split across chunks, with ids, event names, comments and every line ending")
    func chunks() throws {
        var parser = ServerSentEventParser()
        let text =
            ": hello\r\nid: 7\r\nevent: record.created\ndata: {\"a\":\ndata: 1}\n\n:heartbeat\r\rid: 8\ndata:x\n\n"
        var messages: [ServerSentEvent] = []
        for byte in Array(text.utf8) { messages += try parser.feed([byte]) }
        #expect(
            messages == [
                ServerSentEvent(id: "7", event: "record.created", data: "{\"a\":\n1}"),
                ServerSentEvent(id: "8", event: nil, data: "x"),
            ]
        )
        #expect(parser.comments == 2)
    }

    @Test("a line longer than the bound is an error, not unbounded memory")
    func bound() {
        var parser = ServerSentEventParser(maximumLineLength: 8)
        #expect(throws: ServerSentEventError.self) { _ = try parser.feed(Array("data: 0123456789".utf8)) }
    }
}

@Suite("Realtime backoff", .timeLimit(.minutes(15)))
struct RealtimeBackoffTests {
    @Test("equal jitter: between half and all of 0.5 s · 2^(n-1), capped at 30 s")
    func equalJitter() {
        let configuration = RealtimeSettings()
        #expect(configuration.backoff(attempt: 1, random: 0) == .milliseconds(250))
        #expect(configuration.backoff(attempt: 1, random: 1) == .milliseconds(500))
        #expect(configuration.backoff(attempt: 3, random: 0.5) == .milliseconds(1500))
        #expect(configuration.backoff(attempt: 20, random: 0) == .seconds(15))
        #expect(configuration.backoff(attempt: 20, random: 1) == .seconds(30))
    }
}

@Suite("The realtime client against the real server", .timeLimit(.minutes(15)))
struct RealtimeClientTests {
    /// A client of the demo user whose realtime connection uses `transports`.
    static func withRealtimeClient<T: Sendable>(
        _ server: TestServer,
        token: String,
        transports: [RealtimeTransport],
        _ body: (PyAirtableClient) async throws -> T
    ) async throws -> T {
        var configuration = PyAirtableClient.Configuration(
            serverURL: URL(string: server.url)!,
            credentials: .personalAccessToken(token)
        )
        configuration.realtime = RealtimeSettings(
            transports: transports,
            initialBackoff: .milliseconds(10),
            maximumBackoff: .milliseconds(100),
            pollInterval: .milliseconds(10)
        )
        return try await withPyAirtableClient(configuration: configuration, body)
    }

    /// A client of a newly registered user (session tokens, refreshed by the client) whose realtime
    /// connection uses `transport` with short backoffs; no HTTP retries, so failures show at once.
    static func withNewAccount<T: Sendable>(
        url: String,
        transport: RealtimeTransport,
        _ body: (PyAirtableClient) async throws -> T
    ) async throws -> T {
        var configuration = PyAirtableClient.Configuration(
            serverURL: URL(string: url)!,
            credentials: .store(InMemoryTokenStore()),
            retry: RetryPolicy(maximumRetries: 0)
        )
        configuration.realtime = RealtimeSettings(
            transports: [transport],
            initialBackoff: .milliseconds(5),
            maximumBackoff: .milliseconds(50),
            pollInterval: .milliseconds(5)
        )
        return try await withPyAirtableClient(configuration: configuration) { client in
            _ = try await client.auth.register(
                email: "rt-\(transport.rawValue)-\(UUID().uuidString.prefix(8).lowercased())@example.com",
                password: "correct horse",
                name: "Realtime"
            )
            return try await body(client)
        }
    }

    /// Waits (without sleeping) until the connection reaches `wanted`.
    static func waitUntil(_ client: PyAirtableClient, is wanted: RealtimeConnectionState) async {
        for await state in client.realtime.connectionStates() where state == wanted { return }
    }

    @Test(
        "every event once, in order, on each transport; dropping the stream unsubscribes",
        arguments: RealtimeTransport.allCases
    )
    func everyEventOnce(transport: RealtimeTransport) async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            try await Self.withRealtimeClient(server, token: demo.token, transports: [transport]) { client in
                let table = try await Fixtures.makeTable(client)
                let other = try await Fixtures.makeTable(client, name: "Other")
                let writes = 40
                var seen: [Event] = []
                do {
                    let updates = client.realtime.subscribe(
                        EventFilter(tableID: table.id),
                        since: try await client.realtime.latestSeq()
                    )
                    await Self.waitUntil(client, is: .connected(transport))
                    #expect(client.realtime.subscriptionCount == 1)
                    let writer = Task {
                        for index in 0..<writes {
                            _ = try await client.records.create(in: table.id, fields: ["Name": .string("R\(index)")])
                            _ = try await client.records.create(in: other.id, fields: ["Name": .string("X\(index)")])
                        }
                    }
                    for try await update in updates {
                        guard case .event(let event) = update else { continue }
                        seen.append(event)
                        if seen.count == writes { break }
                    }
                    try await writer.value
                }
                #expect(seen.allSatisfy { $0.tableID == table.id && $0.type == .recordCreated })
                #expect(seen.map(\.seq) == seen.map(\.seq).sorted())
                #expect(Set(seen.map(\.seq)).count == writes)
                #expect(
                    seen.compactMap { $0.payload["fields"]?["Name"]?.stringValue }
                        == (0..<writes).map { "R\($0)" }
                )
                // The loop ended: the subscription is gone.
                #expect(await eventually { client.realtime.subscriptionCount == 0 })
            }
        }
    }

    @Test("events keep the cache fresh while connected; a live query yields cached, fresh, then each change")
    func cacheAndLiveQuery() async throws {
        try await CacheFixture.with { cache in
            try await TestServer.withRunning { server in
                let demo = try await server.seedDemo()
                let realtime = RealtimeSettings(transports: [.webSocket], initialBackoff: .milliseconds(10))
                try await cache.withClient(
                    url: server.url,
                    token: demo.token,
                    configure: { $0.realtime = realtime }
                ) { client in
                    let table = try await CacheIntegrationTests.projects(
                        client,
                        workspace: try #require(demo.workspaceID)
                    )
                    let page = try await client.records.list(in: table.id)
                    let record = try #require(page.data.first)
                    _ = try await client.records.get(record.id)
                    let elsewhere: @Sendable (String) async throws -> Void = { name in
                        _ = try await cache.withClient(
                            url: server.url,
                            token: demo.token,
                            configure: { $0.cache = .disabled }
                        ) { try await $0.records.update(record.id, fields: ["Name": .string(name)]).get() }
                    }

                    // An event updates the cached record before the subscriber sees it.
                    do {
                        let updates = client.realtime.subscribe(
                            EventFilter(recordID: record.id),
                            since: try await client.realtime.latestSeq()
                        )
                        await Self.waitUntil(client, is: .connected(.webSocket))
                        try await elsewhere("Changed elsewhere")
                        for try await update in updates {
                            if case .event(let event) = update, event.type == .recordUpdated { break }
                        }
                    }
                    let read = try await client.records.getWithSource(record.id)
                    #expect(read.fromCache)
                    #expect(read.value.fields["Name"] == .string("Changed elsewhere"))

                    // A live query: the cached page (stale), the server's, then one per change.
                    _ = try await client.records.list(in: table.id)
                    try await elsewhere("Before watching")
                    var pages = client.records.watch(in: table.id).makeAsyncIterator()
                    let cached = try #require(try await pages.next())
                    #expect(cached.fromCache)
                    let fresh = try #require(try await pages.next())
                    #expect(!fresh.fromCache)
                    #expect(fresh.value.data.first { $0.id == record.id }?.fields["Name"] == .string("Before watching"))
                    try await elsewhere("While watching")
                    let changed = try #require(try await pages.next())
                    #expect(
                        changed.value.data.first { $0.id == record.id }?.fields["Name"] == .string("While watching")
                    )
                }
            }
        }
    }

    @Test(
        "an access token expiring mid-stream is refreshed on reconnect; no event is lost",
        arguments: RealtimeTransport.allCases
    )
    func tokenExpiry(transport: RealtimeTransport) async throws {
        let time = ServerTime()
        let configure: @Sendable (inout ServerConfiguration) -> Void = { configuration in
            time.install(&configuration)
            configuration.auth.accessTokenLifetime = 600
        }
        try await TestServer.withRunning(configure: configure) { server in
            try await Self.withNewAccount(url: server.url, transport: transport) { client in
                let table = try await Fixtures.makeTable(client)
                let updates = client.realtime.subscribe(
                    EventFilter(tableID: table.id),
                    since: try await client.realtime.latestSeq()
                )
                await Self.waitUntil(client, is: .connected(transport))
                _ = try await client.records.create(in: table.id, fields: ["Name": "before"])
                // The server's clock passes the access token's expiry; the connection is cut.
                time.advance(by: 3600)
                client.realtime.reconnect()
                _ = try await client.records.create(in: table.id, fields: ["Name": "after"])
                var names: [String] = []
                for try await update in updates {
                    guard case .event(let event) = update else { continue }
                    names.append(event.payload["fields"]?["Name"]?.stringValue ?? "")
                    if names.count == 2 { break }
                }
                #expect(names == ["before", "after"])
                #expect(await client.refreshCount >= 1)
            }
        }
    }

    @Test(
        "a transport the server refuses is skipped: WebSocket refused → SSE, SSE refused too → polling",
        arguments: [
            (false, true, RealtimeTransport.serverSentEvents), (false, false, .polling), (true, true, .webSocket),
        ]
    )
    func fallback(webSocket: Bool, serverSentEvents: Bool, expected: RealtimeTransport) async throws {
        let configure: @Sendable (inout ServerConfiguration) -> Void = { configuration in
            configuration.realtime.webSocketEnabled = webSocket
            configuration.realtime.serverSentEventsEnabled = serverSentEvents
        }
        try await TestServer.withRunning(configure: configure) { server in
            let demo = try await server.seedDemo()
            try await Self.withRealtimeClient(server, token: demo.token, transports: RealtimeTransport.allCases) {
                client in
                let table = try await Fixtures.makeTable(client)
                let updates = client.realtime.subscribe(
                    EventFilter(tableID: table.id),
                    since: try await client.realtime.latestSeq()
                )
                await Self.waitUntil(client, is: .connected(expected))
                let created = try await client.records.create(in: table.id, fields: ["Name": "over the fallback"]).get()
                for try await update in updates {
                    if case .event(let event) = update {
                        #expect(event.recordID == created.id)
                        break
                    }
                }
            }
        }
    }

    @Test("the connection closes a while after the last subscription ends, and reopens for the next")
    func lingerThenReconnect() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            var configuration = PyAirtableClient.Configuration(
                serverURL: URL(string: server.url)!,
                credentials: .personalAccessToken(demo.token)
            )
            configuration.realtime = RealtimeSettings(
                transports: [.webSocket],
                lingerAfterLastSubscription: .milliseconds(20)
            )
            try await withPyAirtableClient(configuration: configuration) { client in
                let table = try await Fixtures.makeTable(client)
                do {
                    let first = client.realtime.subscribe(EventFilter(tableID: table.id))
                    await Self.waitUntil(client, is: .connected(.webSocket))
                    _ = first
                }
                await Self.waitUntil(client, is: .idle)
                // The server forgets the connection (polled, with a deadline).
                var connections = await server.services.realtime.connectionCount
                for _ in 0..<1000 where connections != 0 {
                    try await Task.sleep(for: .milliseconds(5))
                    connections = await server.services.realtime.connectionCount
                }
                #expect(connections == 0)
                let since = try await client.realtime.latestSeq()
                let created = try await client.records.create(in: table.id, fields: ["Name": "after idle"]).get()
                for try await update in client.realtime.subscribe(EventFilter(tableID: table.id), since: since) {
                    if case .event(let event) = update {
                        #expect(event.recordID == created.id)
                        break
                    }
                }
            }
        }
    }

    @Test("a subscription from a position replays what it missed, then continues")
    func resumeFromSince() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            try await Self.withRealtimeClient(server, token: demo.token, transports: [.polling]) { client in
                let table = try await Fixtures.makeTable(client)
                let first = try await client.records.create(in: table.id, fields: ["Name": "one"]).get()
                _ = try await client.records.update(first.id, fields: ["Name": "two"])
                let log = try await client.send(
                    PyAirtableClient.request(
                        .get,
                        "/api/v1/events/log",
                        query: [QueryItem("since", "0"), QueryItem("table_id", table.id.rawValue)],
                        operation: ClientOperation(service: "test", name: "log")
                    ),
                    as: EventLogPage.self
                )
                let created = try #require(log.data.first { $0.type == .recordCreated })
                var seen: [Event] = []
                for try await update in client.realtime.subscribe(
                    EventFilter(tableID: table.id),
                    since: created.seq - 1
                ) {
                    guard case .event(let event) = update else { continue }
                    seen.append(event)
                    if seen.count == 2 {
                        _ = try await client.records.delete(first.id)
                    }
                    if seen.count == 3 { break }
                }
                #expect(seen.map(\.type) == [.recordCreated, .recordUpdated, .recordDeleted])
            }
        }
    }
}

@Suite("Realtime never loses an event", .heavy, .timeLimit(.minutes(15)))
struct RealtimeDeliveryTests {
    @Test(
        "10,000 events across two server restarts and cut connections arrive once each, in order",
        arguments: RealtimeTransport.allCases
    )
    func neverLoseAnEvent(transport: RealtimeTransport) async throws {
        let server = RestartableServer()
        defer { Task { await server.remove() } }
        try await server.start()
        try await RealtimeClientTests.withNewAccount(url: server.url, transport: transport) { client in
            let table = try await Fixtures.makeTable(client)
            let start = try await client.realtime.latestSeq()
            let updates = client.realtime.subscribe(EventFilter(tableID: table.id), since: start)
            await RealtimeClientTests.waitUntil(client, is: .connected(transport))

            let batches = 100
            let write: @Sendable () async throws -> Void = {
                var generator = SystemRandomNumberGenerator()
                for batch in 0..<batches {
                    if batch == 33 || batch == 66 {
                        await server.stop()
                        try await server.start()
                    } else if Int.random(in: 0..<8, using: &generator) == 0 {
                        client.realtime.reconnect()
                    }
                    let operations = (0..<100).map { index in
                        BatchOperation.create(fields: ["Name": .string("\(batch * 100 + index)")])
                    }
                    // A restart refuses connections for a moment; the batch has not been applied then.
                    var attempts = 0
                    while true {
                        do {
                            _ = try await client.records.batch(in: table.id, operations: operations)
                            break
                        } catch let error as PyAirtableError where error.isConnectivityFailure && attempts < 500 {
                            attempts += 1
                            try await Task.sleep(for: .milliseconds(20))
                        }
                    }
                }
            }
            let read: @Sendable () async throws -> (seqs: [Int64], names: [String]) = {
                var seqs: [Int64] = []
                var names: [String] = []
                seqs.reserveCapacity(10_000)
                for try await update in updates {
                    guard case .event(let event) = update else {
                        Issue.record("unexpected \(update)")
                        continue
                    }
                    seqs.append(event.seq)
                    names.append(event.payload["fields"]?["Name"]?.stringValue ?? "")
                    if seqs.count == batches * 100 { break }
                }
                return (seqs, names)
            }
            // A writer that fails (a restart that did not come back) ends the test at once, with its
            // error, rather than leaving the reader waiting for events that will never come.
            let (seqs, names) = try await withThrowingTaskGroup(of: (seqs: [Int64], names: [String])?.self) { group in
                group.addTask {
                    try await write()
                    return nil
                }
                group.addTask { try await read() }
                var received: (seqs: [Int64], names: [String]) = ([], [])
                for try await result in group {
                    if let result { received = result }
                }
                return received
            }
            #expect(seqs.count == 10_000)
            #expect(zip(seqs, seqs.dropFirst()).allSatisfy { $0 < $1 }, "strictly increasing: once each, in order")
            let expected = (0..<10_000).map(String.init)
            let firstDifference = names.indices.first { names[$0] != expected[$0] }
            #expect(firstDifference == nil, "first difference at \(firstDifference ?? -1)")
            // A WebSocket or a stream is cut by each restart. A poll only notices a restart when one
            // lands while the server is down, which a quick restart between two polls escapes.
            if transport != .polling {
                #expect(client.realtime.statistics.reconnects >= 2)
            }
        }
    }
}
