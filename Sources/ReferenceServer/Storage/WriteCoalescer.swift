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
                    outcome.withLock { $0 = Self.inSavepoint(db, operation) }
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

    /// Runs `operation` in a savepoint, rolled back when it throws. The savepoint statements are
    /// prepared once (GRDB's `inSavepoint` prepares them at every call, which shows at thousands of
    /// writes a second); GRDB still sees them and keeps its transaction observers in step.
    private static func inSavepoint<T>(_ db: Database, _ operation: (Database) throws -> T) -> Result<T, any Error> {
        do {
            try db.cachedStatement(sql: "SAVEPOINT write").execute()
        } catch {
            return .failure(error)
        }
        do {
            let value = try operation(db)
            try db.cachedStatement(sql: "RELEASE SAVEPOINT write").execute()
            return .success(value)
        } catch {
            try? db.cachedStatement(sql: "ROLLBACK TO SAVEPOINT write").execute()
            try? db.cachedStatement(sql: "RELEASE SAVEPOINT write").execute()
            return .failure(error)
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
