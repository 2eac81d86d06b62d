import Synchronization

/// Why a realtime connection's outbox stopped.
public enum RealtimeEnding: Sendable, Hashable {
    /// The consumer fell `capacity` messages, or `maximumBytes` bytes, behind: it is cut off rather
    /// than buffered without bound.
    case slowConsumer
    /// The connection went away (client closed, server shut down, task cancelled).
    case closed
    /// The access token the connection was opened with expired.
    case credentialExpired
}

/// The bounded queue between the hub and one connection's writer, bounded both in messages and in
/// the bytes they will take on the wire (a few large events must not hold what thousands of small
/// ones would).
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
        /// The wire size of the messages waiting (``RealtimeMessage/byteCount``).
        var bytes = 0
        /// Catch-up waiting for room, each with the size of the message it wants to queue next.
        var roomWaiters: [(bytes: Int, continuation: CheckedContinuation<Void, Never>)] = []
        var ending: RealtimeEnding?
        var consumer: CheckedContinuation<RealtimeMessage?, Never>?
        var drainer: Drainer?
        var endWaiters: [CheckedContinuation<RealtimeEnding, Never>] = []

        var count: Int { items.count - head }

        mutating func popFirst() -> RealtimeMessage? {
            guard head < items.count else { return nil }
            let item = items[head]
            head += 1
            bytes -= item.byteCount
            if head == items.count {
                items.removeAll(keepingCapacity: true)
                head = 0
                bytes = 0
            } else if head >= 1024 && head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
            }
            return item
        }
    }

    /// The most messages held for the consumer.
    let capacity: Int
    /// The most bytes held for the consumer. One message larger than this still passes alone, when
    /// nothing else waits: a single large event must not cut off a consumer that keeps up.
    let maximumBytes: Int
    private let state = Mutex(State())

    init(capacity: Int, maximumBytes: Int = .max) {
        self.capacity = max(1, capacity)
        self.maximumBytes = max(1, maximumBytes)
    }

    /// Messages waiting for the consumer.
    var count: Int { state.withLock { $0.count } }

    /// The wire size of the messages waiting for the consumer.
    var queuedBytes: Int { state.withLock { $0.bytes } }

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
            guard Self.fits(message.byteCount, in: state, capacity: capacity, maximumBytes: maximumBytes) else {
                return (false, nil, nil)
            }
            state.items.append(message)
            state.bytes += message.byteCount
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
                Self.wakeRoomWaiters(&state, capacity: capacity, maximumBytes: maximumBytes)
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
                        Self.wakeRoomWaiters(&state, capacity: capacity, maximumBytes: maximumBytes)
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

    /// Waits until the queue is at most half full in messages and in bytes, and a message of
    /// `bytes` would be accepted, or until the outbox ended.
    func waitForRoom(bytes: Int = 0) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.ending != nil
                    || Self.hasRoom(for: bytes, in: state, capacity: capacity, maximumBytes: maximumBytes)
                {
                    return true
                }
                state.roomWaiters.append((bytes, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Whether ``offer(_:)`` would now queue a message of `bytes` (only consumers change that, by
    /// taking messages, until the caller offers).
    func accepts(bytes: Int) -> Bool {
        state.withLock { state in
            state.ending != nil || state.consumer != nil
                || Self.fits(bytes, in: state, capacity: capacity, maximumBytes: maximumBytes)
        }
    }

    /// Whether a message of `bytes` may join the queue now.
    private static func fits(_ bytes: Int, in state: State, capacity: Int, maximumBytes: Int) -> Bool {
        guard state.count < capacity else { return false }
        return state.count == 0 || state.bytes + bytes <= maximumBytes
    }

    /// Whether catch-up may go on: the queue at most half full, and the next message would fit.
    private static func hasRoom(for bytes: Int, in state: State, capacity: Int, maximumBytes: Int) -> Bool {
        state.count <= capacity / 2 && state.bytes <= maximumBytes / 2
            && fits(bytes, in: state, capacity: capacity, maximumBytes: maximumBytes)
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
                state.bytes = 0
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
        for waiter in roomWaiters { waiter.continuation.resume() }
        for waiter in endWaiters { waiter.resume(returning: final) }
    }

    private static func wakeRoomWaiters(_ state: inout State, capacity: Int, maximumBytes: Int) {
        guard !state.roomWaiters.isEmpty else { return }
        var waiting: [(bytes: Int, continuation: CheckedContinuation<Void, Never>)] = []
        for waiter in state.roomWaiters {
            if hasRoom(for: waiter.bytes, in: state, capacity: capacity, maximumBytes: maximumBytes) {
                // Resuming under the lock is safe: the waiters only re-enter the hub's actor.
                waiter.continuation.resume()
            } else {
                waiting.append(waiter)
            }
        }
        state.roomWaiters = waiting
    }
}

extension RealtimeOutbox {
    /// Whether a drain task runs (tests).
    var isDraining: Bool { state.withLock { $0.drainer?.running == true } }

    /// Catch-up passes waiting for room (tests).
    var roomWaiterCount: Int { state.withLock { $0.roomWaiters.count } }
}
