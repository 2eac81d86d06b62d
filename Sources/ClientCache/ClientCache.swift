import Foundation
import GRDB
import Logging
import Synchronization

/// A two-tier cache for API answers: a bounded in-memory LRU over a shared SQLite file.
///
/// Entries carry a TTL, a stale-while-revalidate window, tags and a validator (ETag). Keys live in a
/// ``CacheNamespace`` (server and user), so accounts never see each other's entries. Several instances
/// (in one process or several) may share one file: each sees the others' writes and invalidations
/// within ``Configuration/coherenceInterval``.
///
/// ```swift
/// let cache = try ClientCache(
///     configuration: .init(path: path, namespace: CacheNamespace(serverURL: url, user: userID))
/// )
/// let result = try await cache.fetch("tables/tbl1/records", policy: .staleWhileRevalidate) { cached in
///     let (body, etag) = try await api.listRecords(ifNoneMatch: cached?.etag)
///     return .value(body, tags: [CacheTag.table("tbl1")], etag: etag)
/// }
/// try await cache.invalidate(tags: [CacheTag.record("rec7")])
/// ```
public final class ClientCache: Sendable {
    /// A loader: given the cached entry if any (for a conditional request), answers a new value or
    /// ``CacheLoad/notModified``.
    public typealias Loader = @Sendable (_ cached: CacheEntry?) async throws -> CacheLoad

    struct State {
        var memory: MemoryTier
        var statistics = CacheStatistics()
        /// The file generation the memory tier is known to agree with.
        var knownGeneration: Int64
        var lastCoherenceCheck: Date
        /// Last-access times not yet written to the file, by key.
        var pendingAccesses: [String: Int64] = [:]
        var accessFlushScheduled = false
        /// Background revalidations in flight, by key: at most one per key.
        var revalidations: [String: Task<Void, Never>] = [:]
    }

    /// The configuration the cache was opened with.
    public let configuration: Configuration
    let database: CacheDatabase
    let namespace: String
    let logger: Logger
    let state: Mutex<State>

    /// Opens the cache file (creating it and its directory if need be).
    ///
    /// A file that is not a readable cache is moved aside (renamed with a timestamp suffix) and a new
    /// one is created, with a warning logged.
    /// - Parameters:
    ///   - configuration: The file, namespace, bounds and clock.
    ///   - logger: Where warnings go.
    /// - Throws: When the file cannot be created at all (for example, its directory is not writable).
    public init(configuration: Configuration, logger: Logger = Logger(label: "pyat.cache")) throws {
        self.configuration = configuration
        self.logger = logger
        self.namespace = configuration.namespace.description
        let directory = (configuration.path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let now = configuration.now()
        self.database = try CacheDatabase.open(path: configuration.path, now: now, logger: logger)
        let generation = try database.writer.read { db in try CacheDatabase.meta(db).generation }
        self.state = Mutex(
            State(
                memory: MemoryTier(
                    maximumEntries: configuration.memoryMaximumEntries,
                    maximumBytes: configuration.memoryMaximumBytes
                ),
                knownGeneration: generation,
                lastCoherenceCheck: now
            )
        )
    }

    // MARK: Reading

    /// The usable entry for `key`: fresh or stale, never expired.
    /// - Returns: The entry, its freshness and the tier that answered; `nil` on a miss.
    public func get(_ key: String) -> CacheHit? {
        let hit = lookup(key, now: configuration.now(), includeExpired: false)
        if let hit, hit.freshness != .fresh {
            state.withLock { $0.statistics.staleServed += 1 }
        }
        return hit
    }

    /// Reads `key` from the memory tier, then the file, counting hits and misses.
    func lookup(_ key: String, now: Date, includeExpired: Bool) -> CacheHit? {
        let checkDue = state.withLock { now >= $0.lastCoherenceCheck.adding(configuration.coherenceInterval) }
        if checkDue { checkCoherence(now: now) }
        let memoryHit: CacheHit? = state.withLock { state in
            guard let entry = state.memory.get(key) else { return nil }
            let freshness = entry.freshness(at: now)
            if freshness == .expired && !includeExpired {
                // Another process may hold a newer value; let the file answer.
                state.memory.remove(key)
                return nil
            }
            state.statistics.memoryHits += 1
            recordAccess(key, now: now, in: &state)
            return CacheHit(entry: entry, freshness: freshness, tier: .memory)
        }
        if let memoryHit { return memoryHit }

        let read: (entry: CacheEntry?, generation: Int64)
        do {
            read = try database.writer.read { [namespace] db in
                (try CacheDatabase.entry(db, namespace: namespace, key: key), try CacheDatabase.meta(db).generation)
            }
        } catch {
            logger.warning("Cache read failed; treating as a miss", metadata: ["key": "\(key)", "error": "\(error)"])
            state.withLock {
                $0.statistics.memoryMisses += 1
                $0.statistics.diskMisses += 1
            }
            return nil
        }
        return state.withLock { state in
            state.statistics.memoryMisses += 1
            adopt(generation: read.generation, now: now, in: &state)
            guard let entry = read.entry else {
                state.statistics.diskMisses += 1
                return nil
            }
            let freshness = entry.freshness(at: now)
            if freshness == .expired && !includeExpired {
                state.statistics.diskMisses += 1
                return nil
            }
            state.statistics.diskHits += 1
            // A read older than what the memory tier knows (a write of ours committed meanwhile) must not
            // put its older value back in memory.
            if read.generation >= state.knownGeneration {
                state.statistics.memoryEvictions += state.memory.set(entry)
            }
            recordAccess(key, now: now, in: &state)
            return CacheHit(entry: entry, freshness: freshness, tier: .disk)
        }
    }

    /// Drops the memory tier if the file changed since it was last known to agree.
    private func checkCoherence(now: Date) {
        do {
            let generation = try database.writer.read { db in try CacheDatabase.meta(db).generation }
            state.withLock { adopt(generation: generation, now: now, in: &$0) }
        } catch {
            logger.warning("Cache coherence check failed", metadata: ["error": "\(error)"])
            state.withLock { $0.memory.removeAll() }
        }
    }

    /// Notes a committed generation read from the file; a newer one means another writer changed it.
    private func adopt(generation: Int64, now: Date, in state: inout State) {
        state.lastCoherenceCheck = now
        if generation > state.knownGeneration {
            state.memory.removeAll()
            state.knownGeneration = generation
        }
    }

    private func recordAccess(_ key: String, now: Date, in state: inout State) {
        state.pendingAccesses[key] = now.cacheMicroseconds
        if state.pendingAccesses.count >= configuration.accessFlushThreshold && !state.accessFlushScheduled {
            state.accessFlushScheduled = true
            Task { [self] in
                do {
                    try await flushAccesses()
                } catch {
                    logger.debug("Cache access flush failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Writes the batched last-access times of recent reads to the file (used by its LRU eviction).
    /// - Throws: A database error.
    public func flushAccesses() async throws {
        try await database.writer.write { [self] db in
            try flushAccesses(db)
        }
    }

    private func flushAccesses(_ db: Database) throws {
        let accesses = state.withLock { state in
            state.accessFlushScheduled = false
            let accesses = state.pendingAccesses
            state.pendingAccesses.removeAll(keepingCapacity: true)
            return accesses
        }
        if !accesses.isEmpty {
            try CacheDatabase.touch(db, namespace: namespace, accesses: accesses)
        }
    }

    // MARK: Writing

    /// Stores `value` under `key`, replacing any entry there.
    /// - Parameters:
    ///   - key: The key within this cache's namespace.
    ///   - value: The bytes.
    ///   - tags: The tags the value provides (see ``CacheTag``); they must not contain newlines.
    ///   - etag: The validator the server gave with the value.
    ///   - lifetime: TTL and stale window; ``Configuration/defaultLifetime`` when `nil`.
    /// - Returns: The stored entry.
    /// - Throws: A database error; the memory tier then holds nothing for `key`.
    @discardableResult
    public func set(
        _ key: String,
        value: Data,
        tags: [String] = [],
        etag: String? = nil,
        lifetime: CacheLifetime? = nil
    ) async throws -> CacheEntry {
        let now = configuration.now()
        let lifetime = lifetime ?? configuration.defaultLifetime
        let freshUntil = now.adding(lifetime.ttl)
        let entry = CacheEntry(
            key: key,
            value: value,
            tags: tags,
            storedAt: now,
            freshUntil: freshUntil,
            staleUntil: freshUntil.adding(lifetime.staleWhileRevalidate),
            etag: etag,
            lastAccess: now
        )
        try await write { [self] db, changes in
            let (bytes, entries) = try CacheDatabase.upsert(db, namespace: namespace, entry: entry)
            changes.bytes += bytes
            changes.entries += entries
            changes.stored = entry
        }
        return entry
    }

    /// What a write did, applied to the memory tier when it commits.
    struct Changes {
        var bytes = 0
        var entries = 0
        var removedKeys: [String] = []
        var stored: CacheEntry?
    }

    /// Runs `body` in a write transaction, then updates the file's totals and generation, evicts to
    /// the disk bound, and applies the changes to the memory tier — inside the transaction, so no
    /// other writer's change can slip between the file and the memory tier.
    ///
    /// The memory tier only ever holds entries the file holds: entries this instance evicts from the
    /// file leave memory with them, and any other writer's change bumps the generation, which empties
    /// the memory tier at the next write or coherence check.
    func write(_ body: @escaping @Sendable (Database, inout Changes) throws -> Void) async throws {
        do {
            try await database.writer.write { [self] db in
                var changes = Changes()
                try body(db, &changes)
                let (before, stored) = try CacheDatabase.bump(db, bytes: changes.bytes, entries: changes.entries)
                var after = stored
                var diskEvictions = 0
                if after.bytes > configuration.diskMaximumBytes {
                    try flushAccesses(db)
                    let evicted = try CacheDatabase.evict(
                        db,
                        toAtMost: configuration.diskMaximumBytes,
                        namespace: namespace
                    )
                    changes.removedKeys += evicted.keys
                    diskEvictions = evicted.entries
                    after = try CacheDatabase.bump(db, bytes: -evicted.bytes, entries: -evicted.entries).after
                }
                state.withLock { state in
                    if before != state.knownGeneration {
                        state.memory.removeAll()
                    }
                    state.knownGeneration = after.generation
                    state.statistics.diskEvictions += diskEvictions
                    for key in changes.removedKeys { state.memory.remove(key) }
                    if let stored = changes.stored {
                        // Evicted from the file at once (bigger than its bound): keep it out of memory too.
                        if changes.removedKeys.contains(stored.key) {
                            state.memory.remove(stored.key)
                        } else {
                            state.statistics.memoryEvictions += state.memory.set(stored)
                        }
                    }
                }
            }
        } catch {
            // The transaction may not have committed: drop what the memory tier may have taken from it.
            state.withLock {
                $0.memory.removeAll()
                $0.knownGeneration = -1
            }
            throw error
        }
    }

    // MARK: Invalidation

    /// Removes the entries that provide any of `tags`, by RTK Query's rules (see ``CacheTag``).
    /// - Returns: How many entries were removed from the file.
    /// - Throws: A database error.
    @discardableResult
    public func invalidate(tags: [String]) async throws -> Int {
        guard !tags.isEmpty else { return 0 }
        var clauses: [String] = []
        var arguments: StatementArguments = [namespace]
        for tag in tags {
            if CacheTag.isGeneral(tag) {
                // `type:` up to `type;` is every `type:id`, read off the tag index.
                clauses.append("tag = ? OR (tag >= ? AND tag < ?)")
                arguments += [tag, tag + ":", tag + ";"]
            } else {
                clauses.append("tag = ?")
                arguments += [tag]
            }
        }
        let condition =
            "namespace = ? AND id IN (SELECT entry_id FROM cache_tags WHERE \(clauses.joined(separator: " OR ")))"
        return try await delete(where: condition, arguments: arguments)
    }

    /// Removes the entries whose keys start with `prefix`.
    /// - Returns: How many entries were removed from the file.
    /// - Throws: A database error.
    @discardableResult
    public func invalidate(keyPrefix prefix: String) async throws -> Int {
        guard let upper = Self.upperBound(ofPrefix: prefix) else {
            return try await delete(where: "namespace = ? AND key >= ?", arguments: [namespace, prefix])
        }
        return try await delete(where: "namespace = ? AND key >= ? AND key < ?", arguments: [namespace, prefix, upper])
    }

    /// Removes the entry for `key`.
    /// - Returns: Whether the file held one.
    /// - Throws: A database error.
    @discardableResult
    public func remove(_ key: String) async throws -> Bool {
        try await delete(where: "namespace = ? AND key = ?", arguments: [namespace, key]) > 0
    }

    /// Removes every entry of this cache's namespace (or of every namespace in the file).
    /// - Parameter allNamespaces: Whether to empty the whole file.
    /// - Returns: How many entries were removed from the file.
    /// - Throws: A database error.
    @discardableResult
    public func clear(allNamespaces: Bool = false) async throws -> Int {
        if allNamespaces {
            return try await delete(where: "1", arguments: [])
        }
        return try await delete(where: "namespace = ?", arguments: [namespace])
    }

    /// Deletes matching entries from the file and drops the same keys from the memory tier, which
    /// holds only entries the file holds (see ``write(_:)``).
    private func delete(where condition: String, arguments: StatementArguments) async throws -> Int {
        let removed = Mutex(0)
        try await write { db, changes in
            let deleted = try CacheDatabase.delete(db, where: condition, arguments: arguments)
            changes.bytes -= deleted.bytes
            changes.entries -= deleted.keys.count
            changes.removedKeys = deleted.keys
            removed.withLock { $0 = deleted.keys.count }
        }
        return removed.withLock { $0 }
    }

    /// The smallest string greater than every string starting with `prefix`: `prefix` with its last
    /// scalar incremented (UTF-8 order is scalar order), or `nil` when every string qualifies.
    static func upperBound(ofPrefix prefix: String) -> String? {
        var scalars = Array(prefix.unicodeScalars)
        while let last = scalars.popLast() {
            var value = last.value + 1
            if value == 0xD800 { value = 0xE000 }
            if let next = Unicode.Scalar(value) {
                scalars.append(next)
                var result = String.UnicodeScalarView()
                result.append(contentsOf: scalars)
                return String(result)
            }
        }
        return nil
    }

    // MARK: Statistics

    /// The cache's counters, and the sizes of both tiers.
    public func statistics() -> CacheStatistics {
        let meta = try? database.writer.read { db in try CacheDatabase.meta(db) }
        return state.withLock { state in
            var statistics = state.statistics
            statistics.memoryEntries = state.memory.count
            statistics.memoryBytes = state.memory.bytes
            statistics.diskEntries = meta?.entries ?? 0
            statistics.diskBytes = meta?.bytes ?? 0
            return statistics
        }
    }
}
