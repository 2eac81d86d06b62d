import Synchronization
import Testing

@testable import ReferenceServer

@Suite("Realtime outbox: draining into a writer")
struct RealtimeOutboxTests {
    /// Records what the drain wrote and how the outbox ended.
    final class Recorder: Sendable {
        struct State {
            var written: [Int64] = []
            var endings: [RealtimeEnding] = []
        }

        let state = Mutex(State())
        let inbox = AsyncInbox<Int64>()

        func write(_ message: RealtimeMessage) async -> Bool {
            guard case .subscribed(_, let seq) = message else { return true }
            state.withLock { $0.written.append(seq) }
            inbox.append(seq)
            return seq >= 0
        }
    }

    private func drain(_ outbox: RealtimeOutbox, into recorder: Recorder) {
        outbox.drain(
            into: { await recorder.write($0) },
            onEnd: { ending in recorder.state.withLock { $0.endings.append(ending) } }
        )
    }

    @Test("kick mode: one kick while messages wait, none while the consumer holds back, again once it emptied")
    func kicks() {
        let outbox = RealtimeOutbox(capacity: 3)
        let kicks = Atomic<Int>(0)
        let endings = Mutex<[RealtimeEnding]>([])
        outbox.offer(.subscribed(subscription: "s", seq: 1))
        outbox.drain(
            kicking: { kicks.add(1, ordering: .relaxed) },
            onEnd: { ending in endings.withLock { $0.append(ending) } }
        )
        #expect(kicks.load(ordering: .relaxed) == 1, "a message already waited")
        outbox.offer(.subscribed(subscription: "s", seq: 2))
        #expect(kicks.load(ordering: .relaxed) == 1, "the consumer was kicked and has not emptied the queue")
        var taken: [Int64] = []
        while let message = outbox.takeForDrain() {
            if case .subscribed(_, let seq) = message { taken.append(seq) }
        }
        #expect(taken == [1, 2])
        outbox.offer(.subscribed(subscription: "s", seq: 3))
        #expect(kicks.load(ordering: .relaxed) == 2, "emptied, so the next message kicks again")
        // A consumer that stops taking (its socket is full) is cut off at the capacity.
        #expect(outbox.offer(.subscribed(subscription: "s", seq: 4)))
        #expect(outbox.offer(.subscribed(subscription: "s", seq: 5)))
        #expect(!outbox.offer(.subscribed(subscription: "s", seq: 6)))
        #expect(kicks.load(ordering: .relaxed) == 2)
        outbox.finish(.slowConsumer)
        #expect(endings.withLock { $0 } == [.slowConsumer])
    }

    @Test("messages queued before and after draining starts are written once, in order")
    func ordered() async throws {
        let outbox = RealtimeOutbox(capacity: 100)
        let recorder = Recorder()
        outbox.offer(.subscribed(subscription: "s", seq: 1))
        outbox.offer(.subscribed(subscription: "s", seq: 2))
        drain(outbox, into: recorder)
        for seq in Int64(3)...50 { outbox.offer(.subscribed(subscription: "s", seq: seq)) }
        var seen: [Int64] = []
        while seen.count < 50, let seq = await recorder.inbox.next(timeout: .seconds(30)) { seen.append(seq) }
        #expect(seen == Array(1...50))
    }

    @Test("the writer task ends with the queue, and the next message starts another")
    func writerEndsWhenIdle() async throws {
        let outbox = RealtimeOutbox(capacity: 100)
        let recorder = Recorder()
        drain(outbox, into: recorder)
        for seq in Int64(1)...3 {
            outbox.offer(.subscribed(subscription: "s", seq: seq))
            #expect(await recorder.inbox.next(timeout: .seconds(30)) == seq)
            try await waitUntil { !outbox.isDraining }
        }
        #expect(outbox.count == 0)
    }

    @Test("ending calls onEnd once with the first reason; a failed write closes the outbox")
    func ending() async throws {
        let outbox = RealtimeOutbox(capacity: 100)
        let recorder = Recorder()
        drain(outbox, into: recorder)
        outbox.offer(.subscribed(subscription: "s", seq: -1))
        #expect(await recorder.inbox.next(timeout: .seconds(30)) == -1)
        try await waitUntil { outbox.ending != nil }
        outbox.finish(.slowConsumer)
        #expect(outbox.ending == .closed)
        #expect(recorder.state.withLock { $0.endings } == [.closed])
    }

    private func waitUntil(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("the condition never held")
                return
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}
