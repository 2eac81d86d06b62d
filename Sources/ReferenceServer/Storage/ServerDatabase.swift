import Foundation
import GRDB
import Logging

/// The reference server's SQLite database: one file in WAL mode holding every table, the event log
/// and the idempotency store, so a mutation, its event and its stored answer commit together.
///
/// Writes go through a ``WriteCoalescer`` (group commit): concurrent mutations share one durable
/// commit, each in its own savepoint, so one failing mutation never takes the others with it.
public struct ServerDatabase: Sendable {
    /// The connection pool: one writer, several concurrent readers.
    let pool: DatabasePool
    let writer: WriteCoalescer
    /// Fired after every committed write transaction (realtime fan-out listens).
    public let commits: CommitSignal
    /// Recent record reads, kept current by the writer connection.
    public let recordCache: RecordReadCache
    /// The event head and webhook changes, as commits report them.
    public let facts: CommitFacts

    /// The keys of sealed values (stored answers, webhook secrets) and request hashes.
    let keys: StorageKeys

    /// Opens (creating if need be) the database at `path` and migrates it.
    /// - Parameters:
    ///   - path: The SQLite file. It and its `-wal` and `-shm` files are created (or tightened to)
    ///     mode 0600.
    ///   - durable: Whether each commit is fsynced before it is acknowledged (`synchronous = FULL`).
    ///   - recordCacheBytes: The memory for recently read records (0: no cache).
    ///   - keys: The keys secrets are sealed with. A database remembers which keys sealed it and
    ///     refuses others.
    public init(
        path: String,
        durable: Bool = true,
        recordCacheBytes: Int = 32 << 20,
        keys: StorageKeys,
        logger: Logger
    ) throws {
        // SQLite gives the -wal and -shm files the database file's mode.
        try PrivateFiles.prepareFile(atPath: path)
        for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
            try PrivateFiles.prepareFile(atPath: path + suffix)
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.maximumReaderCount = 8
        configuration.label = "pyat-server"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA cache_size = -32000")
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
            // Deleted rows are zeroed within their pages when that costs no extra I/O.
            try db.execute(sql: "PRAGMA secure_delete = FAST")
        }
        self.pool = try DatabasePool(path: path, configuration: configuration)
        self.keys = keys
        // Set on the writer after the pool is open: DatabasePool puts `synchronous = NORMAL` on it when
        // it turns WAL on, after `prepareDatabase` ran. In WAL mode FULL syncs the log at every commit.
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = \(durable ? "FULL" : "NORMAL")")
        }
        try Self.migrate(pool, keys: keys, logger: logger)
        let facts = CommitFacts(head: try pool.read { db in try SQLiteStore.eventHead(db) })
        self.facts = facts
        pool.add(transactionObserver: CommitFactsObserver(facts: facts), extent: .databaseLifetime)
        let recordCache = RecordReadCache(maximumBytes: recordCacheBytes)
        self.recordCache = recordCache
        if recordCache.isEnabled {
            pool.add(transactionObserver: RecordReadCacheInvalidator(cache: recordCache), extent: .databaseLifetime)
        }
        let commits = CommitSignal()
        self.commits = commits
        self.writer = WriteCoalescer(pool: pool, logger: logger, commits: commits)
    }

    /// Migrates the database; checks (or, the first time, records) which storage keys seal it.
    /// When secrets that a previous version kept in plaintext were sealed just now, rewrites the
    /// whole file so that no freed page, and no frame of the write-ahead log, still holds them.
    static func migrate(_ pool: DatabasePool, keys: StorageKeys, logger: Logger) throws {
        let migrator = migrator(keys: keys)
        let applied = try pool.read { db in try migrator.appliedIdentifiers(db) }
        try migrator.migrate(pool)
        try pool.write { db in
            let fingerprint = try String.fetchOne(
                db,
                sql: "SELECT value FROM server_state WHERE key = 'storage_key_fingerprint'"
            )
            if let fingerprint, fingerprint != keys.fingerprint {
                throw ServerConfigurationError(
                    message: """
                        the database was sealed with another storage secret; restore the data directory's \
                        original \(SecretFile.storage.name) file
                        """
                )
            }
            if fingerprint == nil {
                try db.execute(
                    sql: "INSERT INTO server_state (key, value) VALUES ('storage_key_fingerprint', ?)",
                    arguments: [keys.fingerprint]
                )
            }
        }
        guard applied.contains("v1"), !applied.contains(sealingMigration) else { return }
        logger.notice("sealed secrets stored in plaintext by an earlier version; rewriting the database once")
        try pool.writeWithoutTransaction { db in
            // VACUUM copies the database through a temporary one: on disk, as it may be large.
            try db.execute(sql: "PRAGMA temp_store = FILE")
            try db.execute(sql: "VACUUM")
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
            try db.checkpoint(.truncate)
        }
    }

    /// Runs `operation` in a transaction shared with other concurrent writes (its own savepoint).
    func write<T: Sendable>(_ operation: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await writer.write(operation)
        } catch let error as DatabaseError where error.message == MirrorReadOnly.marker {
            throw StorageError.forbidden(MirrorReadOnly.message)
        }
    }

    /// Runs `operation` on a reader connection, seeing the last committed state.
    func read<T: Sendable>(_ operation: @escaping @Sendable (Database) throws -> T) async throws -> T {
        // The callback form resumes straight from the reader's queue; the async form goes through an
        // actor first, which costs more than the indexed lookups most reads are.
        try await withCheckedThrowingContinuation { continuation in
            pool.asyncRead { result in
                continuation.resume(with: Result { try operation(result.get()) })
            }
        }
    }

    /// The migration that sealed what earlier versions kept in plaintext.
    static let sealingMigration = "v4-sealed-secrets"

    static func migrator(keys: StorageKeys) -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE users (
                        id TEXT PRIMARY KEY NOT NULL,
                        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
                        name TEXT NOT NULL,
                        password_hash TEXT NOT NULL,
                        version INTEGER NOT NULL DEFAULT 1,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL
                    );
                    CREATE TABLE refresh_tokens (
                        token_hash TEXT PRIMARY KEY NOT NULL,
                        family_id TEXT NOT NULL,
                        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                        created_at INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL,
                        used_at INTEGER,
                        revoked_at INTEGER
                    );
                    CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
                    CREATE TABLE access_tokens (
                        id TEXT PRIMARY KEY NOT NULL,
                        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                        name TEXT NOT NULL,
                        token_hash TEXT NOT NULL UNIQUE,
                        created_at INTEGER NOT NULL,
                        expires_at INTEGER,
                        last_used_at INTEGER
                    );
                    CREATE INDEX access_tokens_user ON access_tokens(user_id);
                    CREATE TABLE workspaces (
                        id TEXT PRIMARY KEY NOT NULL,
                        name TEXT NOT NULL,
                        version INTEGER NOT NULL DEFAULT 1,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL
                    );
                    CREATE TABLE members (
                        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
                        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                        role TEXT NOT NULL,
                        added_at INTEGER NOT NULL,
                        PRIMARY KEY (workspace_id, user_id)
                    ) WITHOUT ROWID;
                    CREATE INDEX members_user ON members(user_id);
                    CREATE TABLE bases (
                        id TEXT PRIMARY KEY NOT NULL,
                        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
                        name TEXT NOT NULL,
                        version INTEGER NOT NULL DEFAULT 1,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL
                    );
                    CREATE INDEX bases_workspace ON bases(workspace_id);
                    CREATE TABLE tables (
                        id TEXT PRIMARY KEY NOT NULL,
                        base_id TEXT NOT NULL REFERENCES bases(id) ON DELETE CASCADE,
                        name TEXT NOT NULL,
                        description TEXT,
                        primary_field_id TEXT NOT NULL,
                        version INTEGER NOT NULL DEFAULT 1,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL
                    );
                    CREATE INDEX tables_base ON tables(base_id);
                    CREATE TABLE fields (
                        id TEXT PRIMARY KEY NOT NULL,
                        table_id TEXT NOT NULL REFERENCES tables(id) ON DELETE CASCADE,
                        name TEXT NOT NULL,
                        type TEXT NOT NULL,
                        options TEXT,
                        description TEXT,
                        position INTEGER NOT NULL,
                        version INTEGER NOT NULL DEFAULT 1,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL,
                        UNIQUE (table_id, name)
                    );
                    CREATE TABLE views (
                        id TEXT PRIMARY KEY NOT NULL,
                        table_id TEXT NOT NULL REFERENCES tables(id) ON DELETE CASCADE,
                        name TEXT NOT NULL,
                        type TEXT NOT NULL,
                        filter TEXT,
                        sort TEXT,
                        visible_fields TEXT,
                        position INTEGER NOT NULL,
                        version INTEGER NOT NULL DEFAULT 1,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL,
                        UNIQUE (table_id, name)
                    );
                    CREATE TABLE records (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        id TEXT NOT NULL UNIQUE,
                        table_id TEXT NOT NULL REFERENCES tables(id) ON DELETE CASCADE,
                        fields TEXT NOT NULL,
                        version INTEGER NOT NULL DEFAULT 1,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL
                    );
                    CREATE INDEX records_table_seq ON records(table_id, seq);
                    CREATE TABLE events (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        type TEXT NOT NULL,
                        workspace_id TEXT,
                        base_id TEXT,
                        table_id TEXT,
                        record_id TEXT,
                        payload TEXT NOT NULL,
                        actor TEXT,
                        ts INTEGER NOT NULL
                    );
                    CREATE INDEX events_table ON events(table_id, seq);
                    CREATE INDEX events_workspace ON events(workspace_id, seq);
                    -- Users who may read an event although its change took their access away
                    -- (the members of a deleted workspace, a removed member).
                    CREATE TABLE event_recipients (
                        seq INTEGER NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
                        user_id TEXT NOT NULL,
                        PRIMARY KEY (user_id, seq)
                    ) WITHOUT ROWID;
                    CREATE TABLE idempotency_keys (
                        principal TEXT NOT NULL,
                        key TEXT NOT NULL,
                        request_hash TEXT NOT NULL,
                        status INTEGER NOT NULL,
                        body BLOB NOT NULL,
                        etag TEXT,
                        created_at INTEGER NOT NULL,
                        PRIMARY KEY (principal, key)
                    ) WITHOUT ROWID;
                    CREATE INDEX idempotency_created ON idempotency_keys(created_at);
                    CREATE TABLE server_state (
                        key TEXT PRIMARY KEY NOT NULL,
                        value TEXT NOT NULL
                    ) WITHOUT ROWID;
                    """
            )
        }
        migrator.registerMigration("v2-event-recipients-by-seq") { db in
            // Realtime fan-out reads the audience of new events by seq.
            try db.execute(sql: "CREATE INDEX event_recipients_seq ON event_recipients(seq)")
        }
        migrator.registerMigration("v3-webhooks") { db in
            // A webhook's cursor is the last event seq the delivery worker considered for it; each
            // matching event becomes one delivery row (its body fixed then, so retries sign the same
            // bytes and a trimmed event log loses nothing that was already handed over).
            try db.execute(
                sql: """
                    CREATE TABLE webhooks (
                        id TEXT PRIMARY KEY NOT NULL,
                        base_id TEXT NOT NULL REFERENCES bases(id) ON DELETE CASCADE,
                        workspace_id TEXT NOT NULL,
                        url TEXT NOT NULL,
                        events TEXT NOT NULL,
                        table_id TEXT,
                        secret TEXT NOT NULL,
                        enabled INTEGER NOT NULL DEFAULT 1,
                        disabled_reason TEXT,
                        failure_count INTEGER NOT NULL DEFAULT 0,
                        first_failure_at INTEGER,
                        cursor INTEGER NOT NULL,
                        created_by TEXT,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL
                    );
                    CREATE INDEX webhooks_base ON webhooks(base_id, created_at);
                    CREATE TABLE webhook_deliveries (
                        id TEXT PRIMARY KEY NOT NULL,
                        webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
                        event_seq INTEGER NOT NULL,
                        event_type TEXT NOT NULL,
                        body BLOB NOT NULL,
                        status TEXT NOT NULL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        response_status INTEGER,
                        error TEXT,
                        created_at INTEGER NOT NULL,
                        last_attempt_at INTEGER,
                        next_attempt_at INTEGER,
                        delivered_at INTEGER,
                        UNIQUE (webhook_id, event_seq)
                    );
                    CREATE INDEX webhook_deliveries_status ON webhook_deliveries(webhook_id, status, event_seq);
                    """
            )
        }
        migrator.registerMigration("v3-files") { db in
            // One row per distinct content; `ref_count` counts the files rows naming it. The trigger
            // keeps it right when files go by cascade (a deleted workspace) as well as one by one;
            // rows at zero are swept, and their bytes removed, once that deletion has committed.
            try db.execute(
                sql: """
                    CREATE TABLE blobs (
                        sha256 TEXT PRIMARY KEY NOT NULL,
                        size INTEGER NOT NULL,
                        ref_count INTEGER NOT NULL,
                        created_at INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX blobs_unreferenced ON blobs(ref_count) WHERE ref_count <= 0;
                    CREATE TABLE files (
                        id TEXT PRIMARY KEY NOT NULL,
                        name TEXT NOT NULL,
                        content_type TEXT NOT NULL,
                        size INTEGER NOT NULL,
                        sha256 TEXT NOT NULL REFERENCES blobs(sha256),
                        workspace_id TEXT REFERENCES workspaces(id) ON DELETE CASCADE,
                        created_by TEXT NOT NULL,
                        created_at INTEGER NOT NULL
                    );
                    CREATE INDEX files_workspace ON files(workspace_id, created_at);
                    CREATE INDEX files_creator ON files(created_by, created_at);
                    CREATE INDEX files_sha256 ON files(sha256);
                    CREATE TRIGGER files_release_blob AFTER DELETE ON files BEGIN
                        UPDATE blobs SET ref_count = ref_count - 1 WHERE sha256 = OLD.sha256;
                    END;
                    """
            )
        }
        migrator.registerMigration(sealingMigration) { db in
            // Freed cells and pages are zeroed while the plaintext is replaced.
            try db.execute(sql: "PRAGMA secure_delete = ON")
            // Stored answers can carry a personal access token or a webhook secret; request hashes
            // were a plain SHA-256 of the request (the body of a registration holds its password).
            // New hashes are the keyed hash of that same SHA-256, so a replay still matches.
            let answers = try Row.fetchAll(db, sql: "SELECT principal, key, request_hash, body FROM idempotency_keys")
            for row in answers {
                let principal: String = row["principal"]
                let key: String = row["key"]
                let plainHash: String = row["request_hash"]
                let digest = Hex.decode(plainHash) ?? Array(plainHash.utf8)
                try db.execute(
                    sql: "UPDATE idempotency_keys SET request_hash = ?, body = ? WHERE principal = ? AND key = ?",
                    arguments: [
                        keys.requestHash(digest: digest),
                        try keys.seal(
                            row["body"] as Data,
                            context: StorageKeys.idempotencyContext(principal: principal, key: key)
                        ),
                        principal, key,
                    ]
                )
            }
            try db.execute(sql: "ALTER TABLE webhooks RENAME COLUMN secret TO sealed_secret")
            for row in try Row.fetchAll(db, sql: "SELECT id, sealed_secret FROM webhooks") {
                let id: String = row["id"]
                let secret: String = row["sealed_secret"]
                try db.execute(
                    sql: "UPDATE webhooks SET sealed_secret = ? WHERE id = ?",
                    arguments: [
                        try keys.seal(Data(secret.utf8), context: StorageKeys.webhookSecretContext(id: id)), id,
                    ]
                )
            }
            try db.execute(sql: "PRAGMA secure_delete = FAST")
        }
        migrator.registerMigration("v5-webhook-access") { db in
            // Webhooks deliver on their creator's access, and only creators and owners see a
            // webhook's URL: hooks whose creator lost that role stop, and the events every member
            // reads lose the URL and the disabled reason they used to carry.
            try db.execute(
                sql: """
                    UPDATE webhooks SET enabled = 0,
                        disabled_reason = 'its creator no longer has the creator role in the workspace; '
                            || 'a creator or owner who turns it back on becomes responsible for it'
                    WHERE enabled = 1 AND NOT EXISTS (
                        SELECT 1 FROM members m WHERE m.workspace_id = webhooks.workspace_id
                            AND m.user_id = webhooks.created_by AND m.role IN ('creator', 'owner'));
                    UPDATE events SET payload = json_remove(payload, '$.url', '$.disabled_reason',
                        '$.failure_count', '$.secret')
                    WHERE type IN ('webhook.created', 'webhook.updated') AND json_valid(payload);
                    """
            )
        }
        migrator.registerMigration("v6-airtable-webhooks") { db in
            // Events carry the transaction (the logical write) that appended them, so Airtable's
            // webhooks make one payload per write; a record's events by seq give a change's previous
            // cells. Airtable webhooks number their payloads 1, 2, 3… per webhook.
            try db.execute(
                sql: """
                    ALTER TABLE events ADD COLUMN txn INTEGER;
                    CREATE INDEX events_record ON events(record_id, seq) WHERE record_id IS NOT NULL;
                    CREATE INDEX events_base ON events(base_id, seq) WHERE base_id IS NOT NULL;
                    CREATE TABLE airtable_webhooks (
                        id TEXT PRIMARY KEY NOT NULL,
                        base_id TEXT NOT NULL REFERENCES bases(id) ON DELETE CASCADE,
                        workspace_id TEXT NOT NULL,
                        notification_url TEXT,
                        specification TEXT NOT NULL,
                        sealed_secret BLOB NOT NULL,
                        notifications_enabled INTEGER NOT NULL DEFAULT 1,
                        expires_at INTEGER NOT NULL,
                        event_cursor INTEGER NOT NULL,
                        next_payload INTEGER NOT NULL DEFAULT 1,
                        pinged_through INTEGER NOT NULL DEFAULT 0,
                        ping_retries INTEGER NOT NULL DEFAULT 0,
                        next_ping_at INTEGER,
                        last_success_at INTEGER,
                        last_result TEXT,
                        created_by TEXT NOT NULL,
                        created_at INTEGER NOT NULL
                    );
                    CREATE INDEX airtable_webhooks_base ON airtable_webhooks(base_id, created_at);
                    CREATE TABLE airtable_webhook_payloads (
                        webhook_id TEXT NOT NULL REFERENCES airtable_webhooks(id) ON DELETE CASCADE,
                        number INTEGER NOT NULL,
                        body TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        PRIMARY KEY (webhook_id, number)
                    ) WITHOUT ROWID;
                    """
            )
        }
        migrator.registerMigration("v7-comments") { db in
            // Comments on records: they go with their record, and are read newest first.
            try db.execute(
                sql: """
                    CREATE TABLE comments (
                        id TEXT PRIMARY KEY NOT NULL,
                        record_id TEXT NOT NULL REFERENCES records(id) ON DELETE CASCADE,
                        table_id TEXT NOT NULL,
                        author_id TEXT NOT NULL,
                        text TEXT NOT NULL,
                        mentions TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER
                    );
                    CREATE INDEX comments_record ON comments(record_id, created_at);
                    """
            )
        }
        migrator.registerMigration("v8-mirror") { db in
            // The snapshot each mirrored base serves (mirror mode), and the guard that keeps writes
            // other than the mirror's own out of mirrored bases: the mirror's transaction holds a row
            // of `mirror_writing` while it writes (never committed), every other write that appends
            // a guarded event to a mirrored base is refused.
            let guarded = MirrorReadOnly.guardedTypes.map { "'\($0)'" }.joined(separator: ", ")
            try db.execute(
                sql: """
                    CREATE TABLE mirror_bases (
                        base_id TEXT PRIMARY KEY NOT NULL,
                        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
                        upstream TEXT NOT NULL,
                        generation INTEGER NOT NULL,
                        sync_id TEXT NOT NULL,
                        completed_at INTEGER NOT NULL,
                        tables INTEGER NOT NULL,
                        records INTEGER NOT NULL,
                        digest TEXT NOT NULL
                    );
                    CREATE TABLE mirror_writing (id INTEGER PRIMARY KEY);
                    CREATE TRIGGER mirror_read_only BEFORE INSERT ON events
                    WHEN NEW.base_id IS NOT NULL AND NEW.type IN (\(guarded))
                        AND EXISTS (SELECT 1 FROM mirror_bases WHERE base_id = NEW.base_id)
                        AND NOT EXISTS (SELECT 1 FROM mirror_writing)
                    BEGIN
                        SELECT RAISE(ABORT, '\(MirrorReadOnly.marker)');
                    END;
                    """
            )
        }
        return migrator
    }
}

extension Date {
    /// Milliseconds since 1970, as the database stores timestamps.
    var millisecondsSince1970: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }

    init(millisecondsSince1970 ms: Int64) {
        self.init(timeIntervalSince1970: Double(ms) / 1000)
    }
}
