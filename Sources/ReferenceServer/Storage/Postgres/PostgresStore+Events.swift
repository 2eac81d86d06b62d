import Foundation
import PostgresNIO
import PyAirtableModels

/// The event log on PostgreSQL: the same reads, trim and counts as ``SQLiteStore``'s, over the same
/// columns. Where SQLite reads `sqlite_sequence` for the newest seq ever handed out, this store reads
/// the `event_head` row, which the writers of every instance advance at commit and trimming never
/// lowers.
extension PostgresStore: EventLogRepository {
    /// An `events` row as the wire's ``Event``.
    static func decodeEvent(from row: PostgresRandomAccessRow) throws -> Event {
        Event(
            seq: try row.get("seq", as: Int64.self),
            type: EventType(rawValue: try row.get("type", as: String.self)),
            workspaceID: try row.optionalID("workspace_id"),
            baseID: try row.optionalID("base_id"),
            tableID: try row.optionalID("table_id"),
            recordID: try row.optionalID("record_id"),
            payload: try JSONCoding.decoder.decode(
                JSONValue.self,
                from: Data(try row.get("payload", as: String.self).utf8)
            ),
            actor: try row.optionalID("actor"),
            ts: try row.date("ts")
        )
    }

    /// The oldest sequence number still in the log, and the newest handed out (0 when none).
    public func eventBounds() async throws -> (oldest: Int64, newest: Int64) {
        try await database.read { transaction in
            // One statement, so the three figures come from one snapshot; each subquery is answered
            // from an index (or the one `event_head` row).
            let row = try await transaction.row(
                """
                SELECT (SELECT MIN(seq) FROM events) AS oldest, (SELECT MAX(seq) FROM events) AS newest,
                    (SELECT seq FROM event_head WHERE id = 1) AS head
                """
            )
            let newest = try row?.get("newest", as: Int64?.self) ?? 0
            let oldest = try row?.get("oldest", as: Int64?.self) ?? newest + 1
            let head = try row?.get("head", as: Int64?.self) ?? newest
            return (oldest, max(newest, head))
        }
    }

    /// Events after `since` that the user may read (member of the event's workspace, the actor of an
    /// event outside any workspace, or one of its recipients), narrowed by `filter`.
    ///
    /// The trim check and the page are read in one snapshot: a trim committed between them could
    /// otherwise delete events after `since` that the check saw, and the page would skip them silently.
    ///
    /// - Throws: 410 `RESYNC_REQUIRED` when events after `since` were already trimmed from the log.
    public func events(since: Int64, filter: EventFilter, limit: Int, user: UserID) async throws -> EventLogPage {
        try await database.snapshot { transaction in
            let trim = try await Self.trimState(transaction)
            if Self.isTrimmed(since: since, oldest: trim.oldest, trimmedThrough: trim.trimmedThrough) {
                throw StorageError.eventsTrimmed(since: since, trimmedThrough: trim.trimmedThrough)
            }
            let query = Self.visibleEventsQuery(
                columns: "e.seq, e.type, e.workspace_id, e.base_id, e.table_id, e.record_id, e.payload, e.actor, e.ts",
                since: since,
                filter: filter,
                user: user,
                limit: limit
            )
            let events = try await transaction.rows(query).map(Self.decodeEvent(from:))
            let nextSince: Int64
            if let last = events.last {
                nextSince = last.seq
            } else {
                // Nothing visible after `since`: skip ahead to the log's head so polling stays cheap.
                let newest = try await transaction.scalar("SELECT MAX(seq) FROM events", as: Int64.self)
                nextSince = max(since, newest ?? since)
            }
            return EventLogPage(data: events, nextSince: nextSince)
        }
    }

    /// Deletes events older than `cutoff`, remembering how far the log was trimmed.
    ///
    /// Runs as a write (in the group commit): the webhooks it moves past the trimmed events are
    /// locked first, so a delivery worker of another instance advancing a cursor at the same time
    /// is never set back.
    @discardableResult
    public func trimEvents(olderThan cutoff: Date) async throws -> Int {
        try await database.write { transaction in
            guard
                let last = try await transaction.scalar(
                    "SELECT MAX(seq) FROM events WHERE ts < \(cutoff.millisecondsSince1970)",
                    as: Int64.self
                )
            else { return 0 }
            // A webhook that has not been handed these events yet (disabled for longer than the
            // retention, or a worker that was down) loses them: said in the webhook, never silent.
            let behind = try await transaction.rows(
                """
                SELECT id, base_id, cursor, disabled_reason FROM webhooks WHERE cursor < \(last)
                ORDER BY id FOR UPDATE
                """
            )
            for hook in behind {
                let id = try hook.get("id", as: String.self)
                let cursor = try hook.get("cursor", as: Int64.self)
                let base = try hook.get("base_id", as: String.self)
                let missed =
                    try await transaction.scalar(
                        "SELECT COUNT(*) FROM events WHERE base_id = \(base) AND seq > \(cursor) AND seq <= \(last)",
                        as: Int64.self
                    ) ?? 0
                var reason = try hook.get("disabled_reason", as: String?.self)
                if missed > 0 {
                    let note =
                        "\(missed) event(s) of the base through seq \(last) were removed by the event log's "
                        + "retention before this webhook received them"
                    reason = [reason, note].compactMap { $0 }.joined(separator: "; ")
                }
                try await transaction.execute(
                    "UPDATE webhooks SET cursor = \(last), disabled_reason = \(reason) WHERE id = \(id)"
                )
            }
            if !behind.isEmpty { transaction.webhooksChanged = true }
            // Counted by the server: a large trim sends back one row, not one per event.
            let deleted =
                try await transaction.scalar(
                    "WITH gone AS (DELETE FROM events WHERE seq <= \(last) RETURNING 1) SELECT COUNT(*) FROM gone",
                    as: Int64.self
                ) ?? 0
            // The greater mark wins: two instances trimming at once never lower it.
            try await transaction.execute(
                """
                INSERT INTO server_state (key, value) VALUES ('events_trimmed_through', \(String(last)))
                ON CONFLICT (key) DO UPDATE
                SET value = GREATEST(server_state.value::bigint, EXCLUDED.value::bigint)::text
                """
            )
            return Int(deleted)
        }
    }

    public func stats(visibleTo user: UserID?) async throws -> StoreStats {
        try await database.read { transaction in
            guard let user else {
                let row = try await transaction.row(
                    """
                    SELECT (SELECT COUNT(*) FROM users) AS users, (SELECT COUNT(*) FROM workspaces) AS workspaces,
                        (SELECT COUNT(*) FROM bases) AS bases, (SELECT COUNT(*) FROM tables) AS tables,
                        (SELECT COUNT(*) FROM records) AS records, (SELECT COUNT(*) FROM events) AS events,
                        (SELECT MAX(seq) FROM events) AS last_seq
                    """
                )
                return try Self.stats(from: row, defaultUsers: 0)
            }
            // Each count walks an index from the caller's memberships, never a whole table. Events
            // follow the log's rule (see `events(since:…)`): the caller's workspaces, their own
            // events outside any workspace, and events naming them as a recipient, each counted once.
            // One statement: every count comes from one snapshot.
            let row = try await transaction.row(
                """
                WITH mine AS (SELECT workspace_id FROM members WHERE user_id = \(user.rawValue)),
                    my_bases AS (SELECT id FROM bases WHERE workspace_id IN (SELECT workspace_id FROM mine)),
                    my_tables AS (SELECT id FROM tables WHERE base_id IN (SELECT id FROM my_bases))
                SELECT
                    (SELECT COUNT(*) FROM (
                        SELECT \(user.rawValue)::text AS user_id
                        UNION SELECT user_id FROM members WHERE workspace_id IN (SELECT workspace_id FROM mine)
                    ) AS visible) AS users,
                    (SELECT COUNT(*) FROM mine) AS workspaces,
                    (SELECT COUNT(*) FROM my_bases) AS bases,
                    (SELECT COUNT(*) FROM my_tables) AS tables,
                    (SELECT COUNT(*) FROM records WHERE table_id IN (SELECT id FROM my_tables)) AS records,
                    (SELECT COUNT(*) FROM events WHERE workspace_id IN (SELECT workspace_id FROM mine))
                        + (SELECT COUNT(*) FROM events WHERE workspace_id IS NULL AND actor = \(user.rawValue))
                        + (SELECT COUNT(*) FROM event_recipients r JOIN events e ON e.seq = r.seq
                            WHERE r.user_id = \(user.rawValue)
                                AND NOT (e.workspace_id IS NOT NULL
                                    AND e.workspace_id IN (SELECT workspace_id FROM mine))
                                AND NOT (e.workspace_id IS NULL AND e.actor IS NOT DISTINCT FROM \(user.rawValue)))
                        AS events,
                    (SELECT MAX(seq) FROM events) AS last_seq
                """
            )
            return try Self.stats(from: row, defaultUsers: 1)
        }
    }

    private static func stats(from row: PostgresRandomAccessRow?, defaultUsers: Int) throws -> StoreStats {
        func count(_ column: String) throws -> Int {
            try row.flatMap { try $0.get(column, as: Int64?.self) }.map(Int.init) ?? 0
        }
        return StoreStats(
            users: try row.flatMap { try $0.get("users", as: Int64?.self) }.map(Int.init) ?? defaultUsers,
            workspaces: try count("workspaces"),
            bases: try count("bases"),
            tables: try count("tables"),
            records: try count("records"),
            events: try count("events"),
            lastSeq: try row.flatMap { try $0.get("last_seq", as: Int64?.self) } ?? 0
        )
    }

    // MARK: Shared with realtime catch-up

    /// How far the log was trimmed: its oldest remaining seq and the `events_trimmed_through` mark.
    static func trimState(_ transaction: PostgresTransaction) async throws -> (oldest: Int64?, trimmedThrough: Int64) {
        let row = try await transaction.row(
            """
            SELECT (SELECT MIN(seq) FROM events) AS oldest,
                (SELECT value::bigint FROM server_state WHERE key = 'events_trimmed_through') AS trimmed_through
            """
        )
        return (
            try row?.get("oldest", as: Int64?.self),
            try row?.get("trimmed_through", as: Int64?.self) ?? 0
        )
    }

    /// Whether events after `since` were trimmed from the log (the rule of `GET /events/log`, as
    /// ``SQLiteStore/isTrimmed(_:since:)`` applies it).
    static func isTrimmed(since: Int64, oldest: Int64?, trimmedThrough: Int64) -> Bool {
        since < trimmedThrough && (oldest.map { since + 1 < $0 } ?? true)
    }

    /// The events after `since` that `user` may read and `filter` passes, oldest first, at most
    /// `limit`: the access rule of the log, written once for the log's pages and realtime catch-up.
    static func visibleEventsQuery(
        columns: String,
        since: Int64,
        filter: EventFilter,
        user: UserID,
        limit: Int
    ) -> PostgresQuery {
        var bindings = PostgresBindings(capacity: 7)
        bindings.append(since)
        bindings.append(user.rawValue)
        var sql = """
            SELECT \(columns) FROM events e
            WHERE e.seq > $1
                AND (e.workspace_id IN (SELECT workspace_id FROM members WHERE user_id = $2)
                    OR (e.workspace_id IS NULL AND e.actor = $2)
                    OR e.seq IN (SELECT seq FROM event_recipients WHERE user_id = $2))
            """
        let narrowing: [(String, String?)] = [
            ("workspace_id", filter.workspaceID?.rawValue), ("base_id", filter.baseID?.rawValue),
            ("table_id", filter.tableID?.rawValue), ("record_id", filter.recordID?.rawValue),
        ]
        for case (let column, let value?) in narrowing {
            bindings.append(value)
            sql += " AND e.\(column) = $\(bindings.count)"
        }
        bindings.append(Int64(limit))
        sql += " ORDER BY e.seq LIMIT $\(bindings.count)"
        return PostgresQuery(unsafeSQL: sql, binds: bindings)
    }
}
