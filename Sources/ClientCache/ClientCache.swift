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
/// Writes that arrive while one is committing are committed together in one transaction. A file found
/// damaged (or replaced by another process) while open is moved aside and recreated, with a warning:
/// reads then miss and writes go to the new file.
///
/// ```swift
/// let cache = try ClientCache(
///     configuration: .init(path: path, namespace: CacheNamespace(serverURL: url, user: userID))
/// )
/// let result = try await cache.fetch("tables/tbl1/records", policy: .staleWhileRevalidate) { cached in
///     let (body, etag) = try await api.listRecords(ifNoneMatch: cached?.etag)
///     return .value(body, tags: [CacheTag("table", id: "tbl1")], etag: etag)
/// }
/// try await cache.invalidate(tags: [CacheTag("record", id: "rec7")])
/// ```
public final class ClientCache: Sendable {
    /// A loader: given the cached entry if any (for a conditional request), answers a new value or
    /// ``CacheLoad/notModified``.
    public typealias Loader = @Sendable (_ cached: CacheEntry?) async throws -> CacheLoad

    struct State {
        /// The open file; replaced when the file is found damaged while open.
        var database: CacheDatabase
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
        /// The background deletion of invalidated entries, while one runs.
        var purge: Task<Void, Never>?
        /// Whether an invalidation was recorded since the running purge last looked.
        var purgeRequested = false
    }

    /// A write: runs inside the batch's transaction, and says what it did for the memory tier.
    typealias WriteOperation = @Sendable (Database, inout CacheWriteContext, inout Changes) throws -> Void

    /// The configuration the cache was opened with.
    public let configuration: Configuration
    let namespace: String
    let logger: Logger
    let state: Mutex<State>
    private let writes = GroupCommit<WriteOperation>()
    /// Held while a damaged file is replaced, so only one caller replaces it.
    private let recovery = Mutex(())

    /// The open file.
    var database: CacheDatabase { state.withLock { $0.database } }

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
        let database = try CacheDatabase.open(path: configuration.path, now: now, logger: logger)
        let meta = try database.writer.read { db in try CacheDatabase.meta(db) }
        let generation = meta.generation
        self.state = Mutex(
            State(
                database: database,
                memory: MemoryTier(
                    maximumEntries: configuration.memoryMaximumEntries,
                    maximumBytes: configuration.memoryMaximumBytes
                ),
                knownGeneration: generation,
                lastCoherenceCheck: now
            )
        )
        if meta.tombstones > 0 {
            // A process stopped before it finished deleting what it invalidated.
            schedulePurge()
        }
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
        let database = self.database
        do {
            read = try database.writer.read { [namespace] db in
                let meta = try CacheDatabase.meta(db)
                let entry = try CacheDatabase.entry(
                    db,
                    namespace: namespace,
                    key: key,
                    tombstonesPending: meta.tombstones > 0
                )
                return (entry, meta.generation)
            }
        } catch {
            logger.warning("Cache read failed; treating as a miss", metadata: ["key": "\(key)", "error": "\(error)"])
            replaceIfUnusable(error, database: database)
            state.withLock {
                $0.statistics.memoryMisses += 1
                $0.statistics.diskMisses += 1
            }
            return nil
        }
        return state.withLock { state in
            state.statistics.memoryMisses += 1
            // Read from a file replaced meanwhile (see `replaceIfUnusable`): it answers nothing.
            guard state.database.writer === database.writer else {
                state.statistics.diskMisses += 1
                return nil
            }
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
        let database = self.database
        do {
            if database.isReplaced(path: configuration.path) {
                replaceIfUnusable(nil, database: database)
                return
            }
            let generation = try database.writer.read { db in try CacheDatabase.meta(db).generation }
            state.withLock { state in
                if state.database.writer === database.writer {
                    adopt(generation: generation, now: now, in: &state)
                }
            }
        } catch {
            logger.warning("Cache coherence check failed", metadata: ["error": "\(error)"])
            state.withLock { $0.memory.removeAll() }
            replaceIfUnusable(error, database: database)
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
        try await write { [self] db, _, changes in
            changes.bumpsGeneration = false
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
        tags: [CacheTag] = [],
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
        try await write { [namespace] db, context, changes in
            try CacheDatabase.upsert(db, namespace: namespace, entry: entry, context: &context)
            changes.stored = entry
        }
        return entry
    }

    /// What a write did, applied to the memory tier when it commits.
    struct Changes {
        var removedKeys: [String] = []
        /// Tags invalidated: memory entries providing them go.
        var invalidatedTags: [String] = []
        var stored: CacheEntry?
        /// Whether the write changes what readers see, so other instances must drop their memory tiers.
        var bumpsGeneration = true
    }

    /// Runs `operation` in a write transaction, batched with the writes of this instance that arrive
    /// meanwhile (see ``GroupCommit``).
    ///
    /// The batch then updates the file's totals and generation, evicts to the disk bound, and applies
    /// the changes to the memory tier — inside the transaction, so no other writer's change can slip
    /// between the file and the memory tier. The memory tier only ever holds entries the file holds:
    /// entries this instance evicts from the file leave memory with them, and any other writer's change
    /// bumps the generation, which empties the memory tier at the next write or coherence check.
    ///
    /// The batch runs on the caller's thread; it waits for the file's write lock (up to the busy timeout)
    /// only while another process is writing.
    func write(_ operation: @escaping WriteOperation) async throws {
        try await writes.perform(operation) { operations in
            runBatch(operations, retryingAfterRecovery: true)
        }
    }

    private func runBatch(
        _ operations: [WriteOperation],
        retryingAfterRecovery: Bool
    ) -> [Result<Void, any Error>] {
        let database = self.database
        do {
            try database.writer.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    try commit(operations, in: db)
                    return .commit
                }
            }
            return operations.map { _ in .success(()) }
        } catch {
            // The transaction may not have committed: drop what the memory tier may have taken from it.
            state.withLock {
                $0.memory.removeAll()
                $0.knownGeneration = -1
            }
            let failed = error as? OperationFailure
            let underlying = failed?.error ?? error
            if retryingAfterRecovery, replaceIfUnusable(underlying, database: database) {
                return runBatch(operations, retryingAfterRecovery: false)
            }
            if let failed, operations.count > 1 {
                // One failing write must not fail the others.
                var others = operations
                others.remove(at: failed.index)
                var results = runBatch(others, retryingAfterRecovery: retryingAfterRecovery)
                results.insert(.failure(failed.error), at: failed.index)
                return results
            }
            return operations.map { _ in .failure(underlying) }
        }
    }

    /// An operation of a batch threw: the batch is run again without it.
    private struct OperationFailure: Error {
        var index: Int
        var error: any Error
    }

    /// Runs a batch's operations, then updates the meta row, evicts, and applies it all to memory.
    private func commit(_ operations: [WriteOperation], in db: Database) throws {
        let meta = try CacheDatabase.meta(db)
        var context = CacheWriteContext(
            meta: meta,
            tombstones: meta.tombstones > 0 ? try CacheDatabase.tombstones(db) : []
        )
        var applied: [Changes] = []
        applied.reserveCapacity(operations.count)
        for (index, operation) in operations.enumerated() {
            var changes = Changes()
            do {
                try operation(db, &context, &changes)
            } catch {
                throw OperationFailure(index: index, error: error)
            }
            applied.append(changes)
        }
        if context.meta.nextID - context.meta.tagsIndexedBelow >= CacheDatabase.tagIndexBacklog {
            try CacheDatabase.indexTags(db, context: &context)
        }
        var evicted: (keys: [String], entries: Int) = ([], 0)
        if context.meta.bytes > configuration.diskMaximumBytes {
            try flushAccesses(db)
            evicted = try CacheDatabase.evict(
                db,
                toAtMost: configuration.diskMaximumBytes,
                namespace: namespace,
                context: &context
            )
        }
        if evicted.entries > 0 || applied.contains(where: \.bumpsGeneration) {
            context.meta.generation += 1
        }
        if context.meta != meta {
            try CacheDatabase.save(db, meta: context.meta)
        }
        let after = context.meta.generation
        state.withLock { state in
            if meta.generation != state.knownGeneration {
                state.memory.removeAll()
            }
            state.knownGeneration = after
            state.statistics.diskEvictions += evicted.entries
            for changes in applied {
                for key in changes.removedKeys { state.memory.remove(key) }
                if !changes.invalidatedTags.isEmpty {
                    let matcher = CacheTagMatcher(invalidated: changes.invalidatedTags)
                    state.memory.removeAll { matcher.matchesAny(of: $0.tags) }
                }
                if let stored = changes.stored {
                    state.statistics.memoryEvictions += state.memory.set(stored)
                }
            }
            // Evicted from the file at once (say, bigger than its bound): out of memory too.
            for key in evicted.keys { state.memory.remove(key) }
        }
    }

    // MARK: Damaged file

    /// When `error` says the file was damaged while open, moves it aside and opens a new one; when
    /// another process replaced the file, opens that one. Either way the memory tier is emptied.
    /// - Parameters:
    ///   - error: What a read or write met, or `nil` when checking for a replaced file.
    ///   - database: The file it met it on.
    /// - Returns: Whether another file is now open (by this call or an earlier one), so a write that
    ///   failed may be tried again.
    @discardableResult
    func replaceIfUnusable(_ error: (any Error)?, database failed: CacheDatabase) -> Bool {
        recovery.withLock { _ in
            guard state.withLock({ $0.database.writer === failed.writer }) else { return true }
            let damaged = error.map(CacheDatabase.meansDamagedFile) ?? false
            guard damaged || failed.isReplaced(path: configuration.path) else { return false }
            let database: CacheDatabase
            do {
                let aside: String?
                (database, aside) = try failed.reopen(path: configuration.path, now: configuration.now())
                if let aside {
                    logger.warning(
                        "Cache file damaged while open; moved aside and recreated",
                        metadata: [
                            "path": "\(configuration.path)", "movedTo": "\(aside)",
                            "error": "\(error.map { "\($0)" } ?? "")",
                        ]
                    )
                } else {
                    logger.warning(
                        "Cache file replaced by another process; reopened",
                        metadata: ["path": "\(configuration.path)"]
                    )
                }
            } catch {
                logger.error(
                    "Cache file unusable and could not be recreated",
                    metadata: ["path": "\(configuration.path)", "error": "\(error)"]
                )
                return false
            }
            let generation = (try? database.writer.read { db in try CacheDatabase.meta(db).generation }) ?? 0
            state.withLock { state in
                state.database = database
                state.memory.removeAll()
                state.pendingAccesses.removeAll()
                state.knownGeneration = generation
            }
            return true
        }
    }

    // MARK: Invalidation

    /// Removes the entries that provide any of `tags`, by RTK Query's rules (see ``CacheTag``).
    ///
    /// The entries are gone for every reader (in any instance or process) once this returns; their rows
    /// are deleted from the file in the background (see ``waitForPurge()``).
    /// - Returns: How many entries were removed.
    /// - Throws: A database error.
    @discardableResult
    public func invalidate(tags: [CacheTag]) async throws -> Int {
        guard !tags.isEmpty else { return 0 }
        let tags = tags.map(\.rawValue)
        let removed = Mutex(0)
        try await write { [namespace] db, context, changes in
            let count = try CacheDatabase.invalidate(db, tags: tags, namespace: namespace, context: &context)
            removed.withLock { $0 = count }
            changes.bumpsGeneration = count > 0
            if count > 0 { changes.invalidatedTags = tags }
        }
        let count = removed.withLock { $0 }
        if count > 0 { schedulePurge() }
        return count
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
        try await write { [namespace] db, context, changes in
            let live = context.meta.entries
            changes.removedKeys = try CacheDatabase.delete(
                db,
                where: condition,
                arguments: arguments,
                namespace: namespace,
                context: &context
            )
            let count = live - context.meta.entries
            removed.withLock { $0 = count }
            changes.bumpsGeneration = count > 0
        }
        return removed.withLock { $0 }
    }

    // MARK: Purging invalidated entries

    /// Starts deleting the entries of recorded invalidations in the background, unless that is running.
    private func schedulePurge() {
        state.withLock { state in
            state.purgeRequested = true
            guard state.purge == nil else { return }
            state.purge = Task { [self] in
                while true {
                    let requested = self.state.withLock { state in
                        if state.purgeRequested {
                            state.purgeRequested = false
                            return true
                        }
                        state.purge = nil
                        return false
                    }
                    if !requested { return }
                    await purgeInvalidated()
                }
            }
        }
    }

    /// Deletes the rows of invalidated entries in small transactions, so other writes wait little.
    private func purgeInvalidated() async {
        let remaining = Mutex(true)
        while remaining.withLock({ $0 }) {
            do {
                try await write { db, context, changes in
                    changes.bumpsGeneration = false
                    let more = try CacheDatabase.purge(db, limit: 256, context: &context)
                    remaining.withLock { $0 = more }
                }
            } catch {
                logger.debug("Cache purge failed", metadata: ["error": "\(error)"])
                return
            }
            await Task.yield()
        }
    }

    /// Waits until the rows of every invalidation recorded so far are deleted from the file.
    ///
    /// Invalidated entries are gone for readers at once; their rows are deleted in the background.
    public func waitForPurge() async {
        while let task = state.withLock({ $0.purge }) {
            await task.value
        }
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
        let database = self.database
        let meta: CacheDatabase.Meta?
        do {
            meta = try database.writer.read { db in try CacheDatabase.meta(db) }
        } catch {
            replaceIfUnusable(error, database: database)
            meta = nil
        }
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
