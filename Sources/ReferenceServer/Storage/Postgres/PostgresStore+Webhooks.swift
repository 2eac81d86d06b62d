import Foundation
import PostgresNIO
import PyAirtableModels
import Synchronization

/// Webhooks on PostgreSQL: the same routes' rules, errors, limits, sealed secrets and events as
/// ``SQLiteStore``'s, and a delivery side safe with the delivery worker of several instances running
/// at once.
///
/// What one SQLite process guarantees by being alone, PostgreSQL gets from row locks:
/// - **Handing events over.** An instance locks the webhooks whose cursors it advances (`FOR UPDATE`,
///   in id order, so two instances never deadlock on them); a second instance waits, then sees the
///   advanced cursor. Each event so becomes one delivery per webhook, and the unique
///   `(webhook_id, event_seq)` with `ON CONFLICT DO NOTHING` makes a second one impossible anyway.
/// - **Claiming.** SQLite's worker keeps in memory which webhooks have an attempt under way; across
///   instances that must be in the database. ``webhookWork(now:)`` and
///   ``nextWebhookDelivery(webhook:now:)`` claim the deliveries they answer as due: each row is locked
///   with `FOR UPDATE SKIP LOCKED` (a row another instance is claiming is skipped, never waited for)
///   and marked `attempting` with a lease, `next_attempt_at` = now + ``webhookClaimLease``. Until the
///   attempt is recorded or the lease runs out it is due for nobody else, so an instance that dies
///   mid-attempt delays the delivery by one lease at most. Only a webhook's oldest unfinished
///   delivery can be claimed: a webhook's deliveries still go out one at a time and in event order,
///   whichever instance sends them.
/// - **Claiming again.** The worker may be answered a due delivery and not start it at once (its
///   webhook's attempt just ending, every slot taken); it then asks again later. An instance may claim
///   again what it claimed itself (``PostgresWebhookClaims``), so such a delivery does not wait for
///   its own instance's lease.
///
/// The protocol needs no change for this: its reads of due work become claims on this store.
/// `attempting` reads as `pending` in the delivery log (a status filter of `pending` includes it).
extension PostgresStore: WebhookRepository {
    /// How long a claimed delivery is held for the instance that claimed it. Much longer than an
    /// attempt may take (``WebhookConfiguration/attemptTimeout``, 10 s by default): a lease that ran
    /// out while its attempt still ran would let another instance send the delivery a second time.
    static let webhookClaimLease: TimeInterval = 120

    // MARK: - Webhooks

    /// Loads a webhook and checks the caller's role in its workspace (non-members get 404); with
    /// `lock`, the row stays locked until the transaction ends, so a concurrent change from another
    /// instance (a delivery worker disabling it, another request) applies before or after, never
    /// halfway.
    static func fetchWebhook(
        _ transaction: PostgresTransaction,
        id: WebhookID,
        user: UserID,
        minimum: Role,
        lock: Bool = false
    ) async throws -> (webhook: Webhook, workspace: WorkspaceID, createdBy: String?) {
        let query: PostgresQuery =
            lock
            ? "SELECT * FROM webhooks WHERE id = \(id.rawValue) FOR UPDATE"
            : "SELECT * FROM webhooks WHERE id = \(id.rawValue)"
        guard let row = try await transaction.row(query) else { throw StorageError.notFound("webhook") }
        let workspace: WorkspaceID = try row.id("workspace_id")
        try await authorize(
            transaction,
            workspace: workspace.rawValue,
            user: user,
            minimum: minimum,
            resource: "webhook"
        )
        return (try decodeWebhook(from: row), workspace, try row.get("created_by", as: String?.self))
    }

    public func webhooks(base: BaseID, user: UserID) async throws -> [Webhook] {
        try await database.read { transaction in
            _ = try await Self.fetchBase(transaction, id: base, user: user, minimum: SQLiteStore.webhookRole)
            // Ties of one millisecond by insertion order (`ord`), as SQLite's by rowid.
            return try await transaction.rows(
                "SELECT * FROM webhooks WHERE base_id = \(base.rawValue) ORDER BY created_at, ord"
            ).map(Self.decodeWebhook(from:))
        }
    }

    public func webhook(id: WebhookID, user: UserID) async throws -> Webhook {
        try await database.read { transaction in
            try await Self.fetchWebhook(transaction, id: id, user: user, minimum: SQLiteStore.webhookRole).webhook
        }
    }

    /// Registers a webhook. Its cursor is the seq of its own `webhook.created` event, which is only
    /// known once the commit numbers the events: it is set then, in the same transaction, so no
    /// reader ever sees the placeholder. The base's row is locked: two instances creating webhooks
    /// on one base cannot both pass the per-base limit.
    public func createWebhook(
        base: BaseID,
        _ request: CreateWebhookRequest,
        secret: String,
        maximumPerBase: Int,
        context: WriteContext
    ) async throws -> WriteResult<Webhook> {
        let actor = try context.requireActor()
        let keys = database.keys
        return try await perform(context, status: 201) { transaction in
            let owner = try await Self.fetchBase(
                transaction,
                id: base,
                user: actor,
                minimum: SQLiteStore.webhookRole,
                lock: true
            )
            if let table = request.tableID {
                let inBase = try await transaction.row(
                    "SELECT 1 FROM tables WHERE id = \(table.rawValue) AND base_id = \(base.rawValue)"
                )
                guard inBase != nil else {
                    throw StorageError.invalid("table_id \(table) is not a table of base \(base)", field: "table_id")
                }
            }
            let count =
                try await transaction.scalar(
                    "SELECT COUNT(*) FROM webhooks WHERE base_id = \(base.rawValue)",
                    as: Int64.self
                ) ?? 0
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
            let id = webhook.id.rawValue
            let now = context.now.millisecondsSince1970
            let events = String(decoding: try JSONCoding.encoder.encode(webhook.events), as: UTF8.self)
            let sealed = try keys.seal(Data(secret.utf8), context: StorageKeys.webhookSecretContext(id: id))
            try await transaction.execute(
                """
                INSERT INTO webhooks (id, base_id, workspace_id, url, events, table_id, sealed_secret, enabled,
                    failure_count, cursor, created_by, created_at, updated_at)
                VALUES (\(id), \(base.rawValue), \(owner.workspaceID.rawValue), \(webhook.url), \(events),
                    \(webhook.tableID?.rawValue), \(sealed), TRUE, 0, 0, \(actor.rawValue), \(now), \(now))
                """
            )
            transaction.webhooksChanged = true
            // The webhook sees the events committed after its own creation.
            transaction.afterEvents { transaction, seqs in
                guard let seq = seqs.first else { return }
                try await transaction.execute("UPDATE webhooks SET cursor = \(seq) WHERE id = \(id)")
            }
            try transaction.appendEvent(
                type: .webhookCreated,
                workspaceID: owner.workspaceID,
                baseID: base,
                payload: WebhookEventPayload(webhook),
                context: context
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
        return try await perform(context) { transaction in
            let fetched = try await Self.fetchWebhook(
                transaction,
                id: id,
                user: actor,
                minimum: SQLiteStore.webhookRole,
                lock: true
            )
            var webhook = fetched.webhook
            let workspace = fetched.workspace
            let now = context.now.millisecondsSince1970
            switch request.enabled {
            case true?:
                // Back on: a fresh failure count, and the deliveries it gave up on go out again, in
                // order. A webhook delivers on its creator's access; one whose creator lost it is taken
                // over by whoever turns it back on.
                var creatorKeepsAccess = false
                if let creator = fetched.createdBy {
                    let role = try await Self.role(
                        transaction,
                        workspace: workspace.rawValue,
                        user: UserID(unchecked: creator)
                    )
                    creatorKeepsAccess = role.map { $0 >= SQLiteStore.webhookRole } ?? false
                }
                let responsible = creatorKeepsAccess ? fetched.createdBy : actor.rawValue
                try await transaction.execute(
                    """
                    UPDATE webhooks SET enabled = TRUE, disabled_reason = NULL, failure_count = 0,
                        first_failure_at = NULL, created_by = \(responsible), updated_at = \(now)
                    WHERE id = \(id.rawValue)
                    """
                )
                // A delivery another instance is attempting right now keeps its claim: making it due
                // again would let a second instance send it at the same time.
                try await transaction.execute(
                    """
                    UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = \(now)
                    WHERE webhook_id = \(id.rawValue) AND status IN ('pending', 'failed')
                    """
                )
                webhook.enabled = true
                webhook.disabledReason = nil
                webhook.failureCount = 0
                transaction.webhooksChanged = true
            case false?:
                let reason = "disabled by \(actor)"
                try await transaction.execute(
                    """
                    UPDATE webhooks SET enabled = FALSE, disabled_reason = \(reason), updated_at = \(now)
                    WHERE id = \(id.rawValue)
                    """
                )
                webhook.enabled = false
                webhook.disabledReason = reason
                transaction.webhooksChanged = true
            case nil:
                break
            }
            try transaction.appendEvent(
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
        return try await perform(context, status: 204) { transaction in
            let (webhook, workspace, _) = try await Self.fetchWebhook(
                transaction,
                id: id,
                user: actor,
                minimum: SQLiteStore.webhookRole,
                lock: true
            )
            try await transaction.execute("DELETE FROM webhooks WHERE id = \(id.rawValue)")
            transaction.webhooksChanged = true
            try transaction.appendEvent(
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

    static func delivery(from row: PostgresRandomAccessRow) throws -> WebhookDelivery {
        WebhookDelivery(
            id: try row.id("id"),
            webhookID: try row.id("webhook_id"),
            eventSeq: try row.get("event_seq", as: Int64.self),
            eventType: EventType(rawValue: try row.get("event_type", as: String.self)),
            // `attempting` (claimed by an instance) is a pending delivery to the log's readers.
            status: WebhookDelivery.Status(rawValue: try row.get("status", as: String.self)) ?? .pending,
            attempts: try row.get("attempts", as: Int.self),
            responseStatus: try row.get("response_status", as: Int?.self),
            error: try row.get("error", as: String?.self),
            createdAt: try row.date("created_at"),
            lastAttemptAt: try row.optionalDate("last_attempt_at"),
            nextAttemptAt: try row.optionalDate("next_attempt_at"),
            deliveredAt: try row.optionalDate("delivered_at")
        )
    }

    public func deliveries(
        webhook: WebhookID,
        user: UserID,
        status: WebhookDelivery.Status?,
        before: Int64?,
        limit: Int
    ) async throws -> Page<WebhookDelivery> {
        try await database.read { transaction in
            _ = try await Self.fetchWebhook(transaction, id: webhook, user: user, minimum: SQLiteStore.webhookRole)
            var bindings = PostgresBindings(capacity: 4)
            bindings.append(webhook.rawValue)
            var sql = """
                SELECT id, webhook_id, event_seq, event_type, status, attempts, response_status, error,
                    created_at, last_attempt_at, next_attempt_at, delivered_at
                FROM webhook_deliveries WHERE webhook_id = $1
                """
            if let status {
                if status == .pending {
                    sql += " AND status IN ('pending', 'attempting')"
                } else {
                    bindings.append(status.rawValue)
                    sql += " AND status = $\(bindings.count)"
                }
            }
            if let before {
                bindings.append(before)
                sql += " AND event_seq < $\(bindings.count)"
            }
            bindings.append(Int64(limit + 1))
            sql += " ORDER BY event_seq DESC LIMIT $\(bindings.count)"
            var deliveries = try await transaction.rows(PostgresQuery(unsafeSQL: sql, binds: bindings))
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

    /// Hands the events after each enabled webhook's cursor over as pending deliveries and advances
    /// the cursor, in one transaction. The webhooks are locked in id order: another instance doing
    /// the same waits, then finds the cursors advanced (PostgreSQL checks the `cursor < head`
    /// condition again on the row it waited for) and has nothing left to do for them.
    public func enqueueWebhookDeliveries(now: Date, limit: Int) async throws -> Bool {
        try await database.write { transaction in
            let head = try await transaction.scalar("SELECT COALESCE(MAX(seq), 0) FROM events", as: Int64.self) ?? 0
            let hooks = try await transaction.rows(
                """
                SELECT id, workspace_id, base_id, table_id, events, cursor FROM webhooks
                WHERE enabled AND cursor < \(head) ORDER BY id FOR UPDATE
                """
            )
            var more = false
            for hook in hooks {
                let id: WebhookID = try hook.id("id")
                let cursor = try hook.get("cursor", as: Int64.self)
                let table = try hook.get("table_id", as: String?.self)
                let types = Set(
                    try JSONCoding.decoder.decode(
                        [EventType].self,
                        from: Data(try hook.get("events", as: String.self).utf8)
                    )
                )
                let rows = try await transaction.rows(
                    """
                    SELECT seq, type, workspace_id, base_id, table_id, record_id, payload, actor, ts FROM events
                    WHERE base_id = \(try hook.get("base_id", as: String.self))
                        AND workspace_id = \(try hook.get("workspace_id", as: String.self))
                        AND seq > \(cursor) AND seq <= \(head)
                    ORDER BY seq LIMIT \(Int64(limit))
                    """
                )
                var deliveries: [NewDelivery] = []
                var last: Int64?
                for row in rows {
                    let event = try Self.decodeEvent(from: row)
                    last = event.seq
                    if !types.isEmpty && !types.contains(event.type) { continue }
                    if let table, event.tableID?.rawValue != table { continue }
                    let delivery = DeliveryID.generate()
                    let body = try JSONCoding.encoder.encode(
                        WebhookPayload(deliveryID: delivery, webhookID: id, event: event)
                    )
                    deliveries.append(NewDelivery(id: delivery, eventSeq: event.seq, eventType: event.type, body: body))
                }
                try await Self.insertDeliveries(transaction, deliveries, webhook: id, now: now)
                let advancedTo: Int64
                if rows.count == limit, let last {
                    advancedTo = last
                    more = true
                } else {
                    advancedTo = head
                }
                try await transaction.execute(
                    "UPDATE webhooks SET cursor = GREATEST(cursor, \(advancedTo)) WHERE id = \(id.rawValue)"
                )
            }
            return more
        }
    }

    private struct NewDelivery {
        var id: DeliveryID
        var eventSeq: Int64
        var eventType: EventType
        var body: Data
    }

    /// Inserts pending deliveries, many to a statement; an event that already has its delivery keeps it.
    private static func insertDeliveries(
        _ transaction: PostgresTransaction,
        _ deliveries: [NewDelivery],
        webhook: WebhookID,
        now: Date
    ) async throws {
        let columns = 7
        let perStatement = 1000
        let at = now.millisecondsSince1970
        var start = 0
        while start < deliveries.count {
            let end = min(start + perStatement, deliveries.count)
            var sql = """
                INSERT INTO webhook_deliveries
                    (id, webhook_id, event_seq, event_type, body, created_at, next_attempt_at, status, attempts)
                VALUES
                """
            var bindings = PostgresBindings(capacity: (end - start) * columns)
            for index in start..<end {
                let delivery = deliveries[index]
                let base = (index - start) * columns
                sql += index > start ? ",(" : " ("
                sql += (1...columns).map { "$\(base + $0)" }.joined(separator: ",")
                sql += ",'pending',0)"
                bindings.append(delivery.id.rawValue)
                bindings.append(webhook.rawValue)
                bindings.append(delivery.eventSeq)
                bindings.append(delivery.eventType.rawValue)
                try bindings.append(delivery.body)
                bindings.append(at)
                bindings.append(at)
            }
            sql += " ON CONFLICT (webhook_id, event_seq) DO NOTHING"
            try await transaction.execute(PostgresQuery(unsafeSQL: sql, binds: bindings))
            start = end
        }
    }

    /// Whether an enabled webhook has events to hand over, and the due deliveries — each claimed for
    /// this instance (see the type's documentation).
    ///
    /// When no webhook is enabled the answer holds until ``CommitFacts/webhooksGeneration`` changes,
    /// as in ``SQLiteStore/webhookWork(now:)``: the worker wakes after every commit, and with no
    /// webhook it then reads nothing. Every commit that changes a webhook moves the generation on
    /// every instance (its `NOTIFY`, else the count in `event_head` the listener polls).
    public func webhookWork(now: Date) async throws -> WebhookWork {
        // Taken before the reads begin, so a webhook enabled meanwhile changes it.
        let generation = database.facts.webhooksGeneration
        if webhooksIdleAt.load(ordering: .acquiring) == generation {
            return WebhookWork(backlog: false, due: [], nextDue: nil)
        }
        let work = try await claimDeliveries(webhook: nil, now: now)
        if !work.backlog, work.due.isEmpty, work.nextDue == nil {
            let anyEnabled =
                try await database.read { transaction in
                    try await transaction.scalar("SELECT EXISTS (SELECT 1 FROM webhooks WHERE enabled)", as: Bool.self)
                } ?? true
            if !anyEnabled { webhooksIdleAt.store(generation, ordering: .releasing) }
        }
        return work
    }

    public func nextWebhookDelivery(webhook: WebhookID, now: Date) async throws -> PendingWebhookDelivery? {
        try await claimDeliveries(webhook: webhook, now: now).due.first
    }

    /// Reads each enabled webhook's (or `webhook`'s) oldest unfinished delivery and claims those due;
    /// the write is only made when one is.
    private func claimDeliveries(webhook: WebhookID?, now: Date) async throws -> WebhookWork {
        let at = now.millisecondsSince1970
        let instance = database.eventListener.instanceID
        let claims = webhookClaims
        let read: @Sendable (PostgresTransaction) async throws -> (Bool, [DeliveryHead]) = { transaction in
            let backlog: Bool
            if webhook == nil {
                backlog =
                    try await transaction.scalar(
                        """
                        SELECT EXISTS (SELECT 1 FROM webhooks
                            WHERE enabled AND cursor < (SELECT COALESCE(MAX(seq), 0) FROM events))
                        """,
                        as: Bool.self
                    ) ?? false
            } else {
                backlog = false
            }
            // The oldest pending and the oldest attempting delivery, each answered by the
            // (webhook_id, status, event_seq) index, and the older of the two: one `status IN (…)`
            // would sort every unfinished delivery of a webhook with a long backlog.
            let heads = try await transaction.rows(
                """
                SELECT d.id, d.status, d.next_attempt_at FROM webhooks w
                CROSS JOIN LATERAL (
                    (SELECT id, event_seq, status, next_attempt_at FROM webhook_deliveries
                        WHERE webhook_id = w.id AND status = 'pending' ORDER BY event_seq LIMIT 1)
                    UNION ALL
                    (SELECT id, event_seq, status, next_attempt_at FROM webhook_deliveries
                        WHERE webhook_id = w.id AND status = 'attempting' ORDER BY event_seq LIMIT 1)
                    ORDER BY event_seq LIMIT 1
                ) d
                WHERE w.enabled AND (\(webhook?.rawValue)::text IS NULL OR w.id = \(webhook?.rawValue))
                """
            ).map { row in
                DeliveryHead(
                    id: try row.get("id", as: String.self),
                    status: try row.get("status", as: String.self),
                    nextAttempt: try row.get("next_attempt_at", as: Int64?.self)
                )
            }
            return (backlog, heads)
        }
        // The worker's pass reads its two answers in one snapshot; one webhook's next delivery is one statement.
        let (backlog, heads) = try await webhook == nil ? database.snapshot(read) : database.read(read)
        let held = claims.held(by: instance, now: at)
        var candidates: [String] = []
        var nextDue: Date?
        for head in heads {
            if head.isClaimable(at: at, held: held) {
                candidates.append(head.id)
            } else if let next = head.nextAttempt {
                nextDue = min(nextDue ?? Date(millisecondsSince1970: next), Date(millisecondsSince1970: next))
            }
        }
        guard !candidates.isEmpty else { return WebhookWork(backlog: backlog, due: [], nextDue: nextDue) }
        let claimable = candidates
        let lease = at + Int64(Self.webhookClaimLease * 1000)
        let keys = database.keys
        let due = try await database.write { transaction -> [PendingWebhookDelivery] in
            // A row another instance is claiming right now is skipped: it is that instance's.
            let locked = try await transaction.rows(
                "SELECT id FROM webhook_deliveries WHERE id = ANY(\(claimable)) ORDER BY id FOR UPDATE SKIP LOCKED"
            ).map { try $0.get("id", as: String.self) }
            guard !locked.isEmpty else { return [] }
            // Read again now that the rows are locked (a new statement sees every commit so far): a
            // delivery finished, claimed by another instance, or behind an older one since the first
            // read is not this instance's to take.
            let rows = try await transaction.rows(
                """
                SELECT d.id, d.webhook_id, d.event_seq, d.event_type, d.body, d.attempts, d.status,
                    d.next_attempt_at, w.url, w.sealed_secret
                FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                WHERE d.id = ANY(\(locked)) AND w.enabled AND d.status IN ('pending', 'attempting')
                    AND NOT EXISTS (SELECT 1 FROM webhook_deliveries o WHERE o.webhook_id = d.webhook_id
                        AND o.status IN ('pending', 'attempting') AND o.event_seq < d.event_seq)
                """
            )
            var taken: [PendingWebhookDelivery] = []
            for row in rows {
                let head = DeliveryHead(
                    id: try row.get("id", as: String.self),
                    status: try row.get("status", as: String.self),
                    nextAttempt: try row.get("next_attempt_at", as: Int64?.self)
                )
                guard head.isClaimable(at: at, held: held) else { continue }
                let webhookID = try row.get("webhook_id", as: String.self)
                taken.append(
                    PendingWebhookDelivery(
                        id: try row.id("id"),
                        webhookID: WebhookID(unchecked: webhookID),
                        eventSeq: try row.get("event_seq", as: Int64.self),
                        eventType: EventType(rawValue: try row.get("event_type", as: String.self)),
                        body: try row.get("body", as: Data.self),
                        url: try row.get("url", as: String.self),
                        secret: SQLiteStore.openWebhookSecret(
                            try row.get("sealed_secret", as: Data.self),
                            webhook: webhookID,
                            keys: keys
                        ),
                        attempts: try row.get("attempts", as: Int.self)
                    )
                )
            }
            guard !taken.isEmpty else { return [] }
            let ids = taken.map(\.id.rawValue)
            try await transaction.execute(
                """
                UPDATE webhook_deliveries SET status = 'attempting', next_attempt_at = \(lease)
                WHERE id = ANY(\(ids))
                """
            )
            // Noted before the commit: a claim noted that then fails to commit names a lease the row
            // does not have, and is never taken for this instance's.
            claims.hold(ids, until: lease, by: instance)
            return taken
        }
        return WebhookWork(
            backlog: backlog,
            due: due.sorted { $0.eventSeq < $1.eventSeq },
            nextDue: nextDue
        )
    }

    /// A webhook's oldest unfinished delivery as the claim sees it.
    private struct DeliveryHead: Sendable {
        var id: String
        var status: String
        var nextAttempt: Int64?

        /// Whether this instance may claim it at `at` (milliseconds, compared as stored, so a delivery
        /// due "now" is due under a clock that stands still): a pending delivery once it is due, an
        /// attempting one once its lease ran out, or when this instance holds the claim.
        func isClaimable(at: Int64, held: [String: Int64]) -> Bool {
            switch status {
            case "pending":
                return (nextAttempt ?? at) <= at
            case "attempting":
                guard let lease = nextAttempt else { return true }
                return lease <= at || held[id] == lease
            default:
                return false
            }
        }
    }

    /// Records one attempt as ``SQLiteStore/recordWebhookAttempt(_:retryAt:policy:)`` does. The
    /// webhook's row is locked first (then the delivery's), as every write that changes both does:
    /// failure counts of attempts recorded by two instances add up, and the order of the locks
    /// leaves no deadlock with re-enabling.
    public func recordWebhookAttempt(
        _ attempt: WebhookAttempt,
        retryAt: Date,
        policy: WebhookConfiguration
    ) async throws {
        try await database.write { transaction in
            let webhookID = attempt.webhook.rawValue
            guard
                let hook = try await transaction.row(
                    "SELECT failure_count, first_failure_at FROM webhooks WHERE id = \(webhookID) FOR UPDATE"
                )
            else { return }  // deleted, with its deliveries, while the attempt ran
            guard
                let attempts = try await transaction.scalar(
                    """
                    SELECT attempts FROM webhook_deliveries
                    WHERE id = \(attempt.delivery.rawValue) AND status IN ('pending', 'attempting') FOR UPDATE
                    """,
                    as: Int64.self
                )
            else { return }  // finished meanwhile
            let at = attempt.at.millisecondsSince1970
            if attempt.succeeded {
                try await transaction.execute(
                    """
                    UPDATE webhook_deliveries SET status = 'succeeded', attempts = \(attempts + 1),
                        response_status = \(attempt.responseStatus.map(Int64.init)), error = NULL,
                        last_attempt_at = \(at), next_attempt_at = NULL, delivered_at = \(at)
                    WHERE id = \(attempt.delivery.rawValue)
                    """
                )
                try await transaction.execute(
                    """
                    UPDATE webhooks SET failure_count = 0, first_failure_at = NULL
                    WHERE id = \(webhookID) AND (failure_count <> 0 OR first_failure_at IS NOT NULL)
                    """
                )
                // The log keeps the newest `deliveryLogLimit` deliveries; unfinished ones are never dropped.
                try await transaction.execute(
                    """
                    DELETE FROM webhook_deliveries WHERE webhook_id = \(webhookID) AND status = 'succeeded'
                        AND event_seq <= (SELECT event_seq FROM webhook_deliveries WHERE webhook_id = \(webhookID)
                            ORDER BY event_seq DESC LIMIT 1 OFFSET \(Int64(policy.deliveryLogLimit)))
                    """
                )
                return
            }
            let failures = try hook.get("failure_count", as: Int.self) + 1
            let firstFailure = try hook.get("first_failure_at", as: Int64?.self) ?? at
            let failingFor = Double(at - firstFailure) / 1000
            let error = attempt.error ?? attempt.responseStatus.map { "HTTP \($0)" } ?? "failed"
            var reason: String?
            if failures >= policy.maximumConsecutiveFailures {
                reason = "\(failures) consecutive failed delivery attempts; last: \(error)"
            } else if failingFor >= policy.maximumFailureDuration.seconds {
                reason = "deliveries failed for \(Int(failingFor)) s without a success; last: \(error)"
            }
            try await transaction.execute(
                """
                UPDATE webhook_deliveries SET status = \(reason == nil ? "pending" : "failed"),
                    attempts = \(attempts + 1), response_status = \(attempt.responseStatus.map(Int64.init)),
                    error = \(error), last_attempt_at = \(at),
                    next_attempt_at = \(reason == nil ? retryAt.millisecondsSince1970 : nil)
                WHERE id = \(attempt.delivery.rawValue)
                """
            )
            if let reason {
                try await transaction.execute(
                    """
                    UPDATE webhooks SET failure_count = \(Int64(failures)), first_failure_at = \(firstFailure),
                        enabled = FALSE, disabled_reason = \(reason)
                    WHERE id = \(webhookID)
                    """
                )
                transaction.webhooksChanged = true
            } else {
                try await transaction.execute(
                    """
                    UPDATE webhooks SET failure_count = \(Int64(failures)), first_failure_at = \(firstFailure)
                    WHERE id = \(webhookID)
                    """
                )
            }
        }
        // Only once recorded: an attempt whose outcome could not be stored is made again at once by
        // this instance, as SQLite's worker makes it again, not after its own lease.
        webhookClaims.release(attempt.delivery.rawValue, by: database.eventListener.instanceID)
    }
}

/// The webhook deliveries this process has claimed, per instance (the
/// ``PostgresEventListener/instanceID`` of the database that claimed them), each with the lease end
/// its claim wrote.
///
/// An instance may claim again a delivery it holds; no other instance knows it holds one. The lease
/// end is the proof: a claim this instance lost (its lease ran out and another instance claimed the
/// delivery) has another lease end in the row, and is not taken back. Kept in memory, as the worker's
/// own record of its attempts is: a restarted instance is a new one, and waits for its old leases.
/// Each ``PostgresStore`` keeps one.
final class PostgresWebhookClaims: Sendable {
    /// Instance → delivery id → lease end (milliseconds).
    private let leases = Mutex<[String: [String: Int64]]>([:])

    /// The claims `instance` holds whose lease has not run out at `now` (those that have are due for
    /// everyone, and are forgotten).
    func held(by instance: String, now: Int64) -> [String: Int64] {
        leases.withLock { all in
            guard let mine = all[instance] else { return [:] }
            let live = mine.filter { $0.value > now }
            all[instance] = live.isEmpty ? nil : live
            return live
        }
    }

    func hold(_ deliveries: [String], until lease: Int64, by instance: String) {
        leases.withLock { all in
            for delivery in deliveries { all[instance, default: [:]][delivery] = lease }
        }
    }

    func release(_ delivery: String, by instance: String) {
        leases.withLock { all in
            all[instance]?[delivery] = nil
            if all[instance]?.isEmpty == true { all[instance] = nil }
        }
    }
}
