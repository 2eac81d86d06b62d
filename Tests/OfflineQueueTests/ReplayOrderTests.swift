import Foundation
import TestSupport
import Testing

@testable import OfflineQueue

@Suite("Enqueue, claim and complete in order", .timeLimit(.minutes(15)))
struct ReplayOrderTests {
    @Test("Mutations are claimed in id order and leave the queue when completed")
    func claimInOrder() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock())
        let first = try await queue.enqueue(.patch("rec00000000000001"))
        let second = try await queue.enqueue(.patch("rec00000000000002"))
        #expect(first.id < second.id)
        #expect(first.state == .pending)
        #expect(try await queue.counts() == QueueCounts(pending: 2))

        let claimed = try #require(try await queue.claimNext())
        #expect(claimed.id == first.id)
        #expect(claimed.state == .inflight)
        #expect(claimed.idempotencyKey == first.idempotencyKey)
        #expect(claimed.claim?.processID == getpid())
        #expect(try await queue.counts() == QueueCounts(pending: 1, inflight: 1))

        try await queue.complete(claimed.id)
        #expect(try await queue.mutation(first.id) == nil)
        #expect(try await queue.claimNext()?.id == second.id)
        try await queue.complete(second.id)
        #expect(try await queue.counts() == QueueCounts())
        #expect(try await queue.claimNext() == nil)
    }

    @Test("The request and its key come back exactly as enqueued, across a reopen")
    func persistedExactly() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let request = QueuedRequest(
            method: "patch",
            path: "/api/v1/records/rec00000000000001",
            query: [.init(name: "typecast", value: "true"), .init(name: "typecast", value: "1")],
            headers: ["If-Match": "\"3\""],
            body: Data(#"{"fields":{"Score":12345678901234567}}"#.utf8)
        )
        let enqueued: QueuedMutation
        do {
            let queue = try OfflineQueue.make(path: directory.queueFile, clock: clock)
            enqueued = try await queue.enqueue(
                request,
                scope: "rec00000000000001",
                batchKey: "tbl1",
                idempotencyKey: "key-1"
            )
        }
        let reopened = try OfflineQueue.make(path: directory.queueFile, clock: clock)
        let read = try #require(try await reopened.mutation(enqueued.id))
        #expect(read == enqueued)
        #expect(read.request.method == "PATCH")
        #expect(read.request.bodyText == #"{"fields":{"Score":12345678901234567}}"#)
        #expect(read.createdAt == clock.now)
    }

    @Test("Enqueueing again with the same idempotency key returns the queued mutation, not a second one")
    func idempotentEnqueue() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock())
        let first = try await queue.enqueue(.patch("rec00000000000001"), idempotencyKey: "same")
        let again = try await queue.enqueue(.patch("rec00000000000001"), idempotencyKey: "same")
        #expect(again == first)
        #expect(try await queue.counts().pending == 1)
    }

    @Test("Same-scope mutations go one at a time, in order, while other scopes go in parallel")
    func scopesOrderAndParallelism() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock())
        let a1 = try await queue.enqueue(.patch("recA0000000000001"), scope: "recA0000000000001")
        let a2 = try await queue.enqueue(.patch("recA0000000000001", "{}"), scope: "recA0000000000001")
        let b1 = try await queue.enqueue(.patch("recB0000000000001"), scope: "recB0000000000001")
        let a3 = try await queue.enqueue(.patch("recA0000000000001", "[]"), scope: "recA0000000000001")
        let free = try await queue.enqueue(.patch("recC0000000000001"))

        #expect(try await queue.claimNext()?.id == a1.id)
        // a2 waits for a1: the next claimable is in another scope.
        #expect(try await queue.claimNext()?.id == b1.id)
        #expect(try await queue.claimNext()?.id == free.id)
        #expect(try await queue.claimNext() == nil)
        #expect(try await queue.hasPendingWrites(scope: "recA0000000000001"))

        try await queue.complete(a1.id)
        #expect(try await queue.claimNext()?.id == a2.id)
        #expect(try await queue.claimNext() == nil)
        try await queue.complete(a2.id)
        #expect(try await queue.claimNext()?.id == a3.id)
        try await queue.complete([a3.id, b1.id, free.id])
        #expect(try await queue.hasPendingWrites(scope: "recA0000000000001") == false)
        #expect(try await queue.counts() == QueueCounts())
    }

    @Test("A batch claim takes consecutive same-key mutations, keeping each scope's order")
    func batchClaim() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock())
        var ids: [Int64] = []
        for index in 0..<5 {
            let scope = "rec0000000000000\(index)"
            ids.append(try await queue.enqueue(.patch(scope), scope: scope, batchKey: "tbl1").id)
        }
        // Same scope as the first, same key: may ride in the same batch, after it.
        let sameScope = try await queue.enqueue(
            .patch("rec00000000000000"),
            scope: "rec00000000000000",
            batchKey: "tbl1"
        )
        // Another table's write, and a write after it in its scope: neither may join.
        let otherTable = try await queue.enqueue(
            .patch("rec00000000000009"),
            scope: "rec00000000000009",
            batchKey: "tbl2"
        )
        let behindOther = try await queue.enqueue(
            .patch("rec00000000000009"),
            scope: "rec00000000000009",
            batchKey: "tbl1"
        )
        let last = try await queue.enqueue(.patch("rec00000000000008"), scope: "rec00000000000008", batchKey: "tbl1")

        let batch = try await queue.claimBatch(maximum: 100)
        #expect(batch.map(\.id) == ids + [sameScope.id, last.id])
        #expect(batch.allSatisfy { $0.state == .inflight })

        let next = try await queue.claimBatch(maximum: 100)
        #expect(next.map(\.id) == [otherTable.id])
        #expect(try await queue.claimBatch(maximum: 100).isEmpty)
        try await queue.complete(next.map(\.id))
        #expect(try await queue.claimBatch(maximum: 100).map(\.id) == [behindOther.id])
    }

    @Test("A batch claim stops at its maximum")
    func batchMaximum() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock())
        for index in 0..<10 {
            try await queue.enqueue(.patch("rec\(index)"), scope: "rec\(index)", batchKey: "tbl1")
        }
        #expect(try await queue.claimBatch(maximum: 4).count == 4)
        #expect(try await queue.claimBatch(maximum: 4).count == 4)
        #expect(try await queue.claimBatch(maximum: 4).count == 2)
        #expect(try await queue.claimBatch(maximum: 0).isEmpty)
    }

    @Test("Each account sees only its own mutations")
    func namespaces() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let alice = try OfflineQueue.make(path: directory.queueFile, clock: clock, user: "usrAlice")
        let bob = try OfflineQueue.make(path: directory.queueFile, clock: clock, user: "usrBob")
        try await alice.enqueue(.patch("rec00000000000001"), idempotencyKey: "k")
        try await bob.enqueue(.patch("rec00000000000002"), idempotencyKey: "k")
        #expect(try await alice.counts().pending == 1)
        #expect(try await bob.mutations().map(\.request.path) == ["/api/v1/records/rec00000000000002"])
        #expect(try await alice.claimNext()?.request.path == "/api/v1/records/rec00000000000001")
        #expect(try await alice.claimNext() == nil)
    }
}
