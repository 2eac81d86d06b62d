import Foundation
import PostgresNIO
import PyAirtableModels
import Synchronization
import TestSupport
import Testing

@testable import ReferenceServer

/// The PostgreSQL store's own guarantees across instances: migrations when instances start together,
/// an event log numbered in commit order with no gap however many instances write, idempotency keys
/// and refresh tokens honoured once across instances.
@Suite("PostgreSQL store", .timeLimit(.minutes(15)))
struct PostgresStoreTests {
    static func context(_ actor: UserID?, key: String? = nil, hash: String = "request") -> WriteContext {
        WriteContext(
            actor: actor,
            now: Date(timeIntervalSince1970: 1_800_000_000),
            idempotency: key.map {
                IdempotencyClaim(principal: actor?.rawValue ?? "anonymous", key: $0, requestHash: hash)
            }
        )
    }

    static func user(_ store: PostgresStore, _ email: String) async throws -> UserID {
        let created = try await store.createUser(email: email, name: "N", passwordHash: "x", context: context(nil))
        return try #require(created.value).id
    }

    @Test func instancesStartingTogetherMigrateOnce() async throws {
        try await PostgresCluster.withDatabase { location in
            let keys = StorageKeys(secret: Array(repeating: 7, count: 32))
            let databases = try await withThrowingTaskGroup(of: PostgresServerDatabase.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        try await PostgresServerDatabase(
                            location: location,
                            maximumConnections: 2,
                            keys: keys,
                            logger: Harness.logger
                        )
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let applied = try await databases[0].read { transaction in
                try await transaction.scalar("SELECT count(*) FROM pyat_migrations", as: Int64.self)
            }
            #expect(applied == Int64(PostgresMigrations.all.count))
            for database in databases { await database.close() }

            // Another storage secret is refused: instances must share one.
            await #expect(throws: ServerConfigurationError.self) {
                let other = try await PostgresServerDatabase(
                    location: location,
                    keys: StorageKeys(secret: Array(repeating: 8, count: 32)),
                    logger: Harness.logger
                )
                await other.close()
            }
        }
    }

    /// The sequence-gap trap: a reader that polls `seq > last` must never pass a seq whose
    /// transaction commits later. Three instances, 24 concurrent writers, and a naive poller that
    /// checks every page starts right after the last seq it saw and has no hole.
    @Test(.heavy) func eventLogHasNoGapUnderConcurrentWritersOfSeveralInstances() async throws {
        try await PostgresCluster.withStores(instances: 3) { stores in
            let writers = 24
            let writesEach = 40
            var users: [UserID] = []
            for index in 0..<writers {
                users.append(try await Self.user(stores[index % 3], "writer\(index)@example.com"))
            }
            let done = Flag()
            let reader = stores[0]
            let observed = try await withThrowingTaskGroup(of: [Int64]?.self) { group in
                group.addTask {
                    var seen: [Int64] = []
                    var last: Int64 = 0
                    while true {
                        // A writer that failed ends the group: the poller must end with it.
                        try Task.checkCancellation()
                        let finished = done.value.load(ordering: .acquiring)
                        let after = last
                        let page = try await reader.database.read { transaction in
                            try await transaction.rows(
                                "SELECT seq FROM events WHERE seq > \(after) ORDER BY seq LIMIT 500"
                            )
                            .map { try $0.get("seq", as: Int64.self) }
                        }
                        for seq in page {
                            if seq != last + 1 {
                                Issue.record("the poller passed from \(last) to \(seq): an event it will never read")
                            }
                            last = seq
                            seen.append(seq)
                        }
                        if finished && page.isEmpty { return seen }
                    }
                }
                for (index, user) in users.enumerated() {
                    let store = stores[index % 3]
                    group.addTask {
                        for _ in 0..<writesEach {
                            _ = try await store.updateUser(
                                UpdateUserRequest(name: "n\(Int.random(in: 0...1_000_000))"),
                                ifVersion: nil,
                                context: Self.context(user)
                            )
                        }
                        return nil
                    }
                }
                var seen: [Int64] = []
                var writersLeft = writers
                while let next = try await group.next() {
                    if let next {
                        seen = next
                    } else {
                        writersLeft -= 1
                        if writersLeft == 0 { done.value.store(true, ordering: .releasing) }
                    }
                }
                return seen
            }
            let total = Int64(writers * writesEach)
            #expect(observed.count == Int(total))
            #expect(observed == Array(1...total))
            let head = try await reader.database.read { transaction in
                try await transaction.scalar("SELECT seq FROM event_head", as: Int64.self)
            }
            #expect(head == total)
        }
    }

    @Test func oneIdempotencyKeyIsAppliedOnceAcrossInstances() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let owner = try await Self.user(stores[0], "owner@example.com")
            let results = try await withThrowingTaskGroup(of: WriteResult<AccessToken>.self) { group in
                for index in 0..<8 {
                    group.addTask {
                        try await stores[index % 2].createAccessToken(
                            name: "ci",
                            secret: "pat_secret",
                            hash: "hash-\(index)",
                            expiresAt: nil,
                            context: Self.context(owner, key: "key-1")
                        )
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.filter { !$0.response.replayed }.count == 1)
            #expect(Set(results.map(\.response.body)).count == 1)
            #expect(try await stores[1].accessTokens(user: owner).count == 1)

            // The same key with another request is refused, on either instance.
            await #expect(throws: StorageError.idempotencyKeyReused(key: "key-1")) {
                try await stores[1].createAccessToken(
                    name: "other",
                    secret: "pat_other",
                    hash: "hash-other",
                    expiresAt: nil,
                    context: Self.context(owner, key: "key-1", hash: "another request")
                )
            }
        }
    }

    @Test func accountsAcrossInstances() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let user = try await Self.user(stores[0], "Ada@Example.com")
            await #expect(throws: StorageError.self) {
                try await stores[1].createUser(
                    email: "ada@example.COM",
                    name: "A",
                    passwordHash: "y",
                    context: Self.context(nil)
                )
            }
            #expect(try await stores[1].credentials(email: "ADA@example.com")?.user.id == user)

            // A refresh token presented to two instances at once rotates once; the other
            // presentation is a reuse, which revokes the family.
            let now = Date(timeIntervalSince1970: 1_800_000_000)
            try await stores[0].storeRefreshToken(hash: "rt", family: "f", user: user, expiresAt: now + 3600, now: now)
            async let first = stores[0].consumeRefreshToken(hash: "rt", now: now)
            async let second = stores[1].consumeRefreshToken(hash: "rt", now: now)
            let outcomes = try await [first, second]
            let rotated = outcomes.filter { if case .rotated = $0 { true } else { false } }
            let reused = outcomes.filter { if case .reused = $0 { true } else { false } }
            #expect(rotated.count == 1 && reused.count == 1)

            // A stale If-Match is refused with the current user.
            let updated = try await stores[1].updateUser(
                UpdateUserRequest(name: "B"),
                ifVersion: 1,
                context: Self.context(user)
            )
            #expect(updated.value?.version == 2)
            await #expect(throws: StorageError.self) {
                try await stores[0].updateUser(UpdateUserRequest(name: "C"), ifVersion: 1, context: Self.context(user))
            }
        }
    }

    /// A commit stuck behind a lock (as one on a connection that died unnoticed would be) answers
    /// 503 once the operation timeout passes, not never; its connection is closed, so what it had
    /// not committed is rolled back; and the writes after it go through.
    @Test func aStuckCommitAnswersUnavailableAndLosesNothing() async throws {
        try await PostgresCluster.withDatabase { location in
            let keys = StorageKeys(secret: Array(repeating: 7, count: 32))
            let database = try await PostgresServerDatabase(
                location: location,
                maximumConnections: 4,
                operationTimeout: .seconds(1),
                keys: keys,
                logger: Harness.logger
            )
            let holder = try await PostgresServerDatabase(
                location: location,
                maximumConnections: 2,
                operationTimeout: .seconds(60),
                keys: keys,
                logger: Harness.logger
            )
            defer { Task { await database.close() } }
            let store = PostgresStore(database: database, logger: Harness.logger)
            let user = try await Self.user(store, "stuck@example.com")

            // Another session holds the row that numbers events until told to let go.
            let (locked, lockedNow) = AsyncStream<Void>.makeStream()
            let (release, releaseNow) = AsyncStream<Void>.makeStream()
            let holding = Task {
                try await holder.read { transaction in
                    try await transaction.execute("BEGIN")
                    try await transaction.execute("SELECT seq FROM event_head WHERE id = 1 FOR UPDATE")
                    lockedNow.yield()
                    for await _ in release { break }
                    try await transaction.execute("ROLLBACK")
                }
            }
            for await _ in locked { break }

            let start = ContinuousClock.now
            do {
                _ = try await store.updateUser(
                    UpdateUserRequest(name: "stuck"),
                    ifVersion: nil,
                    context: Self.context(user)
                )
                Issue.record("a write behind a held lock was acknowledged")
            } catch let error as StorageError {
                guard case .unavailable(_, let retryAfter) = error else {
                    Issue.record("a stuck commit failed with \(error), not unavailable")
                    releaseNow.yield()
                    _ = try? await holding.value
                    await holder.close()
                    return
                }
                #expect(retryAfter > 0)
            }
            let waited = ContinuousClock.now - start
            #expect(waited < .seconds(8), "a stuck commit was answered after \(waited)")

            releaseNow.yield()
            try await holding.value
            await holder.close()

            // Rolled back: the name is as it was, and the next write is acknowledged and kept.
            #expect(try await store.user(id: user)?.name == "N")
            let updated = try await store.updateUser(
                UpdateUserRequest(name: "after"),
                ifVersion: nil,
                context: Self.context(user)
            )
            #expect(updated.value?.name == "after")
            #expect(try await store.user(id: user)?.name == "after")
        }
    }
}

private final class Flag: Sendable {
    let value = Atomic<Bool>(false)
}
