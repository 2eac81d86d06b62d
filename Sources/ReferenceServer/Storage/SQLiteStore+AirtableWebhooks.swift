import Foundation
import GRDB
import PyAirtableModels

/// An Airtable-style webhook (`POST /v0/bases/{base}/webhooks`): payloads numbered 1, 2, 3… built
/// from the event log, one per write, read by cursor; pings to its notification URL.
public struct AirtableWebhookRow: Sendable {
    public var id: String
    public var baseID: BaseID
    public var workspaceID: WorkspaceID
    public var notificationURL: String?
    /// The specification as created, JSON.
    public var specification: String
    public var notificationsEnabled: Bool
    public var expiresAt: Date
    public var eventCursor: Int64
    /// The number the next payload will get (`cursorForNextPayload`).
    public var nextPayload: Int64
    /// Payloads through this number have been announced by a successful ping.
    public var pingedThrough: Int64
    public var pingRetries: Int
    public var nextPingAt: Date?
    public var lastSuccessAt: Date?
    /// `lastNotificationResult`, JSON.
    public var lastResult: String?
    public var createdBy: UserID
    public var createdAt: Date

    init(_ row: Row) {
        id = row["id"]
        baseID = BaseID(unchecked: row["base_id"])
        workspaceID = WorkspaceID(unchecked: row["workspace_id"])
        notificationURL = row["notification_url"]
        specification = row["specification"]
        notificationsEnabled = row["notifications_enabled"]
        expiresAt = Date(millisecondsSince1970: row["expires_at"])
        eventCursor = row["event_cursor"]
        nextPayload = row["next_payload"]
        pingedThrough = row["pinged_through"]
        pingRetries = row["ping_retries"]
        nextPingAt = (row["next_ping_at"] as Int64?).map(Date.init(millisecondsSince1970:))
        lastSuccessAt = (row["last_success_at"] as Int64?).map(Date.init(millisecondsSince1970:))
        lastResult = row["last_result"]
        createdBy = UserID(unchecked: row["created_by"])
        createdAt = Date(millisecondsSince1970: row["created_at"])
    }

    /// Whether the webhook still records payloads (it has not expired).
    public func isEnabled(now: Date) -> Bool { expiresAt > now }
}

/// What `GET …/payloads` answers.
public struct AirtablePayloadPage: Sendable {
    /// Each payload's JSON, in order.
    public var payloads: [String]
    public var cursor: Int64
    public var mightHaveMore: Bool
}

/// Airtable-style webhooks over the event log.
public protocol AirtableWebhookRepository: Sendable {
    func createAirtableWebhook(
        base: BaseID,
        notificationURL: String?,
        specification: String,
        secret: [UInt8],
        lifetime: TimeInterval,
        maximumPerBase: Int,
        context: WriteContext
    ) async throws -> AirtableWebhookRow
    func airtableWebhooks(base: BaseID, user: UserID) async throws -> [AirtableWebhookRow]
    func deleteAirtableWebhook(base: BaseID, id: String, context: WriteContext) async throws
    func setAirtableWebhookNotifications(base: BaseID, id: String, enabled: Bool, context: WriteContext) async throws
    func refreshAirtableWebhook(
        base: BaseID,
        id: String,
        lifetime: TimeInterval,
        context: WriteContext
    ) async throws
        -> Date
    /// Brings the webhook's payloads up to date with the event log, then reads from `cursor`.
    func airtableWebhookPayloads(
        base: BaseID,
        id: String,
        cursor: Int64,
        limit: Int,
        retention: TimeInterval,
        context: WriteContext
    ) async throws -> AirtablePayloadPage
    /// Brings every unexpired webhook's payloads up to date; answers the webhooks with payloads no
    /// successful ping has announced yet whose next ping is due (the delivery worker's pass).
    func advanceAirtableWebhooks(now: Date, retention: TimeInterval) async throws -> [AirtableWebhookRow]
    /// A read: whether any unexpired webhook has events to turn into payloads (`backlog`), and when
    /// the earliest ping is due (`nil`: none waits).
    func airtableWebhookWork(now: Date) async throws -> (backlog: Bool, nextPing: Date?)
    /// The webhook's MAC secret.
    func airtableWebhookSecret(id: String) async throws -> [UInt8]
    /// Records a ping's outcome: `lastNotificationResult`, and on success the payloads it announced.
    func recordAirtablePing(
        id: String,
        announcedThrough: Int64,
        success: Bool,
        result: String,
        nextAttempt: Date?,
        now: Date
    ) async throws
}

extension SQLiteStore: AirtableWebhookRepository {
    static func secretContext(airtableWebhook id: String) -> String { "airtable webhook secret\u{0}\(id)" }

    static func newAirtableWebhookID() -> String {
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        return "ach" + String((0..<14).map { _ in alphabet.randomElement() ?? "0" })
    }

    public func createAirtableWebhook(
        base: BaseID,
        notificationURL: String?,
        specification: String,
        secret: [UInt8],
        lifetime: TimeInterval,
        maximumPerBase: Int,
        context: WriteContext
    ) async throws -> AirtableWebhookRow {
        let keys = database.keys
        return try await database.write { db in
            let user = try context.requireActor()
            let workspace = try Self.airtableWebhookBase(db, base: base, user: user)
            let count =
                try Int.fetchOne(
                    db,
                    sql: "SELECT COUNT(*) FROM airtable_webhooks WHERE base_id = ?",
                    arguments: [base.rawValue]
                )
                ?? 0
            guard count < maximumPerBase else {
                throw StorageError.invalid("a base may have at most \(maximumPerBase) webhooks", field: nil)
            }
            let id = Self.newAirtableWebhookID()
            let head = try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(seq), 0) FROM events") ?? 0
            let now = context.now.millisecondsSince1970
            try db.execute(
                sql: """
                    INSERT INTO airtable_webhooks (id, base_id, workspace_id, notification_url, specification,
                        sealed_secret, expires_at, event_cursor, created_by, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    id, base.rawValue, workspace, notificationURL, specification,
                    try keys.seal(Data(secret), context: Self.secretContext(airtableWebhook: id)),
                    context.now.addingTimeInterval(lifetime).millisecondsSince1970, head, user.rawValue, now,
                ]
            )
            return try Self.airtableWebhook(db, base: base, id: id)
        }
    }

    /// The base's workspace, checking the caller is a creator or owner there (webhooks, as on
    /// Airtable, need the permission to change the base's schema).
    static func airtableWebhookBase(_ db: Database, base: BaseID, user: UserID) throws -> String {
        guard
            let workspace = try String.fetchOne(
                db,
                sql: "SELECT workspace_id FROM bases WHERE id = ?",
                arguments: [base.rawValue]
            )
        else { throw StorageError.notFound("base") }
        try authorize(db, workspace: workspace, user: user, minimum: .creator, resource: "base")
        return workspace
    }

    static func airtableWebhook(_ db: Database, base: BaseID, id: String) throws -> AirtableWebhookRow {
        guard
            let row = try Row.fetchOne(
                db,
                sql: "SELECT * FROM airtable_webhooks WHERE id = ? AND base_id = ?",
                arguments: [id, base.rawValue]
            )
        else { throw StorageError.notFound("webhook") }
        return AirtableWebhookRow(row)
    }

    public func airtableWebhooks(base: BaseID, user: UserID) async throws -> [AirtableWebhookRow] {
        try await database.read { db in
            _ = try Self.airtableWebhookBase(db, base: base, user: user)
            return try Row.fetchAll(
                db,
                sql: "SELECT * FROM airtable_webhooks WHERE base_id = ? ORDER BY created_at, id",
                arguments: [base.rawValue]
            ).map(AirtableWebhookRow.init)
        }
    }

    public func deleteAirtableWebhook(base: BaseID, id: String, context: WriteContext) async throws {
        try await database.write { db in
            _ = try Self.airtableWebhookBase(db, base: base, user: try context.requireActor())
            try db.execute(
                sql: "DELETE FROM airtable_webhooks WHERE id = ? AND base_id = ?",
                arguments: [id, base.rawValue]
            )
            guard db.changesCount == 1 else { throw StorageError.notFound("webhook") }
        }
    }

    public func setAirtableWebhookNotifications(
        base: BaseID,
        id: String,
        enabled: Bool,
        context: WriteContext
    ) async throws {
        try await database.write { db in
            _ = try Self.airtableWebhookBase(db, base: base, user: try context.requireActor())
            try db.execute(
                sql: """
                    UPDATE airtable_webhooks SET notifications_enabled = ?, ping_retries = 0, next_ping_at = NULL
                    WHERE id = ? AND base_id = ?
                    """,
                arguments: [enabled, id, base.rawValue]
            )
            guard db.changesCount == 1 else { throw StorageError.notFound("webhook") }
        }
    }

    public func refreshAirtableWebhook(
        base: BaseID,
        id: String,
        lifetime: TimeInterval,
        context: WriteContext
    ) async throws -> Date {
        try await database.write { db in
            _ = try Self.airtableWebhookBase(db, base: base, user: try context.requireActor())
            let hook = try Self.airtableWebhook(db, base: base, id: id)
            // An expired webhook stays expired: its payloads stopped, and Airtable does not revive it.
            guard hook.isEnabled(now: context.now) else { throw StorageError.notFound("webhook") }
            let expires = context.now.addingTimeInterval(lifetime)
            try db.execute(
                sql: "UPDATE airtable_webhooks SET expires_at = ? WHERE id = ?",
                arguments: [expires.millisecondsSince1970, id]
            )
            return Date(millisecondsSince1970: expires.millisecondsSince1970)
        }
    }

    public func airtableWebhookPayloads(
        base: BaseID,
        id: String,
        cursor: Int64,
        limit: Int,
        retention: TimeInterval,
        context: WriteContext
    ) async throws -> AirtablePayloadPage {
        try await database.write { db in
            _ = try Self.airtableWebhookBase(db, base: base, user: try context.requireActor())
            var hook = try Self.airtableWebhook(db, base: base, id: id)
            if hook.isEnabled(now: context.now) {
                try self.advance(db, &hook, now: context.now, retention: retention)
            }
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT number, body FROM airtable_webhook_payloads WHERE webhook_id = ? AND number >= ?
                    ORDER BY number LIMIT ?
                    """,
                arguments: [id, max(1, cursor), limit + 1]
            )
            let page = rows.prefix(limit)
            let next = (page.last?["number"] as Int64?).map { $0 + 1 } ?? max(1, min(cursor, hook.nextPayload))
            // Events not yet turned into payloads (a backlog past one pass) are more to come.
            let backlog =
                try Bool.fetchOne(
                    db,
                    sql: "SELECT EXISTS (SELECT 1 FROM events WHERE base_id = ? AND seq > ?)",
                    arguments: [base.rawValue, hook.eventCursor]
                ) ?? false
            return AirtablePayloadPage(
                payloads: page.map { $0["body"] },
                cursor: next,
                mightHaveMore: rows.count > limit || (backlog && hook.isEnabled(now: context.now))
            )
        }
    }

    public func advanceAirtableWebhooks(now: Date, retention: TimeInterval) async throws -> [AirtableWebhookRow] {
        try await database.write { db in
            let hooks = try Row.fetchAll(
                db,
                sql: "SELECT * FROM airtable_webhooks WHERE expires_at > ? ORDER BY created_at",
                arguments: [now.millisecondsSince1970]
            ).map(AirtableWebhookRow.init)
            // Payloads past the retention go, expired webhooks' included.
            try db.execute(
                sql: "DELETE FROM airtable_webhook_payloads WHERE created_at < ?",
                arguments: [now.addingTimeInterval(-retention).millisecondsSince1970]
            )
            var due: [AirtableWebhookRow] = []
            for var hook in hooks {
                try self.advance(db, &hook, now: now, retention: retention)
                guard hook.notificationURL != nil, hook.notificationsEnabled,
                    hook.nextPayload - 1 > hook.pingedThrough,
                    hook.nextPingAt.map({ $0 <= now }) ?? true
                else { continue }
                due.append(hook)
            }
            return due
        }
    }

    public func airtableWebhookWork(now: Date) async throws -> (backlog: Bool, nextPing: Date?) {
        try await database.read { db in
            let backlog =
                try Bool.fetchOne(
                    db,
                    sql: """
                        SELECT EXISTS (SELECT 1 FROM airtable_webhooks w WHERE w.expires_at > ? AND EXISTS (
                            SELECT 1 FROM events e WHERE e.base_id = w.base_id AND e.seq > w.event_cursor))
                        """,
                    arguments: [now.millisecondsSince1970]
                ) ?? false
            let next = try Int64.fetchOne(
                db,
                sql: """
                    SELECT MIN(COALESCE(next_ping_at, 0)) FROM airtable_webhooks
                    WHERE expires_at > ? AND notification_url IS NOT NULL AND notifications_enabled = 1
                        AND next_payload - 1 > pinged_through
                    """,
                arguments: [now.millisecondsSince1970]
            )
            return (backlog, next.map(Date.init(millisecondsSince1970:)))
        }
    }

    public func airtableWebhookSecret(id: String) async throws -> [UInt8] {
        let keys = database.keys
        return try await database.read { db in
            guard
                let sealed = try Data.fetchOne(
                    db,
                    sql: "SELECT sealed_secret FROM airtable_webhooks WHERE id = ?",
                    arguments: [id]
                )
            else { throw StorageError.notFound("webhook") }
            return Array(try keys.open(sealed, context: Self.secretContext(airtableWebhook: id)))
        }
    }

    public func recordAirtablePing(
        id: String,
        announcedThrough: Int64,
        success: Bool,
        result: String,
        nextAttempt: Date?,
        now: Date
    ) async throws {
        try await database.write { db in
            if success {
                try db.execute(
                    sql: """
                        UPDATE airtable_webhooks SET pinged_through = MAX(pinged_through, ?), ping_retries = 0,
                            next_ping_at = NULL, last_success_at = ?, last_result = ? WHERE id = ?
                        """,
                    arguments: [announcedThrough, now.millisecondsSince1970, result, id]
                )
            } else if let nextAttempt {
                try db.execute(
                    sql: """
                        UPDATE airtable_webhooks SET ping_retries = ping_retries + 1, next_ping_at = ?, last_result = ?
                        WHERE id = ?
                        """,
                    arguments: [nextAttempt.millisecondsSince1970, result, id]
                )
            } else {
                // Out of retries: these payloads stay unannounced (they can still be listed); the next
                // write pings again.
                try db.execute(
                    sql: """
                        UPDATE airtable_webhooks SET pinged_through = MAX(pinged_through, ?), ping_retries = 0,
                            next_ping_at = NULL, last_result = ? WHERE id = ?
                        """,
                    arguments: [announcedThrough, result, id]
                )
            }
        }
    }

    /// Turns the base's events after the webhook's cursor into payloads, one per write, and drops
    /// payloads past the retention. Events of a write are read whole (a write's events are
    /// consecutive: the writer is serial).
    /// About how many events one pass over a webhook turns into payloads.
    static let airtableWebhookPassEvents = 10_000

    func advance(_ db: Database, _ hook: inout AirtableWebhookRow, now: Date, retention: TimeInterval) throws {
        let batch = 2000
        let specification = AirtableWebhookSpecification(json: hook.specification)
        var payloads: [String] = []
        var group: [AirtableEventRow] = []
        func flush() throws {
            guard !group.isEmpty else { return }
            if let payload = try AirtablePayloadBuilder.payload(
                of: group,
                hook: hook,
                specification: specification,
                number: hook.nextPayload + Int64(payloads.count),
                store: self,
                db: db
            ) {
                payloads.append(payload)
            }
            group.removeAll()
        }
        // One pass reads about `Self.airtableWebhookPassEvents` events (whole writes): a long backlog is
        // worked off over several passes instead of holding the writer.
        var processed = 0
        reading: while true {
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT seq, type, table_id, record_id, payload, actor, ts, txn FROM events
                    WHERE base_id = ? AND seq > ? ORDER BY seq LIMIT ?
                    """,
                arguments: [hook.baseID.rawValue, hook.eventCursor, batch]
            ).map(AirtableEventRow.init)
            for event in rows {
                if let last = group.last, last.transaction != event.transaction {
                    if processed >= Self.airtableWebhookPassEvents { break reading }
                    try flush()
                }
                group.append(event)
                hook.eventCursor = event.seq
                processed += 1
            }
            if rows.count < batch { break }
        }
        try flush()
        let created = now.millisecondsSince1970
        let startCursor = try Int64.fetchOne(
            db,
            sql: "SELECT event_cursor FROM airtable_webhooks WHERE id = ?",
            arguments: [hook.id]
        )
        for payload in payloads {
            try db.execute(
                sql: "INSERT INTO airtable_webhook_payloads (webhook_id, number, body, created_at) VALUES (?, ?, ?, ?)",
                arguments: [hook.id, hook.nextPayload, payload, created]
            )
            hook.nextPayload += 1
        }
        if startCursor != hook.eventCursor {
            try db.execute(
                sql: "UPDATE airtable_webhooks SET event_cursor = ?, next_payload = ? WHERE id = ?",
                arguments: [hook.eventCursor, hook.nextPayload, hook.id]
            )
        }
        try db.execute(
            sql: "DELETE FROM airtable_webhook_payloads WHERE webhook_id = ? AND created_at < ?",
            arguments: [hook.id, now.addingTimeInterval(-retention).millisecondsSince1970]
        )
    }
}

/// An event as a payload is built from it.
struct AirtableEventRow {
    var seq: Int64
    var type: EventType
    var tableID: String?
    var recordID: String?
    var payload: String
    var actor: String?
    var ts: Int64
    /// The write it belongs to; events from before transactions were recorded are each their own.
    var transaction: Int64

    init(_ row: Row) {
        seq = row["seq"]
        type = EventType(rawValue: row["type"])
        tableID = row["table_id"]
        recordID = row["record_id"]
        payload = row["payload"]
        actor = row["actor"]
        ts = row["ts"]
        transaction = (row["txn"] as Int64?) ?? -seq
    }
}
