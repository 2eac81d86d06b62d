import Foundation
import GRDB
import PyAirtableModels

extension SQLiteStore: RealtimeEventSource {
    public func observeCommits(_ observer: @escaping @Sendable () -> Void) {
        database.commits.observe(observer)
    }

    /// The newest committed event's seq, as the writer reported it: no read.
    public func realtimeHead() async throws -> Int64 {
        database.facts.eventHead
    }

    public func realtimeEvents(after seq: Int64, limit: Int) async throws -> [RealtimeEvent] {
        try await database.read { db in
            let rows = try Row.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT e.seq, e.type, e.workspace_id, e.base_id, e.table_id, e.record_id, e.payload,
                               e.actor, e.ts,
                               (SELECT group_concat(r.user_id, ' ') FROM event_recipients r WHERE r.seq = e.seq)
                                   AS recipients
                        FROM events e WHERE e.seq > ? ORDER BY e.seq LIMIT ?
                        """
                ),
                arguments: [seq, limit]
            )
            return rows.map(Self.realtimeEvent(from:))
        }
    }

    public func realtimeCatchUp(
        after seq: Int64,
        filter: EventFilter,
        user: UserID,
        limit: Int
    ) async throws -> RealtimeCatchUp {
        try await database.read { db in
            // One read transaction: the head and the page come from the same snapshot, so a page
            // shorter than `limit` covers everything through the head.
            let head = try Self.eventHead(db)
            if try seq > head || Self.isTrimmed(db, since: seq) {
                return .resyncRequired(head: head)
            }
            var clauses = [
                "e.seq > ?",
                """
                (e.workspace_id IN (SELECT workspace_id FROM members WHERE user_id = ?)
                 OR (e.workspace_id IS NULL AND e.actor = ?)
                 OR e.seq IN (SELECT seq FROM event_recipients WHERE user_id = ?))
                """,
            ]
            var arguments: [DatabaseValue] = [
                seq.databaseValue, user.rawValue.databaseValue, user.rawValue.databaseValue,
                user.rawValue.databaseValue,
            ]
            let narrowing: [(String, String?)] = [
                ("workspace_id", filter.workspaceID?.rawValue), ("base_id", filter.baseID?.rawValue),
                ("table_id", filter.tableID?.rawValue), ("record_id", filter.recordID?.rawValue),
            ]
            for case (let column, let value?) in narrowing {
                clauses.append("e.\(column) = ?")
                arguments.append(value.databaseValue)
            }
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT e.seq, e.type, e.workspace_id, e.base_id, e.table_id, e.record_id, e.payload, e.actor,
                           e.ts, NULL AS recipients
                    FROM events e WHERE \(clauses.joined(separator: " AND ")) ORDER BY e.seq LIMIT \(limit)
                    """,
                arguments: StatementArguments(arguments)
            )
            let events = rows.map(Self.realtimeEvent(from:))
            let through = events.count == limit ? (events.last?.seq ?? seq) : head
            return .events(events, through: through)
        }
    }

    public func workspaceMemberships(of users: [UserID]) async throws -> [UserID: Set<String>] {
        guard !users.isEmpty else { return [:] }
        return try await database.read { db in
            var memberships: [UserID: Set<String>] = [:]
            for user in users { memberships[user] = [] }
            // SQLite caps bound parameters; ask in chunks.
            var start = 0
            while start < users.count {
                let chunk = users[start..<min(start + 500, users.count)]
                let placeholders = Array(repeating: "?", count: chunk.count).joined(separator: ",")
                let rows = try Row.fetchAll(
                    db,
                    sql: "SELECT user_id, workspace_id FROM members WHERE user_id IN (\(placeholders))",
                    arguments: StatementArguments(chunk.map(\.rawValue))
                )
                for row in rows {
                    memberships[Identifier(unchecked: row["user_id"] as String), default: []]
                        .insert(row["workspace_id"])
                }
                start += chunk.count
            }
            return memberships
        }
    }

    /// The newest seq handed out, counting events already trimmed.
    static func eventHead(_ db: Database) throws -> Int64 {
        let newest = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM events") ?? 0
        let sequence = try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'events'") ?? 0
        return max(newest, sequence)
    }

    /// Whether events after `since` were trimmed from the log (the rule of `GET /events/log`).
    static func isTrimmed(_ db: Database, since: Int64) throws -> Bool {
        let oldest = try Int64.fetchOne(db, sql: "SELECT MIN(seq) FROM events")
        let trimmedThrough =
            try Int64.fetchOne(
                db,
                sql: "SELECT CAST(value AS INTEGER) FROM server_state WHERE key = 'events_trimmed_through'"
            ) ?? 0
        return since < trimmedThrough && (oldest.map { since + 1 < $0 } ?? true)
    }

    /// An event row as fan-out carries it (its JSON by ``RealtimeEvent/fromColumns``, shared with
    /// the PostgreSQL store).
    static func realtimeEvent(from row: Row) -> RealtimeEvent {
        RealtimeEvent.fromColumns(
            seq: row["seq"],
            type: row["type"],
            workspaceID: row["workspace_id"],
            baseID: row["base_id"],
            tableID: row["table_id"],
            recordID: row["record_id"],
            actor: row["actor"],
            payload: row["payload"],
            ts: row.date("ts"),
            recipients: row["recipients"]
        )
    }
}

extension RealtimeEvent {
    /// An event as fan-out carries it, from the columns of its stored row, its JSON written from
    /// them (the payload is already wire JSON), keys sorted as ``JSONCoding/encoder`` sorts them.
    ///
    /// Shared by every store, so the same event reaches a subscriber as the same bytes whichever
    /// database holds it.
    /// - Parameter recipients: The recipients' ids separated by spaces, `nil` when none.
    static func fromColumns(
        seq: Int64,
        type: String,
        workspaceID: String?,
        baseID: String?,
        tableID: String?,
        recordID: String?,
        actor: String?,
        payload: String,
        ts date: Date,
        recipients: String?
    ) -> RealtimeEvent {
        let ts = Timestamp.format(date)
        var json = "{"
        json.reserveCapacity(payload.utf8.count + 256)
        var first = true
        func member(_ key: String, _ value: String?, quoted: Bool = true) {
            guard let value else { return }
            if !first { json += "," }
            first = false
            json += "\""
            json += key
            json += "\":"
            json += quoted ? JSONText.quoted(value) : value
        }
        member("actor", actor)
        member("base_id", baseID)
        member("payload", payload, quoted: false)
        member("record_id", recordID)
        member("seq", String(seq), quoted: false)
        member("table_id", tableID)
        member("ts", ts)
        member("type", type)
        member("workspace_id", workspaceID)
        json += "}"
        return RealtimeEvent(
            seq: seq,
            type: type,
            workspaceID: workspaceID,
            baseID: baseID,
            tableID: tableID,
            recordID: recordID,
            actor: actor,
            recipients: recipients.map { $0.split(separator: " ").map(String.init) } ?? [],
            json: json
        )
    }
}

/// JSON text written by hand on hot paths.
enum JSONText {
    /// `value` as a JSON string literal.
    static func quoted(_ value: String) -> String {
        // Most values (ids, types, timestamps) need no escape: one pass over the bytes finds out.
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            return "\"" + value + "\""
        }
        var result = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case let scalar where scalar.value < 0x20:
                result += String(format: "\\u%04x", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
