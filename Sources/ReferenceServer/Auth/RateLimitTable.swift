import Foundation
import Synchronization

/// Token buckets by key, bounded in memory: each key may make `limit.attempts` attempts at once
/// and regains them evenly over `limit.period`, so a throttled key is never locked out for longer
/// than it takes to regain one attempt.
///
/// Keys are 64-bit digests (Swift's per-process seeded hashing), so an entry costs the same for a
/// long key as for a short one. When the table holds `maximumKeys` entries, entries that have
/// regained every attempt (they say nothing a missing entry would not) are dropped, at most once a
/// second; if the table is still full, keys without an entry share one overflow bucket. Entries
/// are never evicted while they still hold back a key, so spraying new keys cannot reset the
/// count of the key under attack; it only makes new keys share the overflow's allowance until the
/// sprayed entries have refilled.
final class RateLimitTable: Sendable {
    typealias Limit = AuthThrottleConfiguration.Limit

    private struct Bucket {
        var tokens: Double
        var updated: Date

        /// Regains what time has given back, up to `capacity`.
        mutating func refill(now: Date, limit: Limit) {
            let elapsed = max(0, now.timeIntervalSince(updated))
            tokens = min(Double(limit.attempts), tokens + elapsed * limit.rate)
            updated = max(updated, now)
        }
    }

    private struct State {
        var buckets: [Int: Bucket] = [:]
        var overflow: Bucket?
        var lastSweep: Date = .distantPast
    }

    let limit: Limit
    let maximumKeys: Int
    private let state = Mutex(State())
    /// The shortest time between two sweeps of full buckets.
    private static let sweepInterval: TimeInterval = 1

    init(limit: Limit, maximumKeys: Int) {
        self.limit = Limit(attempts: max(1, limit.attempts), period: max(0.001, limit.period))
        self.maximumKeys = max(1, maximumKeys)
    }

    /// Takes one attempt for `key` at `now`.
    /// - Returns: `nil` when the attempt is allowed, else the seconds until one is.
    func take(_ key: some Hashable, now: Date) -> TimeInterval? {
        let digest = key.hashValue
        let limit = self.limit
        return state.withLock { state in
            if var bucket = state.buckets[digest] {
                bucket.refill(now: now, limit: limit)
                let wait = Self.take(&bucket, limit: limit)
                state.buckets[digest] = bucket
                return wait
            }
            if state.buckets.count >= maximumKeys { Self.sweep(&state, now: now, limit: limit) }
            if state.buckets.count < maximumKeys {
                var bucket = Bucket(tokens: Double(limit.attempts), updated: now)
                let wait = Self.take(&bucket, limit: limit)
                state.buckets[digest] = bucket
                return wait
            }
            var overflow = state.overflow ?? Bucket(tokens: Double(limit.attempts), updated: now)
            overflow.refill(now: now, limit: limit)
            let wait = Self.take(&overflow, limit: limit)
            state.overflow = overflow
            return wait
        }
    }

    /// Gives back an attempt `key` took (one that should not count, such as a successful sign-in).
    func refund(_ key: some Hashable, now: Date) {
        let digest = key.hashValue
        let limit = self.limit
        state.withLock { state in
            guard var bucket = state.buckets[digest] else { return }
            bucket.refill(now: now, limit: limit)
            bucket.tokens = min(Double(limit.attempts), bucket.tokens + 1)
            state.buckets[digest] = bucket
        }
    }

    /// How many keys have an entry.
    var count: Int { state.withLock { $0.buckets.count } }

    private static func take(_ bucket: inout Bucket, limit: Limit) -> TimeInterval? {
        if bucket.tokens >= 1 {
            bucket.tokens -= 1
            return nil
        }
        return (1 - bucket.tokens) / limit.rate
    }

    /// Drops the entries that have regained every attempt, unless a sweep ran within the last second.
    private static func sweep(_ state: inout State, now: Date, limit: Limit) {
        guard now.timeIntervalSince(state.lastSweep) >= sweepInterval || now < state.lastSweep else { return }
        state.lastSweep = now
        let capacity = Double(limit.attempts)
        state.buckets = state.buckets.filter { _, bucket in
            bucket.tokens + max(0, now.timeIntervalSince(bucket.updated)) * limit.rate < capacity
        }
    }
}

extension AuthThrottleConfiguration.Limit {
    /// Attempts regained per second.
    var rate: Double { Double(attempts) / period }
}
