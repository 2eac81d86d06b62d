import Synchronization

/// Wakes the delivery worker: after a commit (new events, perhaps) or a finished attempt. A signal
/// while the worker is busy is remembered, so the next wait returns at once and nothing is missed.
final class WebhookWakeup: Sendable {
    private struct State {
        var signalled = false
        var sleeper: Task<Void, Never>?
    }

    private let state = Mutex(State())
    /// The clock the waits run on.
    private let clock: any Clock<Duration>

    init(clock: any Clock<Duration> = ContinuousClock()) {
        self.clock = clock
    }

    /// Ends the current wait, or the next one if none is under way.
    func signal() {
        state.withLock { state in
            state.signalled = true
            state.sleeper?.cancel()
        }
    }

    /// Waits until a signal, `timeout`, or the calling task's cancellation, whichever comes first.
    func wait(upTo timeout: Duration) async {
        let sleeper = Task { [clock] in _ = try? await clock.sleep(for: timeout) }
        let signalled = state.withLock { state -> Bool in
            if state.signalled {
                state.signalled = false
                return true
            }
            state.sleeper = sleeper
            return false
        }
        if signalled {
            sleeper.cancel()
            return
        }
        await withTaskCancellationHandler {
            await sleeper.value
        } onCancel: {
            sleeper.cancel()
        }
        state.withLock { state in
            state.sleeper = nil
            // A signal that came before this point is answered by the pass the caller makes next,
            // even when the wait had already timed out (the signal then cancelled a finished task).
            if sleeper.isCancelled { state.signalled = false }
        }
    }
}
