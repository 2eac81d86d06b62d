import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOHTTP1
import PyAirtableModels
import Synchronization
import TestSupport
import Testing
import WSClient

@testable import ReferenceServer

/// A queue tests read with a deadline: `next()` answers `nil` when nothing came in time.
final class AsyncInbox<Element: Sendable>: Sendable {
    private struct State {
        var items: [Element] = []
        var finished = false
        var waiter: (id: Int, continuation: CheckedContinuation<Element?, Never>)?
        var nextWaiterID = 0
    }

    private let state = Mutex(State())

    func append(_ element: Element) {
        let waiter = state.withLock { state -> CheckedContinuation<Element?, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter.continuation
            }
            state.items.append(element)
            return nil
        }
        waiter?.resume(returning: element)
    }

    func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Element?, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter?.continuation
        }
        waiter?.resume(returning: nil)
    }

    /// The next element; `nil` when the inbox finished or `timeout` passed first.
    func next(timeout: Duration = .seconds(30)) async -> Element? {
        let id = state.withLock { state -> Int in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        let timer = Task {
            try await Task.sleep(for: timeout)
            let waiter = state.withLock { state -> CheckedContinuation<Element?, Never>? in
                guard state.waiter?.id == id else { return nil }
                defer { state.waiter = nil }
                return state.waiter?.continuation
            }
            waiter?.resume(returning: nil)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Element?? in
                if !state.items.isEmpty { return .some(state.items.removeFirst()) }
                if state.finished { return .some(nil) }
                state.waiter = (id, continuation)
                return .none
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// A live reference server built by `buildApplication`, so the WebSocket upgrade is in place.
struct RealtimeServer: Sendable {
    let api: API
    let services: ServerServices
    let port: Int
    let clock: ManualWallClock

    var hub: RealtimeHub { services.realtime }

    static func run<T: Sendable>(
        realtime: RealtimeConfiguration = RealtimeConfiguration(),
        maximumBodySize: Int = 256 * 1024,
        accessTokenLifetime: TimeInterval = 15 * 60,
        waitsOn clock: any Clock<Duration> = ContinuousClock(),
        configure: (inout ServerConfiguration) -> Void = { _ in },
        _ body: @escaping @Sendable (RealtimeServer) async throws -> T
    ) async throws -> T {
        let directory = try TemporaryDirectory()
        let wallClock = ManualWallClock()
        var configuration = Harness.configuration(
            dataDirectory: directory.path,
            clock: wallClock,
            maximumBodySize: maximumBodySize
        )
        configuration.clock = clock
        configuration.realtime = realtime
        configuration.auth.accessTokenLifetime = accessTokenLifetime
        configure(&configuration)
        let services = try await ServerServices.open(configuration: configuration, logger: Harness.logger)
        let application = buildApplication(services: services)
        return try await application.test(.live) { client in
            let port = try #require(client.port)
            return try await body(
                RealtimeServer(api: API(client: client), services: services, port: port, clock: wallClock)
            )
        }
    }

    /// Opens a WebSocket to `/api/v1/ws`, authenticated by header unless `query` carries the token.
    func socket(token: String?, query: String = "", reading: Bool = true) -> TestSocket {
        TestSocket(url: "ws://127.0.0.1:\(port)/api/v1/ws\(query)", token: token, reading: reading)
    }

    /// Opens `GET /api/v1/events` with AsyncHTTPClient and streams its blocks.
    func serverSentEvents(token: String, query: String = "", lastEventID: String? = nil) async throws -> TestEventStream
    {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/v1/events\(query)")
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let lastEventID { request.headers.add(name: "Last-Event-ID", value: lastEventID) }
        return try await TestEventStream.open(request)
    }

    /// Waits until `condition` holds, checking as the hub changes; fails after `timeout`.
    func eventually(
        timeout: Duration = .seconds(30),
        _ what: String,
        sourceLocation: SourceLocation = #_sourceLocation,
        _ condition: @Sendable (RealtimeHub) async -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while !(await condition(hub)) {
            guard ContinuousClock.now < deadline else {
                Issue.record("timed out waiting for \(what)", sourceLocation: sourceLocation)
                return
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

/// A WebSocket client for tests: frames in an inbox, frames out through `send`.
final class TestSocket: Sendable {
    let frames = AsyncInbox<RealtimeServerFrame>()
    /// Set once the connection ended: the server's close frame, if it sent one.
    let closed = AsyncInbox<WebSocketCloseFrame?>()
    private let outgoing: AsyncStream<String>.Continuation
    private let task: Task<Void, Never>

    /// - Parameter reading: `false` makes a consumer that never reads what the server sends.
    init(url: String, token: String?, reading: Bool = true) {
        let (stream, outgoing) = AsyncStream<String>.makeStream()
        self.outgoing = outgoing
        let frames = frames
        let closed = closed
        var configuration = WebSocketClientConfiguration()
        if let token { configuration.additionalHeaders[.authorization] = "Bearer \(token)" }
        task = Task {
            do {
                let closeFrame = try await WebSocketClient.connect(
                    url: url,
                    configuration: configuration,
                    logger: Harness.logger
                ) { inbound, outbound, _ in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        if reading {
                            group.addTask {
                                for try await message in inbound.messages(maxSize: 1 << 24) {
                                    guard case .text(let text) = message else { continue }
                                    let frame = try JSONCoding.decoder.decode(
                                        RealtimeServerFrame.self,
                                        from: Data(text.utf8)
                                    )
                                    frames.append(frame)
                                }
                            }
                        }
                        group.addTask {
                            for await text in stream { try await outbound.writeTextMessage(text) }
                        }
                        // Whichever ends first (the server closed, or the test closed) ends the connection.
                        try await group.next()
                        group.cancelAll()
                    }
                }
                closed.append(closeFrame)
            } catch {
                closed.append(nil)
            }
            frames.finish()
        }
    }

    func send(_ frame: RealtimeClientFrame) throws {
        outgoing.yield(String(decoding: try JSONCoding.encoder.encode(frame), as: UTF8.self))
    }

    func sendRaw(_ text: String) {
        outgoing.yield(text)
    }

    /// The next frame, or `nil` when none came within `timeout`.
    func next(timeout: Duration = .seconds(30)) async -> RealtimeServerFrame? {
        await frames.next(timeout: timeout)
    }

    /// The next frame that is an event, failing on any other frame.
    func nextEvent(
        timeout: Duration = .seconds(30),
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> (subscription: String, event: Event) {
        let frame = await next(timeout: timeout)
        guard case .event(let subscription, let event) = frame else {
            Issue.record("expected an event frame, got \(String(describing: frame))", sourceLocation: sourceLocation)
            throw CancellationError()
        }
        return (subscription, event)
    }

    /// Subscribes and returns the seq of the `subscribed` answer.
    @discardableResult
    func subscribe(
        _ id: String,
        filters: EventFilter = EventFilter(),
        since: Int64? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> Int64 {
        try send(.subscribe(id: id, channel: "events", filters: filters, since: since))
        let frame = await next()
        guard case .subscribed(let subscription, let seq) = frame, subscription == id else {
            Issue.record("expected subscribed(\(id)), got \(String(describing: frame))", sourceLocation: sourceLocation)
            throw CancellationError()
        }
        return seq
    }

    /// Sends `ping` and expects `pong` as the very next frame.
    func expectPong(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try send(.ping)
        let frame = await next()
        #expect(frame == .pong, "expected pong, got \(String(describing: frame))", sourceLocation: sourceLocation)
    }

    /// Ends the connection from the client side.
    func close() {
        outgoing.finish()
    }

    /// Drops the connection without a close handshake.
    func cancel() {
        outgoing.finish()
        task.cancel()
    }
}

/// One block of a Server-Sent Events stream.
struct ServerSentBlock: Sendable, Hashable {
    var id: String?
    var event: String?
    var data: String?
    var comments: [String] = []
}

/// An SSE response read by AsyncHTTPClient, its blocks in an inbox.
final class TestEventStream: Sendable {
    let status: HTTPResponse.Status
    let contentType: String?
    /// `Retry-After`, when the answer carries one.
    let retryAfter: String?
    let blocks = AsyncInbox<ServerSentBlock>()
    private let received: Mutex<String> = Mutex("")

    /// The body read so far, for responses that are not streams.
    var body: String { received.withLock { $0 } }
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    private init(status: HTTPResponse.Status, contentType: String?, retryAfter: String?) {
        self.status = status
        self.contentType = contentType
        self.retryAfter = retryAfter
    }

    static func open(_ request: HTTPClientRequest) async throws -> TestEventStream {
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let stream = TestEventStream(
            status: HTTPResponse.Status(code: Int(response.status.code)),
            contentType: response.headers.first(name: "Content-Type"),
            retryAfter: response.headers.first(name: "Retry-After")
        )
        let blocks = stream.blocks
        let task = Task {
            var pending = ""
            do {
                for try await buffer in response.body {
                    let text = String(buffer: buffer)
                    stream.received.withLock { $0 += text }
                    pending += text
                    while let range = pending.range(of: "\n\n") {
                        let raw = String(pending[..<range.lowerBound])
                        pending = String(pending[range.upperBound...])
                        blocks.append(Self.parse(raw))
                    }
                }
            } catch {}
            blocks.finish()
        }
        stream.task.withLock { $0 = task }
        return stream
    }

    static func parse(_ raw: String) -> ServerSentBlock {
        var block = ServerSentBlock()
        for line in raw.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix(":") {
                block.comments.append(String(line.dropFirst()).trimmingCharacters(in: .whitespaces))
            } else if let colon = line.firstIndex(of: ":") {
                let name = String(line[..<colon])
                var value = line[line.index(after: colon)...]
                if value.hasPrefix(" ") { value = value.dropFirst() }
                switch name {
                case "id": block.id = String(value)
                case "event": block.event = String(value)
                case "data": block.data = (block.data.map { $0 + "\n" } ?? "") + value
                default: break
                }
            }
        }
        return block
    }

    /// The next block that carries an event (skipping comments), decoded.
    func nextEvent(sourceLocation: SourceLocation = #_sourceLocation) async throws -> (ServerSentBlock, Event) {
        while let block = await blocks.next() {
            guard block.event != nil else { continue }
            let data = try #require(block.data, sourceLocation: sourceLocation)
            let event = try JSONCoding.decoder.decode(Event.self, from: Data(data.utf8))
            return (block, event)
        }
        Issue.record("the stream ended or stalled before an event", sourceLocation: sourceLocation)
        throw CancellationError()
    }

    func cancel() {
        task.withLock { $0?.cancel() }
    }
}
