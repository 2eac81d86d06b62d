import Foundation
import HTTPTypes
import PyAirtableClient
import PyAirtableModels
import PyAirtableTesting
import ReferenceServer
import ReferenceServerTesting
import Synchronization
import TestSupport
import Testing

@testable import PyAirtableClient

/// Records every request that passes through it, with the Authorization header it carried.
final class RecordingMiddleware: ClientMiddleware {
    struct Seen: Sendable {
        var method: HTTPRequest.Method
        var path: String
        var authenticated: Bool
        var authorization: String?
        var bodyLength: HTTPBody.Length?
        var status: Int?
    }

    private let seen = Mutex<[Seen]>([])

    var requests: [Seen] { seen.withLock { $0 } }

    func intercept(
        _ request: ClientRequest,
        next: @Sendable (ClientRequest) async throws -> ClientResponse
    ) async throws -> ClientResponse {
        let index = seen.withLock { seen in
            seen.append(
                Seen(
                    method: request.method,
                    path: request.path,
                    authenticated: request.authenticated,
                    authorization: request.headerFields[.authorization],
                    bodyLength: request.body?.length
                )
            )
            return seen.count - 1
        }
        let response = try await next(request)
        seen.withLock { $0[index].status = response.status.code }
        return response
    }
}

@Suite("HTTPBody", .timeLimit(.minutes(5)))
struct HTTPBodyTests {
    @Test("bytes in memory are replayable, with a known length; collect(upTo:) throws past its limit")
    func bytes() async throws {
        let body = HTTPBody("hello")
        #expect(body.iterationBehavior == .multiple)
        #expect(body.length == .known(5))
        #expect(try await body.collect(upTo: 5) == Data("hello".utf8))
        #expect(try await body.collect(upTo: 5) == Data("hello".utf8))
        await #expect(throws: HTTPBody.TooManyBytesError.self) { _ = try await body.collect(upTo: 4) }
        #expect(HTTPBody([104, 105]) == HTTPBody("hi"))
    }

    @Test("a streamed body is read once: a second iteration throws; the limit holds with an unknown length")
    func singleIteration() async throws {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: ArraySlice<UInt8>.self)
        continuation.yield([1, 2, 3])
        continuation.yield([4, 5])
        continuation.finish()
        let body = HTTPBody(stream)
        #expect(body.iterationBehavior == .single)
        #expect(body.length == .unknown)
        #expect(try await body.collect(upTo: 10) == Data([1, 2, 3, 4, 5]))
        await #expect(throws: HTTPBody.TooManyIterationsError.self) { _ = try await body.collect(upTo: 10) }

        let (long, feed) = AsyncThrowingStream.makeStream(of: ArraySlice<UInt8>.self)
        feed.yield(ArraySlice(repeating: 0, count: 8))
        feed.yield(ArraySlice(repeating: 0, count: 8))
        feed.finish()
        await #expect(throws: HTTPBody.TooManyBytesError.self) { _ = try await HTTPBody(long).collect(upTo: 12) }
    }

    @Test("a file body reads the file again from the start on each iteration")
    func fileBody() async throws {
        let scratch = try TemporaryDirectory()
        let source = scratch.url("again.bin")
        _ = try TemporaryDirectory.writePattern(to: source, size: 300_000)
        let body = HTTPBody.file(atPath: source.path, length: 300_000, chunkSize: 64 * 1024, progress: nil)
        #expect(body.iterationBehavior == .multiple)
        let first = try await body.collect(upTo: 1 << 20)
        let second = try await body.collect(upTo: 1 << 20)
        #expect(first == (try Data(contentsOf: source)))
        #expect(second == first)
    }
}

@Suite("One request path: every request passes the middlewares", .timeLimit(.minutes(10)))
struct OneRequestPathTests {
    @Test("a custom middleware and the mock transport see an upload, a download and the event stream")
    func middlewareSeesTransfersAndStream() async throws {
        let scratch = try TemporaryDirectory()
        let source = scratch.url("seen.bin")
        let digest = try TemporaryDirectory.writePattern(to: source, size: 700_000)
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let recorder = RecordingMiddleware()
            let mock = MockTransport(forwardingTo: AsyncHTTPClientTransport())
            try await Fixtures.withClient(
                server,
                token: demo.token,
                transport: mock,
                configure: {
                    $0.middlewares = [recorder]
                    $0.realtime = RealtimeSettings(transports: [.serverSentEvents])
                }
            ) { client in
                let file = try await client.files.upload(fileAt: source, name: "seen.bin")
                #expect(file.sha256 == digest)
                let copy = scratch.url("copy.bin")
                try await client.files.download(file.id, to: copy)
                #expect(try TemporaryDirectory.sha256(of: copy) == digest)

                let table = try await Fixtures.makeTable(client)
                let updates = client.realtime.subscribe(EventFilter(tableID: table.id))
                await RealtimeClientTests.waitUntil(client, is: .connected(.serverSentEvents))
                let created = try await client.records.create(in: table.id, fields: ["Name": "streamed"]).get()
                var received: Event?
                for try await update in updates {
                    if case .event(let event) = update, event.recordID == created.id {
                        received = event
                        break
                    }
                }
                #expect(received?.type == .recordCreated)

                let seen = recorder.requests
                let upload = try #require(seen.first { $0.method == .post && $0.path == "/api/v1/files" })
                #expect(upload.bodyLength == .known(700_000))
                // Custom middlewares run outermost, before the auth middleware puts the token on.
                #expect(upload.authenticated)
                #expect(upload.status == 201 || upload.status == 200)
                let download = try #require(seen.first { $0.path == "/api/v1/files/\(file.id)/content" })
                #expect(download.status == 200)
                let stream = try #require(seen.first { $0.path == "/api/v1/events" })
                #expect(stream.authenticated)
                #expect(stream.status == 200)
                // The transport saw the same requests: the mock is the seam of uploads and streams too.
                #expect(mock.requests(path: "/api/v1/files").count == 1)
                #expect(
                    mock.requests(path: "/api/v1/files").first?.headerFields[.authorization] == "Bearer \(demo.token)"
                )
                #expect(
                    mock.requests(path: "/api/v1/events").first?.headerFields[.authorization] == "Bearer \(demo.token)"
                )
                #expect(mock.requests(path: "/api/v1/files/\(file.id)/content").count == 1)
                #expect(!mock.requests(path: "/api/v1/events").isEmpty)
            }
        }
    }

    @Test("MockTransport serves an event stream that the realtime client consumes")
    func mockEventStream() async throws {
        let events = (1...3).map { seq in
            Event(
                seq: Int64(seq),
                type: .recordUpdated,
                tableID: TableID("tbl00000000000001"),
                payload: .object(["n": .number(Double(seq))]),
                actor: nil,
                ts: Date(timeIntervalSince1970: 1_800_000_000)
            )
        }
        let messages = try events.map { event in
            "id: \(event.seq)\ndata: \(String(decoding: try JSONCoding.encoder.encode(event), as: UTF8.self))\n\n"
        }
        let mock = MockTransport { request, _ in
            guard request.path == "/api/v1/events" else {
                return .status(404, message: "not scripted: \(request.path)")
            }
            // The stream stays open after the messages, as a live one does, until the client closes.
            return .eventStream(
                AsyncStream { continuation in
                    continuation.yield(": heartbeat\n\n")
                    for message in messages { continuation.yield(message) }
                }
            )
        }
        var configuration = PyAirtableClient.Configuration(
            serverURL: URL(string: "http://mock.invalid")!,
            credentials: .personalAccessToken("pat_mock"),
            retry: .none
        )
        configuration.transport = mock
        configuration.realtime = RealtimeSettings(transports: [.serverSentEvents])
        try await withPyAirtableClient(configuration: configuration) { client in
            var seqs: [Int64] = []
            for try await update in client.realtime.subscribe(since: 0) {
                if case .event(let event) = update { seqs.append(event.seq) }
                if seqs.count == events.count { break }
            }
            #expect(seqs == [1, 2, 3])
        }
        let stream = try #require(mock.requests(path: "/api/v1/events").first)
        #expect(stream.headerFields[.authorization] == "Bearer pat_mock")
        #expect(stream.headerFields[.accept] == "text/event-stream")
        #expect(stream.headerFields[HTTPField.Name("Last-Event-ID")!] == "0")
    }

    @Test("a token refresh passes through the chain, flagged unauthenticated and without a token")
    func refreshThroughChain() async throws {
        let time = ServerTime()
        try await TestServer.withRunning(configure: time.install) { server in
            let demo = try await server.seedDemo()
            let recorder = RecordingMiddleware()
            let mock = MockTransport(forwardingTo: AsyncHTTPClientTransport())
            try await Fixtures.withClient(
                server,
                token: nil,
                transport: mock,
                configure: {
                    $0.credentials = .store(InMemoryTokenStore())
                    $0.middlewares = [recorder]
                }
            ) { client in
                _ = try await client.auth.login(email: demo.email, password: demo.password)
                // The server's clock passes the access token's lifetime: the next call gets a 401.
                time.advance(by: 20 * 60)
                #expect(try await client.users.me().email == demo.email)
                #expect(await client.refreshCount == 1)
            }
            let seen = recorder.requests
            let refresh = try #require(seen.first { $0.path == "/api/v1/auth/refresh" })
            #expect(!refresh.authenticated)
            #expect(refresh.authorization == nil)
            #expect(refresh.status == 200)
            // The 401, then the refresh, then the same call again with the new token.
            let me = seen.filter { $0.path == "/api/v1/users/me" }
            #expect(me.count == 1)
            #expect(me.first?.status == 200)
            #expect(mock.requests(path: "/api/v1/auth/refresh").count == 1)
            let sent = mock.requests(path: "/api/v1/users/me")
            #expect(sent.count == 2)
            #expect(sent[0].headerFields[.authorization] != sent[1].headerFields[.authorization])
        }
    }
}

@Suite("Replay scheduling", .timeLimit(.minutes(10)))
struct ReplaySchedulingTests {
    static func configuration(url: String, directory: URL, clock: TestClock) -> PyAirtableClient.Configuration {
        var configuration = PyAirtableClient.Configuration(
            serverURL: URL(string: url)!,
            credentials: .store(InMemoryTokenStore()),
            retry: RetryPolicy(maximumRetries: 0),
            circuitBreaker: .disabled,
            clock: clock
        )
        configuration.offline = .persistent(path: directory.appendingPathComponent("queue.sqlite").path)
        configuration.offline.probeInterval = .seconds(5)
        return configuration
    }

    /// A write queued while the server is down, then the server back up.
    static func withQueuedWrite(
        _ body: (PyAirtableClient, TestClock, RestartableServer, Table) async throws -> Void
    ) async throws {
        let server = RestartableServer()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-replay-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let clock = TestClock()
        do {
            try await server.start()
            let configuration = Self.configuration(url: server.url, directory: directory, clock: clock)
            try await withPyAirtableClient(configuration: configuration) { client in
                _ = try await client.auth.register(email: "replay@example.com", password: "correct horse", name: "R")
                let table = try await Fixtures.makeTable(client)
                await server.stop()
                #expect(try await client.records.create(in: table.id, fields: ["Name": "queued"]).isQueued)
                #expect(client.offline.replayState == .waitingForServer)
                try await server.start()
                try await body(client, clock, server, table)
            }
        } catch {
            await server.remove()
            throw error
        }
        await server.remove()
    }

    @Test("an unrelated call does not start the replay; replayNow() does, and its run is observable")
    func explicitTrigger() async throws {
        try await Self.withQueuedWrite { client, _, _, table in
            let runs = client.offline.replayRuns()
            // The server answers again, but nothing replays as a side effect of this call.
            #expect(try await client.users.me().email == "replay@example.com")
            _ = try await client.records.list(in: table.id, policy: .networkOnly)
            #expect(try await client.offline.counts().pending == 1)
            #expect(client.offline.replayState == .waitingForServer)

            client.offline.replayNow()
            var iterator = runs.makeAsyncIterator()
            let run = try #require(await iterator.next())
            #expect(run.trigger == .explicit)
            #expect(run.report?.replayed == 1)
            #expect(try await client.offline.counts().total == 0)
            #expect(client.offline.replayState == .idle)
            let records = try await client.records.list(in: table.id, policy: .networkOnly).data
            #expect(records.contains { $0.fields["Name"] == .string("queued") })
        }
    }

    @Test("signing in replays what that account queued in an earlier run")
    func signInTrigger() async throws {
        let server = RestartableServer()
        let directory = try TemporaryDirectory()
        defer { withExtendedLifetime(directory) {} }
        do {
            try await server.start()
            let configuration = Self.configuration(
                url: server.url,
                directory: URL(fileURLWithPath: directory.path),
                clock: TestClock()
            )
            // An earlier run: signed in, it queues a write while the server is down, and ends.
            let table = try await withPyAirtableClient(configuration: configuration) { client in
                _ = try await client.auth.register(email: "later@example.com", password: "correct horse", name: "L")
                let table = try await Fixtures.makeTable(client)
                await server.stop()
                #expect(try await client.records.create(in: table.id, fields: ["Name": "from the last run"]).isQueued)
                return table
            }
            try await server.start()
            // This run starts signed out (the token store is new), so its start replays nothing of
            // that account's; signing in does.
            let later = Self.configuration(
                url: server.url,
                directory: URL(fileURLWithPath: directory.path),
                clock: TestClock()
            )
            try await withPyAirtableClient(configuration: later) { client in
                // The start's replay (of the signed-out queue) ends first.
                let states = client.offline.replayStates()
                if client.offline.replayState != .idle {
                    for await state in states where state == .idle { break }
                }
                #expect(try await client.offline.counts().total == 0, "signed out, the queue is another's")
                let runs = client.offline.replayRuns()
                _ = try await client.auth.login(email: "later@example.com", password: "correct horse")
                var iterator = runs.makeAsyncIterator()
                let run = try #require(await iterator.next())
                #expect(run.trigger == .signedIn)
                #expect(run.report?.replayed == 1)
                #expect(try await client.offline.counts().total == 0)
                let records = try await client.records.list(in: table.id, policy: .networkOnly).data
                #expect(records.map(\.fields["Name"]) == [.string("from the last run")])
            }
        } catch {
            await server.remove()
            throw error
        }
        await server.remove()
    }

    @Test("a probe on the client's clock sees the server back and starts the replay")
    func probeTrigger() async throws {
        try await Self.withQueuedWrite { client, clock, _, _ in
            let runs = client.offline.replayRuns()
            // The probe sleeps on the injected clock: nothing happens until it is advanced.
            await clock.waitForSleepers(1)
            #expect(try await client.offline.counts().pending == 1)
            clock.advance(by: .seconds(5))
            var iterator = runs.makeAsyncIterator()
            let run = try #require(await iterator.next())
            #expect(run.trigger == .connectivityRegained)
            #expect(run.report?.replayed == 1)
            #expect(try await client.offline.counts().total == 0)
        }
    }
}
