import Foundation
import PyAirtableModels
import TestSupport
import Testing

@testable import OfflineQueue

@Suite("Failures, the failed list and bounds", .timeLimit(.minutes(15)))
struct FailureTests {
    @Test("A retryable failure puts the mutation back with the same key and one more attempt")
    func retryableFailure() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock())
        let mutation = try await queue.enqueue(.patch("rec00000000000001"), scope: "rec00000000000001")
        _ = try await queue.claimNext()
        let updated = try #require(try await queue.fail(mutation.id, failure: .server(503), retryable: true))
        #expect(updated.state == .pending)
        #expect(updated.attempts == 1)
        #expect(updated.lastFailure?.status == 503)
        #expect(updated.claim == nil)
        let again = try #require(try await queue.claimNext())
        #expect(again.id == mutation.id)
        #expect(again.idempotencyKey == mutation.idempotencyKey)
    }

    @Test("After the most attempts, a retryable failure moves the mutation to the failed list")
    func attemptsExhausted() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock(), maximumAttempts: 2)
        let mutation = try await queue.enqueue(.patch("rec00000000000001"))
        _ = try await queue.claimNext()
        #expect(try await queue.fail(mutation.id, failure: .server(503), retryable: true)?.state == .pending)
        _ = try await queue.claimNext()
        #expect(try await queue.fail(mutation.id, failure: .server(503), retryable: true)?.state == .failed)
    }

    @Test("A poison mutation goes to the failed list with its error and blocks only its own scope")
    func poisonMutation() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock())
        let poison = try await queue.enqueue(.patch("recA0000000000001"), scope: "recA0000000000001")
        let behind = try await queue.enqueue(.patch("recA0000000000001"), scope: "recA0000000000001")
        let other = try await queue.enqueue(.patch("recB0000000000001"), scope: "recB0000000000001")

        #expect(try await queue.claimNext()?.id == poison.id)
        let body = ErrorResponse(error: APIErrorDetail(type: .validation, code: 422, message: "Name is not text"))
        let failure = QueuedMutation.Failure(status: 422, error: body, occurredAt: Date(timeIntervalSince1970: 5))
        #expect(try await queue.fail(poison.id, failure: failure, retryable: false)?.state == .failed)

        // The rest of the queue goes on; the mutation behind the poison one waits.
        #expect(try await queue.claimNext()?.id == other.id)
        #expect(try await queue.claimNext() == nil)
        try await queue.complete(other.id)

        let failed = try await queue.failed()
        #expect(failed.map(\.id) == [poison.id])
        #expect(failed.first?.lastFailure?.message == "Name is not text")
        #expect(failed.first?.lastFailure?.error == body)
        #expect(try await queue.counts() == QueueCounts(pending: 1, failed: 1))

        // Retried, it goes first again, with its key.
        try await queue.retry(poison.id)
        let retried = try #require(try await queue.claimNext())
        #expect(retried.id == poison.id)
        #expect(retried.idempotencyKey == poison.idempotencyKey)
        try await queue.fail(poison.id, failure: failure, retryable: false)

        // Dropped, it stops blocking.
        let dropped = try await queue.drop(poison.id)
        #expect(dropped.id == poison.id)
        #expect(try await queue.claimNext()?.id == behind.id)
        #expect(try await queue.failed().isEmpty)
    }

    @Test("Retry, drop and failure reports check what they act on")
    func guards() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock())
        let mutation = try await queue.enqueue(.patch("rec00000000000001"))
        await #expect(throws: OfflineQueueError.invalidState(mutation.id, .pending)) {
            try await queue.retry(mutation.id)
        }
        await #expect(throws: OfflineQueueError.mutationNotFound(999)) { try await queue.retry(999) }
        await #expect(throws: OfflineQueueError.mutationNotFound(999)) { try await queue.drop(999) }
        // Not claimed by this instance: ignored.
        #expect(try await queue.fail(mutation.id, failure: .server(500), retryable: false) == nil)
        _ = try await queue.claimNext()
        await #expect(throws: OfflineQueueError.invalidState(mutation.id, .inflight)) {
            try await queue.drop(mutation.id)
        }
        // Completing twice is harmless: the second finds nothing to do.
        try await queue.complete(mutation.id)
        try await queue.complete(mutation.id)
        #expect(try await queue.counts() == QueueCounts())
    }

    @Test("Retrying every failed mutation at once")
    func retryAll() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock())
        for index in 0..<3 {
            let mutation = try await queue.enqueue(.patch("rec\(index)"))
            _ = try await queue.claimNext()
            try await queue.fail(mutation.id, failure: .server(400), retryable: false)
        }
        #expect(try await queue.counts().failed == 3)
        #expect(try await queue.retryAllFailed().count == 3)
        #expect(try await queue.counts() == QueueCounts(pending: 3))
    }

    @Test("A full queue refuses with a typed error and loses nothing")
    func entryBound() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: clock, maximumEntries: 3)
        var ids: [Int64] = []
        for index in 0..<3 {
            ids.append(try await queue.enqueue(.patch("rec\(index)")).id)
        }
        let error = await #expect(throws: OfflineQueueError.self) {
            try await queue.enqueue(.patch("rec3"))
        }
        #expect(error?.shortDescription == "queueFull")
        let reopened = try OfflineQueue.make(path: directory.queueFile, clock: clock, maximumEntries: 3)
        #expect(try await reopened.mutations().map(\.id) == ids)
        // Room again once one completes.
        _ = try await reopened.claimNext()
        try await reopened.complete(ids[0])
        try await reopened.enqueue(.patch("rec3"))
        #expect(try await reopened.counts().pending == 3)
    }

    @Test("A bulk enqueue is all or nothing")
    func bulkEnqueueAllOrNothing() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock(), maximumEntries: 4)
        try await queue.enqueue(.patch("rec0"))
        let items = (1...4).map { QueueItem(request: .patch("rec\($0)")) }
        let error = await #expect(throws: OfflineQueueError.self) { try await queue.enqueue(contentsOf: items) }
        #expect(error?.shortDescription == "queueFull")
        #expect(try await queue.counts().pending == 1)

        let temporary = TemporaryID.generate()
        let queued = try await queue.enqueue(contentsOf: [
            QueueItem(request: .create(), scope: temporary.rawValue, creates: [temporary]),
            QueueItem(request: .patch(temporary.rawValue), scope: temporary.rawValue),
            QueueItem(request: .patch("recL", #"{"fields":{"Links":["\#(temporary.rawValue)"]}}"#), scope: "recL"),
        ])
        #expect(queued.map(\.state) == [.pending, .pending, .pending])
        #expect(try await queue.claimNext()?.id == queue.mutations().first?.id)
        #expect(try await queue.claimNext()?.id == queued[0].id)
        #expect(try await queue.claimNext() == nil)
    }

    @Test("The byte bound counts the request's size")
    func byteBound() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock(), maximumBytes: 1000)
        let big = QueuedRequest.patch("rec1", #"{"fields":{"Notes":"\#(String(repeating: "x", count: 600))"}}"#)
        try await queue.enqueue(big)
        let error = await #expect(throws: OfflineQueueError.self) { try await queue.enqueue(big) }
        #expect(error?.shortDescription == "queueFull")
        try await queue.enqueue(.patch("rec2"))
        #expect(try await queue.counts().pending == 2)
    }
}
