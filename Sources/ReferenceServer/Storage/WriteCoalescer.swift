import Foundation
import GRDB
import Logging
import Synchronization

/// Group commit for SQLite: writes that arrive while a commit is under way are applied together in
/// the next transaction, each inside its own savepoint, and acknowledged after that one commit.
///
/// With `synchronous = FULL` every commit costs an fsync; sharing it is what lets many clients write
/// durably at once. A write that throws rolls back its savepoint only; the others still commit.
final class WriteCoalescer: Sendable {
    private struct Job: Sendable {
        let run: @Sendable (Database) -> Void
        let finish: @Sendable ((any Error)?) -> Void
    }

    private struct State {
        var pending: [Job] = []
        var draining = false
    }

    private let pool: DatabasePool
    private let logger: Logger
    private let commits: CommitSignal
    private let state = Mutex(State())
    /// The most writes one commit carries.
    private let maximumBatch = 256

    init(pool: DatabasePool, logger: Logger, commits: CommitSignal) {
        self.pool = pool
        self.logger = logger
        self.commits = commits
    }

    func write<T: Sendable>(_ operation: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let outcome = Mutex<Result<T, any Error>?>(nil)
            let job = Job(
                run: { db in
                    do {
                        var value: T?
                        try db.inSavepoint {
                            value = try operation(db)
                            return .commit
                        }
                        // inSavepoint only returns after operation set value.
                        if let value { outcome.withLock { $0 = .success(value) } }
                    } catch {
                        outcome.withLock { $0 = .failure(error) }
                    }
                },
                finish: { commitError in
                    if let commitError {
                        continuation.resume(throwing: commitError)
                        return
                    }
                    let result = outcome.withLock { $0 } ?? .failure(DatabaseError(message: "write did not run"))
                    continuation.resume(with: result)
                }
            )
            let startDrain = state.withLock { state -> Bool in
                state.pending.append(job)
                if state.draining { return false }
                state.draining = true
                return true
            }
            if startDrain {
                pool.asyncWriteWithoutTransaction { db in
                    self.drain(db)
                }
            }
        }
    }

    /// Runs on the writer connection until no job is left.
    private func drain(_ db: Database) {
        while true {
            let batch = state.withLock { state -> [Job] in
                if state.pending.isEmpty {
                    state.draining = false
                    return []
                }
                let count = min(state.pending.count, maximumBatch)
                let batch = Array(state.pending.prefix(count))
                state.pending.removeFirst(count)
                return batch
            }
            if batch.isEmpty { return }
            do {
                try db.inTransaction(.immediate) {
                    for job in batch { job.run(db) }
                    return .commit
                }
                // Observers learn of the commit before the writers do, so realtime fan-out starts as
                // early as the acknowledgement.
                commits.fire()
                for job in batch { job.finish(nil) }
            } catch {
                logger.error("commit failed", metadata: ["error": "\(error)", "writes": "\(batch.count)"])
                for job in batch { job.finish(error) }
            }
        }
    }
}
