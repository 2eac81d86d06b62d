import Synchronization

/// Runs write operations one batch at a time, committing together those that arrive while a batch is
/// running (group commit).
///
/// The caller that finds no batch running runs its operation at once, on its own thread, with no hop to
/// another queue; callers that arrive meanwhile wait, and the next of them runs everything waiting as
/// one batch. So a lone write pays for one transaction, and a burst of writes for few.
final class GroupCommit<Operation: Sendable>: Sendable {
    /// Runs a batch: one result per operation, in order.
    typealias Runner = ([Operation]) -> [Result<Void, any Error>]

    private struct Waiting {
        var operation: Operation
        /// Resumed with `true` when the operation ran, `false` when the waiter is to run the next batch.
        var continuation: CheckedContinuation<Bool, any Error>
    }

    private struct State {
        var running = false
        var waiting: [Waiting] = []
    }

    private let state = Mutex(State())

    /// Runs `operation`, alone or in a batch with others, through `run`.
    /// - Throws: What the operation threw.
    func perform(_ operation: Operation, run: Runner) async throws {
        let leads = state.withLock { state in
            if state.running { return false }
            state.running = true
            return true
        }
        if leads {
            try lead(operation, run: run)
            return
        }
        let ran = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Bool, any Error>) in
            let leads = state.withLock { state in
                if state.running {
                    state.waiting.append(Waiting(operation: operation, continuation: continuation))
                    return false
                }
                state.running = true
                return true
            }
            if leads { continuation.resume(returning: false) }
        }
        if !ran {
            try lead(operation, run: run)
        }
    }

    /// Runs `operation` with every operation waiting, then hands the running role to the next waiter.
    private func lead(_ operation: Operation, run: Runner) throws {
        let waiting = state.withLock { state in
            defer { state.waiting.removeAll() }
            return state.waiting
        }
        let results = run([operation] + waiting.map(\.operation))
        for (waiter, result) in zip(waiting, results.dropFirst()) {
            switch result {
            case .success: waiter.continuation.resume(returning: true)
            case .failure(let error): waiter.continuation.resume(throwing: error)
            }
        }
        let next: Waiting? = state.withLock { state in
            if state.waiting.isEmpty {
                state.running = false
                return nil
            }
            return state.waiting.removeFirst()
        }
        // The next waiter runs the next batch, so this caller returns as soon as its own write committed.
        next?.continuation.resume(returning: false)
        try results[0].get()
    }
}
