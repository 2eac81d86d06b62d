import Synchronization

/// A clock that moves only when a test moves it, so backoff, circuit-breaker timeouts and rate
/// limits can be tested without sleeping.
///
/// A task that sleeps on the clock stays suspended until ``advance(by:)`` or ``advance(to:)``
/// moves time to or past its deadline. ``waitForSleepers(_:)`` lets the test wait until the code
/// under test has gone to sleep, so the test knows when to move time.
///
/// ```swift
/// let clock = TestClock()
/// var configuration = PyAirtableClient.Configuration(serverURL: url, clock: clock)
/// configuration.transport = MockTransport([.connectionRefused, .passThrough], forwardingTo: real)
/// let client = PyAirtableClient(configuration: configuration)
/// async let me = client.users.me()
/// await clock.waitForSleepers(1)              // the retry is waiting out its backoff
/// clock.advance(by: clock.pendingDurations()[0])
/// _ = try await me
/// ```
public final class TestClock: Clock, Sendable {
    /// A point in time on a ``TestClock``: how far the clock has been advanced since it was made.
    public struct Instant: InstantProtocol, Sendable, Hashable, Comparable, CustomStringConvertible {
        /// The time since the clock's start.
        public var offset: Duration

        public init(offset: Duration) {
            self.offset = offset
        }

        public func advanced(by duration: Duration) -> Instant {
            Instant(offset: offset + duration)
        }

        public func duration(to other: Instant) -> Duration {
            other.offset - offset
        }

        public static func < (lhs: Instant, rhs: Instant) -> Bool {
            lhs.offset < rhs.offset
        }

        public var description: String { "TestClock.Instant(\(offset))" }
    }

    private struct Sleeper {
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct SleeperWaiter {
        var count: Int
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var now: Instant
        var nextID: UInt64 = 0
        var sleepers: [UInt64: Sleeper] = [:]
        var sleeperWaiters: [UInt64: SleeperWaiter] = [:]
        var requestedSleeps: [Duration] = []

        mutating func makeID() -> UInt64 {
            nextID += 1
            return nextID
        }

        /// Removes and returns the waiters whose count of sleepers is reached.
        mutating func satisfiedWaiters() -> [CheckedContinuation<Void, Never>] {
            let ready = sleeperWaiters.filter { $0.value.count <= sleepers.count }
            for id in ready.keys { sleeperWaiters.removeValue(forKey: id) }
            return ready.values.map(\.continuation)
        }
    }

    private let state: Mutex<State>

    /// Makes a clock that starts at `start` and stays there until advanced.
    public init(start: Instant = Instant(offset: .zero)) {
        self.state = Mutex(State(now: start))
    }

    /// The current time; it changes only through ``advance(by:)`` and ``advance(to:)``.
    public var now: Instant {
        state.withLock { $0.now }
    }

    public var minimumResolution: Duration { .zero }

    /// Suspends until the clock is advanced to or past `deadline`; returns at once when it already is.
    /// - Throws: `CancellationError` when the sleeping task is cancelled; the sleeper is removed.
    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        try Task.checkCancellation()
        let id = state.withLock { $0.makeID() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (immediate, waiters) = state.withLock {
                    state -> (Result<Void, any Error>?, [CheckedContinuation<Void, Never>]) in
                    state.requestedSleeps.append(state.now.duration(to: deadline))
                    // Checked under the lock that the cancellation handler takes, so a cancellation
                    // either is seen here or finds the sleeper registered.
                    if Task.isCancelled { return (.failure(CancellationError()), []) }
                    if deadline <= state.now { return (.success(()), []) }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return (nil, state.satisfiedWaiters())
                }
                for waiter in waiters { waiter.resume() }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let sleeper = state.withLock { $0.sleepers.removeValue(forKey: id) }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward by `duration` and wakes every sleeper whose deadline has come.
    public func advance(by duration: Duration) {
        let target = now.advanced(by: duration)
        advance(to: target)
    }

    /// Moves time forward to `instant` (never backwards) and wakes every sleeper whose deadline has
    /// come, earliest deadline first.
    public func advance(to instant: Instant) {
        let due = state.withLock { state -> [Sleeper] in
            if instant > state.now { state.now = instant }
            let now = state.now
            let due = state.sleepers.filter { $0.value.deadline <= now }
            for id in due.keys { state.sleepers.removeValue(forKey: id) }
            return due.values.sorted { $0.deadline < $1.deadline }
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// How many tasks are sleeping on this clock now.
    public func sleepers() -> Int {
        state.withLock { $0.sleepers.count }
    }

    /// The time left until each pending sleeper's deadline, shortest first.
    public func pendingDurations() -> [Duration] {
        state.withLock { state in
            state.sleepers.values.map { state.now.duration(to: $0.deadline) }.sorted()
        }
    }

    /// Every sleep asked of this clock so far, in order, as the duration from the time it was asked
    /// to its deadline (including sleeps that returned at once).
    public func requestedSleeps() -> [Duration] {
        state.withLock { $0.requestedSleeps }
    }

    /// Suspends until at least `count` tasks are sleeping on this clock, without sleeping itself.
    ///
    /// Returns early when the waiting task is cancelled (for example by a test's time limit).
    public func waitForSleepers(_ count: Int) async {
        let id = state.withLock { $0.makeID() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state -> Bool in
                    if Task.isCancelled || state.sleepers.count >= count { return true }
                    state.sleeperWaiters[id] = SleeperWaiter(count: count, continuation: continuation)
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.sleeperWaiters.removeValue(forKey: id) }
            waiter?.continuation.resume()
        }
    }
}
