import Foundation
import GRDB
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The cache's SQLite file: entries, their tags, tombstones of invalidations not yet purged, and a meta
/// row with the file's generation, totals and id counter.
///
/// Every store gives its entry a new id, higher than any before (a replaced entry moves to a new id).
/// So "stored before" is "a lower id", which tombstones and the tag index rely on.
///
/// The tag index (`cache_tags`) is brought up to date in bulk rather than on every store: entries from
/// `tags_indexed_below` on have no tag rows yet. Every write that reads the index (an invalidation) first
/// indexes them, and a write batch does it once the backlog reaches ``tagIndexBacklog``; so a store
/// touches a handful of pages rather than one more per tag. A tag row carries its entry's namespace (as
/// a hash) and size, so an invalidation counts what it removes from the index alone.
///
/// The file is in WAL mode with a busy timeout, so several processes (and several ``ClientCache``
/// instances) can share it. Every write that changes content bumps the generation, which is how other
/// instances learn that their memory tier may hold something no longer true.
///
/// An invalidation does not delete its entries at once: it records a tombstone (the tags, and the id
/// below which entries providing them are dead) and takes the entries out of the totals.
/// Readers treat an entry a tombstone covers as absent; ``purge(_:limit:context:)`` deletes the rows later, in
/// small transactions, and then the tombstone.
struct CacheDatabase: Sendable {
    /// The connection pool.
    let writer: DatabasePool
    /// The file the pool opened, to tell when another process put a different file at the path.
    let file: FileIdentity?

    /// A file's device and inode numbers.
    struct FileIdentity: Sendable, Equatable {
        var device: UInt64
        var inode: UInt64

        /// The file at `path` now, or `nil` when there is none.
        init?(path: String) {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            self.device = UInt64(truncatingIfNeeded: info.st_dev)
            self.inode = UInt64(truncatingIfNeeded: info.st_ino)
        }
    }

    /// Opens (creating if need be) and migrates the file at `path`.
    ///
    /// A file that is not a database, or is corrupt, is renamed aside with a timestamp suffix and a
    /// new one is created in its place.
    /// - Parameters:
    ///   - path: The SQLite file.
    ///   - now: The wall clock, for the moved-aside file's suffix.
    ///   - logger: Where the warning about a moved-aside file goes.
    /// - Throws: A `DatabaseError` when even a new file cannot be opened.
    static func open(path: String, now: Date, logger: Logger) throws -> CacheDatabase {
        do {
            return try CacheDatabase(path: path)
        } catch let error as DatabaseError where Self.meansUnusableFile(error, path: path) {
            let aside = try moveAside(path: path, now: now)
            logger.warning(
                "Cache file unreadable; moved aside and recreated",
                metadata: ["path": "\(path)", "movedTo": "\(aside)", "error": "\(error)"]
            )
            return try CacheDatabase(path: path)
        }
    }

    /// Whether the file at `path` is no longer the one this database opened (another process moved it
    /// aside or replaced it).
    func isReplaced(path: String) -> Bool {
        FileIdentity(path: path) != file
    }

    /// Closes this database and opens the file at `path` again: after moving the damaged file aside,
    /// unless another process already replaced it.
    /// - Parameters:
    ///   - path: The SQLite file.
    ///   - now: The wall clock, for the moved-aside file's suffix.
    /// - Returns: The new database and where the damaged file went, if this call moved it.
    /// - Throws: When the file cannot be moved or a new one cannot be opened.
    func reopen(path: String, now: Date) throws -> (database: CacheDatabase, movedTo: String?) {
        // Closed first: a connection that closes later would delete the WAL file by name, which by then
        // would belong to the new database.
        try? writer.close()
        var aside: String?
        if !isReplaced(path: path) {
            aside = try Self.moveAside(path: path, now: now)
        }
        return (try CacheDatabase(path: path), aside)
    }

    private init(path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.maximumReaderCount = 4
        configuration.foreignKeysEnabled = false
        configuration.label = "pyat-cache"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
            // Pages of a cache file are read once and then served by the memory tier: a small page cache
            // per connection bounds the process's memory whatever the file's size.
            let kibibytes = db.configuration.readonly ? 512 : 2048
            try db.execute(sql: "PRAGMA cache_size = -\(kibibytes)")
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(pool)
        // A header that parses can still hide garbage; a cheap check of the schema pages catches it.
        try pool.read { db in
            _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM cache_meta")
        }
        self.writer = pool
        self.file = FileIdentity(path: path)
    }

    /// Whether `error` says the file itself is unusable (and not, say, locked by another process).
    static func meansUnusableFile(_ error: DatabaseError, path: String) -> Bool {
        switch error.resultCode {
        case .SQLITE_NOTADB, .SQLITE_CORRUPT, .SQLITE_FORMAT: true
        case .SQLITE_CANTOPEN, .SQLITE_PERM: FileManager.default.fileExists(atPath: path)
        default: false
        }
    }

    /// Whether `error`, met while the file was open, says the file was damaged under it.
    static func meansDamagedFile(_ error: any Error) -> Bool {
        guard let error = error as? DatabaseError else { return false }
        switch error.resultCode {
        case .SQLITE_NOTADB, .SQLITE_CORRUPT, .SQLITE_FORMAT: return true
        default: return false
        }
    }

    /// Renames the file and its WAL and shared-memory companions to `path.corrupt-<timestamp>`.
    private static func moveAside(path: String, now: Date) throws -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withYear, .withMonth, .withDay, .withTime, .withTimeZone]
        let stamp = formatter.string(from: now).replacingOccurrences(of: ":", with: "")
        var aside = "\(path).corrupt-\(stamp)"
        let files = FileManager.default
        var attempt = 1
        while files.fileExists(atPath: aside) {
            attempt += 1
            aside = "\(path).corrupt-\(stamp)-\(attempt)"
        }
        try files.moveItem(atPath: path, toPath: aside)
        for suffix in ["-wal", "-shm"] where files.fileExists(atPath: path + suffix) {
            try files.moveItem(atPath: path + suffix, toPath: aside + suffix)
        }
        return aside
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE cache_entries (
                        id INTEGER PRIMARY KEY,
                        namespace TEXT NOT NULL,
                        key TEXT NOT NULL,
                        value BLOB NOT NULL,
                        tags TEXT NOT NULL,
                        etag TEXT,
                        stored_at INTEGER NOT NULL,
                        fresh_until INTEGER NOT NULL,
                        stale_until INTEGER NOT NULL,
                        size INTEGER NOT NULL,
                        last_access INTEGER NOT NULL,
                        UNIQUE (namespace, key)
                    );
                    CREATE INDEX cache_entries_last_access ON cache_entries (last_access);
                    CREATE TABLE cache_tags (
                        tag TEXT NOT NULL,
                        entry_id INTEGER NOT NULL REFERENCES cache_entries (id) ON DELETE CASCADE,
                        PRIMARY KEY (tag, entry_id)
                    ) WITHOUT ROWID;
                    CREATE INDEX cache_tags_entry ON cache_tags (entry_id);
                    CREATE TABLE cache_meta (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        generation INTEGER NOT NULL,
                        total_bytes INTEGER NOT NULL,
                        total_entries INTEGER NOT NULL
                    );
                    INSERT INTO cache_meta (id, generation, total_bytes, total_entries) VALUES (1, 0, 0, 0);
                    """
            )
        }
        // v2 drops v1's content: it is a cache. Tag rows are found through the tags each entry lists, so
        // neither a foreign key nor an index by entry is kept up on every write.
        migrator.registerMigration("v2") { db in
            try db.execute(
                sql: """
                    DROP TABLE cache_tags;
                    DROP TABLE cache_entries;
                    DROP TABLE cache_meta;
                    CREATE TABLE cache_entries (
                        id INTEGER PRIMARY KEY,
                        namespace TEXT NOT NULL,
                        key TEXT NOT NULL,
                        value BLOB NOT NULL,
                        tags TEXT NOT NULL,
                        etag TEXT,
                        stored_at INTEGER NOT NULL,
                        fresh_until INTEGER NOT NULL,
                        stale_until INTEGER NOT NULL,
                        size INTEGER NOT NULL,
                        last_access INTEGER NOT NULL,
                        UNIQUE (namespace, key)
                    );
                    CREATE INDEX cache_entries_last_access ON cache_entries (last_access);
                    CREATE TABLE cache_tags (
                        namespace_hash INTEGER NOT NULL,
                        tag TEXT NOT NULL,
                        entry_id INTEGER NOT NULL,
                        size INTEGER NOT NULL,
                        PRIMARY KEY (namespace_hash, tag, entry_id)
                    ) WITHOUT ROWID;
                    CREATE TABLE cache_tombstones (
                        id INTEGER PRIMARY KEY,
                        namespace TEXT NOT NULL,
                        tags TEXT NOT NULL,
                        below_id INTEGER NOT NULL
                    );
                    CREATE TABLE cache_meta (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        generation INTEGER NOT NULL,
                        total_bytes INTEGER NOT NULL,
                        total_entries INTEGER NOT NULL,
                        next_id INTEGER NOT NULL,
                        tags_indexed_below INTEGER NOT NULL,
                        tombstones INTEGER NOT NULL
                    );
                    INSERT INTO cache_meta (id, generation, total_bytes, total_entries, next_id, tags_indexed_below,
                    tombstones) VALUES (1, 0, 0, 0, 1, 1, 0);
                    """
            )
        }
        return migrator
    }
}

// MARK: - Meta and tombstones

extension CacheDatabase {
    /// How many stored entries may wait for their tag rows before a write batch indexes them.
    static let tagIndexBacklog: Int64 = 128

    /// The file's generation, totals, id counter, tag index progress and count of unpurged tombstones.
    struct Meta: Sendable, Equatable {
        var generation: Int64
        var bytes: Int
        var entries: Int
        /// The id the next stored entry gets.
        var nextID: Int64
        /// Entries with a lower id have their tag rows.
        var tagsIndexedBelow: Int64
        var tombstones: Int
    }

    /// An invalidation whose entries are not all deleted yet: entries of `namespace` providing a tag
    /// that `tags` invalidates and stored before it (with an id below `belowID`) are dead.
    struct Tombstone: Sendable {
        var id: Int64
        var namespace: String
        var tags: [String]
        var belowID: Int64
        private let matcher: CacheTagMatcher

        init(id: Int64, namespace: String, tags: [String], belowID: Int64) {
            self.id = id
            self.namespace = namespace
            self.tags = tags
            self.belowID = belowID
            self.matcher = CacheTagMatcher(invalidated: tags)
        }

        /// Whether an entry with these fields is dead by this tombstone.
        func covers(namespace: String, tags provided: [String], entryID: Int64) -> Bool {
            entryID < belowID && namespace == self.namespace && matcher.matchesAny(of: provided)
        }
    }

    static func meta(_ db: Database) throws -> Meta {
        let statement = try db.cachedStatement(
            sql: """
                SELECT generation, total_bytes, total_entries, next_id, tags_indexed_below, tombstones
                FROM cache_meta WHERE id = 1
                """
        )
        guard let row = try Row.fetchOne(statement) else {
            return Meta(generation: 0, bytes: 0, entries: 0, nextID: 1, tagsIndexedBelow: 1, tombstones: 0)
        }
        return Meta(
            generation: row[0],
            bytes: row[1],
            entries: row[2],
            nextID: row[3],
            tagsIndexedBelow: row[4],
            tombstones: row[5]
        )
    }

    static func save(_ db: Database, meta: Meta) throws {
        let statement = try db.cachedStatement(
            sql: """
                UPDATE cache_meta SET generation = ?, total_bytes = ?, total_entries = ?, next_id = ?,
                tags_indexed_below = ?, tombstones = ? WHERE id = 1
                """
        )
        try statement.execute(arguments: [
            meta.generation, meta.bytes, meta.entries, meta.nextID, meta.tagsIndexedBelow, meta.tombstones,
        ])
    }

    static func tombstones(_ db: Database) throws -> [Tombstone] {
        let statement = try db.cachedStatement(
            sql: "SELECT id, namespace, tags, below_id FROM cache_tombstones ORDER BY id"
        )
        return try Row.fetchAll(statement).map { row in
            Tombstone(id: row[0], namespace: row[1], tags: splitTags(row[2]), belowID: row[3])
        }
    }

    static func splitTags(_ joined: String) -> [String] {
        joined.isEmpty ? [] : joined.split(separator: "\n").map(String.init)
    }

    /// A stable 64-bit hash (FNV-1a) of a namespace, which tag rows carry instead of its text.
    ///
    /// Two namespaces with one hash would only make an invalidation miscount; which entries it removes
    /// is decided on the namespace itself.
    static func namespaceHash(_ namespace: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in namespace.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return Int64(bitPattern: hash)
    }

    /// The SQL over `cache_tags` matching the tags of `namespace` that `invalidated` invalidates, by RTK
    /// Query's rules.
    static func tagCondition(
        _ invalidated: [String],
        namespace: String
    ) -> (sql: String, arguments: StatementArguments) {
        var clauses: [String] = []
        var arguments: StatementArguments = [namespaceHash(namespace)]
        for tag in invalidated {
            if CacheTag.isGeneral(tag) {
                // `type:` up to `type;` is every `type:id`, read off the tag index.
                clauses.append("tag = ? OR (tag >= ? AND tag < ?)")
                arguments += [tag, tag + ":", tag + ";"]
            } else {
                clauses.append("tag = ?")
                arguments += [tag]
            }
        }
        return ("namespace_hash = ? AND (\(clauses.joined(separator: " OR ")))", arguments)
    }
}

// MARK: - Statements

/// The state of one write transaction: the meta row as it will be saved, and the tombstones in force.
struct CacheWriteContext {
    var meta: CacheDatabase.Meta
    var tombstones: [CacheDatabase.Tombstone]

    /// Whether an entry with these fields is dead by a tombstone.
    func isDead(namespace: String, tags: [String], entryID: Int64) -> Bool {
        tombstones.contains { $0.covers(namespace: namespace, tags: tags, entryID: entryID) }
    }

    /// Whether the entry with this id has its tag rows.
    func hasTagRows(_ entryID: Int64) -> Bool {
        entryID < meta.tagsIndexedBelow
    }
}

extension CacheDatabase {
    /// The live entry for `key`, or `nil`.
    /// - Parameter tombstonesPending: Whether the meta row counts tombstones, which must then be checked.
    static func entry(_ db: Database, namespace: String, key: String, tombstonesPending: Bool) throws -> CacheEntry? {
        let statement = try db.cachedStatement(
            sql: """
                SELECT value, tags, etag, stored_at, fresh_until, stale_until, last_access, id
                FROM cache_entries WHERE namespace = ? AND key = ?
                """
        )
        guard let row = try Row.fetchOne(statement, arguments: [namespace, key]) else { return nil }
        let tags = splitTags(row[1])
        if tombstonesPending {
            let id: Int64 = row[7]
            if try tombstones(db).contains(where: { $0.covers(namespace: namespace, tags: tags, entryID: id) }) {
                return nil
            }
        }
        return CacheEntry(
            key: key,
            value: row[0],
            tags: tags.map(CacheTag.init(rawValue:)),
            storedAt: Date(cacheMicroseconds: row[3]),
            freshUntil: Date(cacheMicroseconds: row[4]),
            staleUntil: Date(cacheMicroseconds: row[5]),
            etag: row[2],
            lastAccess: Date(cacheMicroseconds: row[6])
        )
    }

    /// Inserts or replaces `entry` under a new id, and updates the totals in `context`; its tag rows
    /// wait for ``indexTags(_:context:)``.
    static func upsert(_ db: Database, namespace: String, entry: CacheEntry, context: inout CacheWriteContext) throws {
        let existing = try db.cachedStatement(
            sql: "SELECT id, size, tags FROM cache_entries WHERE namespace = ? AND key = ?"
        )
        let old = try Row.fetchOne(existing, arguments: [namespace, entry.key])
        let size = entry.size
        let id = context.meta.nextID
        context.meta.nextID += 1
        let fields: StatementArguments = [
            id, entry.value, entry.tags.lazy.map(\.rawValue).joined(separator: "\n"), entry.etag,
            entry.storedAt.cacheMicroseconds,
            entry.freshUntil.cacheMicroseconds, entry.staleUntil.cacheMicroseconds, size,
            entry.lastAccess.cacheMicroseconds,
        ]
        guard let old else {
            let insert = try db.cachedStatement(
                sql: """
                    INSERT INTO cache_entries (id, value, tags, etag, stored_at, fresh_until, stale_until, size,
                    last_access, namespace, key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            )
            try insert.execute(arguments: fields + [namespace, entry.key])
            context.meta.bytes += size
            context.meta.entries += 1
            return
        }
        let oldID: Int64 = old[0]
        let oldTags = splitTags(old[2])
        if context.hasTagRows(oldID) {
            try deleteTags(db, oldTags, entryID: oldID, namespace: namespace)
        }
        let update = try db.cachedStatement(
            sql: """
                UPDATE cache_entries SET id = ?, value = ?, tags = ?, etag = ?, stored_at = ?, fresh_until = ?,
                stale_until = ?, size = ?, last_access = ? WHERE id = ?
                """
        )
        try update.execute(arguments: fields + [oldID])
        if context.isDead(namespace: namespace, tags: oldTags, entryID: oldID) {
            // Already out of the totals since its invalidation.
            context.meta.bytes += size
            context.meta.entries += 1
        } else {
            context.meta.bytes += size - (old[1] as Int)
        }
    }

    /// Writes the tag rows of the entries stored since the tag index was last brought up to date.
    static func indexTags(_ db: Database, context: inout CacheWriteContext) throws {
        guard context.meta.tagsIndexedBelow < context.meta.nextID else { return }
        let pending = try db.cachedStatement(sql: "SELECT id, namespace, tags, size FROM cache_entries WHERE id >= ?")
        let insertTag = try db.cachedStatement(
            sql: "INSERT OR IGNORE INTO cache_tags (namespace_hash, tag, entry_id, size) VALUES (?, ?, ?, ?)"
        )
        var hashes: [String: Int64] = [:]
        let rows = try Row.fetchCursor(pending, arguments: [context.meta.tagsIndexedBelow])
        while let row = try rows.next() {
            let id: Int64 = row[0]
            let namespace: String = row[1]
            let size: Int = row[3]
            let hash = hashes[namespace] ?? namespaceHash(namespace)
            hashes[namespace] = hash
            for tag in splitTags(row[2]) {
                try insertTag.execute(arguments: [hash, tag, id, size])
            }
        }
        context.meta.tagsIndexedBelow = context.meta.nextID
    }

    /// Deletes the tag rows of an entry, found through its primary key.
    private static func deleteTags(_ db: Database, _ tags: [String], entryID: Int64, namespace: String) throws {
        let delete = try db.cachedStatement(
            sql: "DELETE FROM cache_tags WHERE namespace_hash = ? AND tag = ? AND entry_id = ?"
        )
        let hash = namespaceHash(namespace)
        for tag in tags {
            try delete.execute(arguments: [hash, tag, entryID])
        }
    }

    /// Deletes the entries that match `condition` (SQL over `cache_entries`) and their tags, and takes
    /// the live ones out of the totals in `context`.
    /// - Returns: The keys of the live entries removed from `namespace`.
    static func delete(
        _ db: Database,
        where condition: String,
        arguments: StatementArguments,
        namespace: String,
        context: inout CacheWriteContext
    ) throws -> [String] {
        let rows = try Row.fetchAll(
            db,
            sql: "DELETE FROM cache_entries WHERE \(condition) RETURNING id, namespace, key, size, tags",
            arguments: arguments
        )
        var keys: [String] = []
        keys.reserveCapacity(rows.count)
        for row in rows {
            let id: Int64 = row[0]
            let rowNamespace: String = row[1]
            let tags = splitTags(row[4])
            if context.hasTagRows(id) {
                try deleteTags(db, tags, entryID: id, namespace: rowNamespace)
            }
            if context.isDead(namespace: rowNamespace, tags: tags, entryID: id) { continue }
            context.meta.bytes -= row[3] as Int
            context.meta.entries -= 1
            if rowNamespace == namespace { keys.append(row[2]) }
        }
        return keys
    }

    /// Invalidates the entries of `namespace` that provide any of `tags`: takes them out of the totals
    /// and records a tombstone, leaving the rows to ``purge(_:limit:context:)``.
    /// - Returns: How many live entries the invalidation covers.
    static func invalidate(
        _ db: Database,
        tags: [String],
        namespace: String,
        context: inout CacheWriteContext
    ) throws -> Int {
        try indexTags(db, context: &context)
        let (tagSQL, tagArguments) = tagCondition(tags, namespace: namespace)
        var count = 0
        var bytes = 0
        if context.tombstones.contains(where: { $0.namespace == namespace }) {
            // Entries an earlier invalidation covers are already out of the totals.
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT DISTINCT e.tags, e.id, e.size
                    FROM cache_tags CROSS JOIN cache_entries AS e ON e.id = cache_tags.entry_id
                    WHERE \(tagSQL) AND e.namespace = ?
                    """,
                arguments: tagArguments + [namespace]
            )
            for row in rows where !context.isDead(namespace: namespace, tags: splitTags(row[0]), entryID: row[1]) {
                count += 1
                bytes += row[2] as Int
            }
        } else {
            // Counted off the tag index alone; an entry matching several tags counts once.
            let distinct = tags.count == 1 && !CacheTag.isGeneral(tags[0]) ? "" : "DISTINCT"
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT count(*), coalesce(sum(size), 0)
                    FROM (SELECT \(distinct) entry_id, size FROM cache_tags WHERE \(tagSQL))
                    """,
                arguments: tagArguments
            )
            count = row?[0] ?? 0
            bytes = row?[1] ?? 0
        }
        guard count > 0 else { return 0 }
        let below = context.meta.nextID
        try db.cachedStatement(
            sql: "INSERT INTO cache_tombstones (namespace, tags, below_id) VALUES (?, ?, ?)"
        ).execute(arguments: [namespace, tags.joined(separator: "\n"), below])
        context.tombstones.append(
            Tombstone(id: db.lastInsertedRowID, namespace: namespace, tags: tags, belowID: below)
        )
        context.meta.tombstones += 1
        context.meta.bytes -= bytes
        context.meta.entries -= count
        return count
    }

    /// Deletes up to `limit` rows of the oldest tombstone's entries; once none is left, the tombstone.
    ///
    /// The tombstone's entries all had their tag rows when it was recorded (see ``invalidate(_:tags:namespace:context:)``).
    /// - Returns: Whether tombstones remain.
    static func purge(_ db: Database, limit: Int, context: inout CacheWriteContext) throws -> Bool {
        guard let tombstone = context.tombstones.first else { return false }
        let (tagSQL, tagArguments) = tagCondition(tombstone.tags, namespace: tombstone.namespace)
        let rows = try Row.fetchAll(
            db,
            sql: """
                SELECT DISTINCT e.id, e.tags
                FROM cache_tags CROSS JOIN cache_entries AS e ON e.id = cache_tags.entry_id
                WHERE \(tagSQL) AND e.namespace = ? AND e.id < ? LIMIT ?
                """,
            arguments: tagArguments + [tombstone.namespace, tombstone.belowID, limit]
        )
        let delete = try db.cachedStatement(sql: "DELETE FROM cache_entries WHERE id = ?")
        for row in rows {
            let id: Int64 = row[0]
            try delete.execute(arguments: [id])
            try deleteTags(db, splitTags(row[1]), entryID: id, namespace: tombstone.namespace)
        }
        if rows.count < limit {
            try db.cachedStatement(sql: "DELETE FROM cache_tombstones WHERE id = ?").execute(arguments: [tombstone.id])
            context.tombstones.removeFirst()
            context.meta.tombstones = context.tombstones.count
        }
        return !context.tombstones.isEmpty
    }

    /// Records the last access of entries read since the last flush.
    static func touch(_ db: Database, namespace: String, accesses: [String: Int64]) throws {
        let statement = try db.cachedStatement(
            sql: "UPDATE cache_entries SET last_access = max(last_access, ?) WHERE namespace = ? AND key = ?"
        )
        for (key, time) in accesses {
            try statement.execute(arguments: [time, namespace, key])
        }
    }

    /// Removes least recently used entries (of any namespace) until the file holds at most `bytes`.
    /// - Returns: The keys removed from `namespace` and how many live entries were removed in all.
    static func evict(
        _ db: Database,
        toAtMost bytes: Int,
        namespace: String,
        context: inout CacheWriteContext
    ) throws -> (keys: [String], entries: Int) {
        var keys: [String] = []
        var entries = 0
        let oldest = try db.cachedStatement(
            sql: """
                SELECT id, namespace, key, size, tags FROM cache_entries
                ORDER BY last_access, id LIMIT 64
                """
        )
        let delete = try db.cachedStatement(sql: "DELETE FROM cache_entries WHERE id = ?")
        while context.meta.bytes > bytes {
            let rows = try Row.fetchAll(oldest)
            if rows.isEmpty { break }
            for row in rows where context.meta.bytes > bytes {
                let id: Int64 = row[0]
                let rowNamespace: String = row[1]
                let tags = splitTags(row[4])
                try delete.execute(arguments: [id])
                if context.hasTagRows(id) {
                    try deleteTags(db, tags, entryID: id, namespace: rowNamespace)
                }
                if context.isDead(namespace: rowNamespace, tags: tags, entryID: id) { continue }
                if rowNamespace == namespace { keys.append(row[2]) }
                context.meta.bytes -= row[3] as Int
                context.meta.entries -= 1
                entries += 1
            }
        }
        return (keys, entries)
    }
}
