import Foundation
import GRDB
import PyAirtableModels

/// Where a full sync keeps what it fetched until it is complete: a private SQLite file of the
/// data directory (`mirror/staging.sqlite`, 0600 in a 0700 directory), beside the store, never
/// served. Each page is kept as it is fetched, so a sync interrupted by a crash or a restart goes
/// on from the page after the last one kept (when the upstream still honours its offset; Airtable's
/// expire, and then that table is read again from its start).
///
/// One sync per base at a time; finishing (or replacing) it deletes its pages.
final class MirrorStaging: Sendable {
    private let queue: DatabaseQueue

    init(directory: String) throws {
        let folder = (directory as NSString).appendingPathComponent("mirror")
        _ = try PrivateFiles.createDirectory(atPath: folder)
        let path = (folder as NSString).appendingPathComponent("staging.sqlite")
        try PrivateFiles.prepareFile(atPath: path)
        for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
            try PrivateFiles.prepareFile(atPath: path + suffix)
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.label = "pyat-mirror-staging"
        queue = try DatabaseQueue(path: path, configuration: configuration)
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA journal_mode = WAL")
        }
        try queue.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS syncs (
                        base_id TEXT PRIMARY KEY,
                        sync_id TEXT NOT NULL,
                        started_at INTEGER NOT NULL,
                        schema BLOB NOT NULL
                    );
                    CREATE TABLE IF NOT EXISTS pages (
                        base_id TEXT NOT NULL,
                        table_id TEXT NOT NULL,
                        page INTEGER NOT NULL,
                        records BLOB NOT NULL,
                        count INTEGER NOT NULL,
                        next_offset TEXT,
                        PRIMARY KEY (base_id, table_id, page)
                    );
                    """
            )
        }
    }

    /// A sync under way for a base.
    struct Sync: Sendable {
        var id: String
        var startedAt: Date
        /// The upstream's `meta/bases/{id}/tables` answer the sync started from.
        var schema: [UInt8]
    }

    /// How far a table's pages got.
    struct TableProgress: Sendable, Equatable {
        var pages = 0
        var records = 0
        /// The offset of the next page; `nil` when the last page said there is none (or none was kept).
        var nextOffset: String?
        var complete = false
    }

    func unfinished(base: BaseID) throws -> Sync? {
        try queue.read { db in
            try Row.fetchOne(
                db,
                sql: "SELECT sync_id, started_at, schema FROM syncs WHERE base_id = ?",
                arguments: [base.rawValue]
            ).map { row in
                Sync(
                    id: row["sync_id"],
                    startedAt: Date(millisecondsSince1970: row["started_at"]),
                    schema: [UInt8](row["schema"] as Data)
                )
            }
        }
    }

    /// Starts a sync, dropping whatever an earlier one of the base kept.
    func begin(base: BaseID, sync: Sync) throws {
        try queue.write { db in
            try db.execute(sql: "DELETE FROM pages WHERE base_id = ?", arguments: [base.rawValue])
            try db.execute(
                sql: "INSERT OR REPLACE INTO syncs (base_id, sync_id, started_at, schema) VALUES (?, ?, ?, ?)",
                arguments: [base.rawValue, sync.id, sync.startedAt.millisecondsSince1970, Data(sync.schema)]
            )
        }
    }

    func progress(base: BaseID, table: TableID) throws -> TableProgress {
        try queue.read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT COUNT(*) AS pages, COALESCE(SUM(count), 0) AS records,
                        (SELECT next_offset FROM pages WHERE base_id = ?1 AND table_id = ?2 ORDER BY page DESC LIMIT 1)
                            AS next_offset
                    FROM pages WHERE base_id = ?1 AND table_id = ?2
                    """,
                arguments: [base.rawValue, table.rawValue]
            )
            guard let row, let pages = row["pages"] as Int?, pages > 0 else { return TableProgress() }
            let next: String? = row["next_offset"]
            return TableProgress(pages: pages, records: row["records"], nextOffset: next, complete: next == nil)
        }
    }

    /// Keeps one page (its records as the upstream sent them, a JSON array).
    func store(base: BaseID, table: TableID, page: Int, records: [UInt8], count: Int, nextOffset: String?) throws {
        try queue.write { db in
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO pages (base_id, table_id, page, records, count, next_offset)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [base.rawValue, table.rawValue, page, Data(records), count, nextOffset]
            )
        }
    }

    /// Forgets a table's pages (its offset expired: it is read again).
    func dropTable(base: BaseID, table: TableID) throws {
        try queue.write { db in
            try db.execute(
                sql: "DELETE FROM pages WHERE base_id = ? AND table_id = ?",
                arguments: [base.rawValue, table.rawValue]
            )
        }
    }

    /// A table's pages, in order.
    func pages(base: BaseID, table: TableID) throws -> [[UInt8]] {
        try queue.read { db in
            try Data.fetchAll(
                db,
                sql: "SELECT records FROM pages WHERE base_id = ? AND table_id = ? ORDER BY page",
                arguments: [base.rawValue, table.rawValue]
            ).map { [UInt8]($0) }
        }
    }

    /// Ends the base's sync (applied, or given up for a new one).
    func finish(base: BaseID) throws {
        try queue.write { db in
            try db.execute(sql: "DELETE FROM pages WHERE base_id = ?", arguments: [base.rawValue])
            try db.execute(sql: "DELETE FROM syncs WHERE base_id = ?", arguments: [base.rawValue])
        }
    }
}
