import Foundation
import GRDB
import Synchronization
import TestSupport
import Testing

@testable import OfflineQueue

@Suite("Crashes, leases and two processes on one file", .timeLimit(.minutes(15)))
struct CrashAndProcessTests {
    @Test("A mutation claimed by an instance that went away is pending again on reopen, with the same key")
    func crashMidReplay() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let claimed: QueuedMutation
        do {
            let queue = try OfflineQueue.make(path: directory.queueFile, clock: clock)
            try await queue.enqueue(.patch("rec00000000000001"), scope: "rec00000000000001")
            claimed = try #require(try await queue.claimNext())
            // The instance goes away without completing: as if its process had been killed.
        }
        let reopened = try OfflineQueue.make(path: directory.queueFile, clock: clock)
        let recovered = try #require(try await reopened.mutation(claimed.id))
        #expect(recovered.state == .pending)
        #expect(recovered.idempotencyKey == claimed.idempotencyKey)
        #expect(recovered.attempts == 1)
        #expect(recovered.claim == nil)
        #expect(try await reopened.claimNext()?.idempotencyKey == claimed.idempotencyKey)
    }

    @Test("A live instance's claim is respected until its lease runs out")
    func liveClaimRespected() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let first = try OfflineQueue.make(path: directory.queueFile, clock: clock, leaseDuration: .seconds(60))
        let second = try OfflineQueue.make(path: directory.queueFile, clock: clock, leaseDuration: .seconds(60))
        let mutation = try await first.enqueue(.patch("rec00000000000001"))
        #expect(try await first.claimNext()?.id == mutation.id)
        #expect(try await second.claimNext() == nil)
        #expect(try await second.recoverAbandonedClaims().isEmpty)

        clock.advance(by: .seconds(61))
        // The first instance seems stuck: the second takes the mutation over, with the same key.
        let taken = try #require(try await second.claimNext())
        #expect(taken.idempotencyKey == mutation.idempotencyKey)
        // The first's late failure report is ignored; its late success still completes it.
        #expect(try await first.fail(mutation.id, failure: .server(503), retryable: true) == nil)
        #expect(try await second.mutation(mutation.id)?.state == .inflight)
        try await first.complete(mutation.id)
        #expect(try await second.counts() == QueueCounts())
    }

    @Test("Extending a lease keeps a slow request's mutation from being taken over")
    func extendedLease() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let first = try OfflineQueue.make(path: directory.queueFile, clock: clock, leaseDuration: .seconds(60))
        let second = try OfflineQueue.make(path: directory.queueFile, clock: clock, leaseDuration: .seconds(60))
        let mutation = try await first.enqueue(.patch("rec00000000000001"))
        _ = try await first.claimNext()
        clock.advance(by: .seconds(50))
        #expect(try await first.extendLease(of: [mutation.id, 999]) == [mutation.id])
        #expect(try await second.extendLease(of: [mutation.id]).isEmpty)
        clock.advance(by: .seconds(50))
        #expect(try await second.claimNext() == nil)
        clock.advance(by: .seconds(11))
        #expect(try await second.claimNext()?.id == mutation.id)
    }

    @Test("A claim held by a process that no longer exists is taken back at once")
    func deadProcessClaim() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: clock)
        let mutation = try await queue.enqueue(.patch("rec00000000000001"))
        _ = try #require(try await queue.claimNext())

        // Hand the claim to a process that has exited.
        let process = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "exit 0"], environment: [:])
        #expect(await process.wait(timeout: .seconds(60)) == 0)
        let deadPID = process.pid
        #expect(!ClaimOwner.processExists(deadPID))
        try await queue.database.writer.write { db in
            try db.execute(
                sql: "UPDATE queue_mutations SET claim_owner = 'dead', claim_pid = ? WHERE id = ?",
                arguments: [deadPID, mutation.id]
            )
        }
        let other = try OfflineQueue.make(path: directory.queueFile, clock: clock)
        let taken = try #require(try await other.claimNext())
        #expect(taken.id == mutation.id)
        #expect(taken.idempotencyKey == mutation.idempotencyKey)
        #expect(taken.attempts == 1)
    }

    @Test("Two instances on one file, claiming concurrently, never claim the same mutation")
    func concurrentClaimsFromTwoInstances() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let first = try OfflineQueue.make(path: directory.queueFile, clock: clock)
        let second = try OfflineQueue.make(path: directory.queueFile, clock: clock)
        let count = 300
        var enqueued: [Int64] = []
        for index in 0..<count {
            // Some scopes repeat, so ordering is exercised under contention too.
            let scope = "rec\(index % 50)"
            let mutation = try await (index.isMultiple(of: 2) ? first : second)
                .enqueue(.patch(scope), scope: scope, batchKey: index % 3 == 0 ? nil : "tbl1")
            enqueued.append(mutation.id)
        }

        let record = ClaimRecord()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                let queue = worker.isMultiple(of: 2) ? first : second
                group.addTask {
                    while true {
                        let batch = try await queue.claimBatch(maximum: worker % 4 == 0 ? 1 : 7)
                        if batch.isEmpty {
                            if try await queue.counts().isDrained { return }
                            await Task.yield()
                            continue
                        }
                        record.add(batch)
                        try await queue.complete(batch.map(\.id))
                    }
                }
            }
            try await group.waitForAll()
        }
        let claimed = record.claims.withLock { $0 }
        #expect(claimed.count == count)
        #expect(claimed.values.allSatisfy { $0 == 1 })
        #expect(Set(claimed.keys) == Set(enqueued))
        // Within each scope, claims happened in id order.
        for (_, ids) in record.order.withLock({ $0 }) {
            #expect(ids == ids.sorted())
        }
        #expect(try await first.counts() == QueueCounts())
    }
}

/// What concurrent claimers took, and in which order per scope.
private final class ClaimRecord: Sendable {
    let claims = Mutex<[Int64: Int]>([:])
    let order = Mutex<[String: [Int64]]>([:])

    func add(_ batch: [QueuedMutation]) {
        claims.withLock { claims in
            for mutation in batch { claims[mutation.id, default: 0] += 1 }
        }
        order.withLock { order in
            for mutation in batch { order[mutation.scope ?? "", default: []].append(mutation.id) }
        }
    }
}
