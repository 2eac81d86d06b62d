import Synchronization
import Testing

@testable import ReferenceServer

@Suite("Realtime outbox: kicking a consumer that takes messages", .timeLimit(.minutes(15)))
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

    /// An event message whose JSON is `size` bytes.
    static func event(_ seq: Int64, size: Int) -> RealtimeMessage {
        let event = RealtimeEvent(
            seq: seq,
            type: "record.updated",
            workspaceID: nil,
            baseID: nil,
            tableID: nil,
            recordID: nil,
            actor: nil,
            recipients: [],
            json: String(repeating: "x", count: size)
        )
        return .event(subscription: "s", subscriptionJSON: "\"s\"", event: event)
    }

    @Test("bounded in bytes: a consumer holding back is refused past the byte bound, far below the message bound")
    func byteBound() {
        let outbox = RealtimeOutbox(capacity: 100, maximumBytes: 10_000)
        let size = Self.event(0, size: 1000).byteCount
        #expect(size == 1000 + 3 + RealtimeMessage.frameOverhead)
        var accepted = 0
        for seq in 1...100 where outbox.offer(Self.event(Int64(seq), size: 1000)) { accepted += 1 }
        #expect(accepted == 10_000 / size, "cut off by bytes, not at the 100-message capacity")
        #expect(outbox.count == accepted)
        #expect(outbox.queuedBytes == accepted * size)
        #expect(!outbox.accepts(bytes: size))
        // Taking one makes room for one.
        #expect(outbox.takeForDrain() != nil)
        #expect(outbox.queuedBytes == (accepted - 1) * size)
        #expect(outbox.offer(Self.event(1000, size: 1000)))
        #expect(!outbox.offer(Self.event(1001, size: 1000)))
        outbox.finish(.slowConsumer)
        #expect(outbox.queuedBytes == 0 && outbox.count == 0)
    }

    @Test("one message larger than the byte bound passes alone; nothing joins it")
    func oversizedMessageAlone() {
        let outbox = RealtimeOutbox(capacity: 100, maximumBytes: 1000)
        #expect(outbox.offer(Self.event(1, size: 5000)), "a consumer that keeps up is not cut off by one large event")
        #expect(!outbox.offer(Self.event(2, size: 10)))
        #expect(outbox.takeForDrain() != nil)
        #expect(outbox.queuedBytes == 0)
        #expect(outbox.offer(Self.event(3, size: 10)))
    }

    @Test("catch-up waits until the queue is half empty in bytes and its next message fits")
    func waitForRoomInBytes() async throws {
        let outbox = RealtimeOutbox(capacity: 100, maximumBytes: 10_000)
        let size = Self.event(0, size: 1000).byteCount
        for seq in 1...9 { #expect(outbox.offer(Self.event(Int64(seq), size: 1000))) }
        let woken = Atomic<Bool>(false)
        let waiter = Task {
            await outbox.waitForRoom(bytes: size)
            woken.store(true, ordering: .releasing)
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while outbox.roomWaiterCount == 0, ContinuousClock.now < deadline { await Task.yield() }
        #expect(outbox.roomWaiterCount == 1)
        // Nine messages (9 603 bytes) wait; after four are taken 5 335 remain, above half the bound.
        for _ in 0..<4 { #expect(outbox.takeForDrain() != nil) }
        let wokenEarly = woken.load(ordering: .acquiring)
        #expect(outbox.roomWaiterCount == 1 && !wokenEarly)
        #expect(outbox.takeForDrain() != nil)
        #expect(outbox.roomWaiterCount == 0, "4 268 bytes remain: the waiter is resumed")
        await waiter.value
        let wokenAtLast = woken.load(ordering: .acquiring)
        #expect(wokenAtLast)
    }
}
