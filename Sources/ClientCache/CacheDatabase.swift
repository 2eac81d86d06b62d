import Foundation
import GRDB
import Logging

/// The cache's SQLite file: entries, their tags, and a meta row with the file's generation and size.
///
/// The file is in WAL mode with a busy timeout, so several processes (and several ``ClientCache``
/// instances) can share it. Every write that changes content bumps the generation, which is how other
/// instances learn that their memory tier may hold something no longer true.
struct CacheDatabase: Sendable {
    /// The connection pool.
    let writer: any DatabaseWriter

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

    private init(path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.maximumReaderCount = 8
        configuration.label = "pyat-cache"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(pool)
        // A header that parses can still hide garbage; a cheap check of the schema pages catches it.
        try pool.read { db in
            _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM cache_meta")
        }
        self.writer = pool
    }

    /// Whether `error` says the file itself is unusable (and not, say, locked by another process).
    static func meansUnusableFile(_ error: DatabaseError, path: String) -> Bool {
        switch error.resultCode {
        case .SQLITE_NOTADB, .SQLITE_CORRUPT, .SQLITE_FORMAT: true
        case .SQLITE_CANTOPEN, .SQLITE_PERM: FileManager.default.fileExists(atPath: path)
        default: false
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
        return migrator
    }
}

// MARK: - Statements

extension CacheDatabase {
    /// The file's generation and totals.
    struct Meta: Sendable {
        var generation: Int64
        var bytes: Int
        var entries: Int
    }

    static func meta(_ db: Database) throws -> Meta {
        let statement = try db.cachedStatement(
            sql: "SELECT generation, total_bytes, total_entries FROM cache_meta WHERE id = 1"
        )
        guard let row = try Row.fetchOne(statement) else { return Meta(generation: 0, bytes: 0, entries: 0) }
        return Meta(generation: row[0], bytes: row[1], entries: row[2])
    }

    /// Adds to the totals and bumps the generation.
    /// - Returns: The generation before and after, and the new totals.
    static func bump(_ db: Database, bytes: Int, entries: Int) throws -> (before: Int64, after: Meta) {
        let before = try meta(db)
        let statement = try db.cachedStatement(
            sql: """
                UPDATE cache_meta SET generation = generation + 1, total_bytes = total_bytes + ?,
                total_entries = total_entries + ? WHERE id = 1
                """
        )
        try statement.execute(arguments: [bytes, entries])
        let after = Meta(
            generation: before.generation + 1,
            bytes: before.bytes + bytes,
            entries: before.entries + entries
        )
        return (before.generation, after)
    }

    static func entry(_ db: Database, namespace: String, key: String) throws -> CacheEntry? {
        let statement = try db.cachedStatement(
            sql: """
                SELECT value, tags, etag, stored_at, fresh_until, stale_until, last_access
                FROM cache_entries WHERE namespace = ? AND key = ?
                """
        )
        guard let row = try Row.fetchOne(statement, arguments: [namespace, key]) else { return nil }
        let tags: String = row[1]
        return CacheEntry(
            key: key,
            value: row[0],
            tags: tags.isEmpty ? [] : tags.split(separator: "\n").map(String.init),
            storedAt: Date(cacheMicroseconds: row[3]),
            freshUntil: Date(cacheMicroseconds: row[4]),
            staleUntil: Date(cacheMicroseconds: row[5]),
            etag: row[2],
            lastAccess: Date(cacheMicroseconds: row[6])
        )
    }

    /// Inserts or replaces `entry`, with its tags.
    /// - Returns: The change in bytes and entries.
    static func upsert(_ db: Database, namespace: String, entry: CacheEntry) throws -> (bytes: Int, entries: Int) {
        let existing = try db.cachedStatement(
            sql: "SELECT id, size FROM cache_entries WHERE namespace = ? AND key = ?"
        )
        let old = try Row.fetchOne(existing, arguments: [namespace, entry.key])
        let size = entry.size
        let id: Int64
        let fields: StatementArguments = [
            entry.value, entry.tags.joined(separator: "\n"), entry.etag, entry.storedAt.cacheMicroseconds,
            entry.freshUntil.cacheMicroseconds, entry.staleUntil.cacheMicroseconds, size,
            entry.lastAccess.cacheMicroseconds,
        ]
        if let old {
            id = old[0]
            let update = try db.cachedStatement(
                sql: """
                    UPDATE cache_entries SET value = ?, tags = ?, etag = ?, stored_at = ?, fresh_until = ?,
                    stale_until = ?, size = ?, last_access = ? WHERE id = ?
                    """
            )
            try update.execute(arguments: fields + [id])
            try db.cachedStatement(sql: "DELETE FROM cache_tags WHERE entry_id = ?").execute(arguments: [id])
        } else {
            let insert = try db.cachedStatement(
                sql: """
                    INSERT INTO cache_entries (value, tags, etag, stored_at, fresh_until, stale_until, size,
                    last_access, namespace, key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            )
            try insert.execute(arguments: fields + [namespace, entry.key])
            id = db.lastInsertedRowID
        }
        let insertTag = try db.cachedStatement(sql: "INSERT OR IGNORE INTO cache_tags (tag, entry_id) VALUES (?, ?)")
        for tag in entry.tags {
            try insertTag.execute(arguments: [tag, id])
        }
        if let old {
            let oldSize: Int = old[1]
            return (size - oldSize, 0)
        }
        return (size, 1)
    }

    /// Deletes the entries of `namespace` that match `condition` (SQL over `cache_entries`).
    /// - Returns: The keys removed and their total size.
    static func delete(
        _ db: Database,
        where condition: String,
        arguments: StatementArguments
    ) throws -> (keys: [String], bytes: Int) {
        let rows = try Row.fetchAll(
            db,
            sql: "DELETE FROM cache_entries WHERE \(condition) RETURNING key, size",
            arguments: arguments
        )
        var bytes = 0
        var keys: [String] = []
        keys.reserveCapacity(rows.count)
        for row in rows {
            keys.append(row[0])
            bytes += row[1] as Int
        }
        return (keys, bytes)
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
    /// - Returns: The keys removed from `namespace`, how many entries and bytes were removed in all.
    static func evict(
        _ db: Database,
        toAtMost bytes: Int,
        namespace: String
    ) throws -> (keys: [String], entries: Int, bytes: Int) {
        var total = try meta(db).bytes
        var keys: [String] = []
        var entries = 0
        var freed = 0
        let oldest = try db.cachedStatement(
            sql: "SELECT id, namespace, key, size FROM cache_entries ORDER BY last_access, id LIMIT 64"
        )
        let delete = try db.cachedStatement(sql: "DELETE FROM cache_entries WHERE id = ?")
        while total > bytes {
            let rows = try Row.fetchAll(oldest)
            if rows.isEmpty { break }
            for row in rows where total > bytes {
                let id: Int64 = row[0]
                let size: Int = row[3]
                try delete.execute(arguments: [id])
                if (row[1] as String) == namespace { keys.append(row[2]) }
                total -= size
                freed += size
                entries += 1
            }
        }
        return (keys, entries, freed)
    }
}
