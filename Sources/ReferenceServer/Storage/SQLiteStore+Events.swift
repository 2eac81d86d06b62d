import Foundation
import GRDB
import PyAirtableModels

extension SQLiteStore {
    static func event(from row: Row) throws -> Event {
        Event(
            seq: row["seq"],
            type: EventType(rawValue: row["type"]),
            workspaceID: row.optionalID("workspace_id"),
            baseID: row.optionalID("base_id"),
            tableID: row.optionalID("table_id"),
            recordID: row.optionalID("record_id"),
            payload: try JSONCoding.decoder.decode(JSONValue.self, from: Data((row["payload"] as String).utf8)),
            actor: row.optionalID("actor"),
            ts: row.date("ts")
        )
    }

    /// The oldest sequence number still in the log, and the newest (0 when empty).
    public func eventBounds() async throws -> (oldest: Int64, newest: Int64) {
        try await database.read { db in
            // Two subqueries: SQLite answers a lone MIN or MAX from the index, but scans the whole
            // log for both in one SELECT.
            let row = try Row.fetchOne(
                db,
                sql: "SELECT (SELECT MIN(seq) FROM events) AS oldest, (SELECT MAX(seq) FROM events) AS newest"
            )
            let newest = (row?["newest"] as Int64?) ?? 0
            let oldest = (row?["oldest"] as Int64?) ?? newest + 1
            let sequence =
                (try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'events'")) ?? newest
            return (oldest, max(newest, sequence))
        }
    }

    /// Events after `since` that the user may read (member of the event's workspace, or the actor of
    /// an event outside any workspace), narrowed by `filter`.
    ///
    /// - Throws: 410 `RESYNC_REQUIRED` when events after `since` were already trimmed from the log.
    public func events(since: Int64, filter: EventFilter, limit: Int, user: UserID) async throws -> EventLogPage {
        try await database.read { db in
            let oldest = try Int64.fetchOne(db, sql: "SELECT MIN(seq) FROM events")
            let trimmedThrough =
                try Int64.fetchOne(
                    db,
                    sql: "SELECT CAST(value AS INTEGER) FROM server_state WHERE key = 'events_trimmed_through'"
                )
                ?? 0
            if since < trimmedThrough, oldest.map({ since + 1 < $0 }) ?? true {
                throw StorageError.eventsTrimmed(since: since, trimmedThrough: trimmedThrough)
            }
            var clauses = [
                "seq > ?",
                """
                (e.workspace_id IN (SELECT workspace_id FROM members WHERE user_id = ?)
                 OR (e.workspace_id IS NULL AND e.actor = ?)
                 OR e.seq IN (SELECT seq FROM event_recipients WHERE user_id = ?))
                """,
            ]
            var arguments: [DatabaseValue] = [
                since.databaseValue, user.rawValue.databaseValue, user.rawValue.databaseValue,
                user.rawValue.databaseValue,
            ]
            if let workspace = filter.workspaceID {
                clauses.append("e.workspace_id = ?")
                arguments.append(workspace.rawValue.databaseValue)
            }
            if let base = filter.baseID {
                clauses.append("e.base_id = ?")
                arguments.append(base.rawValue.databaseValue)
            }
            if let table = filter.tableID {
                clauses.append("e.table_id = ?")
                arguments.append(table.rawValue.databaseValue)
            }
            if let record = filter.recordID {
                clauses.append("e.record_id = ?")
                arguments.append(record.rawValue.databaseValue)
            }
            let rows = try Row.fetchAll(
                db,
                sql: "SELECT * FROM events e WHERE \(clauses.joined(separator: " AND ")) ORDER BY seq LIMIT \(limit)",
                arguments: StatementArguments(arguments)
            )
            let events = try rows.map(Self.event(from:))
            let nextSince: Int64
            if let last = events.last {
                nextSince = last.seq
            } else {
                // Nothing visible after `since`: skip ahead to the log's head so polling stays cheap.
                nextSince = max(since, try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM events") ?? since)
            }
            return EventLogPage(data: events, nextSince: nextSince)
        }
    }

    /// Deletes events older than `cutoff`, remembering how far the log was trimmed.
    @discardableResult
    public func trimEvents(olderThan cutoff: Date) async throws -> Int {
        try await database.write { db in
            let last = try Int64.fetchOne(
                db,
                sql: "SELECT MAX(seq) FROM events WHERE ts < ?",
                arguments: [cutoff.millisecondsSince1970]
            )
            guard let last else { return 0 }
            // A webhook that has not been handed these events yet (disabled for longer than the
            // retention, or a worker that was down) loses them: said in the webhook, never silent.
            let behind = try Row.fetchAll(
                db,
                sql: "SELECT id, base_id, cursor, disabled_reason FROM webhooks WHERE cursor < ?",
                arguments: [last]
            )
            for hook in behind {
                let cursor: Int64 = hook["cursor"]
                let missed =
                    try Int.fetchOne(
                        db,
                        sql: "SELECT COUNT(*) FROM events WHERE base_id = ? AND seq > ? AND seq <= ?",
                        arguments: [hook["base_id"] as String, cursor, last]
                    ) ?? 0
                var reason: String? = hook["disabled_reason"]
                if missed > 0 {
                    let note =
                        "\(missed) event(s) of the base through seq \(last) were removed by the event log's "
                        + "retention before this webhook received them"
                    reason = [reason, note].compactMap { $0 }.joined(separator: "; ")
                }
                try db.execute(
                    sql: "UPDATE webhooks SET cursor = ?, disabled_reason = ? WHERE id = ?",
                    arguments: [last, reason, hook["id"] as String]
                )
            }
            try db.execute(sql: "DELETE FROM events WHERE seq <= ?", arguments: [last])
            let deleted = db.changesCount
            try db.execute(
                sql: "INSERT OR REPLACE INTO server_state (key, value) VALUES ('events_trimmed_through', ?)",
                arguments: [String(last)]
            )
            return deleted
        }
    }

    public func stats(visibleTo user: UserID?) async throws -> StoreStats {
        try await database.read { db in
            let lastSeq = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM events") ?? 0
            guard let user else {
                func count(_ table: String) throws -> Int {
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? 0
                }
                return StoreStats(
                    users: try count("users"),
                    workspaces: try count("workspaces"),
                    bases: try count("bases"),
                    tables: try count("tables"),
                    records: try count("records"),
                    events: try count("events"),
                    lastSeq: lastSeq
                )
            }
            // Each count walks an index from the caller's memberships, never a whole table. Events
            // follow the log's rule (see `events(since:…)`): the caller's workspaces, their own
            // events outside any workspace, and events naming them as a recipient, each counted once.
            let row = try Row.fetchOne(
                db,
                sql: """
                    WITH mine AS (SELECT workspace_id FROM members WHERE user_id = ?1),
                        my_bases AS (SELECT id FROM bases WHERE workspace_id IN mine),
                        my_tables AS (SELECT id FROM tables WHERE base_id IN my_bases)
                    SELECT
                        (SELECT COUNT(*) FROM (
                            SELECT ?1 UNION SELECT user_id FROM members WHERE workspace_id IN mine)) AS users,
                        (SELECT COUNT(*) FROM mine) AS workspaces,
                        (SELECT COUNT(*) FROM my_bases) AS bases,
                        (SELECT COUNT(*) FROM my_tables) AS tables,
                        (SELECT COUNT(*) FROM records WHERE table_id IN my_tables) AS records,
                        (SELECT COUNT(*) FROM events WHERE workspace_id IN mine)
                            + (SELECT COUNT(*) FROM events WHERE workspace_id IS NULL AND actor = ?1)
                            + (SELECT COUNT(*) FROM event_recipients r JOIN events e ON e.seq = r.seq
                                WHERE r.user_id = ?1
                                    AND NOT (e.workspace_id IS NOT NULL AND e.workspace_id IN mine)
                                    AND NOT (e.workspace_id IS NULL AND e.actor IS ?1)) AS events
                    """,
                arguments: [user.rawValue]
            )
            return StoreStats(
                users: row?["users"] ?? 1,
                workspaces: row?["workspaces"] ?? 0,
                bases: row?["bases"] ?? 0,
                tables: row?["tables"] ?? 0,
                records: row?["records"] ?? 0,
                events: row?["events"] ?? 0,
                lastSeq: lastSeq
            )
        }
    }
}
