import Foundation
import TestSupport
import Testing

@testable import OfflineQueue

@Suite("Temporary ids and their rewrite", .timeLimit(.minutes(15)))
struct TemporaryIDTests {
    @Test("Generated ids are tmp_ and 14 base-62 characters, and never valid server ids")
    func generation() {
        for _ in 0..<100 {
            let id = TemporaryID.generate()
            #expect(TemporaryID.isValid(id.rawValue))
            #expect(id.rawValue.hasPrefix("tmp_"))
            #expect(id.rawValue.utf8.count == 18)
        }
        #expect(TemporaryID("rec00000000000001") == nil)
        #expect(TemporaryID("tmp_0000000000000") == nil)
        #expect(TemporaryID("tmp_0000000000000!") == nil)
    }

    @Test("Mentions are whole words only")
    func mentions() throws {
        let id = try #require(TemporaryID("tmp_AAAAAAAAAAAAA1"))
        #expect(TemporaryID.mentions(in: "/records/tmp_AAAAAAAAAAAAA1") == [id])
        #expect(TemporaryID.mentions(in: #"["tmp_AAAAAAAAAAAAA1","x"]"#) == [id])
        #expect(TemporaryID.mentions(in: "xtmp_AAAAAAAAAAAAA1").isEmpty)
        #expect(TemporaryID.mentions(in: "tmp_AAAAAAAAAAAAA12").isEmpty)
        #expect(TemporaryID.mentions(in: "tmp_AAAAAAAAAAAAA").isEmpty)
        #expect(
            id.replacingOccurrences(in: "a tmp_AAAAAAAAAAAAA1 xtmp_AAAAAAAAAAAAA1", with: "rec1")
                == "a rec1 xtmp_AAAAAAAAAAAAA1"
        )
    }

    @Test("Resolving a temporary id rewrites path, query, body and linked-record arrays; the mapping persists")
    func rewriteAndPersist() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let temporary = TemporaryID.generate()
        let tmp = temporary.rawValue
        let serverID = "recS0000000000001"
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: clock)

        let create = try await queue.enqueue(.create(), scope: tmp, batchKey: "tbl1", creates: [temporary])
        let update = try await queue.enqueue(.patch(tmp, #"{"fields":{"Name":"renamed"}}"#), scope: tmp)
        let link = try await queue.enqueue(
            .patch("recO0000000000001", #"{"fields":{"Links":["recX0000000000001","\#(tmp)"],"Note":"\#(tmp)"}}"#),
            scope: "recO0000000000001",
            batchKey: "tbl1"
        )
        let search = try await queue.enqueue(
            QueuedRequest(
                method: "DELETE",
                path: "/api/v1/records/\(tmp)",
                query: [.init(name: "filter", value: "{Parent} = '\(tmp)'")]
            ),
            scope: tmp
        )

        // Only the create may go: the rest name a record the server has not created yet.
        #expect(try await queue.claimBatch().map(\.id) == [create.id])
        #expect(try await queue.claimNext() == nil)
        #expect(try await queue.hasPendingWrites(scope: tmp))

        // Completing the create without its server id would strand the others: refused, nothing changed.
        await #expect(throws: OfflineQueueError.unresolvedTemporaryID(temporary)) {
            try await queue.complete(create.id)
        }
        #expect(try await queue.mutation(create.id)?.state == .inflight)

        try await queue.complete(create.id, resolving: [temporary: serverID])
        let rewrittenUpdate = try #require(try await queue.mutation(update.id))
        #expect(rewrittenUpdate.request.path == "/api/v1/records/\(serverID)")
        #expect(rewrittenUpdate.scope == serverID)
        #expect(rewrittenUpdate.idempotencyKey == update.idempotencyKey)
        let rewrittenLink = try #require(try await queue.mutation(link.id))
        #expect(
            rewrittenLink.request.bodyText
                == #"{"fields":{"Links":["recX0000000000001","\#(serverID)"],"Note":"\#(serverID)"}}"#
        )
        let rewrittenSearch = try #require(try await queue.mutation(search.id))
        #expect(rewrittenSearch.request.query == [.init(name: "filter", value: "{Parent} = '\(serverID)'")])
        #expect(try await queue.hasPendingWrites(scope: tmp))
        #expect(try await queue.hasPendingWrites(scope: serverID))

        // The rewritten mutations are claimable now, in scope order.
        #expect(try await queue.claimBatch().map(\.id) == [update.id])
        #expect(try await queue.claimBatch().map(\.id) == [link.id])
        #expect(try await queue.claimNext() == nil)

        let reopened = try OfflineQueue.make(path: directory.queueFile, clock: clock)
        #expect(try await reopened.serverID(for: temporary) == serverID)
        #expect(try await reopened.resolvedTemporaryIDs() == [temporary: serverID])
        // A request made later with the old temporary id is rewritten as it is enqueued.
        let late = try await reopened.enqueue(.patch(tmp), scope: tmp)
        #expect(late.request.path == "/api/v1/records/\(serverID)")
        #expect(late.scope == serverID)
    }

    @Test("Unknown, duplicate and conflicting temporary ids are refused")
    func refusals() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock())
        let unknown = TemporaryID.generate()
        await #expect(throws: OfflineQueueError.unknownTemporaryID(unknown)) {
            try await queue.enqueue(.patch(unknown.rawValue))
        }
        let created = TemporaryID.generate()
        try await queue.enqueue(.create(), creates: [created])
        await #expect(throws: OfflineQueueError.duplicateTemporaryID(created)) {
            try await queue.enqueue(.create(), creates: [created])
        }
        try await queue.resolve(created, to: "recS0000000000001")
        try await queue.resolve(created, to: "recS0000000000001")
        let conflict = await #expect(throws: OfflineQueueError.self) {
            try await queue.resolve(created, to: "recS0000000000002")
        }
        #expect(conflict?.shortDescription == "conflictingResolution")
        #expect(try await queue.counts().pending == 1)
    }

    @Test("A batch never carries a mutation that names a record created in the same batch")
    func batchWaitsForCreate() async throws {
        let directory = try TemporaryDirectory()
        let queue = try OfflineQueue.make(path: directory.queueFile, clock: ManualWallClock())
        let temporary = TemporaryID.generate()
        let create = try await queue.enqueue(
            .create(),
            scope: temporary.rawValue,
            batchKey: "tbl1",
            creates: [temporary]
        )
        let other = try await queue.enqueue(.patch("recO0000000000001"), scope: "recO0000000000001", batchKey: "tbl1")
        let link = try await queue.enqueue(
            .patch("recP0000000000001", #"{"fields":{"Links":["\#(temporary.rawValue)"]}}"#),
            scope: "recP0000000000001",
            batchKey: "tbl1"
        )
        #expect(try await queue.claimBatch().map(\.id) == [create.id, other.id])
        try await queue.complete([create.id, other.id], resolving: [temporary: "recS0000000000001"])
        let claimed = try await queue.claimBatch()
        #expect(claimed.map(\.id) == [link.id])
        #expect(claimed.first?.request.bodyText == #"{"fields":{"Links":["recS0000000000001"]}}"#)
    }
}
