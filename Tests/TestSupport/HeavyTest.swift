import Testing

/// Runs the tests it marks one at a time.
///
/// Swift Testing runs every test of the package at once. A few tests each load the machine on their
/// own — a hundred sockets fanned out to, tens of megabytes pushed at a consumer that never reads,
/// thousands of writes replayed — and together on a loaded 2-core machine they starve each other and
/// everything else until time limits fire. Marked `.heavy`, they take turns; the rest of the suite
/// still runs beside whichever one holds the turn. A test's time limit counts its wait for the turn:
/// suites with heavy tests allow 15 minutes.
package struct HeavyTest: TestTrait, SuiteTrait, TestScoping {
    package var isRecursive: Bool { true }

    package func provideScope(
        for test: Test,
        testCase: Test.Case?,
        performing function: @Sendable () async throws -> Void
    ) async throws {
        // Called once for each test case (a recursive suite trait reaches every test in the suite).
        try await HeavyTestTurns.shared.withTurn(function)
    }
}

extension Trait where Self == HeavyTest {
    /// Runs this test (or each test of this suite) while no other heavy test runs.
    package static var heavy: Self { HeavyTest() }
}

/// Turns handed out in order of asking; a task cancelled while it waits gives up its place.
package actor HeavyTestTurns {
    package static let shared = HeavyTestTurns()

    private var busy = false
    private var waiting: [(id: Int, continuation: CheckedContinuation<Void, any Error>)] = []
    private var nextID = 0

    package func withTurn(_ body: @Sendable () async throws -> Void) async throws {
        try await take()
        do {
            try await body()
        } catch {
            handOn()
            throw error
        }
        handOn()
    }

    private func take() async throws {
        guard busy else {
            busy = true
            return
        }
        let id = nextID
        nextID += 1
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                } else {
                    waiting.append((id, continuation))
                }
            }
        } onCancel: {
            Task { await self.cancel(id) }
        }
    }

    private func cancel(_ id: Int) {
        guard let index = waiting.firstIndex(where: { $0.id == id }) else { return }
        waiting.remove(at: index).continuation.resume(throwing: CancellationError())
    }

    /// Passes the turn to the first waiter (which then holds it), or frees it.
    private func handOn() {
        if waiting.isEmpty {
            busy = false
        } else {
            waiting.removeFirst().continuation.resume()
        }
    }
}
