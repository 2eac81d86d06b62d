import Foundation
import GRDB
import Logging
import PyAirtableModels
import Synchronization

/// The SQLite implementation of every repository. Mutations enforce the caller's role, write their
/// event and their idempotent answer in the same transaction as the change.
public final class SQLiteStore: Sendable {
    let database: ServerDatabase
    let logger: Logger
    let schemaCache = Mutex<[TableID: TableSchema]>([:])
    /// The webhooks generation (``CommitFacts``) at which a read found no webhook enabled: until it
    /// changes, the delivery worker's passes need no read.
    let webhooksIdleAt = Atomic<UInt64>(.max)
    /// Answers stored for `Idempotency-Key` replay are kept this long.
    let idempotencyRetention: TimeInterval
    /// What one request may ask: view filters are checked against its formula limits, and records
    /// lists stop scanning at its scan limits.
    let limits: RequestLimits
    /// The most fields a table may have; checked where every field is inserted.
    let maximumFieldsPerTable: Int
    /// The most bytes of (existing) files one user may have uploaded; 0: no quota.
    let uploadQuotaBytes: Int64

    public init(
        database: ServerDatabase,
        logger: Logger,
        idempotencyRetention: TimeInterval = 24 * 3600,
        limits: RequestLimits = .init(),
        maximumFieldsPerTable: Int = 500,
        uploadQuotaBytes: Int64 = 10 << 30
    ) {
        self.database = database
        self.logger = logger
        self.idempotencyRetention = idempotencyRetention
        self.limits = limits
        self.maximumFieldsPerTable = maximumFieldsPerTable
        self.uploadQuotaBytes = uploadQuotaBytes
    }

    // MARK: - Mutations

    /// Runs `body` as one mutation: replays a stored answer for a known idempotency key, otherwise
    /// applies the change, encodes the answer and stores it with the key, all in one transaction.
    /// Stored answers are sealed (``StorageKeys``): one can carry a personal access token or a
    /// webhook secret.
    func perform<T: Encodable & Sendable>(
        _ context: WriteContext,
        status: Int = 200,
        _ body: @escaping @Sendable (Database) throws -> T
    ) async throws -> WriteResult<T> {
        let claim = context.idempotency
        let now = context.now
        let retention = idempotencyRetention
        let keys = database.keys
        return try await database.write { db in
            if let claim,
                let stored = try Self.storedResponse(db, claim: claim, now: now, retention: retention, keys: keys)
            {
                return WriteResult(value: nil, response: stored)
            }
            let value = try body(db)
            let data = try (value as? any PreEncodedJSON).map { Data($0.json) } ?? JSONCoding.encoder.encode(value)
            let eTag = (value as? any VersionedResource).map { VersionTag.format($0.version) }
            let response = StoredResponse(status: status, body: data, eTag: eTag, replayed: false)
            if let claim { try Self.storeResponse(db, response, claim: claim, now: now, keys: keys) }
            return WriteResult(value: value, response: response)
        }
    }

    private static func storeResponse(
        _ db: Database,
        _ response: StoredResponse,
        claim: IdempotencyClaim,
        now: Date,
        keys: StorageKeys
    ) throws {
        let sealed = try keys.seal(
            response.body,
            context: StorageKeys.idempotencyContext(principal: claim.principal, key: claim.key)
        )
        try db.execute(
            sql: """
                INSERT OR REPLACE INTO idempotency_keys
                    (principal, key, request_hash, status, body, etag, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                claim.principal, claim.key, claim.requestHash, response.status, sealed, response.eTag,
                now.millisecondsSince1970,
            ]
        )
    }

    private static func storedResponse(
        _ db: Database,
        claim: IdempotencyClaim,
        now: Date,
        retention: TimeInterval,
        keys: StorageKeys
    ) throws -> StoredResponse? {
        guard
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT request_hash, status, body, etag, created_at FROM idempotency_keys
                    WHERE principal = ? AND key = ?
                    """,
                arguments: [claim.principal, claim.key]
            )
        else { return nil }
        let createdAt: Int64 = row["created_at"]
        if Double(now.millisecondsSince1970 - createdAt) / 1000 > retention {
            return nil
        }
        let hash: String = row["request_hash"]
        guard hash == claim.requestHash else {
            throw StorageError.idempotencyKeyReused(key: claim.key)
        }
        let body: Data
        do {
            body = try keys.open(
                row["body"],
                context: StorageKeys.idempotencyContext(principal: claim.principal, key: claim.key)
            )
        } catch {
            // Running the write again could do it twice; the caller can retry with a new key.
            throw StorageError.idempotentAnswerUnreadable(key: claim.key, reason: "\(error)")
        }
        return StoredResponse(status: row["status"], body: body, eTag: row["etag"], replayed: true)
    }

    /// The stored answer of an earlier request with this context's idempotency key, for a route
    /// whose work is not one ``perform(_:status:_:)`` (it answers `nil` without a key).
    /// - Throws: 422 when the key was used with a different request.
    public func replayedAnswer(context: WriteContext) async throws -> StoredResponse? {
        guard let claim = context.idempotency else { return nil }
        let retention = idempotencyRetention
        let keys = database.keys
        return try await database.read { db in
            try Self.storedResponse(db, claim: claim, now: context.now, retention: retention, keys: keys)
        }
    }

    /// Stores (sealed) the answer of a request with this context's idempotency key, for
    /// ``replayedAnswer(context:)``; does nothing without a key.
    public func storeAnswer(_ response: StoredResponse, context: WriteContext) async throws {
        guard let claim = context.idempotency else { return }
        let keys = database.keys
        try await database.write { db in
            try Self.storeResponse(db, response, claim: claim, now: context.now, keys: keys)
        }
    }

    /// Deletes stored idempotent answers older than the retention.
    public func purgeIdempotencyKeys(now: Date) async throws -> Int {
        let cutoff = now.addingTimeInterval(-idempotencyRetention).millisecondsSince1970
        return try await database.write { db in
            try db.execute(sql: "DELETE FROM idempotency_keys WHERE created_at < ?", arguments: [cutoff])
            return db.changesCount
        }
    }

    // MARK: - Events

    /// Appends an event in the current transaction and returns its sequence number.
    @discardableResult
    static func appendEvent(
        _ db: Database,
        type: EventType,
        workspaceID: WorkspaceID?,
        baseID: BaseID? = nil,
        tableID: TableID? = nil,
        recordID: RecordID? = nil,
        payload: some Encodable,
        context: WriteContext,
        recipients: [UserID] = []
    ) throws -> Int64 {
        let data = try (payload as? any PreEncodedJSON).map { Data($0.json) } ?? JSONCoding.encoder.encode(payload)
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO events (type, workspace_id, base_id, table_id, record_id, payload, actor, ts, txn)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        )
        try statement.execute(
            arguments: [
                type.rawValue, workspaceID?.rawValue, baseID?.rawValue, tableID?.rawValue, recordID?.rawValue,
                String(decoding: data, as: UTF8.self), context.actor?.rawValue, context.now.millisecondsSince1970,
                context.transaction,
            ]
        )
        let seq = db.lastInsertedRowID
        for user in recipients {
            try db.execute(
                sql: "INSERT OR IGNORE INTO event_recipients (seq, user_id) VALUES (?, ?)",
                arguments: [seq, user.rawValue]
            )
        }
        return seq
    }

    // MARK: - Access

    /// The caller's role in a workspace, or `nil` when not a member.
    static func role(_ db: Database, workspace: String, user: UserID) throws -> Role? {
        let statement = try db.cachedStatement(sql: "SELECT role FROM members WHERE workspace_id = ? AND user_id = ?")
        let raw = try String.fetchOne(statement, arguments: [workspace, user.rawValue])
        return raw.flatMap(Role.init(rawValue:))
    }

    /// Checks the caller may act on a workspace's resource: non-members get 404 (the resource is not
    /// theirs to know of), members below `minimum` get 403.
    @discardableResult
    static func authorize(
        _ db: Database,
        workspace: String,
        user: UserID,
        minimum: Role,
        resource: String
    ) throws -> Role {
        try check(role: role(db, workspace: workspace, user: user), minimum: minimum, resource: resource)
    }

    /// 404 for a non-member (`role` nil), 403 for a member below `minimum`.
    @discardableResult
    static func check(role: Role?, minimum: Role, resource: String) throws -> Role {
        guard let role else { throw StorageError.notFound(resource) }
        guard role >= minimum else {
            throw StorageError.forbidden("this needs the \(minimum.rawValue) role or higher; you are \(role.rawValue)")
        }
        return role
    }

    /// Throws 412 with the current resource when `expected` is set and differs from `actual`.
    static func checkVersion(expected: Int?, actual: Int, current: @autoclosure () throws -> some Encodable) throws {
        if let expected, expected != actual {
            let resource = try current()
            throw StorageError.versionMismatch(current: try? JSONValue(encoding: resource), version: actual)
        }
    }
}

extension Row {
    func date(_ column: String) -> Date {
        Date(millisecondsSince1970: self[column] as Int64)
    }

    func optionalDate(_ column: String) -> Date? {
        (self[column] as Int64?).map(Date.init(millisecondsSince1970:))
    }

    func id<Kind>(_ column: String) -> Identifier<Kind> {
        Identifier(unchecked: self[column] as String)
    }

    func optionalID<Kind>(_ column: String) -> Identifier<Kind>? {
        (self[column] as String?).map(Identifier.init(unchecked:))
    }
}
