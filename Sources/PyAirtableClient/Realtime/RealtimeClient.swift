import Foundation
import Logging
import Metrics
import PyAirtableModels
import Synchronization

/// The live side of the client: one connection, multiplexing every subscription, that never loses an
/// event.
///
/// Each subscription is an `AsyncThrowingStream` of ``RealtimeUpdate``; ending the loop (or cancelling
/// its task) unsubscribes. The connection tries WebSocket, then Server-Sent Events, then polling the
/// event log, reconnects with equal-jitter backoff (0.5 s → 30 s, reset after 60 s connected), asks for
/// fresh credentials on every attempt, and resumes each subscription from the last `seq` it delivered —
/// so every event arrives once, in order, across reconnects and server restarts.
///
/// ```swift
/// for try await update in client.realtime.subscribe(EventFilter(tableID: table)) {
///     if case .event(let event) = update { print(event.seq, event.type) }
/// }
/// ```
public final class RealtimeClient: Sendable {
    struct Subscription {
        let filter: EventFilter
        /// The position up to which the subscription has been served.
        var lastSeq: Int64?
        let continuation: AsyncThrowingStream<RealtimeUpdate, any Error>.Continuation
    }

    struct State {
        var subscriptions: [String: Subscription] = [:]
        var connection: Task<Void, Never>?
        var connectionState: RealtimeConnectionState = .idle
        var stateObservers: [UUID: AsyncStream<RealtimeConnectionState>.Continuation] = [:]
        /// Sends a frame over the live WebSocket, when there is one.
        var sendFrame: (@Sendable (RealtimeClientFrame) async throws -> Void)?
        /// Ends the current session early (to pick up a new subscription's catch-up on SSE or polling).
        var restartSession: (@Sendable () -> Void)?
        /// Cuts the current connection (``RealtimeClient/reconnect()``).
        var interruptSession: (@Sendable () -> Void)?
        var closed = false
        var statistics = RealtimeStatistics()
        /// The current session, so a finishing older one does not clear a newer one's hooks.
        var session: UUID?
        /// Closes the connection a while after the last subscription ended.
        var linger: Task<Void, Never>?
    }

    let client: PyAirtableClient
    let configuration: RealtimeSettings
    let logger: Logger
    let state = Mutex(State())
    /// The HTTP client of the SSE transport, made when first needed.
    private let eventsCounter: Counter
    private let reconnectsCounter: Counter
    private let lagTimer: Metrics.Timer

    /// Makes a realtime connection of its own for `client` (``PyAirtableClient/realtime`` is the shared
    /// one; separate ones are for tools that need several connections, such as load tests). Call
    /// ``close()`` when done.
    public init(client: PyAirtableClient, configuration: RealtimeSettings) {
        self.client = client
        self.configuration = configuration
        self.logger = client.configuration.logger
        let prefix = client.configuration.metricsPrefix
        self.eventsCounter = Counter(label: "\(prefix)_realtime_events_total")
        self.reconnectsCounter = Counter(label: "\(prefix)_realtime_reconnects_total")
        self.lagTimer = Metrics.Timer(label: "\(prefix)_realtime_lag_seconds")
    }

    // MARK: Subscribing

    /// Events matching `filter` that the user may read, from `since` (exclusive) or from now.
    ///
    /// The stream ends when the client closes, and with an error when the consumer falls more than
    /// ``RealtimeSettings/subscriptionBuffer`` updates behind.
    public func subscribe(
        _ filter: EventFilter = EventFilter(),
        since: Int64? = nil
    ) -> AsyncThrowingStream<RealtimeUpdate, any Error> {
        let id = UUID().uuidString.lowercased()
        let (stream, continuation) = AsyncThrowingStream.makeStream(
            of: RealtimeUpdate.self,
            throwing: (any Error).self,
            bufferingPolicy: .bufferingOldest(max(1, configuration.subscriptionBuffer))
        )
        continuation.onTermination = { [weak self] _ in self?.unsubscribe(id) }
        let (closed, send, restart) = state.withLock { state in
            if state.closed {
                return (true, nil, nil)
                    as (Bool, (@Sendable (RealtimeClientFrame) async throws -> Void)?, (@Sendable () -> Void)?)
            }
            state.subscriptions[id] = Subscription(filter: filter, lastSeq: since, continuation: continuation)
            state.linger?.cancel()
            state.linger = nil
            if state.connection == nil {
                state.connection = Task { [self] in await runConnection() }
            }
            return (false, state.sendFrame, state.restartSession)
        }
        if closed {
            continuation.finish(throwing: PyAirtableError.cancelledError)
            return stream
        }
        if let send {
            Task { try? await send(.subscribe(id: id, channel: "events", filters: filter, since: since)) }
        } else if since != nil, let restart {
            // SSE and polling read one stream from the oldest position: start over to catch this one up.
            restart()
        }
        return stream
    }

    private func unsubscribe(_ id: String) {
        let linger = configuration.lingerAfterLastSubscription
        let send = state.withLock { state -> (@Sendable (RealtimeClientFrame) async throws -> Void)? in
            guard state.subscriptions.removeValue(forKey: id) != nil else { return nil }
            if state.subscriptions.isEmpty && state.connection != nil {
                state.linger?.cancel()
                state.linger = Task { [weak self] in
                    guard (try? await Task.sleep(for: linger)) != nil else { return }
                    self?.disconnectIfIdle()
                }
            }
            return state.sendFrame
        }
        if let send { Task { try? await send(.unsubscribe(id: id)) } }
    }

    /// Closes the connection when no subscription is left (after the linger), so an idle client
    /// holds nothing on the server; the next subscription connects again.
    private func disconnectIfIdle() {
        let connection = state.withLock { state -> Task<Void, Never>? in
            guard state.subscriptions.isEmpty, !state.closed else { return nil }
            defer {
                state.connection = nil
                state.linger = nil
            }
            return state.connection
        }
        guard let connection else { return }
        connection.cancel()
        setConnectionState(.idle)
    }

    /// Drops the current connection and connects again at once, resuming every subscription from its
    /// position — for when the network changed under a connection that still looks alive.
    public func reconnect() {
        let interrupt = state.withLock { $0.interruptSession ?? $0.restartSession }
        interrupt?()
    }

    /// The connection's state now, then every change.
    public func connectionStates() -> AsyncStream<RealtimeConnectionState> {
        let (stream, continuation) = AsyncStream.makeStream(of: RealtimeConnectionState.self)
        let id = UUID()
        state.withLock { state in
            continuation.yield(state.connectionState)
            if state.closed {
                continuation.finish()
            } else {
                state.stateObservers[id] = continuation
            }
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.stateObservers.removeValue(forKey: id) }
        }
        return stream
    }

    /// The connection's state now.
    public var connectionState: RealtimeConnectionState { state.withLock { $0.connectionState } }

    /// Counters since the client started.
    public var statistics: RealtimeStatistics { state.withLock { $0.statistics } }

    /// How many subscriptions are open.
    public var subscriptionCount: Int { state.withLock { $0.subscriptions.count } }

    /// Ends every subscription and the connection.
    public func close() async {
        let (task, subscriptions, observers) = state.withLock { state in
            state.closed = true
            state.linger?.cancel()
            let subscriptions = Array(state.subscriptions.values)
            state.subscriptions.removeAll()
            let observers = Array(state.stateObservers.values)
            state.stateObservers.removeAll()
            state.connectionState = .closed
            return (state.connection, subscriptions, observers)
        }
        task?.cancel()
        for subscription in subscriptions { subscription.continuation.finish() }
        await task?.value
        for observer in observers {
            observer.yield(.closed)
            observer.finish()
        }
    }

    func setConnectionState(_ new: RealtimeConnectionState) {
        let observers = state.withLock { state -> [AsyncStream<RealtimeConnectionState>.Continuation] in
            guard !state.closed, state.connectionState != new else { return [] }
            state.connectionState = new
            return Array(state.stateObservers.values)
        }
        for observer in observers { observer.yield(new) }
    }

    // MARK: Delivering

    /// Delivers events of a transport that reads one stream for every subscription (SSE, polling):
    /// each subscription gets the events past its position that match its filter.
    func deliver(streamEvents events: [Event]) async {
        guard !events.isEmpty else { return }
        await updateCache(events)
        var overflowed: [String] = []
        state.withLock { state in
            for (id, subscription) in state.subscriptions {
                var last = subscription.lastSeq ?? Int64.min
                for event in events where event.seq > last {
                    last = event.seq
                    if subscription.filter.matches(event) {
                        if case .dropped = subscription.continuation.yield(.event(event)) { overflowed.append(id) }
                        state.statistics.eventsDelivered += 1
                    }
                }
                state.subscriptions[id]?.lastSeq = last
            }
            state.statistics.eventsReceived += events.count
        }
        afterDelivery(events, overflowed: overflowed)
    }

    /// Delivers an event the server sent for one subscription (WebSocket).
    func deliver(_ event: Event, subscription id: String) async {
        let isNew = state.withLock { state in
            state.subscriptions[id].map { subscription in subscription.lastSeq.map { event.seq > $0 } ?? true } ?? false
        }
        if isNew { await updateCache([event]) }
        var overflowed: [String] = []
        let delivered = state.withLock { state -> Bool in
            guard let subscription = state.subscriptions[id] else { return false }
            if let last = subscription.lastSeq, event.seq <= last {
                state.statistics.duplicatesDropped += 1
                return false
            }
            state.subscriptions[id]?.lastSeq = event.seq
            if case .dropped = subscription.continuation.yield(.event(event)) { overflowed.append(id) }
            state.statistics.eventsReceived += 1
            state.statistics.eventsDelivered += 1
            return true
        }
        if delivered { afterDelivery([event], overflowed: overflowed) }
    }

    /// Tells subscriptions that their position is gone from the log; they continue after `seq`.
    func deliverReset(seq: Int64, subscriptions ids: [String]? = nil) {
        let filters = state.withLock { state -> [EventFilter] in
            var filters: [EventFilter] = []
            for (id, subscription) in state.subscriptions where ids?.contains(id) ?? true {
                subscription.continuation.yield(.reset(seq: seq))
                state.subscriptions[id]?.lastSeq = seq
                filters.append(subscription.filter)
            }
            state.statistics.resets += filters.count
            return filters
        }
        guard configuration.updatesCache, !filters.isEmpty else { return }
        Task { await client.cacheAfterReset(filters: filters) }
    }

    private func afterDelivery(_ events: [Event], overflowed: [String]) {
        eventsCounter.increment(by: Int64(events.count))
        if let last = events.last { lagTimer.recordInterval(since: last.ts) }
        for id in overflowed {
            let subscription = state.withLock { $0.subscriptions.removeValue(forKey: id) }
            subscription?.continuation.finish(
                throwing: PyAirtableError.invalidArgument(
                    "the subscription's consumer fell more than \(configuration.subscriptionBuffer) updates behind"
                )
            )
        }
    }

    /// Brings the cache in line with `events` before any subscriber sees them, so a read made on an
    /// event already reflects it.
    private func updateCache(_ events: [Event]) async {
        guard configuration.updatesCache, client.configuration.cache.isEnabled else { return }
        await client.cacheAfterEvents(events)
    }

    /// Subscriptions' positions, for resuming.
    func positions() -> [String: (filter: EventFilter, lastSeq: Int64?)] {
        state.withLock { state in state.subscriptions.mapValues { ($0.filter, $0.lastSeq) } }
    }

    /// Gives subscriptions with no position the position `seq` (now).
    func adoptPosition(_ seq: Int64) {
        state.withLock { state in
            for (id, subscription) in state.subscriptions where subscription.lastSeq == nil {
                state.subscriptions[id]?.lastSeq = seq
            }
        }
    }

    func noteReconnect() {
        reconnectsCounter.increment()
        state.withLock { $0.statistics.reconnects += 1 }
    }
}

/// Counters of a ``RealtimeClient``.
public struct RealtimeStatistics: Sendable, Hashable {
    /// Events received from the server.
    public var eventsReceived = 0
    /// Events handed to subscriptions (an event can go to several).
    public var eventsDelivered = 0
    /// Events received twice (around a reconnect) and not handed on again.
    public var duplicatesDropped = 0
    /// Connections re-established after a failure.
    public var reconnects = 0
    /// Resets delivered (positions no longer retained).
    public var resets = 0

    public init() {}
}

extension Metrics.Timer {
    func recordInterval(since date: Date) {
        recordNanoseconds(Int64(max(0, Date().timeIntervalSince(date)) * 1e9))
    }
}
