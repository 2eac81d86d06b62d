import Foundation
import PostgresNIO
import PyAirtableModels
import Synchronization
import TestSupport
import Testing

@testable import ReferenceServer

/// The PostgreSQL store's webhooks and Airtable-style webhooks, called directly on a real database:
/// what the SQLite suites check of them (rules, sealed secrets, events, filters, retries, the log,
/// payloads one per write), and what only several instances can break: one delivery row per event and
/// webhook, each delivery claimed by one instance at a time, payload numbers without gap.
///
/// Record events come from raw `appendEvent` writes (the records repository is ported separately);
/// the other events from the store's schema writes.
@Suite("PostgreSQL webhooks", .timeLimit(.minutes(15)))
struct PostgresWebhookStoreTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let secret = "s3cret-of-the-hook"

    static func context(_ actor: UserID?, at time: Date = now, key: String? = nil) -> WriteContext {
        WriteContext(
            actor: actor,
            now: time,
            idempotency: key.map {
                IdempotencyClaim(principal: actor?.rawValue ?? "anonymous", key: $0, requestHash: "h")
            }
        )
    }

    static func user(_ store: PostgresStore, _ email: String) async throws -> UserID {
        try #require(
            try await store.createUser(email: email, name: "N", passwordHash: "x", context: context(nil)).value
        ).id
    }

    /// A workspace its owner made, a base and a table with `Name` and `Score`.
    struct Fixture: Sendable {
        var owner: UserID
        var workspace: WorkspaceID
        var base: BaseID
        var table: PyAirtableModels.Table

        static func make(_ store: PostgresStore, email: String = "owner@example.com") async throws -> Fixture {
            let owner = try await PostgresWebhookStoreTests.user(store, email)
            let context = PostgresWebhookStoreTests.context(owner)
            let workspace = try #require(
                try await store.createWorkspace(CreateWorkspaceRequest(name: "W"), context: context).value
            )
            let base = try #require(
                try await store.createBase(workspace: workspace.id, CreateBaseRequest(name: "B"), context: context)
                    .value
            )
            let table = try #require(
                try await store.createTable(
                    base: base.id,
                    CreateTableRequest(
                        name: "Tasks",
                        fields: [
                            CreateFieldRequest(name: "Name", type: .singleLineText),
                            CreateFieldRequest(name: "Score", type: .number),
                        ]
                    ),
                    context: context
                ).value
            )
            return Fixture(owner: owner, workspace: workspace.id, base: base.id, table: table)
        }

        func context(at time: Date = PostgresWebhookStoreTests.now, key: String? = nil) -> WriteContext {
            PostgresWebhookStoreTests.context(owner, at: time, key: key)
        }

        /// One event of this base (a `table.updated`), as any write makes.
        func touch(_ store: PostgresStore, _ label: String) async throws {
            _ = try await store.updateTable(
                id: table.id,
                UpdateTableRequest(description: label),
                ifVersion: nil,
                context: context()
            )
        }

        func createHook(
            _ store: PostgresStore,
            url: String = "https://example.com/hook",
            events: [EventType]? = nil,
            table: TableID? = nil,
            maximumPerBase: Int = 50
        ) async throws -> Webhook {
            try #require(
                try await store.createWebhook(
                    base: base,
                    CreateWebhookRequest(url: url, events: events, tableID: table),
                    secret: PostgresWebhookStoreTests.secret,
                    maximumPerBase: maximumPerBase,
                    context: context()
                ).value
            )
        }
    }

    static func scalar<T: PostgresDecodable & Sendable>(
        _ store: PostgresStore,
        _ query: PostgresQuery,
        as type: T.Type = T.self
    ) async throws -> T? {
        try await store.database.read { transaction in try await transaction.scalar(query, as: T.self) }
    }

    /// `(id, event_seq, status, attempts)` of a webhook's deliveries, oldest event first.
    static func deliveryRows(
        _ store: PostgresStore,
        _ webhook: WebhookID
    ) async throws -> [(id: String, seq: Int64, status: String, attempts: Int)] {
        try await store.database.read { transaction in
            try await transaction.rows(
                """
                SELECT id, event_seq, status, attempts FROM webhook_deliveries
                WHERE webhook_id = \(webhook.rawValue) ORDER BY event_seq
                """
            ).map {
                (
                    try $0.get("id", as: String.self), try $0.get("event_seq", as: Int64.self),
                    try $0.get("status", as: String.self), try $0.get("attempts", as: Int.self)
                )
            }
        }
    }

    /// The seqs of the base's events after `seq`, oldest first.
    static func baseEvents(_ store: PostgresStore, _ base: BaseID, after seq: Int64) async throws -> [Int64] {
        try await store.database.read { transaction in
            try await transaction.rows(
                "SELECT seq FROM events WHERE base_id = \(base.rawValue) AND seq > \(seq) ORDER BY seq"
            ).map { try $0.get("seq", as: Int64.self) }
        }
    }

    /// The seq of a webhook's own `webhook.created` event.
    static func creationSeq(_ store: PostgresStore, _ webhook: WebhookID) async throws -> Int64? {
        try await scalar(
            store,
            "SELECT seq FROM events WHERE type = 'webhook.created' AND payload::jsonb->>'id' = \(webhook.rawValue)",
            as: Int64.self
        )
    }

    static func enqueueAll(_ store: PostgresStore, at time: Date = now, limit: Int = 500) async throws {
        while try await store.enqueueWebhookDeliveries(now: time, limit: limit) {}
    }

    static func attempt(
        _ delivery: PendingWebhookDelivery,
        at time: Date = now,
        status: Int?,
        error: String? = nil
    ) -> WebhookAttempt {
        WebhookAttempt(
            delivery: delivery.id,
            webhook: delivery.webhookID,
            at: time,
            succeeded: status.map { (200..<300).contains($0) } ?? false,
            responseStatus: status,
            error: error
        )
    }

    // MARK: - Webhooks

    @Test func webhooksFollowTheRulesSealTheirSecretAndAppendEvents() async throws {
        try await PostgresCluster.withStores { stores in
            let store = stores[0]
            let fixture = try await Fixture.make(store)
            let viewer = try await Self.user(store, "viewer@example.com")
            let stranger = try await Self.user(store, "stranger@example.com")
            _ = try await store.addMember(
                workspace: fixture.workspace,
                AddMemberRequest(userID: viewer, role: .viewer),
                context: fixture.context()
            )
            let before = try await store.eventBounds().newest

            let created = try await store.createWebhook(
                base: fixture.base,
                CreateWebhookRequest(url: "https://example.com/a", events: [.tableUpdated], tableID: fixture.table.id),
                secret: Self.secret,
                maximumPerBase: 2,
                context: fixture.context()
            )
            let hook = try #require(created.value)
            #expect(created.response.status == 201)
            #expect(hook.secret == Self.secret && hook.enabled && hook.failureCount == 0)
            #expect(hook.events == [.tableUpdated] && hook.tableID == fixture.table.id)

            // The secret is in the answer alone; at rest it is sealed under the webhook's own context.
            let listed = try await store.webhooks(base: fixture.base, user: fixture.owner)
            #expect(listed.map(\.id) == [hook.id] && listed.allSatisfy { $0.secret == nil })
            let fetched = try await store.webhook(id: hook.id, user: fixture.owner)
            #expect(
                fetched.secret == nil && fetched.url == "https://example.com/a" && fetched.tableID == fixture.table.id
            )
            let sealed = try #require(
                try await Self.scalar(
                    store,
                    "SELECT sealed_secret FROM webhooks WHERE id = \(hook.id.rawValue)",
                    as: Data.self
                )
            )
            #expect(!String(decoding: sealed, as: UTF8.self).contains(Self.secret))
            let opened = try store.database.keys.open(
                sealed,
                context: StorageKeys.webhookSecretContext(id: hook.id.rawValue)
            )
            #expect(opened == Data(Self.secret.utf8))
            #expect(SQLiteStore.openWebhookSecret(sealed, webhook: "whkOther", keys: store.database.keys) == nil)

            // Viewers are refused (403), strangers see nothing (404).
            let forbidden = await #expect(throws: StorageError.self) {
                try await store.webhooks(base: fixture.base, user: viewer)
            }
            if case .forbidden? = forbidden {
            } else {
                Issue.record("expected forbidden, got \(String(describing: forbidden))")
            }
            await #expect(throws: StorageError.notFound("webhook")) {
                try await store.webhook(id: hook.id, user: stranger)
            }
            await #expect(throws: StorageError.notFound("base")) {
                try await store.createWebhook(
                    base: fixture.base,
                    CreateWebhookRequest(url: "https://example.com/x"),
                    secret: "x",
                    maximumPerBase: 2,
                    context: Self.context(stranger)
                )
            }
            await #expect(throws: StorageError.notFound("webhook")) {
                try await store.deliveries(webhook: hook.id, user: stranger, status: nil, before: nil, limit: 10)
            }

            // A table of another base is refused.
            let other = try #require(
                try await store.createBase(
                    workspace: fixture.workspace,
                    CreateBaseRequest(name: "Other"),
                    context: fixture.context()
                ).value
            )
            let otherTable = try #require(
                try await store.createTable(
                    base: other.id,
                    CreateTableRequest(name: "T", fields: [CreateFieldRequest(name: "Name", type: .singleLineText)]),
                    context: fixture.context()
                ).value
            )
            let wrongTable = await #expect(throws: StorageError.self) {
                try await fixture.createHook(store, table: otherTable.id, maximumPerBase: 2)
            }
            if case .invalid(_, "table_id", _)? = wrongTable {
            } else {
                Issue.record("expected an invalid table_id, got \(String(describing: wrongTable))")
            }

            // Idempotent create: replayed once, one webhook; then the per-base limit (2) holds.
            let request = CreateWebhookRequest(url: "https://example.com/b")
            let first = try await store.createWebhook(
                base: fixture.base,
                request,
                secret: "other",
                maximumPerBase: 2,
                context: fixture.context(key: "hook-1")
            )
            let again = try await store.createWebhook(
                base: fixture.base,
                request,
                secret: "other",
                maximumPerBase: 2,
                context: fixture.context(key: "hook-1")
            )
            #expect(!first.response.replayed && again.response.replayed && again.value == nil)
            #expect(first.response.body == again.response.body)
            #expect(try await store.webhooks(base: fixture.base, user: fixture.owner).count == 2)
            let limited = await #expect(throws: StorageError.self) {
                try await fixture.createHook(store, maximumPerBase: 2)
            }
            if case .invalid? = limited {
            } else {
                Issue.record("expected the limit, got \(String(describing: limited))")
            }

            // Off and on; then deleted, with its log.
            let off = try #require(
                try await store.updateWebhook(
                    id: hook.id,
                    UpdateWebhookRequest(enabled: false),
                    context: fixture.context()
                )
                .value
            )
            #expect(!off.enabled && off.disabledReason == "disabled by \(fixture.owner)")
            let on = try #require(
                try await store.updateWebhook(
                    id: hook.id,
                    UpdateWebhookRequest(enabled: true),
                    context: fixture.context()
                )
                .value
            )
            #expect(on.enabled && on.disabledReason == nil)
            await #expect(throws: StorageError.self) {
                try await store.updateWebhook(
                    id: hook.id,
                    UpdateWebhookRequest(enabled: false),
                    context: Self.context(viewer)
                )
            }
            _ = try await store.deleteWebhook(id: hook.id, context: fixture.context())
            await #expect(throws: StorageError.notFound("webhook")) {
                try await store.webhook(id: hook.id, user: fixture.owner)
            }

            // The events name the webhook but never its URL, reason or secret.
            let events = try await store.database.read { transaction in
                try await transaction.rows(
                    "SELECT type, payload FROM events WHERE seq > \(before) AND type LIKE 'webhook.%' ORDER BY seq"
                ).map { (try $0.get("type", as: String.self), try $0.get("payload", as: String.self)) }
            }
            #expect(
                events.map(\.0) == [
                    "webhook.created", "webhook.created", "webhook.updated", "webhook.updated", "webhook.deleted",
                ]
            )
            for (_, payload) in events {
                #expect(
                    !payload.contains("example.com") && !payload.contains(Self.secret)
                        && !payload.contains("disabled by")
                )
            }
        }
    }

    @Test func aWebhooksCursorStartsAtItsOwnCreationEventWhateverCommitsBesideIt() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let fixture = try await Fixture.make(stores[0])
            // Creations share commits (group commit) with other writes of their instance, and race
            // the other instance's: each cursor must still be its own event's seq.
            let hooks = try await withThrowingTaskGroup(of: WebhookID?.self) { group in
                for index in 0..<16 {
                    group.addTask {
                        let store = stores[index % 2]
                        if index % 3 == 0 {
                            try await fixture.touch(store, "concurrent \(index)")
                            return nil
                        }
                        return try await fixture.createHook(store, url: "https://example.com/\(index)").id
                    }
                }
                return try await group.reduce(into: [WebhookID]()) { if let id = $1 { $0.append(id) } }
            }
            #expect(hooks.count == 10)
            for hook in hooks {
                let cursor = try await Self.scalar(
                    stores[0],
                    "SELECT cursor FROM webhooks WHERE id = \(hook.rawValue)",
                    as: Int64.self
                )
                let created = try #require(try await Self.creationSeq(stores[0], hook))
                #expect(cursor == created)
            }

            // Each is handed exactly the base's events after its creation.
            try await fixture.touch(stores[1], "after")
            try await Self.enqueueAll(stores[0])
            for hook in hooks {
                let created = try #require(try await Self.creationSeq(stores[0], hook))
                let expected = try await Self.baseEvents(stores[0], fixture.base, after: created)
                #expect(try await Self.deliveryRows(stores[0], hook).map(\.seq) == expected)
            }
        }
    }

    @Test func eventsAreHandedOverByFilterInBatchesAndNeverTwice() async throws {
        try await PostgresCluster.withStores { stores in
            let store = stores[0]
            let fixture = try await Fixture.make(store)
            let notes = try #require(
                try await store.createTable(
                    base: fixture.base,
                    CreateTableRequest(
                        name: "Notes",
                        fields: [CreateFieldRequest(name: "Name", type: .singleLineText)]
                    ),
                    context: fixture.context()
                ).value
            )
            let narrow = try await fixture.createHook(store, events: [.tableUpdated], table: fixture.table.id)
            let everything = try await fixture.createHook(store)
            let everythingCreated = try #require(try await Self.creationSeq(store, everything.id))

            try await fixture.touch(store, "one")
            _ = try await store.updateTable(
                id: notes.id,
                UpdateTableRequest(description: "elsewhere"),
                ifVersion: nil,
                context: fixture.context()
            )
            _ = try await store.createField(
                table: fixture.table.id,
                CreateFieldRequest(name: "Notes", type: .multilineText),
                context: fixture.context()
            )
            try await fixture.touch(store, "two")

            // Two events a pass: more to come until every webhook caught up.
            #expect(try await store.webhookWork(now: Self.now).backlog)
            var passes = 0
            while try await store.enqueueWebhookDeliveries(now: Self.now, limit: 2) { passes += 1 }
            #expect(passes >= 2)

            let narrowRows = try await Self.deliveryRows(store, narrow.id)
            #expect(narrowRows.count == 2 && narrowRows.allSatisfy { $0.status == "pending" && $0.attempts == 0 })
            let everythingRows = try await Self.deliveryRows(store, everything.id)
            #expect(
                everythingRows.map(\.seq) == (try await Self.baseEvents(store, fixture.base, after: everythingCreated))
            )
            #expect(everythingRows.count == 4)

            // The body is what is POSTed: the delivery's own id, the webhook, the event as the log shows it.
            let bodies = try await store.database.read { transaction in
                try await transaction.rows(
                    "SELECT id, event_seq, body FROM webhook_deliveries WHERE webhook_id = \(narrow.id.rawValue)"
                ).map {
                    (
                        try $0.get("id", as: String.self), try $0.get("event_seq", as: Int64.self),
                        try $0.get("body", as: Data.self)
                    )
                }
            }
            for (id, seq, body) in bodies {
                let payload = try JSONCoding.decoder.decode(WebhookPayload.self, from: body)
                #expect(payload.deliveryID.rawValue == id && payload.webhookID == narrow.id)
                #expect(payload.event.seq == seq && payload.event.type == .tableUpdated)
                #expect(payload.event.tableID == fixture.table.id)
            }

            // A cursor set back (a worker with a stale view) hands nothing over twice.
            let head = try #require(try await Self.scalar(store, "SELECT MAX(seq) FROM events", as: Int64.self))
            #expect(
                try await Self.scalar(
                    store,
                    "SELECT cursor FROM webhooks WHERE id = \(narrow.id.rawValue)",
                    as: Int64.self
                ) == head
            )
            try await store.database.write { transaction in
                try await transaction.execute("UPDATE webhooks SET cursor = \(everythingCreated)")
            }
            try await Self.enqueueAll(store)
            #expect(try await Self.deliveryRows(store, narrow.id).map(\.id) == narrowRows.map(\.id))
            #expect(try await Self.deliveryRows(store, everything.id).map(\.id) == everythingRows.map(\.id))

            // A disabled webhook is handed nothing; its cursor waits.
            _ = try await store.updateWebhook(
                id: narrow.id,
                UpdateWebhookRequest(enabled: false),
                context: fixture.context()
            )
            try await fixture.touch(store, "three")
            try await Self.enqueueAll(store)
            #expect(try await Self.deliveryRows(store, narrow.id).count == 2)
            #expect(try await Self.deliveryRows(store, everything.id).count == 6)
        }
    }

    @Test func failedAttemptsRetryThenDisableAndReenablingSendsWhatWasHeldInOrder() async throws {
        try await PostgresCluster.withStores { stores in
            let store = stores[0]
            let fixture = try await Fixture.make(store)
            let policy = WebhookConfiguration(maximumConsecutiveFailures: 3, deliveryLogLimit: 2)
            // Table changes only: the webhook's own `webhook.updated` events are no deliveries here.
            let hook = try await fixture.createHook(store, events: [.tableUpdated])
            try await fixture.touch(store, "first")
            try await Self.enqueueAll(store)

            var now = Self.now
            let work = try await store.webhookWork(now: now)
            let delivery = try #require(work.due.first)
            #expect(work.due.count == 1 && delivery.attempts == 0 && delivery.eventType == .tableUpdated)
            #expect(delivery.secret == Self.secret && delivery.url == "https://example.com/hook")
            #expect(
                WebhookSignature.header(body: delivery.body, secret: Self.secret)
                    == WebhookSignature.header(body: delivery.body, secret: delivery.secret ?? "")
            )

            // A failure: pending again, due at the retry time, not before.
            try await store.recordWebhookAttempt(
                Self.attempt(delivery, at: now, status: 500, error: "HTTP 500: boom"),
                retryAt: now + 10,
                policy: policy
            )
            var log = try await store.deliveries(
                webhook: hook.id,
                user: fixture.owner,
                status: nil,
                before: nil,
                limit: 10
            )
            #expect(log.data.first?.status == .pending && log.data.first?.attempts == 1)
            #expect(log.data.first?.error == "HTTP 500: boom" && log.data.first?.responseStatus == 500)
            #expect(log.data.first?.nextAttemptAt == now + 10 && log.data.first?.lastAttemptAt == now)
            let waiting = try await store.webhookWork(now: now)
            #expect(waiting.due.isEmpty && waiting.nextDue == now + 10)
            #expect(try await store.webhook(id: hook.id, user: fixture.owner).failureCount == 1)

            // Two more: the third in a row disables the webhook, with the reason.
            for round in 2...3 {
                now += 10
                let retry = try #require(try await store.webhookWork(now: now).due.first)
                #expect(retry.id == delivery.id && retry.attempts == round - 1)
                try await store.recordWebhookAttempt(
                    Self.attempt(retry, at: now, status: 500, error: "HTTP 500"),
                    retryAt: now + 10,
                    policy: policy
                )
            }
            let disabled = try await store.webhook(id: hook.id, user: fixture.owner)
            #expect(!disabled.enabled && disabled.failureCount == 3)
            #expect(disabled.disabledReason?.contains("3 consecutive failed delivery attempts") == true)
            #expect(disabled.disabledReason?.contains("HTTP 500") == true)
            log = try await store.deliveries(
                webhook: hook.id,
                user: fixture.owner,
                status: .failed,
                before: nil,
                limit: 10
            )
            #expect(log.data.count == 1 && log.data.first?.attempts == 3 && log.data.first?.nextAttemptAt == nil)
            #expect(try await store.webhookWork(now: now + 3600).due.isEmpty)

            // Events made while it is off wait for it; turned on, the failed delivery goes first.
            try await fixture.touch(store, "while off")
            try await Self.enqueueAll(store)
            #expect(try await Self.deliveryRows(store, hook.id).count == 1)
            let enabled = try #require(
                try await store.updateWebhook(
                    id: hook.id,
                    UpdateWebhookRequest(enabled: true),
                    context: fixture.context(at: now)
                )
                .value
            )
            #expect(enabled.enabled && enabled.failureCount == 0 && enabled.disabledReason == nil)
            try await Self.enqueueAll(store)
            #expect(try await Self.deliveryRows(store, hook.id).count == 2)
            let resumed = try await store.webhookWork(now: now)
            #expect(resumed.due.map(\.id) == [delivery.id], "one at a time, the oldest first")
            try await store.recordWebhookAttempt(
                Self.attempt(delivery, at: now, status: 204),
                retryAt: now,
                policy: policy
            )
            let second = try #require(try await store.nextWebhookDelivery(webhook: hook.id, now: now))
            #expect(second.eventSeq > delivery.eventSeq && second.attempts == 0)
            try await store.recordWebhookAttempt(
                Self.attempt(second, at: now, status: 200),
                retryAt: now,
                policy: policy
            )
            #expect(try await store.nextWebhookDelivery(webhook: hook.id, now: now) == nil)
            let after = try await store.webhook(id: hook.id, user: fixture.owner)
            #expect(after.failureCount == 0 && after.enabled)

            // The log keeps the newest two; newest first, by pages.
            for index in 0..<2 { try await fixture.touch(store, "more \(index)") }
            try await Self.enqueueAll(store)
            while let next = try await store.webhookWork(now: now).due.first {
                try await store.recordWebhookAttempt(
                    Self.attempt(next, at: now, status: 200),
                    retryAt: now,
                    policy: policy
                )
            }
            let rows = try await Self.deliveryRows(store, hook.id)
            #expect(rows.count == 2 && rows.allSatisfy { $0.status == "succeeded" && $0.attempts == 1 })
            let page = try await store.deliveries(
                webhook: hook.id,
                user: fixture.owner,
                status: nil,
                before: nil,
                limit: 1
            )
            #expect(page.data.map(\.eventSeq) == [rows[1].seq] && page.nextCursor == String(rows[1].seq))
            #expect(page.data.first?.deliveredAt == now && page.data.first?.responseStatus == 200)
            let rest = try await store.deliveries(
                webhook: hook.id,
                user: fixture.owner,
                status: nil,
                before: rows[1].seq,
                limit: 1
            )
            #expect(rest.data.map(\.eventSeq) == [rows[0].seq] && rest.nextCursor == nil)
            #expect(
                try await store.deliveries(
                    webhook: hook.id,
                    user: fixture.owner,
                    status: .pending,
                    before: nil,
                    limit: 5
                )
                .data.isEmpty
            )
        }
    }

    @Test func aWebhookFailingForTooLongIsDisabledBeforeTheAttemptLimit() async throws {
        try await PostgresCluster.withStores { stores in
            let store = stores[0]
            let fixture = try await Fixture.make(store)
            let policy = WebhookConfiguration(maximumConsecutiveFailures: 100, maximumFailureDuration: .seconds(60))
            let hook = try await fixture.createHook(store)
            try await fixture.touch(store, "stuck")
            try await Self.enqueueAll(store)
            let first = try #require(try await store.webhookWork(now: Self.now).due.first)
            try await store.recordWebhookAttempt(
                Self.attempt(first, at: Self.now, status: 502),
                retryAt: Self.now + 1,
                policy: policy
            )
            let later = Self.now + 120
            let second = try #require(try await store.webhookWork(now: later).due.first)
            try await store.recordWebhookAttempt(
                Self.attempt(second, at: later, status: 502),
                retryAt: later + 1,
                policy: policy
            )
            let fetched = try await store.webhook(id: hook.id, user: fixture.owner)
            #expect(!fetched.enabled)
            #expect(fetched.disabledReason?.contains("deliveries failed for 120 s") == true, "\(fetched)")
            #expect(fetched.disabledReason?.contains("HTTP 502") == true)
        }
    }

    @Test func aCreatorWhoLosesAccessDisablesTheirWebhookAndWhoeverEnablesItTakesItOver() async throws {
        try await PostgresCluster.withStores { stores in
            let store = stores[0]
            let fixture = try await Fixture.make(store)
            let creator = try await Self.user(store, "creator@example.com")
            _ = try await store.addMember(
                workspace: fixture.workspace,
                AddMemberRequest(userID: creator, role: .creator),
                context: fixture.context()
            )
            let hook = try #require(
                try await store.createWebhook(
                    base: fixture.base,
                    CreateWebhookRequest(url: "https://example.com/c"),
                    secret: "x",
                    maximumPerBase: 5,
                    context: Self.context(creator)
                ).value
            )
            _ = try await store.removeMember(workspace: fixture.workspace, user: creator, context: fixture.context())
            let disabled = try await store.webhook(id: hook.id, user: fixture.owner)
            #expect(!disabled.enabled && disabled.disabledReason?.contains("was removed from") == true)
            _ = try await store.updateWebhook(
                id: hook.id,
                UpdateWebhookRequest(enabled: true),
                context: fixture.context()
            )
            let responsible = try await Self.scalar(
                store,
                "SELECT created_by FROM webhooks WHERE id = \(hook.id.rawValue)",
                as: String.self
            )
            #expect(responsible == fixture.owner.rawValue)
        }
    }

    // MARK: - Claims across instances

    @Test func aDeliveryIsClaimedByOneInstanceUntilItsAttemptIsRecordedOrItsLeaseRunsOut() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let (first, second) = (stores[0], stores[1])
            let fixture = try await Fixture.make(first)
            let policy = WebhookConfiguration()
            let hook = try await fixture.createHook(first)
            try await fixture.touch(first, "one")
            try await fixture.touch(second, "two")
            try await Self.enqueueAll(second)
            let lease = Self.now + PostgresStore.webhookClaimLease

            let claimed = try #require(try await first.webhookWork(now: Self.now).due.first)
            // The other instance sees it taken: not due until the lease runs out, and the webhook's
            // next delivery waits behind it.
            let elsewhere = try await second.webhookWork(now: Self.now)
            #expect(elsewhere.due.isEmpty && elsewhere.nextDue == lease)
            #expect(try await second.nextWebhookDelivery(webhook: hook.id, now: Self.now) == nil)
            // The instance holding it may claim it again (its worker asks again when it could not
            // start the attempt at once).
            #expect(try await first.webhookWork(now: Self.now).due.map(\.id) == [claimed.id])
            #expect(try await first.nextWebhookDelivery(webhook: hook.id, now: Self.now)?.id == claimed.id)
            // To the log's readers it is pending; its next attempt is at the lease's end.
            let pending = try await first.deliveries(
                webhook: hook.id,
                user: fixture.owner,
                status: .pending,
                before: nil,
                limit: 5
            )
            #expect(pending.data.count == 2)
            #expect(pending.data.last?.id == claimed.id && pending.data.last?.nextAttemptAt == lease)

            // The lease ran out (the first instance died mid-attempt): the other takes it over, and
            // the first does not take it back.
            let expired = lease + 0.001
            let takenOver = try #require(try await second.nextWebhookDelivery(webhook: hook.id, now: expired))
            #expect(takenOver.id == claimed.id && takenOver.attempts == 0)
            #expect(try await first.webhookWork(now: expired).due.isEmpty)

            try await second.recordWebhookAttempt(
                Self.attempt(takenOver, at: expired, status: 200),
                retryAt: expired,
                policy: policy
            )
            // A late outcome of the lost claim changes nothing.
            try await first.recordWebhookAttempt(
                Self.attempt(claimed, at: expired, status: 500),
                retryAt: expired,
                policy: policy
            )
            let rows = try await Self.deliveryRows(first, hook.id)
            #expect(rows.first?.status == "succeeded" && rows.first?.attempts == 1)
            #expect(try await first.webhook(id: hook.id, user: fixture.owner).failureCount == 0)
            // The next one is due for whoever asks first, once.
            let next = try #require(try await first.webhookWork(now: expired).due.first)
            #expect(next.id.rawValue == rows.last?.id)
            #expect(try await second.webhookWork(now: expired).due.isEmpty)
        }
    }

    @Test func concurrentClaimsOfSeveralInstancesNeverShareADelivery() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let fixture = try await Fixture.make(stores[0])
            var hooks: [WebhookID] = []
            for index in 0..<8 { hooks.append(try await fixture.createHook(stores[index % 2]).id) }
            try await fixture.touch(stores[0], "one")
            try await fixture.touch(stores[1], "two")
            try await Self.enqueueAll(stores[1])
            // Rounds of simultaneous asks: the first races for the rows, the later ones find them claimed.
            let claims = try await withThrowingTaskGroup(of: (Int, [DeliveryID]).self) { group in
                for task in 0..<24 {
                    group.addTask {
                        let instance = task % 2
                        if task >= 8 { try await Task.sleep(for: .milliseconds(20 * (task / 8))) }
                        return (instance, try await stores[instance].webhookWork(now: Self.now).due.map(\.id))
                    }
                }
                return try await group.reduce(into: [0: Set<DeliveryID>(), 1: []]) { $0[$1.0]?.formUnion($1.1) }
            }
            let (mine, theirs) = (claims[0] ?? [], claims[1] ?? [])
            #expect(mine.isDisjoint(with: theirs), "a delivery was claimed by both instances")
            // Every webhook's oldest delivery was claimed by someone; none of the second ones.
            var oldest = Set<String>()
            for hook in hooks { oldest.insert(try #require(try await Self.deliveryRows(stores[0], hook).first).id) }
            #expect(Set(mine.union(theirs).map(\.rawValue)) == oldest)
        }
    }

    @Test(.heavy) func twoInstancesPumpingDeliveriesSendEachEventOnceAndInOrder() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let fixture = try await Fixture.make(stores[0])
            let policy = WebhookConfiguration()
            var hooks: [WebhookID] = []
            for index in 0..<3 { hooks.append(try await fixture.createHook(stores[index % 2]).id) }
            let writes = 60
            let log = ClaimLog()
            let written = Flag()
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Events keep coming, from both instances, while both deliver.
                group.addTask {
                    for index in 0..<writes { try await fixture.touch(stores[index % 2], "write \(index)") }
                    written.value.store(true, ordering: .releasing)
                }
                for instance in 0..<2 {
                    let store = stores[instance]
                    group.addTask {
                        var idle = 0
                        while true {
                            // A failed write ends the group: the pumps must end with it.
                            try Task.checkCancellation()
                            let finished = written.value.load(ordering: .acquiring)
                            while try await store.enqueueWebhookDeliveries(now: Self.now, limit: 7) {}
                            let work = try await store.webhookWork(now: Self.now)
                            // As the worker does: each webhook's deliveries one after another while due.
                            for delivery in work.due {
                                var next: PendingWebhookDelivery? = delivery
                                while let current = next {
                                    log.append(instance: instance, current)
                                    try await store.recordWebhookAttempt(
                                        Self.attempt(current, status: 200),
                                        retryAt: Self.now,
                                        policy: policy
                                    )
                                    next = try await store.nextWebhookDelivery(
                                        webhook: current.webhookID,
                                        now: Self.now
                                    )
                                }
                            }
                            if work.due.isEmpty && !work.backlog && finished {
                                idle += 1
                                if idle > 3 { return }
                            } else {
                                idle = 0
                            }
                            await Task.yield()
                        }
                    }
                }
                try await group.waitForAll()
            }
            try await Self.enqueueAll(stores[0])
            let claims = log.entries
            var total = 0
            for hook in hooks {
                let created = try #require(try await Self.creationSeq(stores[0], hook))
                let expected = try await Self.baseEvents(stores[0], fixture.base, after: created)
                let rows = try await Self.deliveryRows(stores[0], hook)
                total += expected.count
                // One delivery row per event, each attempted once, by one instance.
                #expect(rows.map(\.seq) == expected)
                #expect(rows.allSatisfy { $0.status == "succeeded" && $0.attempts == 1 })
                let attempts = claims.filter { $0.webhook == hook }
                #expect(attempts.count == expected.count, "attempts of \(hook)")
                #expect(Set(attempts.map(\.delivery)).count == attempts.count, "a delivery was sent twice")
                // In event order, whichever instance sent them.
                #expect(attempts.map(\.seq) == expected)
            }
            #expect(claims.count == total && total >= hooks.count * writes)
        }
    }

    // MARK: - Airtable webhooks

    static func spec(_ types: [String], extra: String = "") -> String {
        let list = types.map { "\"\($0)\"" }.joined(separator: ",")
        return #"{"options": {"filters": {"dataTypes": [\#(list)]\#(extra)}}}"#
    }

    static func createAirtableHook(
        _ store: PostgresStore,
        _ fixture: Fixture,
        spec: String,
        url: String? = nil,
        lifetime: TimeInterval = 7 * 24 * 3600,
        maximumPerBase: Int = 10
    ) async throws -> AirtableWebhookRow {
        try await store.createAirtableWebhook(
            base: fixture.base,
            notificationURL: url,
            specification: spec,
            secret: Array(repeating: 9, count: 32),
            lifetime: lifetime,
            maximumPerBase: maximumPerBase,
            context: fixture.context()
        )
    }

    static func payloads(
        _ store: PostgresStore,
        _ fixture: Fixture,
        _ hook: AirtableWebhookRow,
        cursor: Int64 = 1,
        limit: Int = 50,
        at time: Date = now
    ) async throws -> (payloads: [[String: Any]], page: AirtablePayloadPage) {
        let page = try await store.airtableWebhookPayloads(
            base: fixture.base,
            id: hook.id,
            cursor: cursor,
            limit: limit,
            retention: 7 * 24 * 3600,
            context: fixture.context(at: time)
        )
        let objects = try page.payloads.map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        return (objects, page)
    }

    /// Appends events as one write (one `txn`), as the records repository would.
    static func appendWrite(
        _ store: PostgresStore,
        _ fixture: Fixture,
        transaction txn: Int64,
        _ events: [(EventType, String, JSONValue)]
    ) async throws {
        var context = fixture.context()
        context.transaction = txn
        let write = context
        try await store.database.write { transaction in
            for (type, record, payload) in events {
                try transaction.appendEvent(
                    type: type,
                    workspaceID: fixture.workspace,
                    baseID: fixture.base,
                    tableID: fixture.table.id,
                    recordID: RecordID(unchecked: record),
                    payload: payload,
                    context: write
                )
            }
        }
    }

    @Test func airtableWebhooksFollowTheRulesAndSealTheirSecret() async throws {
        try await PostgresCluster.withStores { stores in
            let store = stores[0]
            let fixture = try await Fixture.make(store)
            let editor = try await Self.user(store, "editor@example.com")
            let stranger = try await Self.user(store, "stranger@example.com")
            _ = try await store.addMember(
                workspace: fixture.workspace,
                AddMemberRequest(userID: editor, role: .editor),
                context: fixture.context()
            )
            let head = try await store.eventBounds().newest
            let hook = try await Self.createAirtableHook(
                store,
                fixture,
                spec: Self.spec(["tableData"]),
                maximumPerBase: 2
            )
            #expect(hook.id.hasPrefix("ach") && hook.id.count == 17)
            #expect(hook.eventCursor == head && hook.nextPayload == 1 && hook.pingedThrough == 0)
            #expect(hook.expiresAt == Self.now.addingTimeInterval(7 * 24 * 3600) && hook.notificationsEnabled)
            #expect(hook.createdBy == fixture.owner && hook.workspaceID == fixture.workspace)

            // The MAC secret is sealed at rest and opened for the pinger.
            #expect(try await store.airtableWebhookSecret(id: hook.id) == Array(repeating: 9, count: 32))
            let sealed = try #require(
                try await Self.scalar(
                    store,
                    "SELECT sealed_secret FROM airtable_webhooks WHERE id = \(hook.id)",
                    as: Data.self
                )
            )
            #expect(
                try store.database.keys.open(sealed, context: SQLiteStore.secretContext(airtableWebhook: hook.id))
                    == Data(repeating: 9, count: 32)
            )
            await #expect(throws: StorageError.notFound("webhook")) {
                try await store.airtableWebhookSecret(id: "achNope")
            }

            // Creators and owners only; strangers do not see the base.
            let forbidden = await #expect(throws: StorageError.self) {
                try await store.airtableWebhooks(base: fixture.base, user: editor)
            }
            if case .forbidden? = forbidden {
            } else {
                Issue.record("expected forbidden, got \(String(describing: forbidden))")
            }
            await #expect(throws: StorageError.notFound("base")) {
                try await store.airtableWebhooks(base: fixture.base, user: stranger)
            }

            // The per-base limit.
            let second = try await Self.createAirtableHook(
                store,
                fixture,
                spec: Self.spec(["tableFields"]),
                maximumPerBase: 2
            )
            let limited = await #expect(throws: StorageError.self) {
                try await Self.createAirtableHook(store, fixture, spec: Self.spec(["tableFields"]), maximumPerBase: 2)
            }
            if case .invalid? = limited {
            } else {
                Issue.record("expected the limit, got \(String(describing: limited))")
            }
            #expect(
                Set(try await store.airtableWebhooks(base: fixture.base, user: fixture.owner).map(\.id)) == [
                    hook.id, second.id,
                ]
            )

            // Notifications, refresh, expiry, delete.
            try await store.setAirtableWebhookNotifications(
                base: fixture.base,
                id: hook.id,
                enabled: false,
                context: fixture.context()
            )
            #expect(
                try await store.airtableWebhooks(base: fixture.base, user: fixture.owner).first { $0.id == hook.id }?
                    .notificationsEnabled == false
            )
            await #expect(throws: StorageError.notFound("webhook")) {
                try await store.setAirtableWebhookNotifications(
                    base: fixture.base,
                    id: "achNope",
                    enabled: true,
                    context: fixture.context()
                )
            }
            let later = Self.now + 600
            let refreshed = try await store.refreshAirtableWebhook(
                base: fixture.base,
                id: hook.id,
                lifetime: 3600,
                context: fixture.context(at: later)
            )
            #expect(refreshed == later + 3600)
            let expired = later + 7200
            await #expect(throws: StorageError.notFound("webhook")) {
                try await store.refreshAirtableWebhook(
                    base: fixture.base,
                    id: hook.id,
                    lifetime: 3600,
                    context: fixture.context(at: expired)
                )
            }
            // An expired webhook records no more payloads.
            _ = try await store.createField(
                table: fixture.table.id,
                CreateFieldRequest(name: "Late", type: .singleLineText),
                context: fixture.context()
            )
            let page = try await Self.payloads(store, fixture, second, at: second.expiresAt + 1)
            #expect(page.payloads.isEmpty && page.page.cursor == 1 && !page.page.mightHaveMore)
            try await store.deleteAirtableWebhook(base: fixture.base, id: hook.id, context: fixture.context())
            await #expect(throws: StorageError.notFound("webhook")) {
                try await store.deleteAirtableWebhook(base: fixture.base, id: hook.id, context: fixture.context())
            }
            await #expect(throws: StorageError.self) {
                try await store.deleteAirtableWebhook(base: fixture.base, id: second.id, context: Self.context(editor))
            }
        }
    }

    @Test func airtablePayloadsAreOnePerWriteFromSchemaChanges() async throws {
        try await PostgresCluster.withStores { stores in
            let store = stores[0]
            let fixture = try await Fixture.make(store)
            let hook = try await Self.createAirtableHook(
                store,
                fixture,
                spec: Self.spec(["tableFields", "tableMetadata"])
            )
            let field = try #require(
                try await store.createField(
                    table: fixture.table.id,
                    CreateFieldRequest(name: "Notes", type: .multilineText),
                    context: fixture.context()
                ).value
            )
            _ = try await store.updateTable(
                id: fixture.table.id,
                UpdateTableRequest(name: "Renamed"),
                ifVersion: nil,
                context: fixture.context()
            )
            // A change that changes neither name nor description is no metadata payload.
            _ = try await store.updateTable(
                id: fixture.table.id,
                UpdateTableRequest(name: "Renamed"),
                ifVersion: nil,
                context: fixture.context()
            )

            let all = try await Self.payloads(store, fixture, hook)
            #expect(all.payloads.count == 2 && all.page.cursor == 3 && !all.page.mightHaveMore)
            let tableID = fixture.table.id.rawValue
            let first = try #require(all.payloads.first)
            #expect(first["payloadFormat"] as? String == "v0" && first["baseTransactionNumber"] is Int)
            #expect(first["timestamp"] as? String == Timestamp.format(Self.now))
            let user =
                ((first["actionMetadata"] as? [String: Any])?["sourceMetadata"] as? [String: Any])?["user"]
                as? [String: Any]
            #expect(user?["id"] as? String == fixture.owner.rawValue)
            #expect(user?["email"] as? String == "owner@example.com" && user?["permissionLevel"] as? String == "create")
            let createdFields =
                (first["changedTablesById"] as? [String: [String: Any]])?[tableID]?["createdFieldsById"]
                as? [String: [String: Any]]
            #expect(createdFields?[field.id.rawValue]?["name"] as? String == "Notes")
            let metadata =
                (all.payloads[1]["changedTablesById"] as? [String: [String: Any]])?[tableID]?["changedMetadata"]
                as? [String: [String: Any]]
            #expect(metadata?["current"]?["name"] as? String == "Renamed")
            #expect(metadata?["previous"]?["name"] as? String == "Tasks")

            // By cursor, one at a time; past the end, the same cursor and nothing.
            let one = try await Self.payloads(store, fixture, hook, cursor: 1, limit: 1)
            #expect(one.payloads.count == 1 && one.page.cursor == 2 && one.page.mightHaveMore)
            let two = try await Self.payloads(store, fixture, hook, cursor: 2, limit: 1)
            #expect(two.payloads.count == 1 && two.page.cursor == 3 && !two.page.mightHaveMore)
            let end = try await Self.payloads(store, fixture, hook, cursor: 3)
            #expect(end.payloads.isEmpty && end.page.cursor == 3)
            let stored = try await store.airtableWebhooks(base: fixture.base, user: fixture.owner).first
            let newest = try await store.eventBounds().newest
            #expect(stored?.nextPayload == 3 && stored?.eventCursor == newest)
        }
    }

    @Test func airtableRecordPayloadsCarryCellsByFieldIDAndPreviousValues() async throws {
        try await PostgresCluster.withStores { stores in
            let store = stores[0]
            let fixture = try await Fixture.make(store)
            let extra = #"}, "includes": {"includePreviousCellValues": true"#
            let hook = try await Self.createAirtableHook(store, fixture, spec: Self.spec(["tableData"], extra: extra))
            let name = try #require(fixture.table.fields.first { $0.name == "Name" }).id.rawValue
            let score = try #require(fixture.table.fields.first { $0.name == "Score" }).id.rawValue
            func record(_ fields: [String: JSONValue]) -> JSONValue {
                .object(["fields": .object(fields), "created_at": .string(Timestamp.format(Self.now))])
            }
            // Two creations in one write; an update; two updates of one record in one write; a delete.
            try await Self.appendWrite(
                store,
                fixture,
                transaction: 11,
                [
                    (.recordCreated, "recA", record(["Name": .string("a"), "Score": .number(1)])),
                    (.recordCreated, "recB", record(["Name": .string("b")])),
                ]
            )
            try await Self.appendWrite(
                store,
                fixture,
                transaction: 12,
                [(.recordUpdated, "recA", record(["Name": .string("a"), "Score": .number(2)]))]
            )
            try await Self.appendWrite(
                store,
                fixture,
                transaction: 13,
                [
                    (.recordUpdated, "recA", record(["Name": .string("a"), "Score": .number(3)])),
                    (.recordUpdated, "recA", record(["Name": .string("c"), "Score": .number(3)])),
                ]
            )
            try await Self.appendWrite(store, fixture, transaction: 14, [(.recordDeleted, "recB", .object([:]))])

            let payloads = try await Self.payloads(store, fixture, hook).payloads
            #expect(payloads.count == 4)
            func changes(_ index: Int) -> [String: Any]? {
                (payloads[index]["changedTablesById"] as? [String: [String: Any]])?[fixture.table.id.rawValue]
            }
            let created = changes(0)?["createdRecordsById"] as? [String: [String: Any]]
            #expect(Set(created?.keys ?? [:].keys) == ["recA", "recB"])
            let cells = created?["recA"]?["cellValuesByFieldId"] as? [String: Any]
            #expect(cells?[name] as? String == "a" && cells?[score] as? Int == 1)

            let update = (changes(1)?["changedRecordsById"] as? [String: [String: Any]])?["recA"]
            let current = (update?["current"] as? [String: Any])?["cellValuesByFieldId"] as? [String: Any]
            let previous = (update?["previous"] as? [String: Any])?["cellValuesByFieldId"] as? [String: Any]
            #expect(current?.count == 1 && current?[score] as? Int == 2)
            #expect(previous?[score] as? Int == 1)

            // One write that changes a record twice is one change: the later cells, the earlier previous.
            let merged = (changes(2)?["changedRecordsById"] as? [String: [String: Any]])?["recA"]
            let mergedCurrent = (merged?["current"] as? [String: Any])?["cellValuesByFieldId"] as? [String: Any]
            let mergedPrevious = (merged?["previous"] as? [String: Any])?["cellValuesByFieldId"] as? [String: Any]
            #expect(mergedCurrent?[score] as? Int == 3 && mergedCurrent?[name] as? String == "c")
            #expect(mergedPrevious?[score] as? Int == 2 && mergedPrevious?[name] as? String == "a")

            #expect(changes(3)?["destroyedRecordIds"] as? [String] == ["recB"])
        }
    }

    @Test func airtablePayloadNumbersStayGapFreeWhenSeveralInstancesAppendThem() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let fixture = try await Fixture.make(stores[0])
            let hook = try await Self.createAirtableHook(stores[0], fixture, spec: Self.spec(["tableMetadata"]))
            let writes = 40
            let written = Flag()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for index in 0..<writes { try await fixture.touch(stores[index % 2], "description \(index)") }
                    written.value.store(true, ordering: .releasing)
                }
                // Both instances' workers and readers append payloads while the writes come.
                for instance in 0..<2 {
                    let store = stores[instance]
                    group.addTask {
                        while !written.value.load(ordering: .acquiring) {
                            _ = try await store.advanceAirtableWebhooks(now: Self.now, retention: 3600)
                            _ = try await Self.payloads(store, fixture, hook, limit: 5)
                        }
                    }
                }
                try await group.waitForAll()
            }
            _ = try await stores[1].advanceAirtableWebhooks(now: Self.now, retention: 3600)
            let rows = try await stores[0].database.read { transaction in
                try await transaction.rows(
                    "SELECT number, body FROM airtable_webhook_payloads WHERE webhook_id = \(hook.id) ORDER BY number"
                ).map { (try $0.get("number", as: Int64.self), try $0.get("body", as: String.self)) }
            }
            #expect(rows.map(\.0) == Array(1...Int64(writes)), "one payload per write, numbered without gap")
            let transactions = try rows.map { row in
                let object = try #require(try JSONSerialization.jsonObject(with: Data(row.1.utf8)) as? [String: Any])
                return try #require(object["baseTransactionNumber"] as? Int)
            }
            #expect(transactions == transactions.sorted() && Set(transactions).count == writes)
            let stored = try #require(
                try await stores[1].airtableWebhooks(base: fixture.base, user: fixture.owner).first
            )
            #expect(stored.nextPayload == Int64(writes) + 1)
            #expect(stored.eventCursor == (try await stores[1].eventBounds().newest))
        }
    }

    @Test func aDueAirtablePingIsClaimedByOneInstanceAndItsOutcomeRecorded() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let (first, second) = (stores[0], stores[1])
            let fixture = try await Fixture.make(first)
            let hook = try await Self.createAirtableHook(
                first,
                fixture,
                spec: Self.spec(["tableMetadata"]),
                url: "https://example.com/ping"
            )
            var work = try await first.airtableWebhookWork(now: Self.now)
            #expect(!work.backlog && work.nextPing == nil)
            try await fixture.touch(second, "ping me")
            work = try await first.airtableWebhookWork(now: Self.now)
            #expect(work.backlog && work.nextPing == nil)

            let due = try await first.advanceAirtableWebhooks(now: Self.now, retention: 3600)
            #expect(due.map(\.id) == [hook.id] && due.first?.nextPayload == 2)
            // Claimed: the other instance's worker does not ping it too, and wakes at the lease's end.
            #expect(try await second.advanceAirtableWebhooks(now: Self.now, retention: 3600).isEmpty)
            work = try await second.airtableWebhookWork(now: Self.now)
            #expect(!work.backlog && work.nextPing == Self.now + PostgresStore.webhookClaimLease)

            // A failed ping with a retry: due again then, for either instance.
            try await first.recordAirtablePing(
                id: hook.id,
                announcedThrough: 1,
                success: false,
                result: #"{"success":false}"#,
                nextAttempt: Self.now + 5,
                now: Self.now
            )
            #expect(try await second.airtableWebhookWork(now: Self.now).nextPing == Self.now + 5)
            #expect(try await second.advanceAirtableWebhooks(now: Self.now, retention: 3600).isEmpty)
            let retry = try await second.advanceAirtableWebhooks(now: Self.now + 5, retention: 3600)
            #expect(retry.map(\.id) == [hook.id] && retry.first?.pingRetries == 1)
            try await second.recordAirtablePing(
                id: hook.id,
                announcedThrough: 1,
                success: true,
                result: #"{"success":true}"#,
                nextAttempt: nil,
                now: Self.now + 6
            )
            let stored = try #require(try await first.airtableWebhooks(base: fixture.base, user: fixture.owner).first)
            #expect(stored.pingedThrough == 1 && stored.pingRetries == 0 && stored.nextPingAt == nil)
            #expect(stored.lastSuccessAt == Self.now + 6 && stored.lastResult == #"{"success":true}"#)
            #expect(try await first.airtableWebhookWork(now: Self.now + 6).nextPing == nil)
            #expect(try await first.advanceAirtableWebhooks(now: Self.now + 6, retention: 3600).isEmpty)

            // Notifications off: payloads still recorded, nobody pinged.
            try await first.setAirtableWebhookNotifications(
                base: fixture.base,
                id: hook.id,
                enabled: false,
                context: fixture.context()
            )
            try await fixture.touch(first, "quiet")
            #expect(try await second.advanceAirtableWebhooks(now: Self.now + 7, retention: 3600).isEmpty)
            #expect(try await first.airtableWebhooks(base: fixture.base, user: fixture.owner).first?.nextPayload == 3)
        }
    }
}

/// Which instance sent which delivery, in the order they were claimed.
private final class ClaimLog: Sendable {
    struct Entry: Sendable {
        var instance: Int
        var webhook: WebhookID
        var delivery: DeliveryID
        var seq: Int64
    }

    private let storage = Mutex<[Entry]>([])

    func append(instance: Int, _ delivery: PendingWebhookDelivery) {
        storage.withLock {
            $0.append(
                Entry(instance: instance, webhook: delivery.webhookID, delivery: delivery.id, seq: delivery.eventSeq)
            )
        }
    }

    var entries: [Entry] { storage.withLock { $0 } }
}

private final class Flag: Sendable {
    let value = Atomic<Bool>(false)
}
