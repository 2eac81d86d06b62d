import Foundation
import GRDB
import Logging
import Synchronization

extension OfflineQueue {
    /// How many mutations this queue's namespace holds, by state.
    public func counts() async throws -> QueueCounts {
        try await database.writer.read { [namespace] db in
            let rows = try Row.fetchAll(
                db,
                sql: "SELECT state, count(*) FROM queue_mutations WHERE namespace = ? GROUP BY state",
                arguments: [namespace]
            )
            var counts = QueueCounts()
            for row in rows {
                let count: Int = row[1]
                switch QueuedMutation.State(rawValue: row[0]) {
                case .pending: counts.pending = count
                case .inflight: counts.inflight = count
                case .failed: counts.failed = count
                case nil: break
                }
            }
            return counts
        }
    }

    /// Whether mutations of `scope` (a record id, or a temporary id — also once it is resolved) are
    /// waiting or in flight.
    public func hasPendingWrites(scope: String) async throws -> Bool {
        try await database.writer.read { [namespace] db in
            var scopes = [scope]
            if let temporaryID = TemporaryID(scope),
                let serverID = try Self.temporaryIDRow(db, namespace: namespace, temporaryID)?.serverID
            {
                scopes.append(serverID)
            }
            return try scopes.contains { scope in
                try Bool.fetchOne(
                    db,
                    sql: """
                        SELECT EXISTS (SELECT 1 FROM queue_mutations
                        WHERE namespace = ? AND scope = ? AND state IN ('pending', 'inflight'))
                        """,
                    arguments: [namespace, scope]
                ) ?? false
            }
        }
    }

    /// The changes this instance makes to the queue, as they commit, each with the counts just after.
    ///
    /// Changes made by other processes are not reported; ``counts()`` reads them. The stream ends when
    /// the queue is closed or the consuming task is cancelled.
    public func changes() -> AsyncStream<QueueChange> {
        observers.subscribe()
    }

    /// Returns when nothing is pending or in flight (failed mutations do not count), whichever process
    /// drains the queue.
    ///
    /// Changes made through this instance are seen at once; other processes' progress every
    /// ``Configuration/drainPollInterval``. Mutations behind a failed one in their scope are pending:
    /// the wait goes on until the failed one is retried or dropped.
    /// - Throws: `CancellationError` when the waiting task is cancelled; database errors.
    public func waitUntilDrained() async throws {
        // Subscribed before the first look, so a change between the two is not missed.
        let changes = observers.subscribe()
        if try await counts().isDrained { return }
        let interval = configuration.drainPollInterval
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await change in changes where change.counts.isDrained { return true }
                return false
            }
            group.addTask { [self] in
                while true {
                    try await Task.sleep(for: interval)
                    if try await counts().isDrained { return true }
                }
            }
            while let drained = try await group.next() {
                if drained { break }
            }
            group.cancelAll()
        }
        try Task.checkCancellation()
    }

    /// Tells observers, with fresh counts, when there are any.
    func notify(_ kind: QueueChange.Kind, _ ids: [Int64]) async {
        guard observers.hasSubscribers else { return }
        do {
            let counts = try await counts()
            observers.yield(QueueChange(kind: kind, mutationIDs: ids, counts: counts))
        } catch {
            logger.debug("Could not read counts for observers", metadata: ["error": "\(error)"])
        }
    }
}

/// The continuations of the streams ``OfflineQueue/changes()`` returned.
final class ChangeObservers: Sendable {
    private struct State {
        var nextID = 0
        var continuations: [Int: AsyncStream<QueueChange>.Continuation] = [:]
        var isFinished = false
    }

    private let state = Mutex(State())

    var hasSubscribers: Bool { state.withLock { !$0.continuations.isEmpty } }

    func subscribe() -> AsyncStream<QueueChange> {
        let (stream, continuation) = AsyncStream<QueueChange>.makeStream(bufferingPolicy: .bufferingNewest(256))
        let id: Int? = state.withLock { state in
            guard !state.isFinished else { return nil }
            let id = state.nextID
            state.nextID += 1
            state.continuations[id] = continuation
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.continuations.removeValue(forKey: id) }
        }
        return stream
    }

    func yield(_ change: QueueChange) {
        let continuations = state.withLock { Array($0.continuations.values) }
        for continuation in continuations { continuation.yield(change) }
    }

    func finish() {
        let continuations = state.withLock { state in
            state.isFinished = true
            defer { state.continuations.removeAll() }
            return Array(state.continuations.values)
        }
        for continuation in continuations { continuation.finish() }
    }
}
