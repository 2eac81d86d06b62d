import Foundation
import PostgresNIO
import PyAirtableModels
import Synchronization

/// Airtable-style webhooks on PostgreSQL: the same API, limits, sealed secrets and payloads as
/// ``SQLiteStore``'s, with several instances turning events into payloads at once.
///
/// Payloads are numbered 1, 2, 3… per webhook with no gap and no number twice: whoever appends
/// payloads (a request reading them, any instance's worker) holds the webhook's row lock
/// (`FOR UPDATE`) from reading its cursor and next number to writing them back, so a second instance
/// waits, then continues from where the first stopped. A write's events are consecutive in the log
/// here too (a transaction's events are numbered together at its commit), so one write is one
/// payload.
///
/// Pings are claimed as deliveries are (see ``PostgresStore/webhookClaimLease``): a webhook answered
/// as due for a ping gets `next_ping_at` = now + the lease, so the workers of other instances do not
/// ping it too; recording the ping's outcome replaces it, and an instance that died mid-ping delays
/// the next by one lease at most.
extension PostgresStore: AirtableWebhookRepository {
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
        return try await database.write { transaction in
            let user = try context.requireActor()
            // The base's row is locked: two instances creating webhooks at once cannot both pass the limit.
            let workspace = try await Self.airtableWebhookBase(transaction, base: base, user: user, lock: true)
            let count =
                try await transaction.scalar(
                    "SELECT COUNT(*) FROM airtable_webhooks WHERE base_id = \(base.rawValue)",
                    as: Int64.self
                ) ?? 0
            guard count < maximumPerBase else {
                throw StorageError.invalid("a base may have at most \(maximumPerBase) webhooks", field: nil)
            }
            let id = SQLiteStore.newAirtableWebhookID()
            let head = try await transaction.scalar("SELECT COALESCE(MAX(seq), 0) FROM events", as: Int64.self) ?? 0
            let sealed = try keys.seal(Data(secret), context: SQLiteStore.secretContext(airtableWebhook: id))
            let expires = context.now.addingTimeInterval(lifetime).millisecondsSince1970
            try await transaction.execute(
                """
                INSERT INTO airtable_webhooks (id, base_id, workspace_id, notification_url, specification,
                    sealed_secret, expires_at, event_cursor, created_by, created_at)
                VALUES (\(id), \(base.rawValue), \(workspace), \(notificationURL), \(specification), \(sealed),
                    \(expires), \(head), \(user.rawValue), \(context.now.millisecondsSince1970))
                """
            )
            // Wakes the pingers of every instance out of their "no webhook" shortcut.
            transaction.webhooksChanged = true
            return try await Self.airtableWebhook(transaction, base: base, id: id)
        }
    }

    /// The base's workspace, checking the caller is a creator or owner there (webhooks, as on
    /// Airtable, need the permission to change the base's schema). With `lock`, the base's row stays
    /// locked until the transaction ends.
    static func airtableWebhookBase(
        _ transaction: PostgresTransaction,
        base: BaseID,
        user: UserID,
        lock: Bool = false
    ) async throws -> String {
        let query: PostgresQuery =
            lock
            ? "SELECT workspace_id FROM bases WHERE id = \(base.rawValue) FOR NO KEY UPDATE"
            : "SELECT workspace_id FROM bases WHERE id = \(base.rawValue)"
        guard let workspace = try await transaction.scalar(query, as: String.self) else {
            throw StorageError.notFound("base")
        }
        try await authorize(transaction, workspace: workspace, user: user, minimum: .creator, resource: "base")
        return workspace
    }

    /// A webhook of `base`; with `lock`, its row stays locked until the transaction ends (what
    /// appending payloads needs).
    static func airtableWebhook(
        _ transaction: PostgresTransaction,
        base: BaseID,
        id: String,
        lock: Bool = false
    ) async throws -> AirtableWebhookRow {
        let query: PostgresQuery =
            lock
            ? "SELECT * FROM airtable_webhooks WHERE id = \(id) AND base_id = \(base.rawValue) FOR UPDATE"
            : "SELECT * FROM airtable_webhooks WHERE id = \(id) AND base_id = \(base.rawValue)"
        guard let row = try await transaction.row(query) else { throw StorageError.notFound("webhook") }
        return try AirtableWebhookRow(postgres: row)
    }

    public func airtableWebhooks(base: BaseID, user: UserID) async throws -> [AirtableWebhookRow] {
        try await database.read { transaction in
            _ = try await Self.airtableWebhookBase(transaction, base: base, user: user)
            return try await transaction.rows(
                "SELECT * FROM airtable_webhooks WHERE base_id = \(base.rawValue) ORDER BY created_at, ord"
            ).map(AirtableWebhookRow.init(postgres:))
        }
    }

    public func deleteAirtableWebhook(base: BaseID, id: String, context: WriteContext) async throws {
        try await database.write { transaction in
            _ = try await Self.airtableWebhookBase(transaction, base: base, user: try context.requireActor())
            let deleted = try await transaction.changes(
                "DELETE FROM airtable_webhooks WHERE id = \(id) AND base_id = \(base.rawValue) RETURNING 1"
            )
            guard deleted == 1 else { throw StorageError.notFound("webhook") }
        }
    }

    public func setAirtableWebhookNotifications(
        base: BaseID,
        id: String,
        enabled: Bool,
        context: WriteContext
    ) async throws {
        try await database.write { transaction in
            _ = try await Self.airtableWebhookBase(transaction, base: base, user: try context.requireActor())
            let changed = try await transaction.changes(
                """
                UPDATE airtable_webhooks SET notifications_enabled = \(enabled), ping_retries = 0, next_ping_at = NULL
                WHERE id = \(id) AND base_id = \(base.rawValue) RETURNING 1
                """
            )
            guard changed == 1 else { throw StorageError.notFound("webhook") }
        }
    }

    public func refreshAirtableWebhook(
        base: BaseID,
        id: String,
        lifetime: TimeInterval,
        context: WriteContext
    ) async throws -> Date {
        try await database.write { transaction in
            _ = try await Self.airtableWebhookBase(transaction, base: base, user: try context.requireActor())
            let hook = try await Self.airtableWebhook(transaction, base: base, id: id, lock: true)
            // An expired webhook stays expired: its payloads stopped, and Airtable does not revive it.
            guard hook.isEnabled(now: context.now) else { throw StorageError.notFound("webhook") }
            let expires = context.now.addingTimeInterval(lifetime).millisecondsSince1970
            try await transaction.execute("UPDATE airtable_webhooks SET expires_at = \(expires) WHERE id = \(id)")
            return Date(millisecondsSince1970: expires)
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
        try await database.write { transaction in
            _ = try await Self.airtableWebhookBase(transaction, base: base, user: try context.requireActor())
            var hook = try await Self.airtableWebhook(transaction, base: base, id: id, lock: true)
            if hook.isEnabled(now: context.now) {
                try await self.advance(transaction, &hook, now: context.now, retention: retention)
            }
            let rows = try await transaction.rows(
                """
                SELECT number, body FROM airtable_webhook_payloads WHERE webhook_id = \(id) AND number >= \(max(1, cursor))
                ORDER BY number LIMIT \(Int64(limit + 1))
                """
            )
            let page = rows.prefix(limit)
            let next =
                try page.last.map { try $0.get("number", as: Int64.self) + 1 }
                ?? max(1, min(cursor, hook.nextPayload))
            // Events not yet turned into payloads (a backlog past one pass) are more to come.
            let backlog =
                try await transaction.scalar(
                    "SELECT EXISTS (SELECT 1 FROM events WHERE base_id = \(base.rawValue) AND seq > \(hook.eventCursor))",
                    as: Bool.self
                ) ?? false
            return AirtablePayloadPage(
                payloads: try page.map { try $0.get("body", as: String.self) },
                cursor: next,
                mightHaveMore: rows.count > limit || (backlog && hook.isEnabled(now: context.now))
            )
        }
    }

    /// Brings every unexpired webhook's payloads up to date and answers those due for a ping, each
    /// claimed for this instance's worker (see the type's documentation). The webhooks are locked in
    /// one order, so instances doing this at once take turns instead of deadlocking.
    public func advanceAirtableWebhooks(now: Date, retention: TimeInterval) async throws -> [AirtableWebhookRow] {
        let lease = now.addingTimeInterval(Self.webhookClaimLease).millisecondsSince1970
        return try await database.write { transaction in
            let hooks = try await transaction.rows(
                """
                SELECT * FROM airtable_webhooks WHERE expires_at > \(now.millisecondsSince1970)
                ORDER BY created_at, id FOR UPDATE
                """
            ).map(AirtableWebhookRow.init(postgres:))
            // Payloads past the retention go, expired webhooks' included.
            try await transaction.execute(
                """
                DELETE FROM airtable_webhook_payloads
                WHERE created_at < \(now.addingTimeInterval(-retention).millisecondsSince1970)
                """
            )
            var due: [AirtableWebhookRow] = []
            for var hook in hooks {
                try await self.advance(transaction, &hook, now: now, retention: retention)
                guard hook.notificationURL != nil, hook.notificationsEnabled,
                    hook.nextPayload - 1 > hook.pingedThrough,
                    hook.nextPingAt.map({ $0 <= now }) ?? true
                else { continue }
                try await transaction.execute(
                    "UPDATE airtable_webhooks SET next_ping_at = \(lease) WHERE id = \(hook.id)"
                )
                due.append(hook)
            }
            return due
        }
    }

    /// Whether payloads wait to be built and when the next ping is due. With no live webhook the
    /// answer holds until ``CommitFacts/webhooksGeneration`` changes (a webhook created here or on
    /// another instance), so the pinger, which wakes after every commit, then reads nothing.
    public func airtableWebhookWork(now: Date) async throws -> (backlog: Bool, nextPing: Date?) {
        let generation = database.facts.webhooksGeneration
        if airtableWebhooksIdleAt.load(ordering: .acquiring) == generation { return (false, nil) }
        let at = now.millisecondsSince1970
        let (work, live) = try await database.snapshot { transaction in
            let live =
                try await transaction.scalar(
                    "SELECT EXISTS (SELECT 1 FROM airtable_webhooks WHERE expires_at > \(at))",
                    as: Bool.self
                ) ?? true
            guard live else { return ((backlog: false, nextPing: Date?.none), false) }
            return (try await Self.airtableWork(transaction, at: at), true)
        }
        if !live { airtableWebhooksIdleAt.store(generation, ordering: .releasing) }
        return work
    }

    private static func airtableWork(
        _ transaction: PostgresTransaction,
        at: Int64
    ) async throws -> (backlog: Bool, nextPing: Date?) {
        let backlog =
            try await transaction.scalar(
                """
                SELECT EXISTS (SELECT 1 FROM airtable_webhooks w WHERE w.expires_at > \(at) AND EXISTS (
                    SELECT 1 FROM events e WHERE e.base_id = w.base_id AND e.seq > w.event_cursor))
                """,
                as: Bool.self
            ) ?? false
        let next = try await transaction.scalar(
            """
            SELECT MIN(COALESCE(next_ping_at, 0)) FROM airtable_webhooks
            WHERE expires_at > \(at) AND notification_url IS NOT NULL AND notifications_enabled
                AND next_payload - 1 > pinged_through
            """,
            as: Int64.self
        )
        return (backlog, next.map(Date.init(millisecondsSince1970:)))
    }

    public func airtableWebhookSecret(id: String) async throws -> [UInt8] {
        let keys = database.keys
        return try await database.read { transaction in
            guard
                let sealed = try await transaction.scalar(
                    "SELECT sealed_secret FROM airtable_webhooks WHERE id = \(id)",
                    as: Data.self
                )
            else { throw StorageError.notFound("webhook") }
            return Array(try keys.open(sealed, context: SQLiteStore.secretContext(airtableWebhook: id)))
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
        try await database.write { transaction in
            if success {
                try await transaction.execute(
                    """
                    UPDATE airtable_webhooks SET pinged_through = GREATEST(pinged_through, \(announcedThrough)),
                        ping_retries = 0, next_ping_at = NULL, last_success_at = \(now.millisecondsSince1970),
                        last_result = \(result)
                    WHERE id = \(id)
                    """
                )
            } else if let nextAttempt {
                try await transaction.execute(
                    """
                    UPDATE airtable_webhooks SET ping_retries = ping_retries + 1,
                        next_ping_at = \(nextAttempt.millisecondsSince1970), last_result = \(result)
                    WHERE id = \(id)
                    """
                )
            } else {
                // Out of retries: these payloads stay unannounced (they can still be listed); the next
                // write pings again.
                try await transaction.execute(
                    """
                    UPDATE airtable_webhooks SET pinged_through = GREATEST(pinged_through, \(announcedThrough)),
                        ping_retries = 0, next_ping_at = NULL, last_result = \(result)
                    WHERE id = \(id)
                    """
                )
            }
        }
    }

    /// Turns the base's events after the webhook's cursor into payloads, one per write, and drops
    /// payloads past the retention, as ``SQLiteStore/advance(_:_:now:retention:)`` does. The caller
    /// holds the webhook's row lock, and `hook` was read under it.
    ///
    /// One pass reads about ``SQLiteStore/airtableWebhookPassEvents`` events (whole writes). What the
    /// payloads need besides the events (schemas, earlier payloads of the records and tables, the
    /// actors) is read ahead for the whole pass in a few statements, not once per event: each read is a
    /// round trip here.
    func advance(
        _ transaction: PostgresTransaction,
        _ hook: inout AirtableWebhookRow,
        now: Date,
        retention: TimeInterval
    ) async throws {
        let batch = 2000
        let startCursor = hook.eventCursor
        var groups: [[AirtableEventRow]] = []
        var group: [AirtableEventRow] = []
        var processed = 0
        reading: while true {
            let rows = try await transaction.rows(
                """
                SELECT seq, type, table_id, record_id, payload, actor, ts, txn FROM events
                WHERE base_id = \(hook.baseID.rawValue) AND seq > \(hook.eventCursor) ORDER BY seq LIMIT \(Int64(batch))
                """
            ).map(AirtableEventRow.init(postgres:))
            for event in rows {
                if let last = group.last, last.transaction != event.transaction {
                    if processed >= SQLiteStore.airtableWebhookPassEvents { break reading }
                    groups.append(group)
                    group.removeAll()
                }
                group.append(event)
                hook.eventCursor = event.seq
                processed += 1
            }
            if rows.count < batch { break }
        }
        if !group.isEmpty { groups.append(group) }
        if !groups.isEmpty {
            let specification = AirtableWebhookSpecification(json: hook.specification)
            let lookups = try await PostgresPayloadLookups.read(
                transaction,
                events: groups.joined(),
                specification: specification,
                workspace: hook.workspaceID.rawValue
            )
            var payloads: [String] = []
            for events in groups {
                if let payload = try AirtablePayloadBuilder.payload(
                    of: events,
                    hook: hook,
                    specification: specification,
                    number: hook.nextPayload + Int64(payloads.count),
                    lookups: lookups
                ) {
                    payloads.append(payload)
                }
            }
            try await Self.insertPayloads(
                transaction,
                payloads,
                webhook: hook.id,
                first: hook.nextPayload,
                now: now
            )
            hook.nextPayload += Int64(payloads.count)
        }
        if startCursor != hook.eventCursor {
            try await transaction.execute(
                """
                UPDATE airtable_webhooks SET event_cursor = \(hook.eventCursor), next_payload = \(hook.nextPayload)
                WHERE id = \(hook.id)
                """
            )
        }
        try await transaction.execute(
            """
            DELETE FROM airtable_webhook_payloads
            WHERE webhook_id = \(hook.id) AND created_at < \(now.addingTimeInterval(-retention).millisecondsSince1970)
            """
        )
    }

    /// Inserts payloads numbered from `first`, many to a statement.
    private static func insertPayloads(
        _ transaction: PostgresTransaction,
        _ payloads: [String],
        webhook: String,
        first: Int64,
        now: Date
    ) async throws {
        let perStatement = 1000
        let created = now.millisecondsSince1970
        var start = 0
        while start < payloads.count {
            let end = min(start + perStatement, payloads.count)
            var sql = "INSERT INTO airtable_webhook_payloads (webhook_id, number, body, created_at) VALUES "
            var bindings = PostgresBindings(capacity: (end - start) * 4)
            for index in start..<end {
                let base = (index - start) * 4
                if index > start { sql += "," }
                sql += "($\(base + 1),$\(base + 2),$\(base + 3),$\(base + 4))"
                bindings.append(webhook)
                bindings.append(first + Int64(index))
                bindings.append(payloads[index])
                bindings.append(created)
            }
            try await transaction.execute(PostgresQuery(unsafeSQL: sql, binds: bindings))
            start = end
        }
    }
}

/// What building the payloads of one pass reads besides the events, read ahead on PostgreSQL (the
/// builder is synchronous; reads here are not). It reads at least what the builder may ask for: the
/// events it skips before any lookup (outside the specification's scope, of data types it does not
/// ask for) are left out, the finer filters (change types, watched fields) are not, so it never
/// answers "none" for something it did not read.
struct PostgresPayloadLookups: AirtablePayloadLookups {
    var schemas: [String: TableSchema] = [:]
    var previousRecordPayloads: [RecordKey: String] = [:]
    var previousTablePayloads: [RecordKey: String] = [:]
    var actors: [String: (email: String, role: Role?)] = [:]

    /// An entity (a record or a table) and the seq of the event whose predecessor is asked for.
    struct RecordKey: Hashable {
        var id: String
        var seq: Int64
    }

    static func read(
        _ transaction: PostgresTransaction,
        events: some Sequence<AirtableEventRow>,
        specification: AirtableWebhookSpecification,
        workspace: String
    ) async throws -> PostgresPayloadLookups {
        var lookups = PostgresPayloadLookups()
        let records = specification.dataTypes.contains("tableData")
        let metadata = specification.dataTypes.contains("tableMetadata")
        var tables = Set<String>()
        var updatedRecords: [RecordKey] = []
        var updatedTables: [RecordKey] = []
        var users = Set<String>()
        for event in events {
            if let actor = event.actor { users.insert(actor) }
            guard let table = event.tableID else { continue }
            if let scope = specification.scope, scope != table { continue }
            switch event.type {
            case .recordCreated where records:
                tables.insert(table)
            case .recordUpdated where records:
                tables.insert(table)
                if let record = event.recordID { updatedRecords.append(RecordKey(id: record, seq: event.seq)) }
            case .tableUpdated where metadata:
                updatedTables.append(RecordKey(id: table, seq: event.seq))
            default:
                break
            }
        }
        for table in tables.sorted() {
            if let schema = try await PostgresStore.fetchTableSchema(transaction, id: TableID(unchecked: table)) {
                lookups.schemas[table] = schema
            }
        }
        if !updatedRecords.isEmpty {
            let rows = try await transaction.rows(
                """
                SELECT u.id, u.seq, (SELECT e.payload FROM events e WHERE e.record_id = u.id AND e.seq < u.seq
                    AND e.type IN ('record.created', 'record.updated') ORDER BY e.seq DESC LIMIT 1) AS payload
                FROM unnest(\(updatedRecords.map(\.id))::text[], \(updatedRecords.map(\.seq))::bigint[]) AS u(id, seq)
                """
            )
            for row in rows {
                guard let payload = try row.get("payload", as: String?.self) else { continue }
                let key = RecordKey(id: try row.get("id", as: String.self), seq: try row.get("seq", as: Int64.self))
                lookups.previousRecordPayloads[key] = payload
            }
        }
        if !updatedTables.isEmpty {
            let rows = try await transaction.rows(
                """
                SELECT u.id, u.seq, (SELECT e.payload FROM events e WHERE e.table_id = u.id AND e.seq < u.seq
                    AND e.type IN ('table.created', 'table.updated') ORDER BY e.seq DESC LIMIT 1) AS payload
                FROM unnest(\(updatedTables.map(\.id))::text[], \(updatedTables.map(\.seq))::bigint[]) AS u(id, seq)
                """
            )
            for row in rows {
                guard let payload = try row.get("payload", as: String?.self) else { continue }
                let key = RecordKey(id: try row.get("id", as: String.self), seq: try row.get("seq", as: Int64.self))
                lookups.previousTablePayloads[key] = payload
            }
        }
        if !users.isEmpty {
            let rows = try await transaction.rows(
                """
                SELECT u.id, u.email, m.role FROM users u
                LEFT JOIN members m ON m.user_id = u.id AND m.workspace_id = \(workspace)
                WHERE u.id = ANY(\(users.sorted()))
                """
            )
            for row in rows {
                lookups.actors[try row.get("id", as: String.self)] = (
                    try row.get("email", as: String.self),
                    try row.get("role", as: String?.self).flatMap(Role.init(rawValue:))
                )
            }
        }
        return lookups
    }

    func schema(table: String) throws -> TableSchema? { schemas[table] }

    func previousRecordPayload(record: String, before seq: Int64) throws -> String? {
        previousRecordPayloads[RecordKey(id: record, seq: seq)]
    }

    func previousTablePayload(table: String, before seq: Int64) throws -> String? {
        previousTablePayloads[RecordKey(id: table, seq: seq)]
    }

    func actor(_ user: String, workspace: String) throws -> (email: String, role: Role?)? { actors[user] }
}

extension AirtableWebhookRow {
    /// A row of `airtable_webhooks` as PostgreSQL answers it.
    init(postgres row: PostgresRandomAccessRow) throws {
        id = try row.get("id", as: String.self)
        baseID = try row.id("base_id")
        workspaceID = try row.id("workspace_id")
        notificationURL = try row.get("notification_url", as: String?.self)
        specification = try row.get("specification", as: String.self)
        notificationsEnabled = try row.get("notifications_enabled", as: Bool.self)
        expiresAt = try row.date("expires_at")
        eventCursor = try row.get("event_cursor", as: Int64.self)
        nextPayload = try row.get("next_payload", as: Int64.self)
        pingedThrough = try row.get("pinged_through", as: Int64.self)
        pingRetries = try row.get("ping_retries", as: Int.self)
        nextPingAt = try row.optionalDate("next_ping_at")
        lastSuccessAt = try row.optionalDate("last_success_at")
        lastResult = try row.get("last_result", as: String?.self)
        createdBy = try row.id("created_by")
        createdAt = try row.date("created_at")
    }
}

extension AirtableEventRow {
    /// An event as PostgreSQL answers it (`seq, type, table_id, record_id, payload, actor, ts, txn`).
    init(postgres row: PostgresRandomAccessRow) throws {
        seq = try row.get("seq", as: Int64.self)
        type = EventType(rawValue: try row.get("type", as: String.self))
        tableID = try row.get("table_id", as: String?.self)
        recordID = try row.get("record_id", as: String?.self)
        payload = try row.get("payload", as: String.self)
        actor = try row.get("actor", as: String?.self)
        ts = try row.get("ts", as: Int64.self)
        transaction = try row.get("txn", as: Int64?.self) ?? -seq
    }
}
