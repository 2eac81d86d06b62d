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
    /// Record rows the batch locked up front (``prefetchRecords(_:)``), by record then user; each is
    /// good until the first statement after it (which may change the row) or a write of its record.
    private var prefetched: [String: [String: PrefetchedRecord]] = [:]
    /// Records the prefetch asked for and did not find (without a transaction: nothing sent since
    /// can have created them).
    private var prefetchMissed: Set<String> = []
    /// Record updates not yet sent: the next statement sends them first (so it sees them), or they go
    /// with the events in the commit's statement.
    private var deferredUpdates: [DeferredRecordUpdate] = []
    /// How many times deferred updates were sent (a savepoint's mark tells which are still pending).
    private var flushes = 0
    /// Whether the batch runs without a transaction (``PostgresServerDatabase``'s first try for
    /// record updates): its rows were read without locks, nothing may be sent before the commit's
    /// statement, which checks the rows' versions and writes everything or nothing. A statement
    /// wanted before then fails with ``NeedsTransaction``: the batch runs again in a transaction.
    let unlocked: Bool

    /// Idempotency keys a batch without a transaction claims with its commit's statement.
    private var deferredKeys: [DeferredKey] = []

    /// A job of a batch run without a transaction wanted a statement of its own (or work after the
    /// events are numbered): the batch must run in a transaction.
    struct NeedsTransaction: Error {}

    /// An idempotency key and the answer stored with it, claimed by the commit's statement of a
    /// batch without a transaction: when the key is taken already (by an earlier write, or one under
    /// way), the statement fails with ``keyTakenState`` and writes nothing.
    struct DeferredKey: Sendable {
        var principal: String
        var key: String
        var requestHash: String
        var status: Int64
        /// The answer's body, sealed.
        var body: ByteBuffer
        var eTag: String?
        var createdAt: Int64
    }

    /// The SQLSTATE of `pyat_key_taken()` (migration v3).
    static let keyTakenState = "PK001"

    /// Claims `key` with the commit's statement (a batch without a transaction only).
    func deferKey(_ key: DeferredKey) {
        precondition(unlocked, "keys are deferred only without a transaction")
        deferredKeys.append(key)
    }

    /// A record row locked by the batch's prefetch, with what a write checks: its table's version and
    /// the role of the user who asked.
    struct PrefetchedRecord: Sendable {
        var row: StoredRecord
        var tableID: String
        var tableVersion: Int
        var role: String?
    }

    /// A record to lock for a user before the batch's writes run.
    struct RecordLock: Sendable, Hashable {
        var record: String
        var user: String
    }

    struct DeferredRecordUpdate: Sendable {
        var id: String
        var fields: String
        var version: Int
        var updatedAt: Int64
        /// The version the row had when read: a batch run without a transaction writes the row only
        /// if it still has it.
        var previousVersion: Int
    }

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
    }

    /// Told of every statement before it is sent (see ``PostgresServerDatabase/withConnection(_:)``).
    let progress: StatementProgress?

    init(
        connection: PostgresConnection,
        logger: Logger,
        unlocked: Bool = false,
        progress: StatementProgress? = nil,
        mirrorGuard: MirrorGuard? = nil
    ) {
        self.connection = connection
        self.logger = logger
        self.unlocked = unlocked
        self.progress = progress
        self.mirrorGuard = mirrorGuard
    }

    /// Refuses writes to mirrored bases (see ``MirrorGuard``).
    let mirrorGuard: MirrorGuard?

    /// Before every statement: fails when the connection is closed (postgres-nio would never answer
    /// a statement sent on it), and tells ``progress`` another statement starts.
    private func ready() throws {
        guard !connection.isClosed else { throw PostgresServerDatabase.ConnectionClosed() }
        progress?.mark()
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

    /// Sends a statement, after the deferred record updates (so it sees them); the prefetched rows
    /// are no longer trusted after it, as it may change them.
    private func send(_ query: PostgresQuery) async throws -> PostgresRowSequence {
        if unlocked { throw NeedsTransaction() }
        if !deferredUpdates.isEmpty { try await flushRecordUpdates() }
        prefetched.removeAll()
        return try await sendNow(query)
    }

    /// Sends a statement on this transaction's connection, unless the connection is closed.
    ///
    /// postgres-nio 1.33 never answers a query sent on a connection the server closed while it was
    /// idle (its task is not even cancellable), so a statement after PostgreSQL went away would hang
    /// the instance's writer for good: the check turns it into a connection failure (a 503, and the
    /// pool drops the connection).
    private func sendNow(_ query: PostgresQuery) async throws -> PostgresRowSequence {
        try ready()
        return try await connection.query(query, logger: logger)
    }

    /// Ends the transaction with `ROLLBACK`, dropping what was not sent.
    func rollBackAll() async throws {
        deferredUpdates.removeAll()
        prefetched.removeAll()
        _ = try await sendNow("ROLLBACK").collect()
    }

    /// The rows of a prepared statement (prepared on this connection the first time it runs here).
    func rows<Statement: PostgresPreparedStatement>(_ statement: Statement) async throws -> [Statement.Row] {
        if unlocked { throw NeedsTransaction() }
        if !deferredUpdates.isEmpty { try await flushRecordUpdates() }
        prefetched.removeAll()
        try ready()
        var rows: [Statement.Row] = []
        for try await row in try await connection.execute(statement, logger: logger) { rows.append(row) }
        return rows
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

    // MARK: Batched record writes

    /// Locks (`FOR UPDATE`) the records of `locks` in one statement, in id order (so batches on
    /// several instances lock shared records in the same order), and keeps each row with its table's
    /// version and the user's role for ``takePrefetched(record:user:)``. Records not found are left
    /// out: the write looks them up itself and reports them. Without a transaction (``unlocked``)
    /// the rows are read, not locked: the commit's statement checks their versions.
    func prefetchRecords(_ locks: [RecordLock]) async throws {
        guard !locks.isEmpty else { return }
        prefetched.removeAll()
        try ready()
        let statement = LockRecords(records: locks.map(\.record), users: locks.map(\.user))
        if unlocked {
            for try await (user, row) in try await connection.execute(ReadRecords(statement), logger: logger) {
                prefetched[row.row.id, default: [:]][user] = row
            }
            prefetchMissed = Set(locks.map(\.record).filter { prefetched[$0] == nil })
        } else {
            for try await (user, row) in try await connection.execute(statement, logger: logger) {
                prefetched[row.row.id, default: [:]][user] = row
            }
        }
    }

    /// ``LockRecords`` without the lock, for a batch run without a transaction.
    struct ReadRecords: PostgresPreparedStatement {
        static let name = "pyat_read_records"
        static let sql = LockRecords.sql.replacingOccurrences(of: " FOR UPDATE OF r", with: "")
        static let bindingDataTypes = LockRecords.bindingDataTypes

        var statement: LockRecords

        init(_ statement: LockRecords) { self.statement = statement }

        func makeBindings() -> PostgresBindings { statement.makeBindings() }

        func decodeRow(_ row: PostgresRow) throws -> (String, PrefetchedRecord) { try statement.decodeRow(row) }
    }

    /// `FOR UPDATE` of records for users (two arrays of the same length), in id order, with each
    /// record's table version and the user's role. Prepared: its text is the same for any count.
    struct LockRecords: PostgresPreparedStatement {
        static let name = "pyat_lock_records"
        static let sql = """
            SELECT v.uid, r.id, r.fields, r.version, r.created_at, r.updated_at, r.table_id, t.version, m.role
            FROM unnest($1::text[], $2::text[]) AS v(rid, uid) JOIN records r ON r.id = v.rid
            JOIN tables t ON t.id = r.table_id JOIN bases b ON b.id = t.base_id
            LEFT JOIN members m ON m.workspace_id = b.workspace_id AND m.user_id = v.uid
            ORDER BY r.id FOR UPDATE OF r
            """
        static let bindingDataTypes: [PostgresDataType] = [.textArray, .textArray]

        var records: [String]
        var users: [String]

        func makeBindings() -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 2)
            bindings.append(records)
            bindings.append(users)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> (String, PrefetchedRecord) {
            let (user, id, fields, version, createdAt, updatedAt, table, tableVersion, role) = try row.decode(
                (String, String, String, Int64, Int64, Int64, String, Int64, String?).self
            )
            let stored = StoredRecord(
                id: id,
                fields: fields,
                version: Int(version),
                createdAt: createdAt,
                updatedAt: updatedAt
            )
            return (user, PrefetchedRecord(row: stored, tableID: table, tableVersion: Int(tableVersion), role: role))
        }
    }

    /// The prefetched (locked) row of `record` for `user`, once, while no statement or write since
    /// the prefetch may have changed it.
    func takePrefetched(record: String, user: String) -> PrefetchedRecord? {
        prefetched[record]?.removeValue(forKey: user)
    }

    /// Whether a batch without a transaction read the records it writes and `record` was not there.
    func prefetchMissed(record: String) -> Bool {
        unlocked && prefetchMissed.contains(record)
    }

    /// Updates a record row whose lock this transaction holds: sent with the next statement, or with
    /// the events before the commit. A later read of the row in this transaction sees it.
    func deferUpdate(_ update: DeferredRecordUpdate) {
        prefetched.removeValue(forKey: update.id)
        deferredUpdates.append(update)
    }

    /// Sends the deferred record updates, one statement for all of them.
    private func flushRecordUpdates() async throws {
        if unlocked { throw NeedsTransaction() }
        let updates = DeferredUpdateColumns(deferredUpdates)
        deferredUpdates.removeAll()
        flushes += 1
        try ready()
        _ = try await connection.execute(UpdateRecords(updates: updates), logger: logger)
    }

    /// Deferred updates as columns (one array each); when a record was updated more than once, its
    /// last update alone is kept (an `UPDATE … FROM` applies one row of several that match).
    struct DeferredUpdateColumns: Sendable {
        var ids: [String] = []
        var fields: [String] = []
        var versions: [Int64] = []
        var updatedAt: [Int64] = []
        /// The version each row had before the first of its updates.
        var previousVersions: [Int64] = []

        init(_ updates: [DeferredRecordUpdate]) {
            var last: [String: Int] = [:]
            var previous: [String: Int] = [:]
            for (index, update) in updates.enumerated() {
                last[update.id] = index
                if previous[update.id] == nil { previous[update.id] = update.previousVersion }
            }
            for (index, update) in updates.enumerated() where last[update.id] == index {
                ids.append(update.id)
                fields.append(update.fields)
                versions.append(Int64(update.version))
                updatedAt.append(update.updatedAt)
                previousVersions.append(Int64(previous[update.id] ?? update.previousVersion))
            }
        }

        func append(to bindings: inout PostgresBindings) {
            bindings.append(ids)
            bindings.append(fields)
            bindings.append(versions)
            bindings.append(updatedAt)
        }
    }

    /// The deferred updates alone (before a statement that must see them).
    struct UpdateRecords: PostgresPreparedStatement {
        typealias Row = ()
        static let name = "pyat_update_records"
        static let sql = """
            UPDATE records AS r SET fields = v.fields, version = v.version, updated_at = v.updated_at
            FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[]) AS v(id, fields, version, updated_at)
            WHERE r.id = v.id
            """
        static let bindingDataTypes: [PostgresDataType] = [.textArray, .textArray, .int8Array, .int8Array]

        var updates: DeferredUpdateColumns

        func makeBindings() -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 4)
            updates.append(to: &bindings)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws {}
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
        try mirrorGuard?.check(type: type.rawValue, base: baseID?.rawValue, context: context)
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

    /// Where the current job's events and deferred updates begin, to drop them when its savepoint
    /// rolls back.
    struct Mark {
        var events: Int
        var followUps: Int
        var webhooksChanged: Bool
        var deferredUpdates: Int
        var flushes: Int
        var deferredKeys: Int
    }

    var mark: Mark {
        Mark(
            events: pendingEvents.count,
            followUps: pendingFollowUps.count,
            webhooksChanged: webhooksChanged,
            deferredUpdates: deferredUpdates.count,
            flushes: flushes,
            deferredKeys: deferredKeys.count
        )
    }

    /// Drops what the job begun at `mark` left unsent; call it before `ROLLBACK TO SAVEPOINT`, which
    /// undoes what it sent. Without a transaction nothing was sent, and the other jobs' prefetched
    /// rows stay good.
    func rollBack(to mark: Mark) {
        pendingEvents.removeSubrange(mark.events...)
        pendingFollowUps.removeSubrange(mark.followUps...)
        webhooksChanged = mark.webhooksChanged
        // Sent since the mark: every update still deferred is the job's.
        deferredUpdates.removeSubrange((flushes == mark.flushes ? mark.deferredUpdates : 0)...)
        deferredKeys.removeSubrange(mark.deferredKeys...)
        if !unlocked { prefetched.removeAll() }
    }

    /// Numbers and inserts the pending events, with the deferred record updates: the last statement
    /// before `COMMIT`. Answers the new head, or `nil` when the transaction appended nothing.
    func flushEvents() async throws -> Int64? {
        if unlocked { throw NeedsTransaction() }
        guard !pendingEvents.isEmpty else { return nil }
        let count = Int64(pendingEvents.count)
        let statement = commitStatement()
        try ready()
        var head: Int64?
        for try await seq in try await connection.execute(statement, logger: logger) { head = seq }
        guard let head else { throw PostgresStoreError.missingEventHead }
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

    /// The commit's statement for the pending events and the deferred updates, which it takes.
    private func commitStatement() -> Commit {
        var statement = Commit(count: Int64(pendingEvents.count), updates: DeferredUpdateColumns(deferredUpdates))
        deferredUpdates.removeAll()
        flushes += 1
        prefetched.removeAll()
        for (index, event) in pendingEvents.enumerated() {
            statement.types.append(event.type)
            statement.workspaces.append(event.workspaceID ?? "")
            statement.bases.append(event.baseID ?? "")
            statement.tables.append(event.tableID ?? "")
            statement.records.append(event.recordID ?? "")
            statement.payloads.append(event.payload)
            statement.actors.append(event.actor ?? "")
            statement.timestamps.append(event.ts)
            statement.transactions.append(event.txn)
            for user in event.recipients {
                statement.recipientPositions.append(Int64(index + 1))
                statement.recipientUsers.append(user)
            }
        }
        return statement
    }

    /// The whole of a batch run without a transaction, in one statement (which commits on its own):
    /// the deferred record updates, each only if its row still has the version it was read with,
    /// and the events. Answers the new head; `nil` when a row had changed since it was read (nothing
    /// was written: the batch runs again in a transaction).
    ///
    /// The head row is locked inside the statement and released by its commit, within PostgreSQL: no
    /// round trip to this instance while another instance's commit waits for the head.
    ///
    /// The statement also tells the other instances (``PostgresEventListener``): `pg_notify` with
    /// `notification` and the new head, delivered by PostgreSQL when it commits. Its commit takes
    /// the lock that orders notifying transactions, but this one holds the head row until then
    /// anyway, so that costs nothing, and it saves a statement after every commit.
    func commitAlone(notifying notification: (channel: String, sender: String)) async throws -> Int64? {
        guard unlocked else { return try await flushEvents() }
        guard !pendingEvents.isEmpty, pendingFollowUps.isEmpty, !webhooksChanged else { throw NeedsTransaction() }
        let commit = commitStatement()
        var statement = CommitUnlocked(
            commit: commit,
            previousVersions: commit.updates.previousVersions,
            channel: notification.channel,
            sender: notification.sender
        )
        for key in deferredKeys {
            statement.keyPrincipals.append(key.principal)
            statement.keys.append(key.key)
            statement.keyHashes.append(key.requestHash)
            statement.keyStatuses.append(key.status)
            statement.keyBodies.append(key.body)
            statement.keyETags.append(key.eTag ?? "")
            statement.keyTimes.append(key.createdAt)
        }
        try ready()
        var head: Int64?
        for try await seq in try await connection.execute(statement, logger: logger) { head = seq }
        return head
    }

    /// ``Commit`` with its updates guarded by the versions the rows were read with: when one row
    /// changed, nothing is written and no row comes back. The guarded rows are locked in id order
    /// first (as ``LockRecords`` does), then the head. It also claims the batch's idempotency keys
    /// with their answers; when one is taken already, `pyat_key_taken()` fails the statement, so
    /// nothing of it is written.
    struct CommitUnlocked: PostgresPreparedStatement {
        static let name = "pyat_commit_unlocked"
        static let sql = """
            WITH v AS (
                SELECT * FROM unnest($2::text[], $3::text[], $4::int8[], $5::int8[], $17::int8[])
                    AS v(id, fields, version, updated_at, previous)
            ), current AS (
                SELECT r.id FROM records r JOIN v ON r.id = v.id AND r.version = v.previous
                ORDER BY r.id FOR UPDATE OF r
            ), ok AS (
                SELECT count(*) = cardinality($2::text[]) AS ok FROM current
            ), updated AS (
                UPDATE records AS r SET fields = v.fields, version = v.version, updated_at = v.updated_at
                FROM v, ok WHERE ok.ok AND r.id = v.id
            ), head AS (
                UPDATE event_head SET seq = seq + $1 FROM ok WHERE ok.ok AND id = 1 RETURNING seq
            ), inserted AS (
                INSERT INTO events (seq, type, workspace_id, base_id, table_id, record_id, payload, actor, ts, txn)
                SELECT head.seq - $1 + v.n, v.type, NULLIF(v.workspace_id, ''), NULLIF(v.base_id, ''),
                    NULLIF(v.table_id, ''), NULLIF(v.record_id, ''), v.payload, NULLIF(v.actor, ''), v.ts, v.txn
                FROM head, unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                    $12::text[], $13::int8[], $14::int8[]) WITH ORDINALITY
                    AS v(type, workspace_id, base_id, table_id, record_id, payload, actor, ts, txn, n)
            ), recipients AS (
                INSERT INTO event_recipients (seq, user_id)
                SELECT head.seq - $1 + r.n, r.user_id FROM head, unnest($15::int8[], $16::text[]) AS r(n, user_id)
                ON CONFLICT DO NOTHING
            ), keyed AS (
                INSERT INTO idempotency_keys (principal, key, request_hash, status, body, etag, created_at)
                SELECT k.principal, k.key, k.hash, k.status, k.body, NULLIF(k.etag, ''), k.created_at
                FROM ok, unnest($18::text[], $19::text[], $20::text[], $21::int8[], $22::bytea[], $23::text[],
                    $24::int8[]) AS k(principal, key, hash, status, body, etag, created_at)
                WHERE ok.ok
                ON CONFLICT (principal, key) DO NOTHING RETURNING 1
            )
            SELECT seq, CASE WHEN (SELECT count(*) FROM keyed) = cardinality($19::text[]) THEN NULL
                ELSE pyat_key_taken() END, pg_notify($25, $26 || ' ' || seq::text)
            FROM head
            """
        static let bindingDataTypes =
            Commit.bindingDataTypes
            + [.int8Array, .textArray, .textArray, .textArray, .int8Array, .byteaArray, .textArray, .int8Array]
            + [.text, .text]

        var commit: Commit
        var previousVersions: [Int64]
        /// The channel the commit notifies, and the sender's id that starts the payload.
        var channel: String
        var sender: String
        var keyPrincipals: [String] = []
        var keys: [String] = []
        var keyHashes: [String] = []
        var keyStatuses: [Int64] = []
        var keyBodies: [ByteBuffer] = []
        var keyETags: [String] = []
        var keyTimes: [Int64] = []

        func makeBindings() -> PostgresBindings {
            var bindings = commit.makeBindings()
            bindings.append(previousVersions)
            bindings.append(keyPrincipals)
            bindings.append(keys)
            bindings.append(keyHashes)
            bindings.append(keyStatuses)
            bindings.append(keyBodies)
            bindings.append(keyETags)
            bindings.append(keyTimes)
            bindings.append(channel)
            bindings.append(sender)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Int64 {
            try row.makeRandomAccess()[0].decode(Int64.self, context: .default)
        }
    }

    /// The commit's statement: the deferred record updates, the head's `UPDATE`, the events and
    /// their recipients, in one round trip while the head row is locked (which every instance's
    /// commits wait for). Every list is an array parameter, so the text is the same for any batch
    /// and is prepared once per connection. An event's position n (1-based) becomes seq
    /// head - count + n; an empty string in an id column is NULL (no id is empty).
    struct Commit: PostgresPreparedStatement {
        static let name = "pyat_commit_events"
        static let sql = """
            WITH updated AS (
                UPDATE records AS r SET fields = v.fields, version = v.version, updated_at = v.updated_at
                FROM unnest($2::text[], $3::text[], $4::int8[], $5::int8[]) AS v(id, fields, version, updated_at)
                WHERE r.id = v.id
            ), head AS (
                UPDATE event_head SET seq = seq + $1 WHERE id = 1 RETURNING seq
            ), inserted AS (
                INSERT INTO events (seq, type, workspace_id, base_id, table_id, record_id, payload, actor, ts, txn)
                SELECT head.seq - $1 + v.n, v.type, NULLIF(v.workspace_id, ''), NULLIF(v.base_id, ''),
                    NULLIF(v.table_id, ''), NULLIF(v.record_id, ''), v.payload, NULLIF(v.actor, ''), v.ts, v.txn
                FROM head, unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                    $12::text[], $13::int8[], $14::int8[]) WITH ORDINALITY
                    AS v(type, workspace_id, base_id, table_id, record_id, payload, actor, ts, txn, n)
            ), recipients AS (
                INSERT INTO event_recipients (seq, user_id)
                SELECT head.seq - $1 + r.n, r.user_id FROM head, unnest($15::int8[], $16::text[]) AS r(n, user_id)
                ON CONFLICT DO NOTHING
            )
            SELECT seq FROM head
            """
        static let bindingDataTypes: [PostgresDataType] =
            [.int8, .textArray, .textArray, .int8Array, .int8Array]
            + [PostgresDataType](repeating: .textArray, count: 7) + [.int8Array, .int8Array, .int8Array, .textArray]

        var count: Int64
        var updates: DeferredUpdateColumns
        var types: [String] = []
        var workspaces: [String] = []
        var bases: [String] = []
        var tables: [String] = []
        var records: [String] = []
        var payloads: [String] = []
        var actors: [String] = []
        var timestamps: [Int64] = []
        var transactions: [Int64] = []
        var recipientPositions: [Int64] = []
        var recipientUsers: [String] = []

        func makeBindings() -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 16)
            bindings.append(count)
            updates.append(to: &bindings)
            bindings.append(types)
            bindings.append(workspaces)
            bindings.append(bases)
            bindings.append(tables)
            bindings.append(records)
            bindings.append(payloads)
            bindings.append(actors)
            bindings.append(timestamps)
            bindings.append(transactions)
            bindings.append(recipientPositions)
            bindings.append(recipientUsers)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Int64 {
            try row.decode(Int64.self)
        }
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
