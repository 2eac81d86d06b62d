import Foundation
import GRDB
import PyAirtableModels
import Synchronization

extension SQLiteStore {
    // MARK: - Webhooks

    static func decodeWebhook(from row: Row) throws -> Webhook {
        let events = try JSONCoding.decoder.decode([EventType].self, from: Data((row["events"] as String).utf8))
        return Webhook(
            id: row.id("id"),
            baseID: row.id("base_id"),
            url: row["url"],
            events: events,
            tableID: row.optionalID("table_id"),
            enabled: row["enabled"],
            disabledReason: row["disabled_reason"],
            failureCount: row["failure_count"],
            createdAt: row.date("created_at")
        )
    }

    /// The role that creates, changes and sees webhooks (their URLs, delivery logs and receivers'
    /// answers), and that a webhook's creator must keep for it to deliver.
    static let webhookRole: Role = .creator

    /// Turns off the enabled webhooks of `workspace` that `user` is responsible for, in the
    /// transaction that took away the role they need: from then on the webhook would hand the
    /// base's events to someone who may no longer read them. Each gets a `webhook.updated` event.
    static func disableWebhooks(
        _ db: Database,
        of user: UserID,
        in workspace: WorkspaceID,
        reason: String,
        context: WriteContext
    ) throws {
        let rows = try Row.fetchAll(
            db,
            sql: "SELECT * FROM webhooks WHERE workspace_id = ? AND created_by = ? AND enabled = 1",
            arguments: [workspace.rawValue, user.rawValue]
        )
        for row in rows {
            var webhook = try Self.decodeWebhook(from: row)
            webhook.enabled = false
            webhook.disabledReason = reason
            try db.execute(
                sql: "UPDATE webhooks SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ?",
                arguments: [reason, context.now.millisecondsSince1970, webhook.id.rawValue]
            )
            try Self.appendEvent(
                db,
                type: .webhookUpdated,
                workspaceID: workspace,
                baseID: webhook.baseID,
                payload: WebhookEventPayload(webhook),
                context: context
            )
        }
    }

    /// Loads a webhook and checks the caller's role in its workspace (non-members get 404).
    static func fetchWebhook(
        _ db: Database,
        id: WebhookID,
        user: UserID,
        minimum: Role
    ) throws -> (Webhook, WorkspaceID) {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM webhooks WHERE id = ?", arguments: [id.rawValue])
        else { throw StorageError.notFound("webhook") }
        let workspace: WorkspaceID = row.id("workspace_id")
        try authorize(db, workspace: workspace.rawValue, user: user, minimum: minimum, resource: "webhook")
        return (try decodeWebhook(from: row), workspace)
    }

    public func webhooks(base: BaseID, user: UserID) async throws -> [Webhook] {
        try await database.read { db in
            _ = try Self.fetchBase(db, id: base, user: user, minimum: Self.webhookRole)
            return try Row.fetchAll(
                db,
                sql: "SELECT * FROM webhooks WHERE base_id = ? ORDER BY created_at, rowid",
                arguments: [base.rawValue]
            ).map(Self.decodeWebhook(from:))
        }
    }

    public func webhook(id: WebhookID, user: UserID) async throws -> Webhook {
        try await database.read { db in try Self.fetchWebhook(db, id: id, user: user, minimum: Self.webhookRole).0 }
    }

    public func createWebhook(
        base: BaseID,
        _ request: CreateWebhookRequest,
        secret: String,
        maximumPerBase: Int,
        context: WriteContext
    ) async throws -> WriteResult<Webhook> {
        let actor = try context.requireActor()
        let keys = database.keys
        return try await perform(context, status: 201) { db in
            let owner = try Self.fetchBase(db, id: base, user: actor, minimum: Self.webhookRole)
            if let table = request.tableID {
                let inBase = try Bool.fetchOne(
                    db,
                    sql: "SELECT 1 FROM tables WHERE id = ? AND base_id = ?",
                    arguments: [table.rawValue, base.rawValue]
                )
                guard inBase == true else {
                    throw StorageError.invalid("table_id \(table) is not a table of base \(base)", field: "table_id")
                }
            }
            let count =
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM webhooks WHERE base_id = ?", arguments: [base.rawValue])
                ?? 0
            guard count < maximumPerBase else {
                throw StorageError.invalid("a base holds at most \(maximumPerBase) webhooks; delete one first")
            }
            let webhook = Webhook(
                id: .generate(),
                baseID: base,
                url: request.url,
                events: request.events ?? [],
                tableID: request.tableID,
                createdAt: context.now
            )
            // The webhook sees the events committed after its own creation.
            let seq = try Self.appendEvent(
                db,
                type: .webhookCreated,
                workspaceID: owner.workspaceID,
                baseID: base,
                payload: WebhookEventPayload(webhook),
                context: context
            )
            try db.execute(
                sql: """
                    INSERT INTO webhooks (id, base_id, workspace_id, url, events, table_id, sealed_secret, enabled,
                        failure_count, cursor, created_by, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, 1, 0, ?, ?, ?, ?)
                    """,
                arguments: [
                    webhook.id.rawValue, base.rawValue, owner.workspaceID.rawValue, webhook.url,
                    String(decoding: try JSONCoding.encoder.encode(webhook.events), as: UTF8.self),
                    webhook.tableID?.rawValue,
                    try keys.seal(
                        Data(secret.utf8),
                        context: StorageKeys.webhookSecretContext(id: webhook.id.rawValue)
                    ),
                    seq, actor.rawValue, context.now.millisecondsSince1970,
                    context.now.millisecondsSince1970,
                ]
            )
            var answer = webhook
            answer.secret = secret
            return answer
        }
    }

    public func updateWebhook(
        id: WebhookID,
        _ request: UpdateWebhookRequest,
        context: WriteContext
    ) async throws -> WriteResult<Webhook> {
        let actor = try context.requireActor()
        return try await perform(context) { db in
            var (webhook, workspace) = try Self.fetchWebhook(db, id: id, user: actor, minimum: Self.webhookRole)
            let now = context.now.millisecondsSince1970
            switch request.enabled {
            case true?:
                // Back on: a fresh failure count, and the deliveries it gave up on go out again, in order.
                // A webhook delivers on its creator's access; one whose creator lost it is taken over
                // by whoever turns it back on.
                let creator = try String.fetchOne(
                    db,
                    sql: "SELECT created_by FROM webhooks WHERE id = ?",
                    arguments: [id.rawValue]
                )
                let creatorKeepsAccess =
                    try creator.flatMap {
                        try Self.role(db, workspace: workspace.rawValue, user: UserID(unchecked: $0))
                    }
                    .map { $0 >= Self.webhookRole } ?? false
                let responsible = creatorKeepsAccess ? creator : actor.rawValue
                try db.execute(
                    sql: """
                        UPDATE webhooks SET enabled = 1, disabled_reason = NULL, failure_count = 0,
                            first_failure_at = NULL, created_by = ?, updated_at = ? WHERE id = ?
                        """,
                    arguments: [responsible, now, id.rawValue]
                )
                try db.execute(
                    sql: """
                        UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?
                        WHERE webhook_id = ? AND status IN ('pending', 'failed')
                        """,
                    arguments: [now, id.rawValue]
                )
                webhook.enabled = true
                webhook.disabledReason = nil
                webhook.failureCount = 0
            case false?:
                let reason = "disabled by \(actor)"
                try db.execute(
                    sql: "UPDATE webhooks SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ?",
                    arguments: [reason, now, id.rawValue]
                )
                webhook.enabled = false
                webhook.disabledReason = reason
            case nil:
                break
            }
            try Self.appendEvent(
                db,
                type: .webhookUpdated,
                workspaceID: workspace,
                baseID: webhook.baseID,
                payload: WebhookEventPayload(webhook),
                context: context
            )
            return webhook
        }
    }

    public func deleteWebhook(id: WebhookID, context: WriteContext) async throws -> WriteResult<EmptyBody> {
        let actor = try context.requireActor()
        return try await perform(context, status: 204) { db in
            let (webhook, workspace) = try Self.fetchWebhook(db, id: id, user: actor, minimum: Self.webhookRole)
            try db.execute(sql: "DELETE FROM webhooks WHERE id = ?", arguments: [id.rawValue])
            try Self.appendEvent(
                db,
                type: .webhookDeleted,
                workspaceID: workspace,
                baseID: webhook.baseID,
                payload: ["id": id.rawValue],
                context: context
            )
            return EmptyBody()
        }
    }

    // MARK: - Delivery log

    static func delivery(from row: Row) -> WebhookDelivery {
        WebhookDelivery(
            id: row.id("id"),
            webhookID: row.id("webhook_id"),
            eventSeq: row["event_seq"],
            eventType: EventType(rawValue: row["event_type"]),
            status: WebhookDelivery.Status(rawValue: row["status"]) ?? .pending,
            attempts: row["attempts"],
            responseStatus: row["response_status"],
            error: row["error"],
            createdAt: row.date("created_at"),
            lastAttemptAt: row.optionalDate("last_attempt_at"),
            nextAttemptAt: row.optionalDate("next_attempt_at"),
            deliveredAt: row.optionalDate("delivered_at")
        )
    }

    public func deliveries(
        webhook: WebhookID,
        user: UserID,
        status: WebhookDelivery.Status?,
        before: Int64?,
        limit: Int
    ) async throws -> Page<WebhookDelivery> {
        try await database.read { db in
            _ = try Self.fetchWebhook(db, id: webhook, user: user, minimum: Self.webhookRole)
            var sql = """
                SELECT id, webhook_id, event_seq, event_type, status, attempts, response_status, error,
                    created_at, last_attempt_at, next_attempt_at, delivered_at
                FROM webhook_deliveries WHERE webhook_id = ?
                """
            var arguments: [DatabaseValue] = [webhook.rawValue.databaseValue]
            if let status {
                sql += " AND status = ?"
                arguments.append(status.rawValue.databaseValue)
            }
            if let before {
                sql += " AND event_seq < ?"
                arguments.append(before.databaseValue)
            }
            sql += " ORDER BY event_seq DESC LIMIT \(limit + 1)"
            var deliveries = try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments))
                .map(Self.delivery(from:))
            var next: String?
            if deliveries.count > limit {
                deliveries.removeLast(deliveries.count - limit)
                next = deliveries.last.map { String($0.eventSeq) }
            }
            return Page(data: deliveries, nextCursor: next)
        }
    }

    // MARK: - Delivery worker

    public func enqueueWebhookDeliveries(now: Date, limit: Int) async throws -> Bool {
        try await database.write { db in
            let head = try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(seq), 0) FROM events") ?? 0
            let hooks = try Row.fetchAll(
                db,
                sql: """
                    SELECT id, workspace_id, base_id, table_id, events, cursor FROM webhooks
                    WHERE enabled = 1 AND cursor < ?
                    """,
                arguments: [head]
            )
            var more = false
            for hook in hooks {
                let id: WebhookID = hook.id("id")
                let cursor: Int64 = hook["cursor"]
                let table: String? = hook["table_id"]
                let types = Set(
                    try JSONCoding.decoder.decode([EventType].self, from: Data((hook["events"] as String).utf8))
                )
                let rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT * FROM events WHERE workspace_id = ? AND seq > ? AND seq <= ? AND base_id = ?
                        ORDER BY seq LIMIT \(limit)
                        """,
                    arguments: [hook["workspace_id"] as String, cursor, head, hook["base_id"] as String]
                )
                for row in rows {
                    let event = try Self.event(from: row)
                    if !types.isEmpty && !types.contains(event.type) { continue }
                    if let table, event.tableID?.rawValue != table { continue }
                    let delivery = DeliveryID.generate()
                    let body = try JSONCoding.encoder.encode(
                        WebhookPayload(deliveryID: delivery, webhookID: id, event: event)
                    )
                    try db.execute(
                        sql: """
                            INSERT OR IGNORE INTO webhook_deliveries
                                (id, webhook_id, event_seq, event_type, body, status, attempts, created_at,
                                 next_attempt_at)
                            VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)
                            """,
                        arguments: [
                            delivery.rawValue, id.rawValue, event.seq, event.type.rawValue, body,
                            now.millisecondsSince1970, now.millisecondsSince1970,
                        ]
                    )
                }
                let advancedTo: Int64
                if rows.count == limit, let last = rows.last {
                    advancedTo = last["seq"]
                    more = true
                } else {
                    advancedTo = head
                }
                try db.execute(
                    sql: "UPDATE webhooks SET cursor = ? WHERE id = ?",
                    arguments: [advancedTo, id.rawValue]
                )
            }
            return more
        }
    }

    public func webhookWork(now: Date) async throws -> WebhookWork {
        // Taken before the read begins, so a webhook enabled during the read changes it.
        let generation = database.facts.webhooksGeneration
        if webhooksIdleAt.load(ordering: .acquiring) == generation {
            return WebhookWork(backlog: false, due: [], nextDue: nil)
        }
        let (work, anyEnabled) = try await database.read { db in
            (
                try self.nextDeliveries(db, webhook: nil, now: now),
                try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM webhooks WHERE enabled = 1)") ?? true
            )
        }
        if !anyEnabled { webhooksIdleAt.store(generation, ordering: .releasing) }
        return work
    }

    public func nextWebhookDelivery(webhook: WebhookID, now: Date) async throws -> PendingWebhookDelivery? {
        try await database.read { db in try self.nextDeliveries(db, webhook: webhook, now: now).due.first }
    }

    /// One read, as the worker makes one after every commit: whether events wait to be handed over,
    /// and the oldest pending delivery of each enabled webhook (or of `webhook`).
    private func nextDeliveries(_ db: Database, webhook: WebhookID?, now: Date) throws -> WebhookWork {
        let backlog =
            try Bool.fetchOne(
                db,
                sql: """
                    SELECT 1 FROM webhooks
                    WHERE enabled = 1 AND cursor < (SELECT COALESCE(MAX(seq), 0) FROM events) LIMIT 1
                    """
            ) ?? false
        let rows = try Row.fetchAll(
            db,
            sql: """
                SELECT d.id, d.webhook_id, d.event_seq, d.event_type, d.body, d.attempts, d.next_attempt_at,
                    w.url, w.sealed_secret
                FROM webhooks w JOIN webhook_deliveries d ON d.id = (
                    SELECT id FROM webhook_deliveries
                    WHERE webhook_id = w.id AND status = 'pending' ORDER BY event_seq LIMIT 1)
                WHERE w.enabled = 1 AND (?1 IS NULL OR w.id = ?1)
                """,
            arguments: [webhook?.rawValue]
        )
        var due: [PendingWebhookDelivery] = []
        var nextDue: Date?
        let keys = database.keys
        for row in rows {
            // Compared as stored (milliseconds), so a delivery due "now" is due under a clock that stands still.
            let at = row.optionalDate("next_attempt_at") ?? now
            if at.millisecondsSince1970 <= now.millisecondsSince1970 {
                due.append(
                    PendingWebhookDelivery(
                        id: row.id("id"),
                        webhookID: row.id("webhook_id"),
                        eventSeq: row["event_seq"],
                        eventType: EventType(rawValue: row["event_type"]),
                        body: row["body"],
                        url: row["url"],
                        secret: Self.openWebhookSecret(row["sealed_secret"], webhook: row["webhook_id"], keys: keys),
                        attempts: row["attempts"]
                    )
                )
            } else {
                nextDue = min(nextDue ?? at, at)
            }
        }
        return WebhookWork(backlog: backlog, due: due.sorted { $0.eventSeq < $1.eventSeq }, nextDue: nextDue)
    }

    /// A webhook's secret as deliveries sign with it; `nil` when it cannot be opened (sealed with
    /// another storage secret).
    static func openWebhookSecret(_ sealed: Data, webhook: String, keys: StorageKeys) -> String? {
        guard let secret = try? keys.open(sealed, context: StorageKeys.webhookSecretContext(id: webhook)) else {
            return nil
        }
        return String(decoding: secret, as: UTF8.self)
    }

    public func recordWebhookAttempt(
        _ attempt: WebhookAttempt,
        retryAt: Date,
        policy: WebhookConfiguration
    ) async throws {
        try await database.write { db in
            guard
                let attempts = try Int.fetchOne(
                    db,
                    sql: "SELECT attempts FROM webhook_deliveries WHERE id = ? AND status = 'pending'",
                    arguments: [attempt.delivery.rawValue]
                )
            else { return }  // deleted with its webhook, or finished, while the attempt ran
            let at = attempt.at.millisecondsSince1970
            if attempt.succeeded {
                try db.execute(
                    sql: """
                        UPDATE webhook_deliveries SET status = 'succeeded', attempts = ?, response_status = ?,
                            error = NULL, last_attempt_at = ?, next_attempt_at = NULL, delivered_at = ?
                        WHERE id = ?
                        """,
                    arguments: [attempts + 1, attempt.responseStatus, at, at, attempt.delivery.rawValue]
                )
                try db.execute(
                    sql: "UPDATE webhooks SET failure_count = 0, first_failure_at = NULL WHERE id = ?",
                    arguments: [attempt.webhook.rawValue]
                )
                // The log keeps the newest `deliveryLogLimit` deliveries; unfinished ones are never dropped.
                try db.execute(
                    sql: """
                        DELETE FROM webhook_deliveries WHERE webhook_id = ?1 AND status = 'succeeded'
                            AND event_seq <= (SELECT event_seq FROM webhook_deliveries WHERE webhook_id = ?1
                                ORDER BY event_seq DESC LIMIT 1 OFFSET ?2)
                        """,
                    arguments: [attempt.webhook.rawValue, policy.deliveryLogLimit]
                )
                return
            }
            guard
                let hook = try Row.fetchOne(
                    db,
                    sql: "SELECT failure_count, first_failure_at FROM webhooks WHERE id = ?",
                    arguments: [attempt.webhook.rawValue]
                )
            else { return }
            let failures = (hook["failure_count"] as Int) + 1
            let firstFailure = (hook["first_failure_at"] as Int64?) ?? at
            let failingFor = Double(at - firstFailure) / 1000
            let error = attempt.error ?? attempt.responseStatus.map { "HTTP \($0)" } ?? "failed"
            var reason: String?
            if failures >= policy.maximumConsecutiveFailures {
                reason = "\(failures) consecutive failed delivery attempts; last: \(error)"
            } else if failingFor >= policy.maximumFailureDuration.seconds {
                reason = "deliveries failed for \(Int(failingFor)) s without a success; last: \(error)"
            }
            try db.execute(
                sql: """
                    UPDATE webhook_deliveries SET status = ?, attempts = ?, response_status = ?, error = ?,
                        last_attempt_at = ?, next_attempt_at = ?
                    WHERE id = ?
                    """,
                arguments: [
                    reason == nil ? "pending" : "failed", attempts + 1, attempt.responseStatus, error, at,
                    reason == nil ? retryAt.millisecondsSince1970 : nil, attempt.delivery.rawValue,
                ]
            )
            try db.execute(
                sql: """
                    UPDATE webhooks SET failure_count = ?, first_failure_at = ?,
                        enabled = CASE WHEN ? IS NULL THEN enabled ELSE 0 END,
                        disabled_reason = COALESCE(?, disabled_reason)
                    WHERE id = ?
                    """,
                arguments: [failures, firstFailure, reason, reason, attempt.webhook.rawValue]
            )
        }
    }
}

/// What `webhook.*` events carry: every member of the workspace reads the event log, but only
/// creators and owners may see a webhook's target URL and why it was disabled (which can quote a
/// receiver's answer), so neither is in the event.
struct WebhookEventPayload: Encodable, Sendable {
    var id: WebhookID
    var baseID: BaseID
    var events: [EventType]
    var tableID: TableID?
    var enabled: Bool
    var createdAt: Date

    init(_ webhook: Webhook) {
        id = webhook.id
        baseID = webhook.baseID
        events = webhook.events
        tableID = webhook.tableID
        enabled = webhook.enabled
        createdAt = webhook.createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id
        case baseID = "base_id"
        case events
        case tableID = "table_id"
        case enabled
        case createdAt = "created_at"
    }
}
