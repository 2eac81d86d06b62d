import AsyncHTTPClient
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import PyAirtableModels
import Synchronization
import WSClient

/// How a session ended.
enum SessionEnd: Sendable {
    /// The transport could not be established (refused, upgrade failed, not served): try the next one.
    case notEstablished(any Error)
    /// It ran, then the connection dropped or the server closed it: reconnect.
    case dropped(any Error)
    /// It ended on purpose (to go back up to a better transport, or to catch a subscription up).
    case restart
}

extension RealtimeClient {
    /// The connection loop: best transport first, falling back when one cannot be established, with
    /// backoff between rounds, until closed.
    func runConnection() async {
        var attempt = 0
        while !Task.isCancelled && !state.withLock({ $0.closed }) {
            var connectedFor: Duration = .zero
            var lastError: (any Error)?
            var restarted = false
            for (index, transport) in configuration.transports.enumerated() {
                if Task.isCancelled { return }
                setConnectionState(.connecting(transport))
                let isFallback = index > 0
                var end: SessionEnd = .restart
                let elapsed = await client.configuration.clock.measure {
                    end = await runSession(transport, isFallback: isFallback)
                }
                switch end {
                case .notEstablished(let error):
                    logger.debug(
                        "Realtime transport not established",
                        metadata: ["transport": "\(transport.rawValue)", "error": "\(error)"]
                    )
                    lastError = error
                    continue
                case .dropped(let error):
                    connectedFor = elapsed
                    lastError = error
                case .restart:
                    restarted = true
                }
                break
            }
            if Task.isCancelled || state.withLock({ $0.closed }) { return }
            if restarted { continue }
            if connectedFor >= configuration.stableAfter { attempt = 0 }
            attempt += 1
            let delay = configuration.backoff(attempt: attempt)
            logger.debug(
                "Realtime connection lost; retrying",
                metadata: [
                    "attempt": "\(attempt)", "delay": "\(delay)", "error": "\(lastError.map { "\($0)" } ?? "-")",
                ]
            )
            setConnectionState(.waiting(retryIn: delay, attempt: attempt))
            do {
                try await client.configuration.clock.sleep(for: delay)
            } catch {
                return
            }
            noteReconnect()
        }
    }

    private func runSession(_ transport: RealtimeTransport, isFallback: Bool) async -> SessionEnd {
        switch transport {
        case .webSocket: await runWebSocket()
        case .serverSentEvents: await runServerSentEvents(isFallback: isFallback)
        case .polling: await runPolling(isFallback: isFallback)
        }
    }

    /// The bearer token for this attempt (recomputed every time, so a refreshed token is used).
    private func bearer() async throws -> String? {
        try await client.tokens.token()
    }

    /// The newest `seq` of the server's event log. Subscribing `since:` it starts exactly here, with
    /// no race against writes made after this call (a subscription without `since` starts when the
    /// server receives it).
    public func latestSeq() async throws -> Int64 {
        try await head()
    }

    /// The head of the log, for subscriptions that start "now" on a transport that reads one stream.
    private func head() async throws -> Int64 {
        let request = try PyAirtableClient.request(
            .get,
            "/api/v1/stats",
            operation: ClientOperation(service: "realtime", name: "head")
        )
        return try await client.send(request, as: ServerStats.self).lastEventSeq
    }

    // MARK: WebSocket

    private func runWebSocket() async -> SessionEnd {
        var components = URLComponents(url: client.configuration.serverURL, resolvingAgainstBaseURL: false)
        components?.scheme = client.configuration.serverURL.scheme == "https" ? "wss" : "ws"
        let basePath = components?.path ?? ""
        components?.path = basePath.trimmingSuffix("/") + "/api/v1/ws"
        guard let url = components?.string else {
            return .notEstablished(PyAirtableError.invalidArgument("bad server URL"))
        }
        var headers = HTTPFields()
        let token: String?
        do {
            token = try await bearer()
            if let token { headers[.authorization] = "Bearer \(token)" }
        } catch {
            return .notEstablished(error)
        }
        headers[.userAgent] = client.configuration.userAgent
        let configuration = WebSocketClientConfiguration(
            maxFrameSize: self.configuration.maximumMessageSize,
            additionalHeaders: headers,
            autoPing: .enabled(timePeriod: self.configuration.pingInterval)
        )
        let established = Flag()
        let rejected = Flag()
        let connectTimeout = client.configuration.timeouts.connect
        let clock = client.configuration.clock
        do {
            let closeFrame = try await withThrowingTaskGroup(of: WebSocketCloseFrame?.self) { group in
                group.addTask { [self] in
                    try await serveWebSocket(
                        url: url,
                        configuration: configuration,
                        established: established,
                        rejected: rejected
                    )
                }
                // A connect that neither completes nor fails must not stall the connection loop.
                group.addTask {
                    try await clock.sleep(for: connectTimeout)
                    while established.isSet { try await clock.sleep(for: .seconds(3600)) }
                    throw RealtimeClosed(reason: "the WebSocket did not open within \(connectTimeout)")
                }
                defer { group.cancelAll() }
                return try await group.next() ?? nil
            }
            if rejected.isSet || closeFrame?.closeCode == .unknown(4401) {
                // The server refused or expired the access token: get a new one before reconnecting.
                if let token { _ = try? await client.tokens.refreshed(replacing: token) }
            }
            let reason = closeFrame.map { "closed \($0.closeCode): \($0.reason ?? "")" } ?? "closed"
            let error = PyAirtableError.transport(RealtimeClosed(reason: reason), operation: nil)
            return established.isSet ? .dropped(error) : .notEstablished(error)
        } catch {
            if !established.isSet, (error as? WebSocketClientError) == .webSocketUpgradeFailed {
                // The upgrade answer's status is not exposed; an ordinary request through the client
                // refreshes an expired access token on its 401.
                _ = try? await head()
            }
            return established.isSet ? .dropped(error) : .notEstablished(error)
        }
    }

    /// Connects the WebSocket, subscribes everything from its position, and serves frames until it
    /// closes.
    private func serveWebSocket(
        url: String,
        configuration: WebSocketClientConfiguration,
        established: Flag,
        rejected: Flag
    ) async throws -> WebSocketCloseFrame? {
        try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) {
            inbound,
            outbound,
            _ in
            established.set()
            let send: @Sendable (RealtimeClientFrame) async throws -> Void = { frame in
                let data = try JSONCoding.encoder.encode(frame)
                try await outbound.write(.text(String(decoding: data, as: UTF8.self)))
            }
            // Frames for subscriptions made from now on are sent as they are made.
            let session = UUID()
            let positions = self.state.withLock { state in
                state.session = session
                state.sendFrame = send
                state.interruptSession = {
                    Task { try? await outbound.close(.goingAway, reason: "reconnecting") }
                }
                return state.subscriptions.mapValues { ($0.filter, $0.lastSeq) }
            }
            self.setConnectionState(.connected(.webSocket))
            defer {
                // A newer session (after an idle disconnect and a new subscription) keeps its own.
                self.state.withLock { state in
                    guard state.session == session else { return }
                    state.sendFrame = nil
                    state.interruptSession = nil
                }
            }
            for (id, position) in positions {
                try await send(.subscribe(id: id, channel: "events", filters: position.0, since: position.1))
            }
            for try await message in inbound.messages(maxSize: self.configuration.maximumMessageSize) {
                guard case .text(let text) = message else { continue }
                let frame = try RealtimeServerFrame.decode(text)
                if case .error(nil, let error) = frame, error.code == 401 { rejected.set() }
                await self.handle(frame)
            }
        }
    }

    private func handle(_ frame: RealtimeServerFrame) async {
        switch frame {
        case .event(let subscription, let event):
            await deliver(event, subscription: subscription)
        case .subscribed(let subscription, let seq):
            state.withLock { state in
                if state.subscriptions[subscription]?.lastSeq == nil {
                    state.subscriptions[subscription]?.lastSeq = seq
                }
            }
        case .reset(let subscription, let seq):
            deliverReset(seq: seq, subscriptions: [subscription])
        case .pong:
            break
        case .error(let subscription, let error):
            logger.warning(
                "Realtime error from the server",
                metadata: ["subscription": "\(subscription ?? "-")", "error": "\(error.message)"]
            )
            if let subscription {
                let ended = state.withLock { $0.subscriptions.removeValue(forKey: subscription) }
                ended?.continuation.finish(
                    throwing: PyAirtableError.invalidArgument("the server refused the subscription: \(error.message)")
                )
            }
        }
    }

    // MARK: Server-Sent Events

    /// The position one stream for every subscription starts from: the oldest of theirs, or the head
    /// for subscriptions that start now.
    private func streamStart() async throws -> Int64 {
        let positions = self.positions()
        if positions.values.contains(where: { $0.lastSeq == nil }) {
            adoptPosition(try await head())
        }
        if let oldest = self.positions().values.compactMap(\.lastSeq).min() { return oldest }
        return try await head()
    }

    private func runServerSentEvents(isFallback: Bool) async -> SessionEnd {
        let since: Int64
        do {
            since = try await streamStart()
        } catch {
            return .notEstablished(error)
        }
        // The stream is an ordinary GET through the client's middlewares and transport: the auth
        // middleware puts the token on it and refreshes it after a 401.
        var request = ClientRequest(
            method: .get,
            path: "/api/v1/events",
            headerFields: [.accept: "text/event-stream"],
            operation: ClientOperation(service: "realtime", name: "stream"),
            timeout: .seconds(3600 * 24 * 365)
        )
        request.headerFields[.lastEventID] = String(since)
        let response: ClientResponse
        do {
            response = try await client.exchange(request)
        } catch let error as PyAirtableError where error.status == 410 {
            // Positions older than the retained log: tell the subscriptions, start again from the head.
            do {
                deliverReset(seq: try await head())
            } catch {
                return .notEstablished(error)
            }
            return .restart
        } catch {
            return .notEstablished(error)
        }
        guard response.status.code == 200, let body = response.body else {
            return .notEstablished(RealtimeClosed(reason: "SSE answered \(response.status.code)"))
        }
        setConnectionState(.connected(.serverSentEvents))
        let (restart, restartStream) = AsyncStream.makeStream(of: Void.self)
        let session = UUID()
        state.withLock { state in
            state.session = session
            state.restartSession = { restartStream.finish() }
        }
        defer {
            state.withLock { state in
                if state.session == session { state.restartSession = nil }
            }
        }
        let clock = client.configuration.clock
        let upgradeAfter = configuration.upgradeInterval
        let lastActivity = LastActivity()
        let silenceLimit = configuration.streamSilenceLimit
        let result: SessionEnd = await withTaskGroup(of: SessionEnd?.self) { group in
            group.addTask { [self] in
                var parser = ServerSentEventParser(
                    maximumLineLength: configuration.maximumMessageSize,
                    maximumEventSize: configuration.maximumMessageSize
                )
                do {
                    for try await chunk in body {
                        lastActivity.touch()
                        let messages = try parser.feed(chunk)
                        var events: [Event] = []
                        for message in messages {
                            switch message.event {
                            case nil, "message":
                                events.append(try Event.decode(message.data))
                            case "error":
                                if !events.isEmpty { await deliver(streamEvents: events) }
                                // An access token that expired during the stream (`"code":401`) is
                                // renewed by the next connection's request: the auth middleware
                                // refreshes a token about to expire, and refreshes once on a 401.
                                return .dropped(RealtimeClosed(reason: "the server ended the stream: \(message.data)"))
                            default:
                                if let event = try? Event.decode(message.data) {
                                    events.append(event)
                                }
                            }
                        }
                        await deliver(streamEvents: events)
                    }
                    return .dropped(RealtimeClosed(reason: "the event stream ended"))
                } catch {
                    return .dropped(error)
                }
            }
            group.addTask {
                for await _ in restart {}
                return .restart
            }
            // The server sends a heartbeat comment every 15 s; a stream silent for much longer is a
            // connection that died without a FIN.
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: silenceLimit / 4)
                    let silent = lastActivity.silence
                    if silent > silenceLimit {
                        return .dropped(RealtimeClosed(reason: "the event stream was silent for \(silent)"))
                    }
                }
                return nil
            }
            if isFallback {
                group.addTask {
                    try? await clock.sleep(for: upgradeAfter)
                    return Task.isCancelled ? nil : .restart
                }
            }
            var end: SessionEnd = .restart
            for await first in group {
                if let first {
                    end = first
                    break
                }
            }
            group.cancelAll()
            return end
        }
        return result
    }

    // MARK: Polling

    private func runPolling(isFallback: Bool) async -> SessionEnd {
        var since: Int64
        do {
            since = try await streamStart()
        } catch {
            return .notEstablished(error)
        }
        let clock = client.configuration.clock
        let (restart, restartStream) = AsyncStream.makeStream(of: Void.self)
        let session = UUID()
        state.withLock { state in
            state.session = session
            state.restartSession = { restartStream.finish() }
        }
        defer {
            state.withLock { state in
                if state.session == session { state.restartSession = nil }
            }
        }
        let restarted = Flag()
        let watcher = Task {
            for await _ in restart {}
            restarted.set()
        }
        defer { watcher.cancel() }
        var established = false
        var polledFor: Duration = .zero
        while !Task.isCancelled {
            if restarted.isSet { return .restart }
            let page: EventLogPage
            do {
                let request = try PyAirtableClient.request(
                    .get,
                    "/api/v1/events/log",
                    query: [QueryItem("since", String(since)), QueryItem("limit", String(EventLogPage.maximumLimit))],
                    operation: ClientOperation(service: "realtime", name: "poll")
                )
                page = try await client.send(request, as: EventLogPage.self)
            } catch let error as PyAirtableError where error == .resyncRequired {
                do {
                    let head = try await head()
                    deliverReset(seq: head)
                    since = head
                    continue
                } catch {
                    return established ? .dropped(error) : .notEstablished(error)
                }
            } catch {
                return established ? .dropped(error) : .notEstablished(error)
            }
            if !established {
                established = true
                setConnectionState(.connected(.polling))
            }
            await deliver(streamEvents: page.data)
            since = max(since, page.nextSince)
            if page.data.count == EventLogPage.maximumLimit { continue }
            do {
                try await clock.sleep(for: configuration.pollInterval)
            } catch {
                return .restart
            }
            polledFor += configuration.pollInterval
            if isFallback && polledFor >= configuration.upgradeInterval { return .restart }
        }
        return .restart
    }
}

/// The server closed a realtime connection, or a transport ended.
struct RealtimeClosed: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}

/// When a stream last showed signs of life.
final class LastActivity: Sendable {
    private let instant = Mutex(ContinuousClock.now)
    func touch() { instant.withLock { $0 = .now } }
    var silence: Duration { ContinuousClock.now - instant.withLock { $0 } }
}

/// A flag set once, read from any task.
final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

extension HTTPField.Name {
    static let lastEventID = Self("Last-Event-ID")!
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        var text = self
        while text.hasSuffix(suffix) { text.removeLast(suffix.count) }
        return text
    }
}
