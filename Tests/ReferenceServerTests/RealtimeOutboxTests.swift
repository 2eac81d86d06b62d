import Synchronization
import Testing

@testable import ReferenceServer

@Suite("Realtime outbox: kicking a consumer that takes messages")
struct RealtimeOutboxTests {
    /// A consumer that takes every waiting message when kicked, as a channel handler does.
    final class Recorder: Sendable {
        struct State {
            var taken: [Int64] = []
            var kicks = 0
            var endings: [RealtimeEnding] = []
        }

        let state = Mutex(State())

        func attach(to outbox: RealtimeOutbox) {
            outbox.drain(
                kicking: {
                    self.state.withLock { $0.kicks += 1 }
                    while let message = outbox.takeForDrain() {
                        guard case .subscribed(_, let seq) = message else { continue }
                        self.state.withLock { $0.taken.append(seq) }
                    }
                },
                onEnd: { ending in self.state.withLock { $0.endings.append(ending) } }
            )
        }
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

    @Test("messages queued before and after draining starts are taken once, in order")
    func ordered() {
        let outbox = RealtimeOutbox(capacity: 100)
        let recorder = Recorder()
        outbox.offer(.subscribed(subscription: "s", seq: 1))
        outbox.offer(.subscribed(subscription: "s", seq: 2))
        recorder.attach(to: outbox)
        for seq in Int64(3)...50 { outbox.offer(.subscribed(subscription: "s", seq: seq)) }
        #expect(recorder.state.withLock { $0.taken } == Array(1...50))
        // A consumer that emptied the queue is idle until the next message kicks it.
        #expect(!outbox.isDraining)
        #expect(recorder.state.withLock { $0.kicks } == 49)
        #expect(outbox.count == 0)
    }

    @Test("ending calls onEnd once with the first reason, also for a drainer attached after the end")
    func ending() {
        let outbox = RealtimeOutbox(capacity: 100)
        let recorder = Recorder()
        recorder.attach(to: outbox)
        outbox.finish(.closed)
        outbox.finish(.slowConsumer)
        #expect(outbox.ending == .closed)
        #expect(recorder.state.withLock { $0.endings } == [.closed])
        // A drainer attached after the end learns of it at once.
        let late = Recorder()
        late.attach(to: outbox)
        #expect(late.state.withLock { $0.endings } == [.closed])
    }
}
