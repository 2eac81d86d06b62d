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
