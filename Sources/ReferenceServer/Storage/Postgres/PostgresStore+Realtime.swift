import Foundation
import PostgresNIO
import PyAirtableModels

/// Realtime fan-out's reads on PostgreSQL, as ``SQLiteStore``'s.
///
/// Commits are observed per instance: this instance's own writes fire ``CommitSignal`` at once, and
/// other instances' commits fire it when ``PostgresEventListener`` learns of them (a `NOTIFY`, or its
/// safety poll of the `event_head` row). Either way the hub then reads the log itself: a notification
/// only says when to look, never what was written.
extension PostgresStore: RealtimeEventSource {
    public func observeCommits(_ observer: @escaping @Sendable () -> Void) {
        database.commits.observe(observer)
    }

    /// The newest committed event's seq this instance knows of, without a read: its own commits
    /// report it at once, other instances' as the listener learns of them (within the poll interval).
    public func realtimeHead() async throws -> Int64 {
        database.facts.eventHead
    }

    public func realtimeEvents(after seq: Int64, limit: Int) async throws -> [RealtimeEvent] {
        try await database.read { transaction in
            try await transaction.rows(NewEvents(after: seq, limit: Int64(limit)))
        }
    }

    /// The events after a seq, with their recipients: every instance runs it after every commit it
    /// learns of, so it is prepared once per connection (no parse or plan per run).
    struct NewEvents: PostgresPreparedStatement {
        static let name = "pyat_new_events"
        static let sql = """
            SELECT e.seq, e.type, e.workspace_id, e.base_id, e.table_id, e.record_id, e.payload, e.actor, e.ts,
                (SELECT string_agg(r.user_id, ' ' ORDER BY r.user_id) FROM event_recipients r WHERE r.seq = e.seq)
            FROM events e WHERE e.seq > $1 ORDER BY e.seq LIMIT $2
            """
        static let bindingDataTypes: [PostgresDataType] = [.int8, .int8]

        var after: Int64
        var limit: Int64

        func makeBindings() -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 2)
            bindings.append(after)
            bindings.append(limit)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> RealtimeEvent {
            let (seq, type, workspace, base, table, record, payload, actor, ts, recipients) = try row.decode(
                (Int64, String, String?, String?, String?, String?, String, String?, Int64, String?).self
            )
            return RealtimeEvent.fromColumns(
                seq: seq,
                type: type,
                workspaceID: workspace,
                baseID: base,
                tableID: table,
                recordID: record,
                actor: actor,
                payload: payload,
                ts: Date(millisecondsSince1970: ts),
                recipients: recipients
            )
        }
    }

    public func realtimeCatchUp(
        after seq: Int64,
        filter: EventFilter,
        user: UserID,
        limit: Int
    ) async throws -> RealtimeCatchUp {
        try await database.snapshot { transaction in
            // One snapshot: the head and the page come from the same state, so a page shorter than
            // `limit` covers everything through the head.
            guard
                let head = try await transaction.scalar("SELECT seq FROM event_head WHERE id = 1", as: Int64.self)
            else { throw PostgresStoreError.missingEventHead }
            let trim = try await Self.trimState(transaction)
            if seq > head || Self.isTrimmed(since: seq, oldest: trim.oldest, trimmedThrough: trim.trimmedThrough) {
                return .resyncRequired(head: head)
            }
            let query = Self.visibleEventsQuery(
                columns: "e.seq, e.type, e.workspace_id, e.base_id, e.table_id, e.record_id, e.payload, e.actor, e.ts",
                since: seq,
                filter: filter,
                user: user,
                limit: limit
            )
            let events = try await transaction.rows(query).map {
                try Self.realtimeEvent(from: $0, withRecipients: false)
            }
            let through = events.count == limit ? (events.last?.seq ?? seq) : head
            return .events(events, through: through)
        }
    }

    public func workspaceMemberships(of users: [UserID]) async throws -> [UserID: Set<String>] {
        guard !users.isEmpty else { return [:] }
        return try await database.read { transaction in
            var memberships: [UserID: Set<String>] = [:]
            for user in users { memberships[user] = [] }
            // One array parameter, however many users: PostgreSQL has no cap to chunk around.
            let rows = try await transaction.rows(
                "SELECT user_id, workspace_id FROM members WHERE user_id = ANY(\(users.map(\.rawValue)))"
            )
            for row in rows {
                memberships[try row.id("user_id"), default: []].insert(try row.get("workspace_id", as: String.self))
            }
            return memberships
        }
    }

    /// An event row as fan-out carries it, its JSON written by the code the SQLite store uses, so
    /// both stores send the same bytes.
    /// - Parameter withRecipients: Whether the row has a `recipients` column (space-separated ids).
    static func realtimeEvent(from row: PostgresRandomAccessRow, withRecipients: Bool) throws -> RealtimeEvent {
        RealtimeEvent.fromColumns(
            seq: try row.get("seq", as: Int64.self),
            type: try row.get("type", as: String.self),
            workspaceID: try row.get("workspace_id", as: String?.self),
            baseID: try row.get("base_id", as: String?.self),
            tableID: try row.get("table_id", as: String?.self),
            recordID: try row.get("record_id", as: String?.self),
            actor: try row.get("actor", as: String?.self),
            payload: try row.get("payload", as: String.self),
            ts: try row.date("ts"),
            recipients: withRecipients ? try row.get("recipients", as: String?.self) : nil
        )
    }
}
