import Synchronization

/// Why a realtime connection's outbox stopped.
public enum RealtimeEnding: Sendable, Hashable {
    /// The consumer fell `capacity` messages behind: it is cut off rather than buffered without bound.
    case slowConsumer
    /// The connection went away (client closed, server shut down, task cancelled).
    case closed
    /// The access token the connection was opened with expired.
    case credentialExpired
}

/// The bounded queue between the hub and one connection's writer.
///
/// Live fan-out never waits: ``offer(_:)`` fails when the queue is full, and the hub then cuts the
/// connection off. Catch-up, which reads the log at its own pace, waits for room with
/// ``waitForRoom()`` instead, so a long replay is paced by the consumer rather than cut off.
///
/// A consumer either pulls with ``next()`` (Server-Sent Events), or is kicked with
/// ``drain(kicking:onEnd:)`` and takes messages with ``takeForDrain()`` (a WebSocket's channel
/// handler, writing on its event loop): then no task waits on an idle connection.
final class RealtimeOutbox: Sendable {
    private struct Drainer {
        let kick: @Sendable () -> Void
        let onEnd: @Sendable (RealtimeEnding) -> Void
        var running = false
    }

    private struct State {
        var items: [RealtimeMessage] = []
        var head = 0
        var ending: RealtimeEnding?
        var consumer: CheckedContinuation<RealtimeMessage?, Never>?
        var drainer: Drainer?
        var roomWaiters: [CheckedContinuation<Void, Never>] = []
        var endWaiters: [CheckedContinuation<RealtimeEnding, Never>] = []

        var count: Int { items.count - head }

        mutating func popFirst() -> RealtimeMessage? {
            guard head < items.count else { return nil }
            let item = items[head]
            head += 1
            if head == items.count {
                items.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 1024 && head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
            }
            return item
        }
    }

    /// The most messages held for the consumer.
    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Messages waiting for the consumer.
    var count: Int { state.withLock { $0.count } }

    /// Why the outbox stopped, once it has.
    var ending: RealtimeEnding? { state.withLock { $0.ending } }

    /// Queues `message` without waiting.
    /// - Returns: `false` when the queue is full (the message is not queued); `true` otherwise,
    ///   including after the outbox ended (the message is dropped: nobody will read it).
    @discardableResult
    func offer(_ message: RealtimeMessage) -> Bool {
        let (accepted, consumer, startDrain) = state.withLock {
            state -> (Bool, CheckedContinuation<RealtimeMessage?, Never>?, (@Sendable () -> Void)?) in
            if state.ending != nil { return (true, nil, nil) }
            if let consumer = state.consumer {
                state.consumer = nil
                return (true, consumer, nil)
            }
            if state.count >= capacity { return (false, nil, nil) }
            state.items.append(message)
            return (true, nil, Self.claimDrain(&state))
        }
        consumer?.resume(returning: message)
        startDrain?()
        return accepted
    }

    /// Calls `kick` whenever messages start to wait; the consumer then takes them with
    /// ``takeForDrain()`` until it answers `nil` (after which the next message kicks again). While it
    /// holds back (its socket is full), messages queue up to the capacity as usual.
    /// - Parameters:
    ///   - kick: Tells the consumer to take messages; called outside the outbox's lock.
    ///   - onEnd: Called once, when the outbox ends, with why.
    func drain(kicking kick: @escaping @Sendable () -> Void, onEnd: @escaping @Sendable (RealtimeEnding) -> Void) {
        let (startDrain, ended) = state.withLock { state -> ((@Sendable () -> Void)?, RealtimeEnding?) in
            if let ending = state.ending { return (nil, ending) }
            state.drainer = Drainer(kick: kick, onEnd: onEnd)
            return (state.count > 0 ? Self.claimDrain(&state) : nil, nil)
        }
        if let ended { onEnd(ended) }
        startDrain?()
    }

    /// Marks the drainer running when it is idle; answers its kick then.
    private static func claimDrain(_ state: inout State) -> (@Sendable () -> Void)? {
        guard var drainer = state.drainer, !drainer.running else { return nil }
        drainer.running = true
        state.drainer = drainer
        return drainer.kick
    }

    /// The next message for the drainer, or `nil` (the drainer then stops until the next kick)
    /// when none waits.
    func takeForDrain() -> RealtimeMessage? {
        state.withLock { state in
            if state.ending == nil || state.ending == .closed, let item = state.popFirst() {
                Self.wakeRoomWaiters(&state, capacity: capacity)
                return item
            }
            state.drainer?.running = false
            return nil
        }
    }

    /// The next message, or `nil` once the outbox ended. After `closed` the backlog still drains;
    /// after any other ending it is dropped.
    func next() async -> RealtimeMessage? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<RealtimeMessage?, Never>) in
                let ready = state.withLock { state -> RealtimeMessage?? in
                    if let ending = state.ending {
                        return ending == .closed ? .some(state.popFirst()) : .some(nil)
                    }
                    if let item = state.popFirst() {
                        Self.wakeRoomWaiters(&state, capacity: capacity)
                        return .some(item)
                    }
                    state.consumer = continuation
                    return .none
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            finish(.closed)
        }
    }

    /// Waits until the queue is at most half full, or the outbox ended.
    func waitForRoom() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.ending != nil || state.count <= capacity / 2 { return true }
                state.roomWaiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Waits until the outbox ends, and says why.
    func ended() async -> RealtimeEnding {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<RealtimeEnding, Never>) in
                let ending = state.withLock { state -> RealtimeEnding? in
                    if let ending = state.ending { return ending }
                    state.endWaiters.append(continuation)
                    return nil
                }
                if let ending { continuation.resume(returning: ending) }
            }
        } onCancel: {
            finish(.closed)
        }
    }

    /// Stops the outbox; the first ending given wins. Every waiter wakes.
    func finish(_ ending: RealtimeEnding) {
        let (consumer, roomWaiters, endWaiters, final, onEnd) = state.withLock { state in
            let first = state.ending == nil
            if first { state.ending = ending }
            if state.ending != .closed {
                state.items.removeAll()
                state.head = 0
            }
            defer {
                state.consumer = nil
                state.roomWaiters = []
                state.endWaiters = []
            }
            return (
                state.consumer, state.roomWaiters, state.endWaiters, state.ending ?? ending,
                first ? state.drainer?.onEnd : nil
            )
        }
        onEnd?(final)
        consumer?.resume(returning: nil)
        for waiter in roomWaiters { waiter.resume() }
        for waiter in endWaiters { waiter.resume(returning: final) }
    }

    private static func wakeRoomWaiters(_ state: inout State, capacity: Int) {
        guard !state.roomWaiters.isEmpty, state.count <= capacity / 2 else { return }
        let waiters = state.roomWaiters
        state.roomWaiters = []
        // Resuming under the lock is safe: the waiters only re-enter the hub's actor.
        for waiter in waiters { waiter.resume() }
    }
}

extension RealtimeOutbox {
    /// Whether a drain task runs (tests).
    var isDraining: Bool { state.withLock { $0.drainer?.running == true } }
}
