import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Tells this instance when another instance sharing the database committed events, so its realtime
/// hub and background workers read them (they wake on ``CommitSignal``, which only this instance's own
/// commits fire otherwise).
///
/// A notification is a hint, never the data: it carries the head its sender knew committed (else
/// the listener reads the log's head, the `event_head` row) and, when that is past what
/// ``CommitFacts`` knows, the listener records it and fires the signal; whoever wakes reads the
/// events themselves. So a lost, late or coalesced notification costs only latency, and a safety
/// poll of the head bounds that latency: a notification lost while the listen connection was down is
/// made up within one poll interval.
///
/// One dedicated connection (outside the pool: a pooled connection is handed to other work between
/// leases, and would stop listening) runs `LISTEN pyat_events`; it is one connection more than the
/// pool's size. When it drops, the listener connects again (at once, then with a growing delay:
/// 100 ms doubling to 2 s), listens again, then catches up: it reads the head, as commits made while
/// nobody listened sent their notifications to nobody.
final class PostgresEventListener: Sendable {
    /// The channel writers notify after a commit (see ``PostgresServerDatabase``).
    static let channel = "pyat_events"

    /// Identifies this instance's notifications, which the listener skips: its own commits reported
    /// themselves to ``CommitFacts`` before notifying.
    let instanceID: String
    private let location: PostgresLocation
    private let client: PostgresClient
    private let facts: CommitFacts
    private let commits: CommitSignal
    private let logger: Logger
    private let pollInterval: Duration
    private let readTimeout: Duration
    private let firstReconnectDelay: Duration = .milliseconds(100)
    private let maximumReconnectDelay: Duration = .seconds(2)

    /// The listen connection while it listens.
    private let connection = Mutex<PostgresConnection?>(nil)
    private let pid = Atomic<Int32>(0)
    private let sessions = Atomic<Int>(0)
    /// Whether a notification said webhooks changed since the last check.
    private let webhooksPending = Atomic<Bool>(false)
    /// `event_head.webhooks_changes` as last read (-1: not read yet).
    private let webhookChanges = Atomic<Int64>(-1)
    /// Rings the checker: one pending ring stands for any number (the check reads the newest head).
    private let doorbell: AsyncStream<Void>
    private let ring: AsyncStream<Void>.Continuation

    /// - Parameters:
    ///   - client: The pool, for reading the head while the listen connection is down.
    ///   - pollInterval: How often the head is read without a notification.
    ///   - readTimeout: How long one read of the head may take before it counts as failed.
    init(
        location: PostgresLocation,
        client: PostgresClient,
        facts: CommitFacts,
        commits: CommitSignal,
        logger: Logger,
        pollInterval: Duration,
        readTimeout: Duration
    ) {
        self.instanceID = UUID().uuidString
        self.location = location
        self.client = client
        self.facts = facts
        self.commits = commits
        self.logger = logger
        self.pollInterval = pollInterval
        self.readTimeout = readTimeout
        (doorbell, ring) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// The server process of the listen connection while it listens, `nil` otherwise: a test ends
    /// it with `pg_terminate_backend` to check the listener comes back.
    var backendPID: Int32? {
        let value = pid.load(ordering: .acquiring)
        return value == 0 ? nil : value
    }

    /// How many times a listen connection started listening (the first time, then once per reconnect).
    var sessionCount: Int { sessions.load(ordering: .acquiring) }

    /// The payload of a notification from this instance: its id, the head it knows committed (every
    /// seq up to it is: a seq is taken under the head row's lock, held until its commit), then ` w`
    /// when the commit changed webhooks (other instances' webhook workers then look again).
    func payload(head: Int64, webhooksChanged: Bool) -> String {
        instanceID + " \(head)" + (webhooksChanged ? " w" : "")
    }

    // MARK: Running

    /// Listens, polls and checks until the task running it is cancelled.
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.checkLoop() }
            group.addTask { await self.pollLoop() }
            group.addTask { await self.listenLoop() }
            await group.waitForAll()
        }
        ring.finish()
    }

    /// Reads the head each time the doorbell rings, one read at a time (so ``CommitFacts`` is fed by
    /// one task of this listener, in order).
    private func checkLoop() async {
        var failing = false
        for await _ in doorbell {
            if Task.isCancelled { return }
            do {
                try await check()
                if failing { logger.info("the event head of the PostgreSQL database is readable again") }
                failing = false
            } catch {
                if Task.isCancelled { return }
                if !failing {
                    logger.warning(
                        "could not read the event head of the PostgreSQL database; other instances' events wait",
                        metadata: ["error": "\(String(reflecting: error))"]
                    )
                }
                failing = true
            }
        }
    }

    /// Rings the doorbell every poll interval: what bounds the cost of a lost notification.
    private func pollLoop() async {
        while true {
            do {
                try await Task.sleep(for: pollInterval)
            } catch {
                return
            }
            ring.yield()
        }
    }

    /// Reads the head; when it moved past what this instance knows (or webhooks changed), records it
    /// and wakes this instance's observers.
    private func check() async throws {
        var webhooks = webhooksPending.exchange(false, ordering: .acquiringAndReleasing)
        let head: Int64
        do {
            let read = try await readHead()
            head = read.seq
            // A count of webhook changes unlike the last one read: a notification saying so may
            // have been lost (the first read counts as a change, as listening's catch-up does).
            if webhookChanges.exchange(read.webhookChanges, ordering: .acquiringAndReleasing) != read.webhookChanges {
                webhooks = true
            }
        } catch {
            // Said again at the next check.
            if webhooks { webhooksPending.store(true, ordering: .releasing) }
            throw error
        }
        let advanced = head > facts.eventHead
        guard advanced || webhooks else { return }
        facts.committed(head: advanced ? head : nil, webhooksChanged: webhooks)
        commits.fire()
    }

    /// The log's head and the count of commits that changed webhooks, on the listen connection when
    /// it is up (no wait for the pool, however busy), else from the pool.
    private func readHead() async throws -> (seq: Int64, webhookChanges: Int64) {
        let logger = self.logger
        if let connection = connection.withLock({ $0 }), !connection.isClosed {
            // A closed connection is not asked: postgres-nio would never answer (see
            // ``PostgresTransaction``); the listen loop replaces it.
            do {
                return try await PostgresServerDatabase.withTimeout(readTimeout) {
                    try await Self.head(
                        try await connection.query(
                            "SELECT seq, webhooks_changes FROM event_head WHERE id = 1",
                            logger: logger
                        )
                    )
                }
            } catch {
                if Task.isCancelled { throw error }
                // A connection that does not answer is as good as gone: closing it makes the listen
                // loop connect again.
                logger.debug("the listen connection did not answer", metadata: ["error": "\(error)"])
                try? await connection.close()
            }
        }
        let client = self.client
        return try await PostgresServerDatabase.withTimeout(readTimeout) {
            try await Self.head(
                try await client.query("SELECT seq, webhooks_changes FROM event_head WHERE id = 1", logger: logger)
            )
        }
    }

    private static func head(_ rows: PostgresRowSequence) async throws -> (seq: Int64, webhookChanges: Int64) {
        guard let row = try await rows.collect().first else { throw PostgresStoreError.missingEventHead }
        let (seq, changes) = try row.decode((Int64, Int64).self)
        return (seq, changes)
    }

    // MARK: The listen connection

    /// Keeps one connection listening: connects, listens until the connection ends, again.
    ///
    /// A connection that listened a while is replaced at once (each moment without a listener is
    /// latency for other instances' commits); failed attempts, and connections that end as soon as
    /// they listen, wait 100 ms, then twice as long each time, up to 2 s.
    private func listenLoop() async {
        var configuration: PostgresConnection.Configuration?
        var delay = firstReconnectDelay
        var attempt = 0
        var failures = 0
        while !Task.isCancelled {
            attempt += 1
            let before = sessionCount
            let started = ContinuousClock.now
            do {
                // Made once (a TLS context loads the trust roots): a reconnect costs the connection only.
                let current = try configuration ?? location.listenConnectionConfiguration()
                configuration = current
                try await watchedListen(configuration: current, connectionID: attempt)
            } catch {
                if Task.isCancelled { return }
                if sessionCount != before {
                    logger.warning(
                        "the PostgreSQL listen connection ended; connecting again",
                        metadata: ["error": "\(String(reflecting: error))"]
                    )
                    failures = 0
                } else {
                    failures += 1
                    // Said once per outage, not at every attempt.
                    logger.log(
                        level: failures == 1 ? .warning : .debug,
                        "could not listen for other instances' commits; trying again",
                        metadata: ["error": "\(String(reflecting: error))", "attempt": "\(failures)"]
                    )
                }
            }
            if sessionCount != before {
                delay = firstReconnectDelay
                if ContinuousClock.now - started >= .seconds(1) { continue }
            }
            do {
                try await Task.sleep(for: delay)
            } catch {
                return
            }
            delay = min(delay * 2, maximumReconnectDelay)
        }
    }

    /// Runs one ``listen(configuration:connectionID:)`` session in a task of its own, and gives it
    /// up (cancelled and left behind) when its connection is found closed while the session goes on,
    /// or when this task is cancelled and the session has not ended within a second.
    ///
    /// postgres-nio 1.33 can leave the notifications of a connection the server ended (say by
    /// `pg_terminate_backend`) waiting for ever, deaf to cancellation: awaited, such a session would
    /// keep this instance from listening again, and its shutdown from ending.
    private func watchedListen(configuration: PostgresConnection.Configuration, connectionID: Int) async throws {
        let outcome = SessionOutcome()
        let session = Task {
            do {
                try await self.listen(configuration: configuration, connectionID: connectionID)
                outcome.set(.success(()))
            } catch {
                outcome.set(.failure(error))
            }
        }
        var closedSince: ContinuousClock.Instant?
        var cancelledAt: ContinuousClock.Instant?
        while true {
            if let result = outcome.get() { return try result.get() }
            let now = ContinuousClock.now
            if Task.isCancelled {
                if cancelledAt == nil {
                    cancelledAt = now
                    session.cancel()
                } else if let cancelledAt, now - cancelledAt >= .seconds(1) {
                    logger.warning("a PostgreSQL listen session did not end when cancelled; left behind")
                    throw CancellationError()
                }
            } else if let listening = connection.withLock({ $0 }), listening.isClosed {
                // Closed: the session should end by itself at once; one that has not within a
                // moment never will.
                if let closedSince, now - closedSince >= .milliseconds(250) {
                    session.cancel()
                    connection.withLock { if $0 === listening { $0 = nil } }
                    pid.store(0, ordering: .releasing)
                    throw ListenEnded()
                }
                if closedSince == nil { closedSince = now }
            }
            if cancelledAt == nil {
                await EventLoopTimer.sleep(for: .milliseconds(50))
            } else {
                // Cancelled, a sleep here would end at once: wait in a task that is not.
                await Task { await EventLoopTimer.sleep(for: .milliseconds(50)) }.value
            }
        }
    }

    /// What a listen session ended with, once it did.
    private final class SessionOutcome: Sendable {
        private let value = Mutex<Result<Void, any Error>?>(nil)

        func set(_ result: Result<Void, any Error>) { value.withLock { $0 = result } }

        func get() -> Result<Void, any Error>? { value.withLock { $0 } }
    }

    /// Connects, listens and hands notifications to the checker until the connection ends (it
    /// always ends by throwing, cancellation included).
    private func listen(configuration: PostgresConnection.Configuration, connectionID: Int) async throws {
        let connection = try await PostgresConnection.connect(
            configuration: configuration,
            id: connectionID,
            logger: logger
        )
        do {
            try await connection.listen(on: Self.channel) { notifications in
                guard !connection.isClosed else { throw ListenEnded() }
                let backend = try await PostgresServerDatabase.withTimeout(readTimeout) { [logger] in
                    try await connection.query("SELECT pg_backend_pid()", logger: logger).collect().first?
                        .decode(Int32.self) ?? 0
                }
                self.connection.withLock { $0 = connection }
                pid.store(backend, ordering: .releasing)
                sessions.add(1, ordering: .acquiringAndReleasing)
                // Listening from here on; what committed before went unheard: catch up, webhooks too.
                webhooksPending.store(true, ordering: .releasing)
                ring.yield()
                for try await notification in notifications {
                    received(notification.payload)
                }
                throw ListenEnded()
            }
        } catch {
            self.connection.withLock { $0 = nil }
            pid.store(0, ordering: .releasing)
            try? await connection.close()
            throw error
        }
    }

    /// Notes one notification: a head in it is recorded at once (no read of the head needed), one
    /// without (or one saying webhooks changed) rings the checker.
    private func received(_ payload: String) {
        let parts = payload.split(separator: " ", maxSplits: 3)
        // This instance's own commit: ``CommitFacts`` already has it.
        if parts.first.map(String.init) == instanceID { return }
        if parts.dropFirst().contains("w") {
            webhooksPending.store(true, ordering: .releasing)
        } else if parts.count >= 2, let head = Int64(parts[1]) {
            if head > facts.eventHead {
                facts.committed(head: head, webhooksChanged: false)
                commits.fire()
            }
            return
        }
        ring.yield()
    }

    /// The notifications stopped: the connection closed, or the task was cancelled.
    struct ListenEnded: Error, CustomStringConvertible {
        var description: String { "the notifications of the listen connection ended" }
    }
}

extension PostgresLocation {
    /// The configuration of a connection of its own (the listen connection): the same server, user
    /// and TLS mode as the pool's.
    func listenConnectionConfiguration() throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        if let socketDirectory {
            configuration = .init(
                unixSocketPath: (socketDirectory as NSString).appendingPathComponent(".s.PGSQL.\(port)"),
                username: user,
                password: password,
                database: database
            )
        } else {
            let mode: PostgresConnection.Configuration.TLS
            switch tls {
            case .disable: mode = .disable
            case .prefer: mode = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            case .require: mode = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
            configuration = .init(
                host: host,
                port: port,
                username: user,
                password: password,
                database: database,
                tls: mode
            )
        }
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.additionalStartupParameters = [("application_name", Self.listenApplicationName)]
        return configuration
    }
}
