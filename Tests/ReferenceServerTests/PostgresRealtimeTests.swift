import Foundation
import PostgresNIO
import PyAirtableModels
import Synchronization
import TestSupport
import Testing

@testable import ReferenceServer

/// The PostgreSQL store's event log and its cross-instance wake-up: a commit on one instance wakes
/// the others' realtime hubs and workers (a `NOTIFY` as the hint, the `event_head` row as the
/// truth), a dropped listen connection comes back and catches up, a lost notification is made up
/// by the safety poll; and the log's pages, trim (410) and counts answer as the SQLite store's.
///
/// Waits are bounded: each polls its condition every few milliseconds until a deadline.
@Suite("PostgreSQL events and realtime", .timeLimit(.minutes(5)))
struct PostgresRealtimeTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    static func context(_ actor: UserID?, at now: Date = start) -> WriteContext {
        WriteContext(actor: actor, now: now)
    }

    static func user(_ store: PostgresStore, _ email: String) async throws -> UserID {
        let created = try await store.createUser(email: email, name: "N", passwordHash: "x", context: context(nil))
        return try #require(created.value).id
    }

    /// Appends one `user.updated` event (the actor's own, outside any workspace) and answers its seq.
    @discardableResult
    static func rename(_ store: PostgresStore, _ user: UserID, at now: Date = start) async throws -> Int64 {
        _ = try await store.updateUser(
            UpdateUserRequest(name: "n\(Int.random(in: 0...1_000_000))"),
            ifVersion: nil,
            context: context(user, at: now)
        )
        return try await store.eventBounds().newest
    }

    /// Opens `count` instances on one fresh database with the given safety poll interval (a long one
    /// proves a wake-up came from a notification), runs `body`, and closes them.
    static func withInstances<T: Sendable>(
        _ count: Int,
        pollInterval: Duration,
        _ body: ([PostgresStore]) async throws -> T
    ) async throws -> T {
        try await PostgresCluster.withDatabase { location in
            var databases: [PostgresServerDatabase] = []
            do {
                for _ in 0..<count {
                    databases.append(
                        try await PostgresServerDatabase(
                            location: location,
                            maximumConnections: 4,
                            eventPollInterval: pollInterval,
                            keys: StorageKeys(secret: Array(repeating: 7, count: 32)),
                            logger: Harness.logger
                        )
                    )
                }
                let value = try await body(databases.map { PostgresStore(database: $0, logger: Harness.logger) })
                for database in databases { await database.close() }
                return value
            } catch {
                for database in databases { await database.close() }
                throw error
            }
        }
    }

    /// Whether `condition` holds within `limit`, asked every 10 ms. The bound is generous, for a
    /// loaded machine: these tests check what wakes an instance (a notification, with the poll set
    /// far longer than the bound; the poll, with nobody notifying), not how fast — that is for
    /// benchmarks.
    static func eventually(
        within limit: Duration = .seconds(10),
        _ condition: () async throws -> Bool
    ) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while true {
            if try await condition() { return true }
            if ContinuousClock.now >= deadline { return false }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Counts an instance's commit signals.
    final class Counter: Sendable {
        let value = Atomic<Int>(0)

        var count: Int { value.load(ordering: .relaxed) }
    }

    /// Counts the commit signals an instance fires.
    static func commitCounter(_ store: PostgresStore) -> Counter {
        let counter = Counter()
        store.observeCommits { counter.value.add(1, ordering: .relaxed) }
        return counter
    }

    /// Waits until the instance's listener listens (the first connection is made at start).
    static func listening(_ store: PostgresStore) async throws -> Int32 {
        #expect(try await eventually(within: .seconds(10)) { store.database.eventListener.backendPID != nil })
        return try #require(store.database.eventListener.backendPID)
    }

    // MARK: Cross-instance wake-up

    @Test func aCommitOnOneInstanceWakesAnother() async throws {
        // A one-minute poll: within a second, only the notification can have woken instance B.
        try await Self.withInstances(2, pollInterval: .seconds(60)) { stores in
            let (a, b) = (stores[0], stores[1])
            let user = try await Self.user(a, "ada@example.com")
            _ = try await Self.listening(b)
            let woken = Self.commitCounter(b)
            let before = try await b.realtimeHead()

            let seq = try await Self.rename(a, user)
            #expect(try await Self.eventually { try await b.realtimeHead() == seq && woken.count > 0 })
            let seen = try await b.realtimeEvents(after: before, limit: 10)
            #expect(seen.map(\.seq) == [seq])
            #expect(seen.first?.type == EventType.userUpdated.rawValue)
            #expect(seen.first?.actor == user.rawValue)
            // The JSON fan-out sends is the log's event, byte for byte the same from every instance.
            #expect(try await a.realtimeEvents(after: before, limit: 10) == seen)
            let logged = try await b.events(since: before, filter: EventFilter(), limit: 10, user: user).data
            let fannedOut = try seen.map { try JSONCoding.decoder.decode(Event.self, from: Data($0.json.utf8)) }
            #expect(fannedOut == logged)
            #expect(seen.first?.json == String(decoding: try JSONCoding.encoder.encode(logged[0]), as: UTF8.self))

            // A burst of commits (their notifications coalesced) ends with B at A's head.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<40 {
                    group.addTask { _ = try await Self.rename(a, user) }
                }
                try await group.waitForAll()
            }
            let head = try await a.eventBounds().newest
            #expect(head == seq + 40)
            #expect(try await Self.eventually { try await b.realtimeHead() == head })
            #expect(try await b.realtimeEvents(after: seq, limit: 100).map(\.seq) == Array((seq + 1)...head))
        }
    }

    @Test func aCommitThatChangesWebhooksTellsTheOtherInstancesWebhookWorkers() async throws {
        try await Self.withInstances(2, pollInterval: .seconds(60)) { stores in
            let (a, b) = (stores[0], stores[1])
            _ = try await Self.listening(b)
            // Listening began with a catch-up, which counts as a webhook change (it may have missed
            // one): wait for it, so only the commit below can move the generation again.
            #expect(try await Self.eventually(within: .seconds(10)) { b.database.facts.webhooksGeneration > 0 })
            let generation = b.database.facts.webhooksGeneration
            try await a.database.write { transaction in transaction.webhooksChanged = true }
            #expect(try await Self.eventually { b.database.facts.webhooksGeneration != generation })
        }
    }

    @Test func aTerminatedListenConnectionIsReplacedAndMissesNothing() async throws {
        try await Self.withInstances(2, pollInterval: .seconds(60)) { stores in
            let (a, b) = (stores[0], stores[1])
            let user = try await Self.user(a, "ada@example.com")
            let killed = try await Self.listening(b)
            let sessions = b.database.eventListener.sessionCount
            let woken = Self.commitCounter(b)

            let terminated = try await a.database.read { transaction in
                try await transaction.scalar("SELECT pg_terminate_backend(\(killed))", as: Bool.self)
            }
            #expect(terminated == true)
            // Committed while B's listener is down or coming back: its catch-up finds it.
            let seq = try await Self.rename(a, user)
            #expect(try await Self.eventually { try await b.realtimeHead() == seq && woken.count > 0 })

            // Listening again, on a new connection.
            #expect(
                try await Self.eventually(within: .seconds(10)) {
                    let listener = b.database.eventListener
                    return listener.sessionCount > sessions && listener.backendPID.map { $0 != killed } == true
                }
            )
            let replacement = try #require(b.database.eventListener.backendPID)
            let alive = try await a.database.read { transaction in
                try await transaction.scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = \(replacement)",
                    as: Int64.self
                )
            }
            #expect(alive == 1)
            // And notifications reach it: with a one-minute poll, nothing else wakes B this soon.
            let next = try await Self.rename(a, user)
            #expect(try await Self.eventually { try await b.realtimeHead() == next })
            #expect(try await b.realtimeEvents(after: seq, limit: 10).map(\.seq) == [next])
        }
    }

    @Test func aCommitWhoseNotificationIsLostIsFoundByTheSafetyPoll() async throws {
        try await Self.withInstances(2, pollInterval: .milliseconds(200)) { stores in
            let (a, b) = (stores[0], stores[1])
            let user = try await Self.user(a, "ada@example.com")
            let woken = Self.commitCounter(b)
            let before = try await b.realtimeHead()
            // An event committed outside the writer, so nobody notifies: as if the NOTIFY were lost.
            try await a.database.read { transaction in
                try await transaction.execute("BEGIN")
                try await transaction.execute("UPDATE event_head SET seq = seq + 1 WHERE id = 1")
                try await transaction.execute(
                    """
                    INSERT INTO events (seq, type, payload, actor, ts)
                    SELECT seq, 'user.updated', '{}', \(user.rawValue), 0 FROM event_head WHERE id = 1
                    """
                )
                try await transaction.execute("COMMIT")
            }
            #expect(try await Self.eventually { try await b.realtimeHead() == before + 1 && woken.count > 0 })
            #expect(try await b.realtimeEvents(after: before, limit: 10).map(\.seq) == [before + 1])
            // The writer's own instance learns of it the same way.
            #expect(try await Self.eventually { try await a.realtimeHead() == before + 1 })
        }
    }

    @Test func aWebhookChangeWhoseNotificationIsLostIsFoundByTheSafetyPoll() async throws {
        try await Self.withInstances(2, pollInterval: .milliseconds(200)) { stores in
            let (a, b) = (stores[0], stores[1])
            // Listening began with a catch-up, which counts as a webhook change: wait for it, and for
            // the poll to have read the count once, so only the change below can move the generation.
            _ = try await Self.listening(b)
            #expect(try await Self.eventually { b.database.facts.webhooksGeneration > 0 })
            try await Task.sleep(for: .milliseconds(600))
            let generation = b.database.facts.webhooksGeneration
            // A commit that changed webhooks, made outside the writer so nobody notifies: as if its
            // NOTIFY were lost while B's listen connection was down.
            try await a.database.read { transaction in
                try await transaction.execute(
                    "UPDATE event_head SET webhooks_changes = webhooks_changes + 1 WHERE id = 1"
                )
            }
            #expect(try await Self.eventually { b.database.facts.webhooksGeneration != generation })
        }
    }

    @Test func aWriterCommitThatChangesWebhooksCountsItInTheLog() async throws {
        try await Self.withInstances(1, pollInterval: .seconds(60)) { stores in
            let a = stores[0]
            let read: @Sendable () async throws -> Int64 = {
                try await a.database.read { transaction in
                    try await transaction.scalar("SELECT webhooks_changes FROM event_head WHERE id = 1", as: Int64.self)
                } ?? -1
            }
            let before = try await read()
            try await a.database.write { transaction in transaction.webhooksChanged = true }
            #expect(try await read() == before + 1)
            // A commit that leaves webhooks alone does not count.
            _ = try await Self.rename(a, try await Self.user(a, "bo@example.com"))
            #expect(try await read() == before + 1)
        }
    }

    @Test func closingAnInstanceEndsItsListenConnection() async throws {
        try await PostgresCluster.withStores(instances: 1) { stores in
            let observer = stores[0]
            let database = try await PostgresServerDatabase(
                location: observer.database.location,
                maximumConnections: 2,
                keys: StorageKeys(secret: Array(repeating: 7, count: 32)),
                logger: Harness.logger
            )
            let pid = try await Self.listening(PostgresStore(database: database, logger: Harness.logger))
            await database.close()
            #expect(database.eventListener.backendPID == nil)
            #expect(
                try await Self.eventually(within: .seconds(5)) {
                    try await observer.database.read { transaction in
                        try await transaction.scalar(
                            "SELECT count(*) FROM pg_stat_activity WHERE pid = \(pid)",
                            as: Int64.self
                        )
                    } == 0
                }
            )
        }
    }

    // MARK: The log

    /// A workspace `ada` is a member of, with a base and a table, made with SQL (the workspace
    /// repository is not what these tests are about).
    static func scaffold(_ store: PostgresStore, owner: UserID) async throws {
        try await store.database.write { transaction in
            try await transaction.execute(
                "INSERT INTO workspaces (id, name, created_at, updated_at) VALUES ('wspTeam', 'Team', 0, 0)"
            )
            try await transaction.execute(
                """
                INSERT INTO members (workspace_id, user_id, role, added_at)
                VALUES ('wspTeam', \(owner.rawValue), 'owner', 0)
                """
            )
            try await transaction.execute(
                "INSERT INTO bases (id, workspace_id, name, created_at, updated_at) VALUES ('basOne', 'wspTeam', 'B', 0, 0)"
            )
            for table in ["tblOne", "tblTwo"] {
                try await transaction.execute(
                    """
                    INSERT INTO tables (id, base_id, name, primary_field_id, created_at, updated_at)
                    VALUES (\(table), 'basOne', \(table), 'fldName', 0, 0)
                    """
                )
            }
        }
    }

    /// Appends a record event of the scaffold's workspace, as a record write would.
    @discardableResult
    static func recordEvent(
        _ store: PostgresStore,
        _ type: EventType = .recordCreated,
        table: String,
        record: String,
        actor: UserID,
        at now: Date = start,
        recipients: [UserID] = []
    ) async throws -> Int64 {
        try await store.database.write { transaction in
            try transaction.appendEvent(
                type: type,
                workspaceID: WorkspaceID(unchecked: "wspTeam"),
                baseID: BaseID(unchecked: "basOne"),
                tableID: TableID(unchecked: table),
                recordID: RecordID(unchecked: record),
                payload: ["id": record],
                context: context(actor, at: now),
                recipients: recipients
            )
        }
        return try await store.eventBounds().newest
    }

    @Test func theLogPagesNarrowsAndShowsEachUserOnlyTheirEvents() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let (a, b) = (stores[0], stores[1])
            let ada = try await Self.user(a, "ada@example.com")
            let grace = try await Self.user(b, "grace@example.com")
            try await Self.scaffold(a, owner: ada)
            let start = try await a.eventBounds().newest
            #expect(start == 0)
            // Eight events over both instances: record events of two tables, a rename of each user,
            // and an event naming grace as a recipient (a removed member's own removal).
            var written: [Int64] = []
            for index in 0..<5 {
                written.append(
                    try await Self.recordEvent(
                        stores[index % 2],
                        table: index.isMultiple(of: 2) ? "tblOne" : "tblTwo",
                        record: "rec\(index)",
                        actor: ada
                    )
                )
            }
            let adaRenamed = try await Self.rename(b, ada)
            let graceRenamed = try await Self.rename(a, grace)
            let removal = try await Self.recordEvent(
                a,
                .recordUpdated,
                table: "tblOne",
                record: "rec0",
                actor: ada,
                recipients: [grace]
            )
            #expect(removal == 8)

            // Ada reads hers in pages of three, on either instance.
            var collected: [Event] = []
            var since = start
            var pages = 0
            while true {
                let page = try await stores[pages % 2].events(since: since, filter: EventFilter(), limit: 3, user: ada)
                #expect(page.data.count <= 3)
                if page.data.isEmpty {
                    #expect(page.nextSince == since)
                    break
                }
                #expect(page.nextSince == page.data.last?.seq)
                collected += page.data
                since = page.nextSince
                pages += 1
            }
            #expect(pages == 3)
            #expect(collected.map(\.seq) == written + [adaRenamed, removal])
            #expect(collected.compactMap(\.recordID?.rawValue) == ["rec0", "rec1", "rec2", "rec3", "rec4", "rec0"])
            #expect(collected[5].type == .userUpdated && collected[5].actor == ada && collected[5].workspaceID == nil)
            #expect(collected[0].payload == .object(["id": .string("rec0")]))
            #expect(collected[0].ts == Self.start)

            // Filters narrow, and a foreign id reveals nothing.
            func seqs(_ filter: EventFilter, _ user: UserID) async throws -> [Int64] {
                try await b.events(since: 0, filter: filter, limit: 100, user: user).data.map(\.seq)
            }
            #expect(try await seqs(EventFilter(tableID: TableID(unchecked: "tblOne")), ada) == [1, 3, 5, 8])
            #expect(try await seqs(EventFilter(recordID: RecordID(unchecked: "rec0")), ada) == [1, 8])
            #expect(try await seqs(EventFilter(baseID: BaseID(unchecked: "basOne")), ada) == [1, 2, 3, 4, 5, 8])
            #expect(
                try await seqs(EventFilter(workspaceID: WorkspaceID(unchecked: "wspTeam")), ada) == [1, 2, 3, 4, 5, 8]
            )
            #expect(try await seqs(EventFilter(tableID: TableID(unchecked: "tblTwo")), grace).isEmpty)

            // Grace is no member: her own rename and the event naming her, nothing else.
            #expect(try await seqs(EventFilter(), grace) == [graceRenamed, removal])
            // Nothing visible after `since`: the next since skips to the log's head.
            let elsewhere = EventFilter(workspaceID: WorkspaceID(unchecked: "wspNone"))
            let past = try await a.events(since: graceRenamed, filter: elsewhere, limit: 10, user: grace)
            #expect(past.data.isEmpty && past.nextSince == removal)

            // Realtime catch-up applies the same rule, through the head of one snapshot.
            // (Catch-up reads no recipients: it checks access in SQL.)
            var expected = try await b.realtimeEvents(after: 0, limit: 10).filter {
                [graceRenamed, removal].contains($0.seq)
            }
            for index in expected.indices { expected[index].recipients = [] }
            let catchUp = try await b.realtimeCatchUp(after: 0, filter: EventFilter(), user: grace, limit: 10)
            #expect(catchUp == .events(expected, through: removal))
            // A page as long as the limit covers through its last event only.
            let short = try await b.realtimeCatchUp(after: 0, filter: EventFilter(), user: grace, limit: 1)
            #expect(short == .events([expected[0]], through: graceRenamed))
            #expect(try await a.realtimeEvents(after: removal - 1, limit: 10).first?.recipients == [grace.rawValue])
            let memberships = try await a.workspaceMemberships(of: [ada, grace])
            #expect(memberships == [ada: ["wspTeam"], grace: []])
            let bounds = try await a.eventBounds()
            #expect(bounds.oldest == 1 && bounds.newest == removal)
        }
    }

    @Test func afterATrimAnOldSinceIs410AndRecentOnesStillWork() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let (a, b) = (stores[0], stores[1])
            let ada = try await Self.user(a, "ada@example.com")
            try await Self.scaffold(a, owner: ada)
            // Two webhooks on the base: one behind the events about to be trimmed, one past them.
            try await a.database.write { transaction in
                for (id, cursor) in [("whkBehind", 0), ("whkAhead", 1000)] {
                    try await transaction.execute(
                        """
                        INSERT INTO webhooks (id, base_id, workspace_id, url, events, sealed_secret, cursor,
                            created_at, updated_at)
                        VALUES (\(id), 'basOne', 'wspTeam', 'https://example.com/hook', '[]', '\\x00'::bytea,
                            \(Int64(cursor)), 0, 0)
                        """
                    )
                }
            }
            for index in 0..<3 {
                try await Self.recordEvent(stores[index % 2], table: "tblOne", record: "old\(index)", actor: ada)
            }
            try await Self.rename(a, ada)
            let oldHead = try await a.eventBounds().newest
            #expect(oldHead == 4)

            let later = Self.start.addingTimeInterval(8 * 24 * 3600)
            let recent = [
                try await Self.recordEvent(b, table: "tblOne", record: "new0", actor: ada, at: later),
                try await Self.recordEvent(a, table: "tblOne", record: "new1", actor: ada, at: later),
            ]
            let trimmed = try await b.trimEvents(olderThan: later.addingTimeInterval(-7 * 24 * 3600))
            #expect(trimmed == Int(oldHead))

            // Either instance answers 410 for a since whose successors are gone.
            for store in stores {
                for since in [0, oldHead - 1] {
                    await #expect(throws: StorageError.eventsTrimmed(since: since, trimmedThrough: oldHead)) {
                        try await store.events(since: since, filter: EventFilter(), limit: 10, user: ada)
                    }
                    #expect(
                        try await store.realtimeCatchUp(after: since, filter: EventFilter(), user: ada, limit: 10)
                            == .resyncRequired(head: recent[1])
                    )
                }
            }
            let current = try await a.events(since: oldHead, filter: EventFilter(), limit: 10, user: ada)
            #expect(current.data.map(\.seq) == recent)
            #expect(current.data.map(\.recordID?.rawValue) == ["new0", "new1"])
            let rest = try await b.events(since: oldHead + 1, filter: EventFilter(), limit: 10, user: ada)
            #expect(rest.data.map(\.seq) == [recent[1]])
            let bounds = try await a.eventBounds()
            #expect(bounds.oldest == oldHead + 1 && bounds.newest == recent[1])
            // A since past the head is a resync for realtime.
            #expect(
                try await a.realtimeCatchUp(after: recent[1] + 5, filter: EventFilter(), user: ada, limit: 10)
                    == .resyncRequired(head: recent[1])
            )

            // The webhook that had not received the trimmed events is moved past them, and says so.
            let hooks = try await a.database.read { transaction in
                try await transaction.rows("SELECT id, cursor, disabled_reason FROM webhooks ORDER BY id").map {
                    (
                        try $0.get("id", as: String.self), try $0.get("cursor", as: Int64.self),
                        try $0.get("disabled_reason", as: String?.self)
                    )
                }
            }
            #expect(hooks.count == 2)
            #expect(hooks[0].0 == "whkAhead" && hooks[0].1 == 1000 && hooks[0].2 == nil)
            #expect(hooks[1].0 == "whkBehind" && hooks[1].1 == oldHead)
            #expect(
                hooks[1].2
                    == "3 event(s) of the base through seq \(oldHead) were removed by the event log's retention "
                    + "before this webhook received them"
            )

            // A trim with nothing older removes nothing and leaves the mark.
            #expect(try await a.trimEvents(olderThan: Self.start) == 0)
            let mark = try await a.database.read { transaction in
                try await transaction.scalar(
                    "SELECT value FROM server_state WHERE key = 'events_trimmed_through'",
                    as: String.self
                )
            }
            #expect(mark == String(oldHead))
            #expect(try await a.stats(visibleTo: nil).events == 2)
        }
    }

    @Test func statsCountWhatEachUserCanSee() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let (a, b) = (stores[0], stores[1])
            let ada = try await Self.user(a, "ada@example.com")
            let grace = try await Self.user(b, "grace@example.com")
            _ = try await Self.user(b, "alan@example.com")
            try await Self.scaffold(a, owner: ada)
            try await a.database.write { transaction in
                for index in 0..<3 {
                    try await transaction.execute(
                        """
                        INSERT INTO records (id, table_id, fields, created_at, updated_at)
                        VALUES (\("rec\(index)"), 'tblOne', '{}', 0, 0)
                        """
                    )
                }
                // Another workspace ada is not in.
                try await transaction.execute(
                    "INSERT INTO workspaces (id, name, created_at, updated_at) VALUES ('wspOther', 'Other', 0, 0)"
                )
            }
            try await Self.recordEvent(a, table: "tblOne", record: "rec0", actor: ada)
            try await Self.recordEvent(b, table: "tblOne", record: "rec1", actor: ada, recipients: [ada, grace])
            try await Self.rename(a, ada)
            try await Self.rename(b, grace)
            let head = try await Self.rename(b, grace)

            let all = try await a.stats(visibleTo: nil)
            #expect(
                all == StoreStats(users: 3, workspaces: 2, bases: 1, tables: 2, records: 3, events: 5, lastSeq: head)
            )
            // Ada: her workspace and what it holds; its events, her rename; an event naming her
            // in her own workspace counts once.
            #expect(
                try await b.stats(visibleTo: ada)
                    == StoreStats(users: 1, workspaces: 1, bases: 1, tables: 2, records: 3, events: 3, lastSeq: head)
            )
            // Grace: no workspace; her renames and the one event naming her.
            #expect(
                try await a.stats(visibleTo: grace)
                    == StoreStats(users: 1, workspaces: 0, bases: 0, tables: 0, records: 0, events: 3, lastSeq: head)
            )
            // A member is counted among the users of ada's workspaces.
            try await a.database.write { transaction in
                try await transaction.execute(
                    """
                    INSERT INTO members (workspace_id, user_id, role, added_at)
                    VALUES ('wspTeam', \(grace.rawValue), 'viewer', 0)
                    """
                )
            }
            #expect(try await b.stats(visibleTo: ada).users == 2)
            // Grace now reads the workspace's events; the one naming her is not counted twice.
            #expect(try await b.stats(visibleTo: grace).events == 4)
        }
    }
}
