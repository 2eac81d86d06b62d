import Foundation
import HTTPTypes
import HummingbirdBcrypt
import NIOPosix
import PyAirtableModels
import Synchronization

/// How passwords are hashed and checked. Every property has a default.
public struct PasswordHashingConfiguration: Sendable {
    /// The threads that run bcrypt, apart from the pool that serves file I/O and DNS, so a burst of
    /// sign-ins cannot take the threads everything else needs. Default: half the cores, at least 1.
    public var threads: Int
    /// The most password hashes and checks waiting or running at once; past it a sign-in or
    /// registration is answered 503 with `Retry-After` at once instead of queueing without bound.
    /// Default: 16.
    public var maximumPending: Int

    public init(
        threads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount / 2),
        maximumPending: Int = 16
    ) {
        self.threads = threads
        self.maximumPending = maximumPending
    }
}

/// Runs bcrypt on a thread pool of its own with a bounded queue.
///
/// The pool's threads start with the first password and stop when the hasher goes away, so a
/// server that never checks a password starts none.
final class PasswordHasher: Sendable {
    let configuration: PasswordHashingConfiguration
    let cost: UInt8
    private let pool: NIOThreadPool
    private let started = Mutex(false)
    private let pending = Atomic<Int>(0)
    /// How many bcrypt computations ran (the test seam that shows an unknown email costs one too),
    /// and a moving average of one, in nanoseconds, for `Retry-After` when the queue is full.
    private let statistics = Statistics()
    /// A well-formed bcrypt hash at ``cost`` that no password matches: checking a password against
    /// it costs what checking against a real hash does, so an unknown email answers no faster than
    /// a wrong password.
    let unmatchableHash: String

    init(configuration: PasswordHashingConfiguration, cost: UInt8) {
        self.configuration = configuration
        self.cost = cost
        self.pool = NIOThreadPool(numberOfThreads: max(1, configuration.threads))
        // A real hash at the cheapest cost, given the configured cost: same salt and format, so
        // checking against it runs the configured number of rounds (bcrypt reads the cost from the
        // hash) without paying a full-cost hash at start-up.
        let cheap = Bcrypt.hash(Authenticator.randomToken(bytes: 24), cost: 4)
        let costDigits = cost < 10 ? "0\(cost)" : "\(cost)"
        unmatchableHash = String(cheap.prefix(4)) + costDigits + String(cheap.dropFirst(6))
    }

    deinit {
        if started.withLock({ $0 }) { pool.shutdownGracefully { _ in } }
    }

    /// The bcrypt hash of `password` at the configured cost.
    func hash(_ password: String) async throws -> String {
        let cost = self.cost
        return try await run { Bcrypt.hash(password, cost: cost) }
    }

    /// Whether `password` matches `hash` (``unmatchableHash`` for an unknown account).
    func verify(_ password: String, hash: String) async throws -> Bool {
        try await run { Bcrypt.verify(password, hash: hash) }
    }

    /// How many bcrypt computations have run.
    var computationCount: Int { statistics.computations.load(ordering: .relaxed) }

    private func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async throws -> T {
        let admitted = pending.wrappingAdd(1, ordering: .relaxed).newValue
        guard admitted <= max(1, configuration.maximumPending) else {
            pending.wrappingSubtract(1, ordering: .relaxed)
            throw ServerError.passwordChecksBusy(retryAfter: retryAfter(queued: admitted - 1))
        }
        defer { pending.wrappingSubtract(1, ordering: .relaxed) }
        startIfNeeded()
        let statistics = self.statistics
        return try await pool.runIfActive {
            let start = ContinuousClock.now
            let value = body()
            statistics.record(ContinuousClock.now - start)
            return value
        }
    }

    private func startIfNeeded() {
        started.withLock { started in
            guard !started else { return }
            pool.start()
            started = true
        }
    }

    /// Seconds until the queue has likely drained enough to take another check (at least 1).
    private func retryAfter(queued: Int) -> Int {
        let average = Double(statistics.averageNanoseconds.load(ordering: .relaxed)) / 1e9
        let seconds = Double(queued) * average / Double(max(1, configuration.threads))
        return max(1, Int(seconds.rounded(.up)))
    }
}

/// What the pool's threads report about their work.
private final class Statistics: Sendable {
    let computations = Atomic<Int>(0)
    let averageNanoseconds = Atomic<Int>(0)

    func record(_ elapsed: Duration) {
        computations.wrappingAdd(1, ordering: .relaxed)
        let nanoseconds =
            Int(elapsed.components.seconds) * 1_000_000_000 + Int(elapsed.components.attoseconds / 1_000_000_000)
        let previous = averageNanoseconds.load(ordering: .relaxed)
        averageNanoseconds.store(previous == 0 ? nanoseconds : (previous * 7 + nanoseconds) / 8, ordering: .relaxed)
    }
}

extension ServerError {
    /// 503: the password pool's queue is full.
    static func passwordChecksBusy(retryAfter seconds: Int) -> ServerError {
        ServerError(
            .serviceUnavailable,
            .server,
            "the server is busy checking other passwords; retry in \(seconds) s",
            headers: [.retryAfter: String(seconds)]
        )
    }
}
