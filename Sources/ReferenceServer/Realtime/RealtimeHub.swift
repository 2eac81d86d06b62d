import Foundation
import HTTPTypes
import Logging
import PyAirtableModels
import Synchronization

/// Fans the event log out to every realtime connection of one server.
///
/// After each committed write the hub reads the new events once, with their JSON already encoded,
/// and offers each to every subscription it matches and whose user may read it. A subscription keeps
/// a cursor, the last seq it accounted for: catch-up reads the log from it until it reaches the
/// events fan-out has handled, then the subscription goes live; live delivery only takes events past
/// the cursor. So each subscription sees every event once, in order, across the handoff.
///
/// ```swift
/// let hub = try await RealtimeHub.start(source: store, configuration: .init(), metrics: metrics, logger: logger)
/// let connection = await hub.connect(user: user)
/// await hub.subscribe(connection: connection.id, subscription: "s1", filter: EventFilter(), since: nil)
/// while let message = await connection.outbox.next() { … }
/// await hub.disconnect(connection.id)
/// ```
public actor RealtimeHub {
    /// The open WebSockets, closed when the server shuts down.
    nonisolated let sockets = RealtimeSockets()
    /// One connection as its transport sees it.
    struct Connection: Sendable {
        let id: Int
        let outbox: RealtimeOutbox
    }

    private final class ConnectionState {
        let user: UserID
        let outbox: RealtimeOutbox
        var subscriptions: [String: SubscriptionState] = [:]

        init(user: UserID, outbox: RealtimeOutbox) {
            self.user = user
            self.outbox = outbox
        }
    }

    private final class SubscriptionState {
        let id: String
        let idJSON: String
        let filter: EventFilter
        /// The last seq this subscription accounted for (delivered, or seen and not matching).
        var cursor: Int64
        var live = false

        init(id: String, filter: EventFilter, cursor: Int64) {
            self.id = id
            self.idJSON = JSONText.quoted(id)
            self.filter = filter
            self.cursor = cursor
        }
    }

    private struct PumpState {
        var requested = false
        var running = false
    }

    private let source: any RealtimeEventSource
    let configuration: RealtimeConfiguration
    private let metrics: ServerMetrics
    private let logger: Logger
    /// The clock of the hub's waits (a retry after a failed read).
    private let clock: any Clock<Duration>
    private var connections: [Int: ConnectionState] = [:]
    private var nextConnectionID = 0
    /// The seq through which live fan-out has run.
    private var processedHead: Int64
    /// Workspaces of each connected user, refreshed when a membership event passes.
    private var memberships: [UserID: Set<String>] = [:]
    private var membershipTickets: [UserID: UInt64] = [:]
    private var membershipReads: UInt64 = 0
    private var connectionsPerUser: [UserID: Int] = [:]
    private nonisolated let pump = Mutex(PumpState())
    private static let fanOutBatch = 1000

    private init(
        source: any RealtimeEventSource,
        configuration: RealtimeConfiguration,
        metrics: ServerMetrics,
        logger: Logger,
        clock: any Clock<Duration>,
        head: Int64
    ) {
        self.source = source
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.clock = clock
        self.processedHead = head
    }

    /// Creates a hub positioned at the log's head and subscribes it to the store's commits.
    public static func start(
        source: any RealtimeEventSource,
        configuration: RealtimeConfiguration,
        metrics: ServerMetrics,
        logger: Logger,
        clock: any Clock<Duration> = ContinuousClock()
    ) async throws -> RealtimeHub {
        let head = try await source.realtimeHead()
        let hub = RealtimeHub(
            source: source,
            configuration: configuration,
            metrics: metrics,
            logger: logger,
            clock: clock,
            head: head
        )
        source.observeCommits { [weak hub] in hub?.commitHappened() }
        return hub
    }

    // MARK: - Introspection

    /// Open connections.
    public var connectionCount: Int { connections.count }

    /// Subscriptions across every connection.
    public var subscriptionCount: Int { connections.values.reduce(0) { $0 + $1.subscriptions.count } }

    /// The seq through which live fan-out has run.
    public var head: Int64 { processedHead }

    // MARK: - Connections

    /// Registers a connection of `user`, once the user's memberships are read.
    /// - Throws: 429 `RATE_LIMITED` when the user already holds
    ///   ``RealtimeConfiguration/maximumConnectionsPerUser`` connections.
    func connect(user: UserID) async throws -> Connection {
        let open = connectionsPerUser[user] ?? 0
        guard open < configuration.maximumConnectionsPerUser else {
            metrics.realtimeConnectionRefused()
            throw Self.tooManyConnections(limit: configuration.maximumConnectionsPerUser)
        }
        nextConnectionID += 1
        let id = nextConnectionID
        let state = ConnectionState(
            user: user,
            outbox: RealtimeOutbox(capacity: configuration.bufferSize, maximumBytes: configuration.maximumBufferedBytes)
        )
        connectionsPerUser[user, default: 0] += 1
        do {
            // Every connection reads afresh, so none subscribes before its user's access is known.
            try await loadMemberships(of: [user])
        } catch {
            releaseUser(user)
            throw error
        }
        connections[id] = state
        metrics.realtimeConnectionOpened()
        return Connection(id: id, outbox: state.outbox)
    }

    /// The refusal of a connection past the per-user limit. Counted while the connect registers (and
    /// reads the user's memberships), so a burst of connects cannot pass the limit together.
    static func tooManyConnections(limit: Int) -> ServerError {
        ServerError(
            .tooManyRequests,
            .rateLimited,
            "a user may hold at most \(limit) realtime connections (WebSocket and SSE together); "
                + "close one, or share one connection between subscriptions",
            headers: [.retryAfter: String(Self.retryAfterSeconds)]
        )
    }

    /// The `Retry-After` of a refused connection: connections close at the client's pace.
    static let retryAfterSeconds = 5

    /// Forgets a connection and everything it subscribed to.
    func disconnect(_ id: Int) {
        guard let state = connections.removeValue(forKey: id) else { return }
        state.outbox.finish(.closed)
        metrics.realtimeConnectionClosed()
        releaseUser(state.user)
    }

    private func releaseUser(_ user: UserID) {
        let remaining = (connectionsPerUser[user] ?? 1) - 1
        if remaining > 0 {
            connectionsPerUser[user] = remaining
        } else {
            connectionsPerUser[user] = nil
            memberships[user] = nil
            membershipTickets[user] = nil
        }
    }

    /// Starts subscription `subscription` on a connection: `subscribed` right away, then, from `since`,
    /// the missed events (or `reset` when the log no longer holds them), then live events.
    /// Without `since` the subscription starts at the head.
    func subscribe(connection id: Int, subscription: String, filter: EventFilter, since: Int64?) async {
        guard let connection = connections[id] else { return }
        let refusal: String? =
            if connection.subscriptions[subscription] != nil {
                "subscription '\(subscription)' already exists on this connection"
            } else if connection.subscriptions.count >= configuration.maximumSubscriptions {
                "a connection holds at most \(configuration.maximumSubscriptions) subscriptions"
            } else {
                nil
            }
        if let refusal {
            let error = APIErrorDetail(type: .validation, code: 422, message: refusal)
            send(.error(subscription: subscription, error: error), to: id, connection)
            return
        }
        let state = SubscriptionState(id: subscription, filter: filter, cursor: since ?? processedHead)
        // Registered before any wait, so the id is taken; not live, so fan-out passes it by for now.
        connection.subscriptions[subscription] = state
        if since == nil {
            // The head of the log, not of fan-out (which may trail it by a commit): a client that
            // subscribes after its own write does not get that write's event.
            do {
                state.cursor = max(state.cursor, try await source.realtimeHead())
            } catch {
                logger.warning("could not read the event head", metadata: ["error": "\(error)"])
            }
            guard connections[id] != nil, connection.subscriptions[subscription] === state else { return }
        }
        guard send(.subscribed(subscription: subscription, seq: state.cursor), to: id, connection) else { return }
        if since == nil && state.cursor >= processedHead {
            state.live = true
            return
        }
        // Catch-up also covers events between the head read above and fan-out's progress.
        Task { await self.catchUp(connection: id, subscription: state) }
    }

    /// Ends a subscription.
    func unsubscribe(connection id: Int, subscription: String) {
        connections[id]?.subscriptions[subscription] = nil
    }

    /// Queues a reply on a connection (`pong`, an error about a client frame).
    func reply(_ message: RealtimeMessage, connection id: Int) {
        guard let connection = connections[id] else { return }
        send(message, to: id, connection)
    }

    // MARK: - Catch-up

    /// Replays the log from the subscription's cursor until it meets live fan-out.
    private func catchUp(connection id: Int, subscription: SubscriptionState) async {
        while true {
            guard let connection = connections[id], connection.subscriptions[subscription.id] === subscription else {
                return
            }
            // Replay at the consumer's pace: a long catch-up never overflows the outbox.
            await connection.outbox.waitForRoom()
            let page: RealtimeCatchUp
            do {
                page = try await source.realtimeCatchUp(
                    after: subscription.cursor,
                    filter: subscription.filter,
                    user: connection.user,
                    limit: max(1, min(configuration.catchUpPageSize, configuration.bufferSize / 2))
                )
            } catch {
                logger.error("realtime catch-up failed", metadata: ["error": "\(error)"])
                send(
                    .error(
                        subscription: subscription.id,
                        error: APIErrorDetail(type: .server, code: 500, message: "catch-up failed; resubscribe")
                    ),
                    to: id,
                    connection
                )
                connection.subscriptions[subscription.id] = nil
                return
            }
            guard connections[id] != nil, connection.subscriptions[subscription.id] === subscription else { return }
            switch page {
            case .resyncRequired(let head):
                guard send(.reset(subscription: subscription.id, seq: head), to: id, connection) else { return }
                subscription.cursor = head
            case .events(let events, let through):
                for event in events where event.seq > subscription.cursor {
                    // Paced by bytes as well: a page of large events waits for the consumer rather
                    // than overflowing its outbox.
                    let bytes = RealtimeMessage.event(
                        subscription: subscription.id,
                        subscriptionJSON: subscription.idJSON,
                        event: event
                    ).byteCount
                    if !connection.outbox.accepts(bytes: bytes) {
                        await connection.outbox.waitForRoom(bytes: bytes)
                        guard connections[id] != nil, connection.subscriptions[subscription.id] === subscription else {
                            return
                        }
                    }
                    guard deliver(event, to: subscription, connection: id, connection) else { return }
                }
                subscription.cursor = max(subscription.cursor, through)
            }
            if subscription.cursor >= processedHead {
                subscription.live = true
                return
            }
        }
    }

    // MARK: - Live fan-out

    /// Called on the writer's thread after each commit: starts the pump unless it runs already.
    nonisolated func commitHappened() {
        let start = pump.withLock { state -> Bool in
            state.requested = true
            if state.running { return false }
            state.running = true
            return true
        }
        if start { Task { await self.runPump() } }
    }

    private func runPump() async {
        while true {
            let go = pump.withLock { state -> Bool in
                if !state.requested {
                    state.running = false
                    return false
                }
                state.requested = false
                return true
            }
            guard go else { return }
            let more = await pumpOnce()
            if more { pump.withLock { $0.requested = true } }
        }
    }

    /// Reads the events past the processed head and fans them out. Returns whether more remain.
    private func pumpOnce() async -> Bool {
        do {
            if connections.isEmpty {
                // Nobody listens: only keep the head current, so new subscriptions start there.
                let head = try await source.realtimeHead()
                if connections.isEmpty {
                    processedHead = max(processedHead, head)
                    return false
                }
                return true
            }
            let events = try await source.realtimeEvents(after: processedHead, limit: Self.fanOutBatch)
            guard let last = events.last else { return false }
            if events.contains(where: \.changesMembership) {
                // Read membership after the batch's commit, before fanning it out: a removed member's
                // own removal still reaches them through `event_recipients`, nothing after it does.
                try await loadMemberships(of: Array(connectionsPerUser.keys))
            }
            fanOut(events)
            processedHead = last.seq
            return events.count == Self.fanOutBatch
        } catch {
            logger.error("realtime fan-out read failed", metadata: ["error": "\(error)"])
            // Try again shortly: events are never skipped, only delayed.
            Task { [clock] in
                try? await clock.sleep(for: .milliseconds(200))
                self.commitHappened()
            }
            return false
        }
    }

    private func fanOut(_ events: [RealtimeEvent]) {
        guard let last = events.last else { return }
        for (id, connection) in connections {
            let subscriptions = connection.subscriptions.values.filter(\.live)
            guard !subscriptions.isEmpty else { continue }
            let workspaces = memberships[connection.user] ?? []
            let user = connection.user.rawValue
            var delivering = true
            outer: for event in events where Self.canRead(event, user: user, workspaces: workspaces) {
                for subscription in subscriptions
                where event.seq > subscription.cursor && event.matches(subscription.filter) {
                    guard deliver(event, to: subscription, connection: id, connection) else {
                        delivering = false
                        break outer
                    }
                }
            }
            guard delivering else { continue }
            for subscription in subscriptions { subscription.cursor = max(subscription.cursor, last.seq) }
        }
    }

    /// The rule of `GET /events/log`: members of the event's workspace, the actor of an event outside
    /// any workspace, and the event's listed recipients.
    static func canRead(_ event: RealtimeEvent, user: String, workspaces: Set<String>) -> Bool {
        if let workspace = event.workspaceID {
            if workspaces.contains(workspace) { return true }
        } else if event.actor == user {
            return true
        }
        return event.recipients.contains(user)
    }

    // MARK: - Delivery

    private func deliver(
        _ event: RealtimeEvent,
        to subscription: SubscriptionState,
        connection id: Int,
        _ connection: ConnectionState
    ) -> Bool {
        let sent = send(
            .event(subscription: subscription.id, subscriptionJSON: subscription.idJSON, event: event),
            to: id,
            connection
        )
        if sent {
            subscription.cursor = event.seq
            metrics.realtimeEventDelivered()
        }
        return sent
    }

    /// Offers a message; a full outbox cuts the connection off as a slow consumer.
    @discardableResult
    private func send(_ message: RealtimeMessage, to id: Int, _ connection: ConnectionState) -> Bool {
        if connection.outbox.offer(message) { return true }
        logger.info(
            "realtime consumer too slow: disconnecting",
            metadata: [
                "user": "\(connection.user)", "buffer": "\(connection.outbox.capacity)",
                "buffer_bytes": "\(connection.outbox.maximumBytes)",
            ]
        )
        connection.outbox.finish(.slowConsumer)
        metrics.realtimeSlowConsumerDisconnected()
        disconnect(id)
        return false
    }

    // MARK: - Membership

    private func loadMemberships(of users: [UserID]) async throws {
        guard !users.isEmpty else { return }
        membershipReads += 1
        let ticket = membershipReads
        let read = try await source.workspaceMemberships(of: users)
        // A read that started later may have landed first; keep the newest.
        for user in users where connectionsPerUser[user] != nil && (membershipTickets[user] ?? 0) < ticket {
            memberships[user] = read[user] ?? []
            membershipTickets[user] = ticket
        }
    }
}
