import Foundation
import TestSupport
import Testing

@testable import OfflineQueue

@Suite("Batch groups: one key per batch, claimed again whole after a crash", .timeLimit(.minutes(15)))
struct BatchGroupTests {
    static let table = "tbl00000000000001"

    /// Enqueues `count` creates in `table`, batchable together.
    static func enqueueCreates(
        _ queue: OfflineQueue,
        count: Int,
        table: String = table
    ) async throws
        -> [QueuedMutation]
    {
        try await queue.enqueue(
            contentsOf: (0..<count).map { index in
                let temporaryID = TemporaryID.generate()
                return QueueItem(
                    request: .create(table: table, #"{"fields":{"Name":"n\#(index)"}}"#),
                    scope: temporaryID.rawValue,
                    batchKey: table,
                    creates: [temporaryID]
                )
            }
        )
    }

    @Test("A claimed batch gets one fresh key on every mutation, persisted with the claim")
    func groupKey() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock())
        let queued = try await Self.enqueueCreates(queue, count: 5)
        let batch = try await queue.claimBatch(maximum: 3)
        #expect(batch.map(\.id) == queued.prefix(3).map(\.id))
        let key = try #require(batch.first?.batchIdempotencyKey)
        #expect(batch.allSatisfy { $0.batchIdempotencyKey == key })
        #expect(!queued.map(\.idempotencyKey).contains(key), "the batch's key is its own")
        #expect(try await queue.mutation(batch[2].id)?.batchIdempotencyKey == key)
        let next = try await queue.claimBatch(maximum: 3)
        #expect(next.count == 2)
        #expect(next.first?.batchIdempotencyKey != key)
    }

    @Test("A batch abandoned by a crash is claimed again whole, with the same key, whatever the maximum")
    func crashKeepsGroup() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let first: [QueuedMutation]
        do {
            let queue = try OfflineQueue.make(path: directory.queueFile, clock: clock)
            _ = try await Self.enqueueCreates(queue, count: 10)
            first = try await queue.claimBatch(maximum: 4)
            // The driver dies after sending the batch, before reporting.
        }
        let reopened = try OfflineQueue.make(path: directory.queueFile, clock: clock)
        let again = try await reopened.claimBatch(maximum: 100)
        #expect(again.map(\.id) == first.map(\.id))
        #expect(again.map(\.batchIdempotencyKey) == first.map(\.batchIdempotencyKey))
        #expect(again.allSatisfy { $0.attempts == 1 })
    }

    @Test("claimNext leaves batch groups to batch drivers; a mutation claimed alone never joins a batch")
    func soloAndGroupsApart() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: clock)
        let queued = try await Self.enqueueCreates(queue, count: 4)
        // Sent alone (its own key may have reached the server), then given back after a lost answer.
        let alone = try #require(try await queue.claimNext())
        #expect(alone.id == queued[0].id)
        #expect(alone.batchIdempotencyKey == nil)
        try #require(try await queue.fail(alone.id, failure: .server(503), retryable: true) != nil)

        let soloAgain = try await queue.claimBatch(maximum: 100)
        #expect(soloAgain.map(\.id) == [alone.id], "it goes alone again, with its own key")
        #expect(soloAgain.first?.batchIdempotencyKey == nil)
        try await queue.complete(alone.id, resolving: [alone.createsTemporaryIDs[0]: "rec00000000000001"])

        let group = try await queue.claimBatch(maximum: 100)
        #expect(group.map(\.id) == queued.dropFirst().map(\.id))
        try await queue.release(group.map(\.id))
        #expect(try await queue.claimNext() == nil, "a pending group is not taken apart")
        #expect(try await queue.claimBatch().map(\.id) == group.map(\.id))
    }

    @Test("A dissolved batch goes one by one, with each mutation's own key, and never in a batch again")
    func dissolve() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock())
        _ = try await Self.enqueueCreates(queue, count: 3)
        let group = try await queue.claimBatch()
        try await queue.dissolveBatch(group.map(\.id))
        #expect(try await queue.mutations(in: [.inflight]).allSatisfy { $0.batchIdempotencyKey == nil })
        try await queue.release(group.map(\.id))
        for expected in group {
            let claimed = try await queue.claimBatch()
            #expect(claimed.map(\.id) == [expected.id])
            #expect(claimed.first?.batchIdempotencyKey == nil)
            try await queue.complete(
                expected.id,
                resolving: [expected.createsTemporaryIDs[0]: "rec0000000000000\(expected.id)"]
            )
        }
    }

    @Test("A failed group is retried and dropped as a unit")
    func failedGroupIsAUnit() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock(), maximumAttempts: 1)
        _ = try await Self.enqueueCreates(queue, count: 3)
        let group = try await queue.claimBatch()
        for mutation in group { _ = try await queue.fail(mutation.id, failure: .server(503), retryable: true) }
        #expect(try await queue.failed().count == 3)

        try await queue.retry(group[1].id)
        #expect(try await queue.counts() == QueueCounts(pending: 3))
        let again = try await queue.claimBatch()
        #expect(again.map(\.batchIdempotencyKey) == group.map(\.batchIdempotencyKey))
        for mutation in again { _ = try await queue.fail(mutation.id, failure: .server(503), retryable: true) }

        try await queue.drop(group[0].id)
        #expect(try await queue.counts() == QueueCounts())
    }

    @Test("Batches never mix tables, nor a create with a write naming its temporary id")
    func batchBoundaries() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock())
        let other = "tbl00000000000002"
        let created = try await Self.enqueueCreates(queue, count: 2)
        _ = try await Self.enqueueCreates(queue, count: 2, table: other)
        let temporaryID = created[0].createsTemporaryIDs[0]
        let update = try await queue.enqueue(
            .patch(temporaryID.rawValue),
            scope: temporaryID.rawValue,
            batchKey: Self.table
        )
        let first = try await queue.claimBatch()
        #expect(first.map(\.id) == created.map(\.id))
        try await queue.complete(
            first.map(\.id),
            resolving: [temporaryID: "rec00000000000001", created[1].createsTemporaryIDs[0]: "rec00000000000002"]
        )
        let second = try await queue.claimBatch()
        #expect(second.allSatisfy { $0.batchKey == other })
        #expect(second.count == 2)
        try await queue.complete(
            second.map(\.id),
            resolving: Dictionary(
                uniqueKeysWithValues: second.map { ($0.createsTemporaryIDs[0], "rec0000000000000\($0.id)") }
            )
        )
        let third = try await queue.claimBatch()
        #expect(third.map(\.id) == [update.id])
        #expect(third.first?.request.path == "/api/v1/records/rec00000000000001")
    }
}
