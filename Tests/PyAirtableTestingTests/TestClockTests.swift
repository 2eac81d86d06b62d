import PyAirtableTesting
import TestSupport
import Testing

@Suite("TestClock", .timeLimit(.minutes(15)))
struct TestClockTests {
    @Test("a sleeper wakes only when time reaches its deadline")
    func sleepUntilAdvanced() async throws {
        let clock = TestClock()
        let woke = Counter()
        let sleeper = Task {
            try await clock.sleep(for: .seconds(5))
            _ = woke.increment()
        }
        await clock.waitForSleepers(1)
        #expect(clock.pendingDurations() == [.seconds(5)])
        clock.advance(by: .seconds(4))
        #expect(clock.sleepers() == 1)
        #expect(woke.current == 0)
        clock.advance(by: .seconds(1))
        try await sleeper.value
        #expect(woke.current == 1)
        #expect(clock.sleepers() == 0)
        #expect(clock.now == TestClock.Instant(offset: .seconds(5)))
        #expect(clock.requestedSleeps() == [.seconds(5)])
    }

    @Test("advance(to:) wakes every due sleeper and leaves the later ones")
    func advanceToWakesDueSleepers() async throws {
        let clock = TestClock()
        let start = clock.now
        let tasks = [1, 2, 3].map { seconds in
            Task { try await clock.sleep(until: start.advanced(by: .seconds(seconds)), tolerance: nil) }
        }
        await clock.waitForSleepers(3)
        clock.advance(to: start.advanced(by: .seconds(2)))
        try await tasks[0].value
        try await tasks[1].value
        #expect(clock.sleepers() == 1)
        #expect(clock.pendingDurations() == [.seconds(1)])
        clock.advance(to: start)
        #expect(clock.now == start.advanced(by: .seconds(2)), "time never goes backwards")
        clock.advance(by: .seconds(1))
        try await tasks[2].value
    }

    @Test("a deadline already passed returns at once")
    func pastDeadline() async throws {
        let clock = TestClock()
        clock.advance(by: .seconds(10))
        try await clock.sleep(until: TestClock.Instant(offset: .seconds(3)), tolerance: nil)
        try await clock.sleep(for: .zero)
        #expect(clock.sleepers() == 0)
    }

    @Test("cancelling a sleeper throws CancellationError and removes it")
    func cancellation() async throws {
        let clock = TestClock()
        let sleeper = Task { try await clock.sleep(for: .seconds(60)) }
        await clock.waitForSleepers(1)
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        #expect(clock.sleepers() == 0)

        let cancelledFirst = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await clock.sleep(for: .seconds(1))
        }
        await #expect(throws: CancellationError.self) { try await cancelledFirst.value }
        #expect(clock.sleepers() == 0)
    }

    @Test("instants measure durations between them")
    func instants() {
        let start = TestClock.Instant(offset: .seconds(1))
        let later = start.advanced(by: .milliseconds(1500))
        #expect(start.duration(to: later) == .milliseconds(1500))
        #expect(later.duration(to: start) == .milliseconds(-1500))
        #expect(start < later)
        #expect(TestClock().minimumResolution == .zero)
    }
}
