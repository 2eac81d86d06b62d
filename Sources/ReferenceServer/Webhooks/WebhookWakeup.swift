import Synchronization

/// Wakes the delivery worker: after a commit (new events, perhaps) or a finished attempt. A signal
/// while the worker is busy is remembered, so the next wait returns at once and nothing is missed.
///
/// The worker waits after every commit, and a busy server commits hundreds of times a second: a
/// wait ended by a signal leaves its timer running, and the next wait reuses it while it ends no
/// later than the new deadline (when it fires early, it sleeps on until the waiter's deadline).
/// So a stream of signals costs no timer each, only the first wait of an idle spell does.
final class WebhookWakeup: Sendable {
    private struct Waiter {
        var id: UInt64
        /// When the wait times out, as an offset on ``WebhookWakeup/clock``.
        var deadline: Duration
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var signalled = false
        var waiter: Waiter?
        var nextID: UInt64 = 0
        /// Where the running timer sleeps until, while one runs.
        var timer: Duration?
        var timerTask: Task<Void, Never>?
    }

    private let state = Mutex(State())
    /// The clock the waits run on, read as offsets from when this wakeup was made.
    private let clock: any OffsetClock

    init(clock: some Clock<Duration> = ContinuousClock()) {
        self.clock = ClockOffsets(clock)
    }

    /// Whether a wait is under way (for tests).
    var isWaiting: Bool { state.withLock { $0.waiter != nil } }

    /// Ends the current wait, or the next one if none is under way.
    func signal() {
        let waiter = state.withLock { state -> Waiter? in
            guard let waiter = state.waiter else {
                state.signalled = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.continuation.resume()
    }

    /// Waits until a signal, `timeout`, or the calling task's cancellation, whichever comes first.
    func wait(upTo timeout: Duration) async {
        let deadline = clock.now() + timeout
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let waiting = state.withLock { state -> Bool in
                    // Checked under the lock the cancellation handler takes: a cancellation either
                    // shows here or finds the waiter there.
                    if state.signalled || Task.isCancelled {
                        state.signalled = false
                        return false
                    }
                    state.waiter = Waiter(id: id, deadline: deadline, continuation: continuation)
                    // A running timer that ends no later wakes this wait (or sleeps on to its deadline).
                    if let timer = state.timer, timer <= deadline { return true }
                    state.timerTask?.cancel()
                    state.timer = deadline
                    state.timerTask = Task { await self.runTimer(until: deadline) }
                    return true
                }
                if !waiting { continuation.resume() }
            }
        } onCancel: {
            // The waiter leaves: its timer goes too (a shutdown leaves nothing sleeping).
            let waiter = state.withLock { state -> Waiter? in
                guard let waiter = state.waiter, waiter.id == id else { return nil }
                state.waiter = nil
                state.timerTask?.cancel()
                state.timerTask = nil
                state.timer = nil
                return waiter
            }
            waiter?.continuation.resume()
        }
    }

    /// Sleeps until `deadline`, then ends the wait that is due, or sleeps on until the waiter's later
    /// deadline; ends when no one waits, or when a wait with an earlier deadline replaced it.
    private func runTimer(until deadline: Duration) async {
        var until = deadline
        while true {
            do {
                try await clock.sleep(until: until)
            } catch {
                return
            }
            let now = clock.now()
            let (due, next) = state.withLock { state -> (Waiter?, Duration?) in
                guard state.timer == until else { return (nil, nil) }
                guard let waiter = state.waiter else {
                    state.timer = nil
                    state.timerTask = nil
                    return (nil, nil)
                }
                if waiter.deadline <= now {
                    state.waiter = nil
                    state.timer = nil
                    state.timerTask = nil
                    return (waiter, nil)
                }
                state.timer = waiter.deadline
                return (nil, waiter.deadline)
            }
            if let due {
                due.continuation.resume()
                return
            }
            guard let next else { return }
            until = next
        }
    }
}

/// A clock read as durations since a fixed instant, so a non-generic type can hold any clock.
private protocol OffsetClock: Sendable {
    func now() -> Duration
    func sleep(until offset: Duration) async throws
}

private struct ClockOffsets<C: Clock<Duration>>: OffsetClock {
    let clock: C
    let origin: C.Instant

    init(_ clock: C) {
        self.clock = clock
        self.origin = clock.now
    }

    func now() -> Duration { origin.duration(to: clock.now) }

    func sleep(until offset: Duration) async throws {
        try await clock.sleep(until: origin.advanced(by: offset), tolerance: nil)
    }
}
