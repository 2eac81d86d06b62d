import Foundation
import Logging
import PostgresNIO
import PyAirtableModels
import Synchronization

/// The PostgreSQL implementation of every repository, for several `pyat serve` instances sharing one
/// database. Same rules as ``SQLiteStore``: a mutation checks the caller's role, applies the change,
/// appends its events and stores its idempotent answer in one transaction.
///
/// Writers of several instances run concurrently (READ COMMITTED): a mutation that reads a row to
/// decide how to change it locks it first (`FOR UPDATE`), so a version check or a count cannot be
/// passed by a concurrent write; an idempotency key is claimed by its row's primary key, so two
/// instances given the same key apply the write once and answer the same.
public final class PostgresStore: Sendable {
    let database: PostgresServerDatabase
    let logger: Logger
    let schemaCache = Mutex<[TableID: TableSchema]>([:])
    /// The webhook deliveries and pings this instance claimed, and until when.
    let webhookClaims = PostgresWebhookClaims()
    /// The ``CommitFacts/webhooksGeneration`` at which no webhook was enabled: until it changes (a
    /// commit here that changed webhooks, another instance's notification or its count in
    /// `event_head`), the delivery worker's pass reads nothing.
    let webhooksIdleAt = Atomic<UInt64>(.max)
    /// The same for Airtable webhooks: the generation at which none was live (unexpired).
    let airtableWebhooksIdleAt = Atomic<UInt64>(.max)
    /// Answers stored for `Idempotency-Key` replay are kept this long.
    let idempotencyRetention: TimeInterval
    /// What one request may ask (see ``SQLiteStore/limits``).
    let limits: RequestLimits
    /// The most fields a table may have; checked where every field is inserted.
    let maximumFieldsPerTable: Int
    /// The most bytes of (existing) files one user may have uploaded; 0: no quota.
    let uploadQuotaBytes: Int64

    public init(
        database: PostgresServerDatabase,
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
    /// applies the change, encodes the answer and stores it (sealed) with the key, in one transaction.
    ///
    /// The key's row is inserted before the change runs: a second instance given the same key waits
    /// on that row until the first commits, then finds its answer; when the first rolls back, it
    /// runs the write itself.
    func perform<T: Encodable & Sendable>(
        _ context: WriteContext,
        status: Int = 200,
        locking locks: [PostgresTransaction.RecordLock] = [],
        _ body: @escaping @Sendable (PostgresTransaction) async throws -> T
    ) async throws -> WriteResult<T> {
        let claim = context.idempotency
        let now = context.now
        let retention = idempotencyRetention
        let keys = database.keys
        // A write of locked records alone may run without a transaction, its key claimed with the
        // commit (when the key was used before, the batch runs in a transaction, which replays).
        return try await database.write(locking: locks, unlocked: true) { transaction in
            if let claim, !transaction.unlocked {
                if let stored = try await Self.claimKey(
                    transaction,
                    claim: claim,
                    now: now,
                    retention: retention,
                    keys: keys
                ) {
                    return WriteResult(value: nil, response: stored)
                }
            }
            let value: T
            if claim != nil, transaction.unlocked {
                do {
                    value = try await body(transaction)
                } catch {
                    // The key may have been used before (a replayed delete finds no record): the
                    // transaction answers, having checked the key first.
                    throw PostgresTransaction.NeedsTransaction()
                }
            } else {
                value = try await body(transaction)
            }
            let data = try (value as? any PreEncodedJSON).map { Data($0.json) } ?? JSONCoding.encoder.encode(value)
            let eTag = (value as? any VersionedResource).map { VersionTag.format($0.version) }
            let response = StoredResponse(status: status, body: data, eTag: eTag, replayed: false)
            if let claim {
                if transaction.unlocked {
                    let sealed = try keys.seal(
                        response.body,
                        context: StorageKeys.idempotencyContext(principal: claim.principal, key: claim.key)
                    )
                    transaction.deferKey(
                        .init(
                            principal: claim.principal,
                            key: claim.key,
                            requestHash: claim.requestHash,
                            status: Int64(response.status),
                            body: ByteBuffer(bytes: sealed),
                            eTag: response.eTag,
                            createdAt: now.millisecondsSince1970
                        )
                    )
                } else {
                    try await Self.storeResponse(transaction, response, claim: claim, now: now, keys: keys)
                }
            }
            return WriteResult(value: value, response: response)
        }
    }

    /// Takes the key's row for this transaction: answers the stored response when the key was
    /// already used (422 when with another request), `nil` when this transaction now holds it.
    private static func claimKey(
        _ transaction: PostgresTransaction,
        claim: IdempotencyClaim,
        now: Date,
        retention: TimeInterval,
        keys: StorageKeys
    ) async throws -> StoredResponse? {
        // A placeholder row (status 0) locks the key until this transaction ends; a concurrent one
        // with the same key waits here, then sees the committed answer.
        let inserted = try await transaction.changes(
            """
            INSERT INTO idempotency_keys (principal, key, request_hash, status, body, etag, created_at)
            VALUES (\(claim.principal), \(claim.key), \(claim.requestHash), 0, ''::bytea, NULL,
                \(now.millisecondsSince1970))
            ON CONFLICT (principal, key) DO NOTHING RETURNING 1
            """
        )
        if inserted == 1 { return nil }
        guard
            let row = try await transaction.row(
                """
                SELECT request_hash, status, body, etag, created_at FROM idempotency_keys
                WHERE principal = \(claim.principal) AND key = \(claim.key) FOR UPDATE
                """
            )
        else {
            // Deleted (purged) between the two statements: take it now.
            return try await claimKey(transaction, claim: claim, now: now, retention: retention, keys: keys)
        }
        let createdAt = try row.get("created_at", as: Int64.self)
        let status = try row.get("status", as: Int.self)
        if status == 0 || Double(now.millisecondsSince1970 - createdAt) / 1000 > retention {
            // Expired, or left by a write that never finished: this write takes the key over.
            try await transaction.execute(
                """
                UPDATE idempotency_keys SET request_hash = \(claim.requestHash), status = 0, body = ''::bytea,
                    etag = NULL, created_at = \(now.millisecondsSince1970)
                WHERE principal = \(claim.principal) AND key = \(claim.key)
                """
            )
            return nil
        }
        return try storedResponse(row, claim: claim, keys: keys)
    }

    private static func storedResponse(
        _ row: PostgresRandomAccessRow,
        claim: IdempotencyClaim,
        keys: StorageKeys
    ) throws -> StoredResponse {
        guard try row.get("request_hash", as: String.self) == claim.requestHash else {
            throw StorageError.idempotencyKeyReused(key: claim.key)
        }
        let body: Data
        do {
            body = try keys.open(
                try row.get("body", as: Data.self),
                context: StorageKeys.idempotencyContext(principal: claim.principal, key: claim.key)
            )
        } catch {
            // Running the write again could do it twice; the caller can retry with a new key.
            throw StorageError.idempotentAnswerUnreadable(key: claim.key, reason: "\(error)")
        }
        return StoredResponse(
            status: try row.get("status", as: Int.self),
            body: body,
            eTag: try row.get("etag", as: String?.self),
            replayed: true
        )
    }

    private static func storeResponse(
        _ transaction: PostgresTransaction,
        _ response: StoredResponse,
        claim: IdempotencyClaim,
        now: Date,
        keys: StorageKeys
    ) async throws {
        let sealed = try keys.seal(
            response.body,
            context: StorageKeys.idempotencyContext(principal: claim.principal, key: claim.key)
        )
        try await transaction.execute(
            """
            INSERT INTO idempotency_keys (principal, key, request_hash, status, body, etag, created_at)
            VALUES (\(claim.principal), \(claim.key), \(claim.requestHash), \(response.status), \(sealed),
                \(response.eTag), \(now.millisecondsSince1970))
            ON CONFLICT (principal, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,
                status = EXCLUDED.status, body = EXCLUDED.body, etag = EXCLUDED.etag,
                created_at = EXCLUDED.created_at
            """
        )
    }

    /// The stored answer of an earlier request with this context's idempotency key, for a route
    /// whose work is not one ``perform(_:status:_:)`` (it answers `nil` without a key).
    /// - Throws: 422 when the key was used with a different request.
    public func replayedAnswer(context: WriteContext) async throws -> StoredResponse? {
        guard let claim = context.idempotency else { return nil }
        let retention = idempotencyRetention
        let keys = database.keys
        return try await database.read { transaction in
            guard
                let row = try await transaction.row(
                    """
                    SELECT request_hash, status, body, etag, created_at FROM idempotency_keys
                    WHERE principal = \(claim.principal) AND key = \(claim.key) AND status <> 0
                    """
                )
            else { return nil }
            let createdAt = try row.get("created_at", as: Int64.self)
            if Double(context.now.millisecondsSince1970 - createdAt) / 1000 > retention { return nil }
            return try Self.storedResponse(row, claim: claim, keys: keys)
        }
    }

    /// Stores (sealed) the answer of a request with this context's idempotency key, for
    /// ``replayedAnswer(context:)``; does nothing without a key.
    public func storeAnswer(_ response: StoredResponse, context: WriteContext) async throws {
        guard let claim = context.idempotency else { return }
        let keys = database.keys
        try await database.write { transaction in
            try await Self.storeResponse(transaction, response, claim: claim, now: context.now, keys: keys)
        }
    }

    /// Deletes stored idempotent answers older than the retention.
    public func purgeIdempotencyKeys(now: Date) async throws -> Int {
        let cutoff = now.addingTimeInterval(-idempotencyRetention).millisecondsSince1970
        return try await database.write { transaction in
            try await transaction.changes("DELETE FROM idempotency_keys WHERE created_at < \(cutoff) RETURNING 1")
        }
    }

    // MARK: - Access

    /// The caller's role in a workspace, or `nil` when not a member.
    static func role(_ transaction: PostgresTransaction, workspace: String, user: UserID) async throws -> Role? {
        let raw = try await transaction.scalar(
            "SELECT role FROM members WHERE workspace_id = \(workspace) AND user_id = \(user.rawValue)",
            as: String.self
        )
        return raw.flatMap(Role.init(rawValue:))
    }

    /// Checks the caller may act on a workspace's resource: non-members get 404, members below
    /// `minimum` get 403 (see ``SQLiteStore/check(role:minimum:resource:)``).
    @discardableResult
    static func authorize(
        _ transaction: PostgresTransaction,
        workspace: String,
        user: UserID,
        minimum: Role,
        resource: String
    ) async throws -> Role {
        try SQLiteStore.check(
            role: await role(transaction, workspace: workspace, user: user),
            minimum: minimum,
            resource: resource
        )
    }

    /// Throws 412 with the current resource when `expected` is set and differs from `actual`.
    static func checkVersion(expected: Int?, actual: Int, current: @autoclosure () throws -> some Encodable) throws {
        try SQLiteStore.checkVersion(expected: expected, actual: actual, current: try current())
    }
}
