import Foundation
import PostgresNIO

extension PostgresStore: InstanceCoordination {
    /// Holds a session advisory lock (`pg_advisory_lock`) on a connection of its own while `body`
    /// runs. Should the connection die, PostgreSQL releases the lock with it, so a crashed instance
    /// never holds one for good.
    public func exclusively<T: Sendable>(
        _ lock: InstanceLock,
        wait: Bool,
        _ body: @Sendable () async throws -> T
    ) async throws -> T? {
        let key = PostgresMigrations.lockKey + lock.rawValue
        let logger = self.logger
        return try await withoutActuallyEscaping(body) { body in
            let run = UncheckedSendable(body)
            return try await database.withLeasedConnection { connection in
                // postgres-nio never answers a query on a connection the server closed (see
                // ``PostgresTransaction``): a closed one is not asked, and its session's lock is gone.
                guard !connection.isClosed else { throw PostgresServerDatabase.ConnectionClosed() }
                if wait {
                    _ = try await connection.query("SELECT pg_advisory_lock(\(key))", logger: logger).collect()
                } else {
                    let taken = try await connection.query("SELECT pg_try_advisory_lock(\(key))", logger: logger)
                        .collect().first?.decode(Bool.self)
                    guard taken == true else { return nil }
                }
                do {
                    let value = try await run.value()
                    if !connection.isClosed {
                        _ = try await connection.query("SELECT pg_advisory_unlock(\(key))", logger: logger).collect()
                    }
                    return value
                } catch {
                    if !connection.isClosed {
                        _ = try? await connection.query("SELECT pg_advisory_unlock(\(key))", logger: logger)
                            .collect()
                    }
                    throw error
                }
            }
        }
    }
}

/// A non-escaping closure carried into a task that ends before the closure's scope does
/// (``PostgresServerDatabase/withLeasedConnection(_:)`` waits for its body).
private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
