import Foundation
import Logging
import PostgresNIO
import PyAirtableModels

/// One connection inside a write transaction, and the events the transaction appends.
///
/// Events are not inserted when appended: ``PostgresServerDatabase`` numbers them as the last statement
/// before `COMMIT` (one `UPDATE` of the `event_head` row), so a transaction holds the log's head only
/// for its commit and a seq is never visible before a smaller one. Work that needs a new event's
/// seq runs in ``afterEvents(_:)``, after the numbering, in the same transaction.
public final class PostgresTransaction: @unchecked Sendable {
    // Used by one task at a time: the writer runs one job after another on it.
    let connection: PostgresConnection
    let logger: Logger
    private(set) var pendingEvents: [PendingEvent] = []
    private var pendingFollowUps: [(first: Int, run: @Sendable (PostgresTransaction, [Int64]) async throws -> Void)] =
        []
    /// Whether a committed transaction changed webhooks (the delivery worker's idle check).
    var webhooksChanged = false

    struct PendingEvent: Sendable {
        var type: String
        var workspaceID: String?
        var baseID: String?
        var tableID: String?
        var recordID: String?
        var payload: String
        var actor: String?
        var ts: Int64
        var txn: Int64
        var recipients: [String]

        /// The `events` columns after `seq`, in their order.
        func appendColumns(to binds: inout PostgresBindings) {
            binds.append(type)
            binds.append(workspaceID)
            binds.append(baseID)
            binds.append(tableID)
            binds.append(recordID)
            binds.append(payload)
            binds.append(actor)
            binds.append(ts)
            binds.append(txn)
        }
    }

    init(connection: PostgresConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    // MARK: Queries

    /// Runs a statement, discarding any rows.
    func execute(_ query: PostgresQuery) async throws {
        _ = try await send(query).collect()
    }

    /// The rows of a query.
    func rows(_ query: PostgresQuery) async throws -> [PostgresRandomAccessRow] {
        try await send(query).collect().map { $0.makeRandomAccess() }
    }

    /// Sends a statement on this transaction's connection, unless the connection is closed.
    ///
    /// postgres-nio 1.33 never answers a query sent on a connection the server closed while it was
    /// idle (its task is not even cancellable), so a statement after PostgreSQL went away would hang
    /// the instance's writer for good: the check turns it into a connection failure (a 503, and the
    /// pool drops the connection).
    private func send(_ query: PostgresQuery) async throws -> PostgresRowSequence {
        guard !connection.isClosed else { throw PostgresServerDatabase.ConnectionClosed() }
        return try await connection.query(query, logger: logger)
    }

    /// The first row of a query, if any.
    func row(_ query: PostgresQuery) async throws -> PostgresRandomAccessRow? {
        try await rows(query).first
    }

    /// The first column of the first row, `nil` when there is no row or it is NULL.
    func scalar<T: PostgresDecodable>(_ query: PostgresQuery, as type: T.Type = T.self) async throws -> T? {
        guard let row = try await send(query).collect().first else { return nil }
        let cell = row.makeRandomAccess()[0]
        guard cell.bytes != nil else { return nil }
        return try cell.decode(T.self, context: .default)
    }

    /// How many rows a statement changed; the statement must end with `RETURNING 1` (or any column).
    func changes(_ query: PostgresQuery) async throws -> Int {
        try await send(query).collect().count
    }

    // MARK: Events

    /// Appends an event to this transaction; it is numbered and inserted before the commit.
    func appendEvent(
        type: EventType,
        workspaceID: WorkspaceID?,
        baseID: BaseID? = nil,
        tableID: TableID? = nil,
        recordID: RecordID? = nil,
        payload: some Encodable,
        context: WriteContext,
        recipients: [UserID] = []
    ) throws {
        let data = try (payload as? any PreEncodedJSON).map { Data($0.json) } ?? JSONCoding.encoder.encode(payload)
        pendingEvents.append(
            PendingEvent(
                type: type.rawValue,
                workspaceID: workspaceID?.rawValue,
                baseID: baseID?.rawValue,
                tableID: tableID?.rawValue,
                recordID: recordID?.rawValue,
                payload: String(decoding: data, as: UTF8.self),
                actor: context.actor?.rawValue,
                ts: context.now.millisecondsSince1970,
                txn: context.transaction,
                recipients: Array(Set(recipients.map(\.rawValue))).sorted()
            )
        )
    }

    /// Runs `work` after this transaction's events are numbered, with the seqs of the events
    /// appended from now on by the current job (in order).
    func afterEvents(_ work: @escaping @Sendable (PostgresTransaction, [Int64]) async throws -> Void) {
        pendingFollowUps.append((pendingEvents.count, work))
    }

    /// Where the current job's events begin, to drop them when its savepoint rolls back.
    struct Mark {
        var events: Int
        var followUps: Int
        var webhooksChanged: Bool
    }

    var mark: Mark {
        Mark(events: pendingEvents.count, followUps: pendingFollowUps.count, webhooksChanged: webhooksChanged)
    }

    func rollBack(to mark: Mark) {
        pendingEvents.removeSubrange(mark.events...)
        pendingFollowUps.removeSubrange(mark.followUps...)
        webhooksChanged = mark.webhooksChanged
    }

    /// Numbers and inserts the pending events: the last statements before `COMMIT`. Answers the new
    /// head, or `nil` when the transaction appended nothing.
    func flushEvents() async throws -> Int64? {
        guard !pendingEvents.isEmpty else { return nil }
        let count = Int64(pendingEvents.count)
        var recipientRows: [(index: Int, user: String)] = []
        for (index, event) in pendingEvents.enumerated() {
            for user in event.recipients { recipientRows.append((index, user)) }
        }
        let head: Int64
        if pendingEvents.count * 10 + recipientRows.count * 2 + 1 <= Self.parametersPerStatement {
            head = try await numberAndInsertInOneStatement(count: count, recipientRows: recipientRows)
        } else {
            head = try await numberAndInsertInSeveralStatements(count: count, recipientRows: recipientRows)
        }
        let first = head - count + 1
        let followUps = pendingFollowUps
        let total = pendingEvents.count
        for (index, followUp) in followUps.enumerated() {
            let end = index + 1 < followUps.count ? followUps[index + 1].first : total
            let seqs = (followUp.first..<max(end, followUp.first)).map { first + Int64($0) }
            try await followUp.run(self, seqs)
        }
        return head
    }

    /// The protocol's limit is 65,535 parameters a statement; this leaves room.
    private static let parametersPerStatement = 60_000

    /// The usual case: the head's `UPDATE`, the events and their recipients in one statement (one
    /// round trip while the head row is locked, which every instance's commits wait for).
    private func numberAndInsertInOneStatement(
        count: Int64,
        recipientRows: [(index: Int, user: String)]
    ) async throws -> Int64 {
        var sql = "WITH head AS (UPDATE event_head SET seq = seq + $1 WHERE id = 1 RETURNING seq), "
        var binds = PostgresBindings(capacity: pendingEvents.count * 10 + recipientRows.count * 2 + 1)
        binds.append(count)
        var parameter = 1
        func next() -> String {
            parameter += 1
            return "$\(parameter)"
        }
        // A row's position n (1-based) becomes seq head - count + n.
        sql += "inserted AS (INSERT INTO events (seq, type, workspace_id, base_id, table_id, record_id, payload, "
        sql += "actor, ts, txn) SELECT head.seq - $1 + v.n, v.type, v.workspace_id, v.base_id, v.table_id, "
        sql += "v.record_id, v.payload, v.actor, v.ts, v.txn FROM head, (VALUES "
        for (index, event) in pendingEvents.enumerated() {
            if index > 0 { sql += "," }
            sql += "(\(next())::bigint,\(next()),\(next()),\(next()),\(next()),\(next()),\(next()),\(next()),"
            sql += "\(next())::bigint,\(next())::bigint)"
            binds.append(Int64(index + 1))
            event.appendColumns(to: &binds)
        }
        sql += ") AS v(n, type, workspace_id, base_id, table_id, record_id, payload, actor, ts, txn))"
        if !recipientRows.isEmpty {
            sql += ", recipients AS (INSERT INTO event_recipients (seq, user_id) SELECT head.seq - $1 + r.n, r.user_id "
            sql += "FROM head, (VALUES "
            for (index, row) in recipientRows.enumerated() {
                if index > 0 { sql += "," }
                sql += "(\(next())::bigint,\(next()))"
                binds.append(Int64(row.index + 1))
                binds.append(row.user)
            }
            sql += ") AS r(n, user_id) ON CONFLICT DO NOTHING)"
        }
        sql += " SELECT seq FROM head"
        guard let head = try await scalar(PostgresQuery(unsafeSQL: sql, binds: binds), as: Int64.self) else {
            throw PostgresStoreError.missingEventHead
        }
        return head
    }

    /// A transaction with thousands of events: the head first, then inserts within the parameter limit.
    private func numberAndInsertInSeveralStatements(
        count: Int64,
        recipientRows: [(index: Int, user: String)]
    ) async throws -> Int64 {
        guard
            let head = try await scalar(
                "UPDATE event_head SET seq = seq + \(count) WHERE id = 1 RETURNING seq",
                as: Int64.self
            )
        else { throw PostgresStoreError.missingEventHead }
        let first = head - count + 1
        let perStatement = 1000
        var start = 0
        while start < pendingEvents.count {
            let end = min(start + perStatement, pendingEvents.count)
            var sql =
                "INSERT INTO events (seq, type, workspace_id, base_id, table_id, record_id, payload, actor, ts, txn) VALUES "
            var binds = PostgresBindings(capacity: (end - start) * 10)
            for index in start..<end {
                let event = pendingEvents[index]
                let base = (index - start) * 10
                if index > start { sql += "," }
                sql += "("
                sql += (1...10).map { "$\(base + $0)" }.joined(separator: ",")
                sql += ")"
                binds.append(first + Int64(index))
                event.appendColumns(to: &binds)
            }
            try await execute(PostgresQuery(unsafeSQL: sql, binds: binds))
            start = end
        }
        start = 0
        while start < recipientRows.count {
            let end = min(start + perStatement * 5, recipientRows.count)
            var sql = "INSERT INTO event_recipients (seq, user_id) VALUES "
            var binds = PostgresBindings(capacity: (end - start) * 2)
            for index in start..<end {
                if index > start { sql += "," }
                let base = (index - start) * 2
                sql += "($\(base + 1),$\(base + 2))"
                binds.append(first + Int64(recipientRows[index].index))
                binds.append(recipientRows[index].user)
            }
            try await execute(PostgresQuery(unsafeSQL: sql + " ON CONFLICT DO NOTHING", binds: binds))
            start = end
        }
        return head
    }
}

/// Failures of the PostgreSQL store itself (not of a request).
enum PostgresStoreError: Error, CustomStringConvertible {
    case missingEventHead
    case writeDidNotRun

    var description: String {
        switch self {
        case .missingEventHead: "the event_head row is missing: the database was not migrated by pyat"
        case .writeDidNotRun: "the write did not run"
        }
    }
}

extension PostgresRandomAccessRow {
    /// A column's value (a NULL reads as `nil` for an optional type, and fails otherwise).
    func get<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        try self[column].decode(T.self, context: .default)
    }

    func date(_ column: String) throws -> Date {
        Date(millisecondsSince1970: try get(column, as: Int64.self))
    }

    func optionalDate(_ column: String) throws -> Date? {
        try get(column, as: Int64?.self).map(Date.init(millisecondsSince1970:))
    }

    func id<Kind>(_ column: String) throws -> Identifier<Kind> {
        Identifier(unchecked: try get(column, as: String.self))
    }

    func optionalID<Kind>(_ column: String) throws -> Identifier<Kind>? {
        try get(column, as: String?.self).map(Identifier.init(unchecked:))
    }
}
