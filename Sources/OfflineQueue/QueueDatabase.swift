import Foundation
import GRDB
import PyAirtableModels

/// The queue's SQLite file: mutations, the temporary ids they create and the mappings to server ids,
/// which queued mutations wait for which temporary id, and running totals for the bounds.
///
/// The file is in WAL mode with `synchronous = FULL`: a mutation acknowledged as queued survives a power
/// cut, not only a crash. A busy timeout lets several processes share it; every write is an IMMEDIATE
/// transaction, so a claim read and its update cannot interleave with another process's.
struct QueueDatabase: Sendable {
    let writer: DatabasePool

    /// Opens (creating if need be) and migrates the file at `path`.
    /// - Throws: A `DatabaseError` when the file cannot be opened or is not a queue file.
    init(path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.maximumReaderCount = 2
        configuration.label = "pyat-queue"
        configuration.prepareDatabase { db in
            // Durability over speed: the queue is where a write lives while the server cannot take it.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(pool)
        self.writer = pool
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            // AUTOINCREMENT: an id is never reused, even after the newest mutation completes, so ids are
            // a total order of enqueueing for the life of the file.
            try db.execute(
                sql: """
                    CREATE TABLE queue_mutations (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        namespace TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        idempotency_key TEXT NOT NULL,
                        method TEXT NOT NULL,
                        path TEXT NOT NULL,
                        query TEXT NOT NULL,
                        headers TEXT NOT NULL,
                        body BLOB,
                        scope TEXT,
                        batch_key TEXT,
                        creates TEXT NOT NULL,
                        size INTEGER NOT NULL,
                        state TEXT NOT NULL CHECK (state IN ('pending', 'inflight', 'failed')),
                        attempts INTEGER NOT NULL DEFAULT 0,
                        last_failure TEXT,
                        claim_owner TEXT,
                        claim_pid INTEGER,
                        claim_host TEXT,
                        claimed_at INTEGER,
                        lease_until INTEGER,
                        UNIQUE (namespace, idempotency_key)
                    );
                    CREATE INDEX queue_mutations_state ON queue_mutations (namespace, state, id);
                    CREATE INDEX queue_mutations_scope ON queue_mutations (namespace, scope, id);
                    CREATE TABLE queue_temporary_ids (
                        namespace TEXT NOT NULL,
                        temporary_id TEXT NOT NULL,
                        creator_id INTEGER,
                        server_id TEXT,
                        created_at INTEGER NOT NULL,
                        resolved_at INTEGER,
                        PRIMARY KEY (namespace, temporary_id)
                    ) WITHOUT ROWID;
                    CREATE TABLE queue_dependencies (
                        mutation_id INTEGER NOT NULL,
                        temporary_id TEXT NOT NULL,
                        PRIMARY KEY (mutation_id, temporary_id)
                    ) WITHOUT ROWID;
                    CREATE INDEX queue_dependencies_temporary ON queue_dependencies (temporary_id);
                    CREATE TABLE queue_totals (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        entries INTEGER NOT NULL,
                        bytes INTEGER NOT NULL
                    );
                    INSERT INTO queue_totals (id, entries, bytes) VALUES (1, 0, 0);
                    CREATE TRIGGER queue_totals_insert AFTER INSERT ON queue_mutations BEGIN
                        UPDATE queue_totals SET entries = entries + 1, bytes = bytes + NEW.size WHERE id = 1;
                    END;
                    CREATE TRIGGER queue_totals_delete AFTER DELETE ON queue_mutations BEGIN
                        UPDATE queue_totals SET entries = entries - 1, bytes = bytes - OLD.size WHERE id = 1;
                        DELETE FROM queue_dependencies WHERE mutation_id = OLD.id;
                    END;
                    CREATE TRIGGER queue_totals_resize AFTER UPDATE OF size ON queue_mutations BEGIN
                        UPDATE queue_totals SET bytes = bytes - OLD.size + NEW.size WHERE id = 1;
                    END;
                    """
            )
        }
        migrator.registerMigration("v2-batch-groups") { db in
            // A batch request carries one Idempotency-Key for all its operations, so the mutations sent
            // in one must be sent again together, with that key, after a crash: the key is kept on each
            // row of the group. `solo` marks a mutation sent on its own, with its own key, which must
            // then never join a batch (the server may have applied it under that key).
            try db.execute(
                sql: """
                    ALTER TABLE queue_mutations ADD COLUMN batch_idempotency_key TEXT;
                    ALTER TABLE queue_mutations ADD COLUMN solo INTEGER NOT NULL DEFAULT 0;
                    CREATE INDEX queue_mutations_batch ON queue_mutations (namespace, batch_idempotency_key)
                        WHERE batch_idempotency_key IS NOT NULL;
                    """
            )
        }
        migrator.registerMigration("v3-conflict-base") { db in
            // The fields of the version a write started from, so a 412 on replay can be settled by a
            // three-way merge. Never sent.
            try db.execute(sql: "ALTER TABLE queue_mutations ADD COLUMN conflict_base BLOB")
        }
        return migrator
    }
}

// MARK: - Rows

extension QueueDatabase {
    /// The columns ``mutation(from:)`` reads, in order.
    static let mutationColumns = """
        id, created_at, idempotency_key, method, path, query, headers, body, scope, batch_key, creates, state, \
        attempts, last_failure, claim_owner, claim_pid, claim_host, claimed_at, lease_until, batch_idempotency_key, \
        conflict_base
        """

    static func mutation(from row: Row) throws -> QueuedMutation {
        // Made once per row, and only used when a row has something to decode.
        let decoder = JSONDecoder()
        let queryText: String = row[5]
        let headersText: String = row[6]
        let createsText: String = row[10]
        let query =
            queryText == "[]" ? [] : try decoder.decode([QueuedRequest.QueryItem].self, from: Data(queryText.utf8))
        let headers =
            headersText == "{}" ? [:] : try decoder.decode([String: String].self, from: Data(headersText.utf8))
        let creates =
            createsText == "[]" ? [] : try decoder.decode([TemporaryID].self, from: Data(createsText.utf8))
        let stateName: String = row[11]
        let failureText: String? = row[13]
        let failure = try failureText.map {
            try JSONCoding.decoder.decode(QueuedMutation.Failure.self, from: Data($0.utf8))
        }
        var claim: QueuedMutation.Claim?
        if let owner: String = row[14] {
            claim = QueuedMutation.Claim(
                owner: owner,
                processID: row[15] ?? 0,
                host: row[16] ?? "",
                claimedAt: date(milliseconds: row[17] ?? 0),
                leaseExpiresAt: date(milliseconds: row[18] ?? 0)
            )
        }
        return QueuedMutation(
            id: row[0],
            createdAt: date(milliseconds: row[1]),
            idempotencyKey: row[2],
            request: QueuedRequest(
                method: row[3],
                path: row[4],
                query: query,
                headers: headers,
                body: row[7],
                conflictBase: row[20]
            ),
            scope: row[8],
            batchKey: row[9],
            createsTemporaryIDs: creates,
            state: QueuedMutation.State(rawValue: stateName) ?? .failed,
            attempts: row[12],
            lastFailure: failure,
            claim: claim,
            batchIdempotencyKey: row[19]
        )
    }

    static func fetchMutation(_ db: Database, id: Int64, namespace: String) throws -> QueuedMutation? {
        let statement = try db.cachedStatement(
            sql: "SELECT \(mutationColumns) FROM queue_mutations WHERE id = ? AND namespace = ?"
        )
        return try Row.fetchOne(statement, arguments: [id, namespace]).map(mutation(from:))
    }

    static func fetchMutations(
        _ db: Database,
        namespace: String,
        where condition: String = "1",
        arguments: StatementArguments = [],
        limit: Int? = nil
    ) throws -> [QueuedMutation] {
        let limitClause = limit.map { " LIMIT \($0)" } ?? ""
        return try Row.fetchAll(
            db,
            sql: """
                SELECT \(mutationColumns) FROM queue_mutations
                WHERE namespace = ? AND (\(condition)) ORDER BY id\(limitClause)
                """,
            arguments: [namespace] + arguments
        ).map(mutation(from:))
    }

    static func json(_ value: some Encodable) throws -> String {
        String(decoding: try JSONCoding.encoder.encode(value), as: UTF8.self)
    }

    static func encodeJSON(_ query: [QueuedRequest.QueryItem]) throws -> String {
        // Most requests have no query: skip making an encoder for them.
        query.isEmpty ? "[]" : try json(query)
    }

    static func encodeJSON(_ headers: [String: String]) throws -> String {
        headers.isEmpty ? "{}" : try json(headers)
    }

    static func encodeJSON(_ ids: [TemporaryID]) throws -> String {
        ids.isEmpty ? "[]" : try json(ids)
    }

    static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    static func date(milliseconds: Int64) -> Date {
        Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    }
}
