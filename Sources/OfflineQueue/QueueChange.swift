/// How many mutations a queue holds, by state.
public struct QueueCounts: Sendable, Hashable, Codable {
    /// Waiting to be sent.
    public var pending: Int
    /// Claimed by a replay driver.
    public var inflight: Int
    /// On the failed list.
    public var failed: Int

    /// Makes counts.
    public init(pending: Int = 0, inflight: Int = 0, failed: Int = 0) {
        self.pending = pending
        self.inflight = inflight
        self.failed = failed
    }

    /// Every mutation held.
    public var total: Int { pending + inflight + failed }

    /// Whether nothing is waiting or in flight (failed mutations wait for a person, not for replay).
    public var isDrained: Bool { pending == 0 && inflight == 0 }
}

/// Something that happened to a queue, as ``OfflineQueue/changes()`` reports it.
public struct QueueChange: Sendable, Hashable {
    /// What happened.
    public enum Kind: String, Sendable, Hashable {
        /// Mutations were enqueued.
        case enqueued
        /// A replay driver claimed mutations.
        case claimed
        /// The server applied mutations; they left the queue.
        case completed
        /// Mutations were put back to pending: after a retryable failure, or given back by the driver.
        case released
        /// Mutations moved to the failed list.
        case failed
        /// Failed mutations were put back in the queue.
        case retried
        /// Mutations were dropped for good.
        case dropped
        /// Mutations were rewritten with server ids of records created offline.
        case resolved
        /// Mutations abandoned in flight by a stopped process were put back to pending.
        case recovered
    }

    /// What happened.
    public var kind: Kind
    /// The mutations concerned.
    public var mutationIDs: [Int64]
    /// The queue's counts just after.
    public var counts: QueueCounts

    /// Makes a change.
    public init(kind: Kind, mutationIDs: [Int64], counts: QueueCounts) {
        self.kind = kind
        self.mutationIDs = mutationIDs
        self.counts = counts
    }
}
