import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// The reference server's PostgreSQL database: a connection pool, the migrations, and group commit.
///
/// Several `pyat serve` instances may share one database. Writes of one instance that arrive while a
/// commit is under way share the next transaction (each in its own savepoint), as on SQLite: the
/// `event_head` row that numbers events is then taken once per commit, not once per write, which is
/// what lets several instances keep the log in exact commit order at a useful rate.
public final class PostgresServerDatabase: Sendable {
    let client: PostgresClient
    let location: PostgresLocation
    let logger: Logger
    /// The keys of sealed values (stored answers, webhook secrets) and request hashes.
    let keys: StorageKeys
    /// Fired after every commit of this instance that appended events.
    public let commits: CommitSignal
    /// The newest event seq this instance knows committed.
    public let facts: CommitFacts
    /// How long a request waits for a connection before it answers 503.
    let acquireTimeout: Duration
    /// How long a statement of an operation (a read, a batch's commit) may go unanswered before the
    /// operation's requests answer 503 and its connection is closed.
    let operationTimeout: Duration
    private let runner: Mutex<Task<Void, Never>?>
    private let writer: Mutex<WriterState> = Mutex(WriterState())
    /// Wakes this instance when other instances commit (see ``PostgresEventListener``).
    let eventListener: PostgresEventListener
    private let listenerTask: Mutex<Task<Void, Never>?>
    private let notifier = Mutex(NotifierState())
    /// The mirrored bases, whose writes only mirror mode makes.
    let mirrorGuard = MirrorGuard()
    /// The most writes one commit carries.
    private let maximumBatch = 256
    /// Batches run without a transaction: committed so, and run again in one.
    private let unlockedCommitted = Atomic<Int>(0)
    private let unlockedRetried = Atomic<Int>(0)
    /// A test's seam: runs between the read of a batch without a transaction and its commit.
    private let unlockedCommitHook = Mutex<(@Sendable () async -> Void)?>(nil)

    /// How many batches committed without a transaction, and how many had to run again in one.
    var unlockedBatchFigures: (committed: Int, retried: Int) {
        (unlockedCommitted.load(ordering: .relaxed), unlockedRetried.load(ordering: .relaxed))
    }

    /// Runs `hook` in every batch without a transaction after its jobs ran, before its commit's
    /// statement (`nil`: none). For tests that write from another instance in that window.
    func beforeUnlockedCommit(_ hook: (@Sendable () async -> Void)?) {
        unlockedCommitHook.withLock { $0 = hook }
    }

    private struct WriterState {
        var pending: [WriteJob] = []
        var draining = false
    }

    /// The notifications of this instance's commits to the others: at most one `NOTIFY` in flight;
    /// commits made meanwhile share the next one.
    private struct NotifierState {
        var pending = false
        var webhooksChanged = false
        var task: Task<Void, Never>?
        var running = false
        var closed = false
    }

    private struct WriteJob: Sendable {
        /// Records the job will lock and write, locked for the whole batch in one statement first.
        let locks: [PostgresTransaction.RecordLock]
        /// Whether the job may run in a batch without a transaction (see ``commit(_:)``).
        let unlocked: Bool
        let run: @Sendable (PostgresTransaction) async throws -> Void
        let finish: @Sendable ((any Error)?) -> Void
    }

    /// Connects to the database at `location` and migrates it.
    /// - Parameters:
    ///   - maximumConnections: The pool's size (one connection writes at a time; the rest read).
    ///   - acquireTimeout: How long an operation waits for a connection (the server unreachable, the
    ///     pool exhausted) before it fails with ``StorageError/unavailable(_:retryAfter:)``.
    ///   - operationTimeout: How long a statement of an operation (a read, a batch's commit) may go
    ///     unanswered before the operation fails with ``StorageError/unavailable(_:retryAfter:)`` and
    ///     its connection is closed (PostgreSQL rolls back what it had not committed).
    ///   - eventPollInterval: How often the event head is read although no notification came: the
    ///     longest another instance's commit goes unnoticed when its notification is lost.
    ///   - migrationTimeout: How long migrating may take, waiting for the instances starting at the
    ///     same time included (they migrate one after another), before the start fails.
    public init(
        location: PostgresLocation,
        maximumConnections: Int = 16,
        acquireTimeout: Duration = .seconds(5),
        operationTimeout: Duration = .seconds(30),
        eventPollInterval: Duration = .seconds(1),
        migrationTimeout: Duration = .seconds(300),
        keys: StorageKeys,
        logger: Logger
    ) async throws {
        self.location = location
        self.logger = logger
        self.keys = keys
        self.acquireTimeout = acquireTimeout
        self.operationTimeout = operationTimeout
        let client = PostgresClient(
            configuration: location.clientConfiguration(maximumConnections: max(2, maximumConnections)),
            backgroundLogger: logger
        )
        self.client = client
        self.runner = Mutex(Task { await client.run() })
        let commits = CommitSignal()
        self.commits = commits
        let facts: CommitFacts
        do {
            try await Self.migrate(client: client, keys: keys, logger: logger, timeout: migrationTimeout)
            let head = try await Self.withTimeout(acquireTimeout) {
                try await client.query("SELECT seq FROM event_head WHERE id = 1", logger: logger)
                    .collect().first?.decode(Int64.self) ?? 0
            }
            facts = CommitFacts(head: head)
            mirrorGuard.set(
                try await Self.withTimeout(acquireTimeout) {
                    var bases = Set<String>()
                    for try await base in try await client.query("SELECT base_id FROM mirror_bases", logger: logger)
                        .decode(String.self)
                    {
                        bases.insert(base)
                    }
                    return bases
                }
            )
        } catch let error as PostgresTransactionError {
            runner.withLock { $0?.cancel() }
            throw Self.mapped(error.closureError ?? error.beginError ?? error.commitError ?? error, location: location)
        } catch {
            runner.withLock { $0?.cancel() }
            throw Self.mapped(error, location: location)
        }
        self.facts = facts
        let listener = PostgresEventListener(
            location: location,
            client: client,
            facts: facts,
            commits: commits,
            logger: logger,
            pollInterval: eventPollInterval,
            readTimeout: acquireTimeout
        )
        self.eventListener = listener
        self.listenerTask = Mutex(Task { await listener.run() })
    }

    /// Closes every connection. Later operations fail.
    public func close() async {
        // The last notification first (it needs the pool), then the listener, then the pool.
        let notifying = notifier.withLock { state -> Task<Void, Never>? in
            state.closed = true
            return state.task
        }
        await notifying?.value
        let listening = listenerTask.withLock { task -> Task<Void, Never>? in
            defer { task = nil }
            return task
        }
        listening?.cancel()
        await listening?.value
        let task = runner.withLock { task -> Task<Void, Never>? in
            defer { task = nil }
            return task
        }
        task?.cancel()
        // The pool ends once its connections are returned; one leased by an operation a timeout
        // left behind (see ``withTimeout(_:label:_:)``) may never be: closing waits for it no longer
        // than the acquire timeout.
        if let task {
            do {
                try await Self.withTimeout(acquireTimeout, label: "the pool to close") { await task.value }
            } catch {
                logger.warning(
                    "closing without waiting for every PostgreSQL connection to be returned",
                    metadata: ["error": "\(error)"]
                )
            }
        }
    }

    // MARK: Migrations

    static func migrate(client: PostgresClient, keys: StorageKeys, logger: Logger, timeout: Duration) async throws {
        try await withTimeout(timeout, label: "migration by PostgreSQL") {
            try await client.withTransaction(logger: logger) { connection in
                // Instances starting together run this one after another.
                try await connection.query(
                    "SELECT pg_advisory_xact_lock(\(PostgresMigrations.lockKey))",
                    logger: logger
                )
                try await connection.query(
                    """
                    CREATE TABLE IF NOT EXISTS pyat_migrations (
                        id TEXT PRIMARY KEY,
                        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                    )
                    """,
                    logger: logger
                )
                var applied = Set<String>()
                for try await id in try await connection.query("SELECT id FROM pyat_migrations", logger: logger)
                    .decode(String.self)
                {
                    applied.insert(id)
                }
                for migration in PostgresMigrations.all where !applied.contains(migration.id) {
                    logger.info("migrating the PostgreSQL database", metadata: ["migration": "\(migration.id)"])
                    for statement in migration.statements {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.query(
                        "INSERT INTO pyat_migrations (id) VALUES (\(migration.id))",
                        logger: logger
                    )
                }
                let fingerprint = try await connection.query(
                    "SELECT value FROM server_state WHERE key = 'storage_key_fingerprint'",
                    logger: logger
                ).collect().first?.decode(String.self)
                if let fingerprint, fingerprint != keys.fingerprint {
                    throw ServerConfigurationError(
                        message: """
                            the database was sealed with another storage secret: every instance sharing it \
                            needs the same \(SecretFile.storage.name) file (or PYAT_STORAGE_SECRET)
                            """
                    )
                }
                if fingerprint == nil {
                    try await connection.query(
                        """
                        INSERT INTO server_state (key, value) VALUES ('storage_key_fingerprint', \(keys.fingerprint))
                        ON CONFLICT (key) DO NOTHING
                        """,
                        logger: logger
                    )
                }
            }
        }
    }

    // MARK: Reads

    /// Runs `operation` on a pooled connection outside any transaction (each statement sees the
    /// last committed state).
    func read<T: Sendable>(_ operation: @escaping @Sendable (PostgresTransaction) async throws -> T) async throws -> T {
        let logger = self.logger
        do {
            return try await withConnection { connection, progress in
                try await operation(PostgresTransaction(connection: connection, logger: logger, progress: progress))
            }
        } catch {
            throw Self.mapped(error, location: location)
        }
    }

    /// Runs `body` on a pooled connection; fails with ``TimedOut`` when none is had within
    /// ``acquireTimeout`` (the server down, the pool exhausted), or when ``operationTimeout`` passes
    /// with no new statement from `body` (each marks the ``StatementProgress`` it is given, as
    /// ``PostgresTransaction`` does): a statement with no answer that long is stuck (behind a lock, on
    /// a connection that died unnoticed — postgres-nio may then never answer). The connection is then
    /// closed (PostgreSQL rolls back what was not committed) and `body` left behind.
    ///
    /// Once it has its connection, `body` is not cancelled with the caller: it runs to its end or
    /// to the operation timeout.
    func withConnection<T: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection, StatementProgress) async throws -> T
    ) async throws -> T {
        let lease = Lease<T>(acquireTimeout: acquireTimeout, operationTimeout: operationTimeout)
        let client = self.client
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                lease.start(continuation)
                let work = Task {
                    do {
                        let value = try await client.withConnection { connection in
                            // Too late: the caller was answered already.
                            guard lease.acquired(connection) else { throw CancellationError() }
                            return try await body(connection, lease.progress)
                        }
                        lease.finish(.success(value))
                    } catch {
                        lease.finish(.failure(lease.hasConnection ? error : NoConnection(underlying: error)))
                    }
                }
                lease.whenFinished { work.cancel() }
            }
        } onCancel: {
            lease.cancel()
        }
    }

    /// Runs `body` on a pooled connection and waits for it, however long it takes; fails with
    /// ``TimedOut`` when no connection is had within ``acquireTimeout``. For a session's advisory
    /// lock held while a job runs (``PostgresStore/exclusively(_:wait:_:)``).
    func withLeasedConnection<T: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let acquired = AcquiredFlag()
        let client = self.client
        let limit = acquireTimeout
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                do {
                    return try await client.withConnection { connection in
                        acquired.value.store(true, ordering: .releasing)
                        return try await body(connection)
                    }
                } catch {
                    if acquired.value.load(ordering: .acquiring) { throw error }
                    throw NoConnection(underlying: error)
                }
            }
            group.addTask {
                await Self.sleep(for: limit)
                return nil
            }
            while let next = try await group.next() {
                if let value = next {
                    group.cancelAll()
                    return value
                }
                if !acquired.value.load(ordering: .acquiring) {
                    group.cancelAll()
                    throw TimedOut(label: "connection", limit: limit)
                }
            }
            throw TimedOut(label: "connection", limit: limit)
        }
    }

    /// Sleeps for `duration` or until cancelled (see ``EventLoopTimer``): every lease waits on one.
    static func sleep(for duration: Duration) async {
        await EventLoopTimer.sleep(for: duration)
    }

    /// Runs `operation` in a read-only transaction whose statements all see one snapshot.
    func snapshot<T: Sendable>(
        _ operation: @escaping @Sendable (PostgresTransaction) async throws -> T
    ) async throws
        -> T
    {
        try await read { transaction in
            try await transaction.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            do {
                let value = try await operation(transaction)
                try await transaction.execute("COMMIT")
                return value
            } catch {
                try? await transaction.execute("ROLLBACK")
                throw error
            }
        }
    }

    // MARK: Writes

    /// Runs `operation` in a transaction shared with this instance's other concurrent writes (its
    /// own savepoint), acknowledged after the commit.
    ///
    /// - Parameters:
    ///   - locks: Records `operation` will lock and write (found with
    ///     ``PostgresTransaction/takePrefetched(record:user:)``): the batch locks all its jobs' records
    ///     in one statement before they run.
    ///   - unlocked: Whether `operation` may first run in a batch without a transaction, where it
    ///     reads its records unlocked and sends no statement of its own (``commit(_:)``).
    func write<T: Sendable>(
        locking locks: [PostgresTransaction.RecordLock] = [],
        unlocked: Bool = false,
        _ operation: @escaping @Sendable (PostgresTransaction) async throws -> T
    ) async throws -> T {
        if mirrorGuard.claimRefresh() { refreshMirrorGuard() }
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let outcome = Mutex<Result<T, any Error>?>(nil)
            let job = WriteJob(
                locks: locks,
                unlocked: unlocked && !locks.isEmpty,
                run: { transaction in
                    let value = try await operation(transaction)
                    outcome.withLock { $0 = .success(value) }
                },
                finish: { error in
                    if let error {
                        continuation.resume(throwing: error)
                        return
                    }
                    continuation.resume(
                        with: outcome.withLock { $0 } ?? .failure(PostgresStoreError.writeDidNotRun)
                    )
                }
            )
            let start = writer.withLock { state -> Bool in
                state.pending.append(job)
                if state.draining { return false }
                state.draining = true
                return true
            }
            if start {
                Task { await self.drain() }
            }
        }
    }

    private func drain() async {
        while true {
            let batch = writer.withLock { state -> [WriteJob] in
                let taken = Array(state.pending.prefix(maximumBatch))
                state.pending.removeFirst(taken.count)
                if taken.isEmpty { state.draining = false }
                return taken
            }
            if batch.isEmpty { return }
            await commit(batch)
        }
    }

    /// Applies `batch` in one transaction and finishes each job: with its own error when its
    /// savepoint rolled back, with the commit's error when the commit failed.
    ///
    /// A batch of record updates alone first runs without a transaction: one statement reads its
    /// rows, and one writes them with the events, only if every row still has the version it was
    /// read with (``PostgresTransaction/commitAlone(notifying:)``), which also notifies the other instances. That is two statements where a transaction
    /// takes four, and the head row is held by PostgreSQL alone, never across a round trip to this
    /// instance. When a row changed meanwhile (another instance wrote it), or a job wants a statement
    /// of its own, the batch runs again in a transaction.
    private func commit(_ batch: [WriteJob]) async {
        var attempt = 0
        // Savepoints cost two round trips a write, and a write that fails is rare: the first attempt
        // runs the batch without them, and a batch in which a write fails runs again with them.
        var savepoints = false
        var unlocked = batch.allSatisfy(\.unlocked)
        // Retries end with the batch's deadline: its requests are answered 503 then, not held.
        let deadline = ContinuousClock.now + acquireTimeout + operationTimeout
        while true {
            attempt += 1
            do {
                let outcome: BatchOutcome
                if unlocked {
                    guard
                        let done = try await withConnection({ connection, progress in
                            try await self.runUnlocked(batch, on: connection, progress: progress)
                        })
                    else {
                        unlockedRetried.add(1, ordering: .relaxed)
                        unlocked = false
                        attempt -= 1
                        continue
                    }
                    unlockedCommitted.add(1, ordering: .relaxed)
                    outcome = done
                } else {
                    outcome = try await withConnection { [savepoints] connection, progress in
                        try await self.runTransaction(batch, savepoints: savepoints, on: connection, progress: progress)
                    }
                }
                facts.committed(head: outcome.head, webhooksChanged: outcome.webhooksChanged)
                for (job, error) in zip(batch, outcome.jobErrors) { job.finish(error) }
                if outcome.head != nil { commits.fire() }
                if !outcome.notified, outcome.head != nil || outcome.webhooksChanged {
                    notifyOtherInstances(webhooksChanged: outcome.webhooksChanged)
                }
                return
            } catch is AgainWithSavepoints {
                savepoints = true
                attempt -= 1
                continue
            } catch let error as ConnectionClosed where attempt < 5 && ContinuousClock.now < deadline {
                // Found closed before a statement went out (the pool's idle connection after a
                // restart of PostgreSQL, say): nothing was committed, and another connection may do.
                logger.debug("retrying a write on another connection", metadata: ["error": "\(error)"])
                continue
            } catch {
                if Self.isRetryable(error), attempt < 5, ContinuousClock.now < deadline {
                    logger.debug("retrying a write transaction", metadata: ["error": "\(error)"])
                    continue
                }
                let mapped = Self.mapped(error, location: location)
                if case StorageError.unavailable = mapped {
                } else {
                    logger.error("a write transaction failed", metadata: ["error": "\(String(reflecting: error))"])
                }
                for job in batch { job.finish(mapped) }
                return
            }
        }
    }

    /// Tells the other instances that this one committed (`NOTIFY pyat_events`), after the commit
    /// and outside its transaction: a notification is only a hint (their listeners read the head
    /// themselves, and poll it anyway), so one that fails costs latency, never the write.
    ///
    /// At most one `NOTIFY` is in flight: commits made while it runs share the next one, so a burst
    /// of commits sends a few notifications, not one each.
    private func notifyOtherInstances(webhooksChanged: Bool) {
        notifier.withLock { state in
            guard !state.closed else { return }
            state.pending = true
            state.webhooksChanged = state.webhooksChanged || webhooksChanged
            guard !state.running else { return }
            state.running = true
            state.task = Task { await self.sendNotifications() }
        }
    }

    /// Sends the pending notification, then again while commits arrived during the last one; ends
    /// when none is pending (or the database closed: the others' poll finds what was left).
    private func sendNotifications() async {
        while true {
            let next = notifier.withLock { state -> Bool? in
                guard state.pending, !state.closed else {
                    state.running = false
                    return nil
                }
                state.pending = false
                defer { state.webhooksChanged = false }
                return state.webhooksChanged
            }
            guard let webhooksChanged = next else { return }
            let payload = eventListener.payload(head: facts.eventHead, webhooksChanged: webhooksChanged)
            let logger = self.logger
            do {
                try await withConnection { connection, _ in
                    guard !connection.isClosed else { throw ConnectionClosed() }
                    _ = try await connection.query(
                        "SELECT pg_notify(\(PostgresEventListener.channel), \(payload))",
                        logger: logger
                    ).collect()
                    return ()
                }
            } catch {
                // The other instances' safety poll finds the commit anyway.
                logger.debug("could not notify other instances of a commit", metadata: ["error": "\(error)"])
            }
        }
    }

    private struct BatchOutcome: Sendable {
        var head: Int64?
        var webhooksChanged = false
        /// Whether the commit's statement notified the other instances itself.
        var notified = false
        var jobErrors: [(any Error)?]
    }

    /// Runs `batch` without a transaction (see ``commit(_:)``): answers `nil` when it must run in
    /// one. A job that fails here fails alone (nothing it did was sent).
    private func runUnlocked(
        _ batch: [WriteJob],
        on connection: PostgresConnection,
        progress: StatementProgress
    ) async throws -> BatchOutcome? {
        var jobErrors = [(any Error)?](repeating: nil, count: batch.count)
        let transaction = PostgresTransaction(
            connection: connection,
            logger: logger,
            unlocked: true,
            progress: progress,
            mirrorGuard: mirrorGuard
        )
        var locks: [PostgresTransaction.RecordLock] = []
        var seen = Set<PostgresTransaction.RecordLock>()
        for job in batch { for lock in job.locks where seen.insert(lock).inserted { locks.append(lock) } }
        try await transaction.prefetchRecords(locks)
        var anyApplied = false
        for (index, job) in batch.enumerated() {
            let mark = transaction.mark
            do {
                try await job.run(transaction)
                anyApplied = true
            } catch is PostgresTransaction.NeedsTransaction {
                return nil
            } catch {
                if Self.isConnectionFailure(error) || Self.isRetryable(error) { throw error }
                transaction.rollBack(to: mark)
                jobErrors[index] = error
            }
        }
        guard anyApplied else { return BatchOutcome(head: nil, jobErrors: jobErrors) }
        if let hook = unlockedCommitHook.withLock({ $0 }) { await hook() }
        do {
            guard
                let head = try await transaction.commitAlone(
                    notifying: (PostgresEventListener.channel, eventListener.instanceID)
                )
            else { return nil }
            return BatchOutcome(head: head, notified: true, jobErrors: jobErrors)
        } catch is PostgresTransaction.NeedsTransaction {
            return nil
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == PostgresTransaction.keyTakenState {
            // An idempotency key of the batch was used before (or is being used now): the
            // transaction replays or waits for its answer.
            return nil
        }
    }

    /// Runs `batch` in one transaction. Without `savepoints`, the first write of a batch of several
    /// that fails ends the attempt with ``AgainWithSavepoints``: the batch then runs again, each write
    /// in a savepoint of its own, so the failing one is rolled back alone.
    private func runTransaction(
        _ batch: [WriteJob],
        savepoints: Bool,
        on connection: PostgresConnection,
        progress: StatementProgress
    ) async throws -> BatchOutcome {
        var jobErrors = [(any Error)?](repeating: nil, count: batch.count)
        let transaction = PostgresTransaction(
            connection: connection,
            logger: logger,
            progress: progress,
            mirrorGuard: mirrorGuard
        )
        try await transaction.execute("BEGIN")
        do {
            let alone = batch.count == 1
            let useSavepoints = savepoints && !alone
            if !useSavepoints {
                // With savepoints, each job's `SAVEPOINT` would end the prefetched rows' use anyway.
                var locks: [PostgresTransaction.RecordLock] = []
                var seen = Set<PostgresTransaction.RecordLock>()
                for job in batch { for lock in job.locks where seen.insert(lock).inserted { locks.append(lock) } }
                try await transaction.prefetchRecords(locks)
            }
            var anyApplied = false
            for (index, job) in batch.enumerated() {
                let mark = transaction.mark
                if useSavepoints { try await transaction.execute("SAVEPOINT job") }
                do {
                    try await job.run(transaction)
                    if useSavepoints { try await transaction.execute("RELEASE SAVEPOINT job") }
                    anyApplied = true
                } catch {
                    // A lost connection or a conflict with another instance is the whole batch's.
                    if Self.isConnectionFailure(error) || Self.isRetryable(error) { throw error }
                    if alone { throw JobFailed(error: error) }
                    if !useSavepoints { throw AgainWithSavepoints() }
                    transaction.rollBack(to: mark)
                    try await transaction.execute("ROLLBACK TO SAVEPOINT job")
                    jobErrors[index] = error
                }
            }
            guard anyApplied else {
                try await transaction.rollBackAll()
                return BatchOutcome(head: nil, jobErrors: jobErrors)
            }
            let head = try await transaction.flushEvents()
            if transaction.webhooksChanged {
                // Read by every instance's poll: one that missed this commit's notification still
                // learns that webhooks changed.
                try await transaction.execute(
                    "UPDATE event_head SET webhooks_changes = webhooks_changes + 1 WHERE id = 1"
                )
            }
            try await transaction.execute("COMMIT")
            return BatchOutcome(head: head, webhooksChanged: transaction.webhooksChanged, jobErrors: jobErrors)
        } catch let failed as JobFailed {
            try? await transaction.rollBackAll()
            jobErrors[0] = failed.error
            return BatchOutcome(head: nil, jobErrors: jobErrors)
        } catch {
            try? await transaction.rollBackAll()
            throw error
        }
    }

    private struct JobFailed: Error {
        var error: any Error
    }

    /// A write of a batch run without savepoints failed: the batch runs again with them.
    private struct AgainWithSavepoints: Error {}

    // MARK: Errors

    /// Whether running the transaction again may succeed (a serialization failure or a deadlock
    /// with another instance's transaction).
    static func isRetryable(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError, let state = error.serverInfo?[.sqlState] else { return false }
        return state == "40001" || state == "40P01"
    }

    /// Whether `error` says the database could not be reached or went away.
    static func isConnectionFailure(_ error: any Error) -> Bool {
        if error is TimedOut || error is ConnectionClosed || error is NoConnection { return true }
        guard let error = error as? PSQLError else { return false }
        switch error.code {
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .poolClosed, .uncleanShutdown,
            .sslUnsupported, .failedToAddSSLHandler:
            return true
        default:
            break
        }
        // Class 08 (connection exception), 57P01–57P03 (shutdown, cannot connect now), 53300 (too
        // many connections).
        guard let state = error.serverInfo?[.sqlState] else { return false }
        return state.hasPrefix("08") || state.hasPrefix("57P") || state == "53300"
    }

    /// A database failure as the storage error a request answers with: 503 + `Retry-After` when the
    /// database is unreachable; other errors unchanged.
    /// Reads the mirrored bases again, beside the write that found the set due.
    private func refreshMirrorGuard() {
        let guardSet = mirrorGuard
        Task {
            do {
                let bases = try await read { transaction in
                    Set(
                        try await transaction.rows("SELECT base_id FROM mirror_bases").map {
                            try $0.get("base_id", as: String.self)
                        }
                    )
                }
                guardSet.set(bases)
            } catch {
                guardSet.refreshFailed()
            }
        }
    }

    static func mapped(_ error: any Error, location: PostgresLocation) -> any Error {
        if let error = error as? PSQLError, error.serverInfo?[.sqlState] == MirrorReadOnly.sqlState {
            return StorageError.forbidden(MirrorReadOnly.message)
        }
        if let timedOut = error as? TimedOut {
            return StorageError.unavailable("no \(timedOut.label) within \(timedOut.limit)", retryAfter: 1)
        }
        if let failure = error as? NoConnection, !isConnectionFailure(failure.underlying) {
            // Not the server's fault (a cancelled request, say): said as it is.
            if failure.underlying is CancellationError { return failure.underlying }
        }
        if isConnectionFailure(error) {
            return StorageError.unavailable(
                "PostgreSQL at \(location.host):\(location.port) is unreachable",
                retryAfter: 1
            )
        }
        return error
    }

    /// The outcome of ``withConnection(_:)``: the first of the body's result, the acquire timer
    /// (no connection yet), the operation timer (a connection, no result yet) and the caller's
    /// cancellation (no connection yet) resumes the caller; the others are ignored.
    private final class Lease<T: Sendable>: Sendable {
        private struct State {
            var continuation: CheckedContinuation<T, any Error>?
            var early: Result<T, any Error>?
            var finished = false
            var connection: PostgresConnection?
            var timer: Scheduled<Void>?
            var cleanUp: (@Sendable () -> Void)?
        }

        private let state = Mutex(State())
        private let acquireTimeout: Duration
        private let operationTimeout: Duration
        /// When the body last started a statement.
        let progress = StatementProgress()

        init(acquireTimeout: Duration, operationTimeout: Duration) {
            self.acquireTimeout = acquireTimeout
            self.operationTimeout = operationTimeout
        }

        var hasConnection: Bool { state.withLock { $0.connection != nil } }

        func start(_ continuation: CheckedContinuation<T, any Error>) {
            let early = state.withLock { state -> Result<T, any Error>? in
                if let early = state.early { return early }
                state.continuation = continuation
                if state.connection == nil {
                    state.timer = Self.schedule(after: acquireTimeout) { [self] in self.acquireExpired() }
                }
                return nil
            }
            if let early { continuation.resume(with: early) }
        }

        /// Takes `connection` for the body, unless the caller was answered already (false).
        func acquired(_ connection: PostgresConnection) -> Bool {
            state.withLock { state in
                guard !state.finished else { return false }
                state.connection = connection
                state.timer?.cancel()
                progress.mark()
                state.timer = Self.schedule(after: operationTimeout) { [self] in self.operationExpired() }
                return true
            }
        }

        /// The caller was cancelled: answered so unless the body has its connection.
        func cancel() {
            guard !hasConnection else { return }
            finish(.failure(CancellationError()))
        }

        /// Runs `cleanUp` once the lease is decided (at once when it is).
        func whenFinished(_ cleanUp: @escaping @Sendable () -> Void) {
            let now = state.withLock { state -> Bool in
                if state.finished { return true }
                state.cleanUp = cleanUp
                return false
            }
            if now { cleanUp() }
        }

        func finish(_ result: Result<T, any Error>) {
            let (continuation, cleanUp) = state.withLock {
                state -> (CheckedContinuation<T, any Error>?, (@Sendable () -> Void)?) in
                guard !state.finished else { return (nil, nil) }
                state.finished = true
                state.timer?.cancel()
                defer {
                    state.timer = nil
                    state.continuation = nil
                    state.cleanUp = nil
                }
                if state.continuation == nil { state.early = result }
                return (state.continuation, state.cleanUp)
            }
            continuation?.resume(with: result)
            cleanUp?()
        }

        private func acquireExpired() {
            guard !hasConnection else { return }
            finish(.failure(TimedOut(label: "connection", limit: acquireTimeout)))
        }

        /// The operation timer: the body is stuck when it started no statement for the whole timeout;
        /// otherwise the timer is set again for the rest of the timeout from its last statement.
        private func operationExpired() {
            let quiet = progress.sinceLast
            if quiet < operationTimeout {
                state.withLock { state in
                    guard !state.finished else { return }
                    state.timer = Self.schedule(after: operationTimeout - quiet) { [self] in self.operationExpired() }
                }
                return
            }
            guard let connection = state.withLock({ $0.finished ? nil : $0.connection }) else { return }
            finish(.failure(TimedOut(label: "answer from PostgreSQL", limit: operationTimeout)))
            // Ends the session: what it had not committed is rolled back, and the pool opens
            // another connection in its place.
            connection.close().whenComplete { _ in }
        }

        private static func schedule(after limit: Duration, _ work: @escaping @Sendable () -> Void) -> Scheduled<Void> {
            let (seconds, attoseconds) = limit.components
            return MultiThreadedEventLoopGroup.singleton.any().scheduleTask(
                in: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000),
                work
            )
        }
    }

    private final class AcquiredFlag: Sendable {
        let value = Atomic<Bool>(false)
    }

    struct TimedOut: Error {
        var label: String
        var limit: Duration
    }

    /// A statement was about to go out on a connection that is closed.
    struct ConnectionClosed: Error {}

    /// The pool failed to give a connection (it could not connect, its circuit breaker tripped
    /// after the server was unreachable a while, it is shutting down): the database is unavailable.
    struct NoConnection: Error {
        var underlying: any Error
    }

    /// Runs `operation`; after `limit` (or when the caller is cancelled) fails with ``TimedOut``
    /// (or `CancellationError`) at once, cancelling `operation` and leaving it behind.
    ///
    /// Left behind, not awaited: postgres-nio 1.33 may never answer a statement on a connection
    /// that closed under it, and such a wait heeds no cancellation, so a timeout that waited for the
    /// operation to end (a task group's does) would wait for ever.
    static func withTimeout<T: Sendable>(
        _ limit: Duration,
        label: String = "answer from PostgreSQL",
        _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let race = Race<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                race.start(continuation)
                let work = Task {
                    do {
                        race.finish(.success(try await operation()))
                    } catch {
                        race.finish(.failure(error))
                    }
                }
                let (seconds, attoseconds) = limit.components
                let timer = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(
                    in: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
                ) {
                    race.finish(.failure(TimedOut(label: label, limit: limit)))
                }
                race.whenFinished {
                    timer.cancel()
                    work.cancel()
                }
            }
        } onCancel: {
            race.finish(.failure(CancellationError()))
        }
    }

    /// The outcome of ``withTimeout(_:label:_:)``: the first of the operation's result, the timer
    /// and the caller's cancellation resumes the caller; the others are ignored.
    private final class Race<T: Sendable>: Sendable {
        private struct State {
            var continuation: CheckedContinuation<T, any Error>?
            var early: Result<T, any Error>?
            var finished = false
            var cleanUp: (@Sendable () -> Void)?
        }

        private let state = Mutex(State())

        func start(_ continuation: CheckedContinuation<T, any Error>) {
            let early = state.withLock { state -> Result<T, any Error>? in
                if let early = state.early { return early }
                state.continuation = continuation
                return nil
            }
            if let early { continuation.resume(with: early) }
        }

        /// Runs `cleanUp` once the race is decided (at once when it is).
        func whenFinished(_ cleanUp: @escaping @Sendable () -> Void) {
            let now = state.withLock { state -> Bool in
                if state.finished { return true }
                state.cleanUp = cleanUp
                return false
            }
            if now { cleanUp() }
        }

        func finish(_ result: Result<T, any Error>) {
            let (continuation, cleanUp) = state.withLock {
                state -> (CheckedContinuation<T, any Error>?, (@Sendable () -> Void)?) in
                guard !state.finished else { return (nil, nil) }
                state.finished = true
                defer {
                    state.continuation = nil
                    state.cleanUp = nil
                }
                if state.continuation == nil { state.early = result }
                return (state.continuation, state.cleanUp)
            }
            continuation?.resume(with: result)
            cleanUp?()
        }
    }
}

/// When an operation on a leased connection last started a statement (see
/// ``PostgresServerDatabase/withConnection(_:)``): one atomic store a statement.
final class StatementProgress: Sendable {
    private let last = Atomic<UInt64>(DispatchTime.now().uptimeNanoseconds)

    /// Another statement starts now.
    func mark() {
        last.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed)
    }

    /// How long ago the last statement started.
    var sinceLast: Duration {
        let now = DispatchTime.now().uptimeNanoseconds
        let then = last.load(ordering: .relaxed)
        return .nanoseconds(Int64(now > then ? now - then : 0))
    }
}
