import Foundation
import TestSupport
import Testing

@testable import OfflineQueue

@Suite("Observing the queue", .timeLimit(.minutes(15)))
struct ObservationTests {
    @Test("Changes are reported with the counts just after")
    func changesStream() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock())
        let changes = queue.changes()
        let mutation = try await queue.enqueue(.patch("rec00000000000001"))
        _ = try await queue.claimNext()
        try await queue.complete(mutation.id)

        var iterator = changes.makeAsyncIterator()
        let enqueued = await iterator.next()
        #expect(enqueued == QueueChange(kind: .enqueued, mutationIDs: [mutation.id], counts: QueueCounts(pending: 1)))
        let claimed = await iterator.next()
        #expect(claimed?.kind == .claimed)
        #expect(claimed?.counts == QueueCounts(inflight: 1))
        let completed = await iterator.next()
        #expect(completed?.kind == .completed)
        #expect(completed?.counts.isDrained == true)
    }

    @Test("waitUntilDrained returns once the last mutation completes, not before")
    func waitUntilDrained() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock())
        try await queue.waitUntilDrained()
        let first = try await queue.enqueue(.patch("rec00000000000001"), batchKey: "tbl1")
        let second = try await queue.enqueue(.patch("rec00000000000002"), batchKey: "tbl1")
        #expect(try await queue.claimBatch(maximum: 2).count == 2)

        let drained = Flag()
        let waiter = Task {
            try await queue.waitUntilDrained()
            drained.set()
        }
        try await queue.complete(first.id)
        for _ in 0..<20 { await Task.yield() }
        #expect(drained.isSet == false)
        try await queue.complete(second.id)
        try await waiter.value
        #expect(drained.isSet)
        #expect(try await queue.counts().isDrained)
    }

    @Test("A failed mutation does not keep the queue from counting as drained")
    func failedDoesNotBlockDrain() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock())
        let mutation = try await queue.enqueue(.patch("rec00000000000001"), scope: "rec00000000000001")
        _ = try await queue.claimNext()
        try await queue.fail(mutation.id, failure: .server(400), retryable: false)
        try await queue.waitUntilDrained()
        #expect(try await queue.hasPendingWrites(scope: "rec00000000000001") == false)
        #expect(try await queue.counts() == QueueCounts(failed: 1))
    }

    @Test("Closing the queue ends its change streams")
    func closeEndsStreams() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock())
        let changes = queue.changes()
        try queue.close()
        var iterator = changes.makeAsyncIterator()
        #expect(await iterator.next() == nil)
    }
}
