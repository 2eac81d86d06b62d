import Foundation
import PostgresNIO
import PyAirtableModels
import Synchronization

extension PostgresStore: MirrorStore {
    func mirrorState(base: BaseID) async throws -> MirrorCurrentState {
        try await database.read { transaction in
            var state = MirrorCurrentState()
            if let row = try await transaction.row(
                """
                SELECT m.generation, m.workspace_id FROM mirror_bases m
                JOIN workspaces w ON w.id = m.workspace_id WHERE m.base_id = \(base.rawValue)
                """
            ) {
                state.generation = try row.get("generation", as: Int64.self)
                state.workspaceID = try row.id("workspace_id")
            }
            if let row = try await transaction.row("SELECT * FROM bases WHERE id = \(base.rawValue)") {
                let found = try Self.decodeBase(from: row)
                guard found.workspaceID == state.workspaceID else {
                    throw MirrorSnapshotError(
                        description: "a local base has the id \(base) already, outside the mirror's workspace"
                    )
                }
                state.base = found
            }
            guard state.base != nil else { return state }
            let tableIDs = try await transaction.rows(
                "SELECT id FROM tables WHERE base_id = \(base.rawValue) ORDER BY ord"
            )
            .map { try $0.get("id", as: String.self) }
            for id in tableIDs {
                guard let schema = try await Self.fetchTableSchema(transaction, id: TableID(unchecked: id)) else {
                    continue
                }
                state.tables.append(schema.table)
                var records: [String: MirrorStoredRecord] = [:]
                for row in try await transaction.rows(
                    "SELECT id, fields, version, created_at FROM records WHERE table_id = \(id)"
                ) {
                    records[try row.get("id", as: String.self)] = MirrorStoredRecord(
                        fields: try row.get("fields", as: String.self),
                        version: try row.get("version", as: Int.self),
                        createdAt: try row.get("created_at", as: Int64.self)
                    )
                }
                state.records[TableID(unchecked: id)] = records
            }
            return state
        }
    }

    func applyMirror(_ changes: MirrorChangeSet, context: WriteContext) async throws {
        try await database.write { transaction in
            let generation =
                try await transaction.row(
                    """
                    SELECT m.generation FROM mirror_bases m JOIN workspaces w ON w.id = m.workspace_id
                    WHERE m.base_id = \(changes.baseID.rawValue) FOR UPDATE OF m
                    """
                ).map { try $0.get("generation", as: Int64.self) } ?? 0
            guard generation == changes.expectedGeneration else {
                throw MirrorSnapshotError(description: "another snapshot of \(changes.baseID) was applied meanwhile")
            }
            if try await transaction.row("SELECT 1 AS found FROM pg_trigger WHERE tgname = 'mirror_read_only'") == nil {
                try await transaction.execute(PostgresQuery(unsafeSQL: PostgresMigrations.mirrorTrigger))
            }
            let txn = context.transaction
            if changes.operations.contains(where: { if case .event = $0 { true } else { false } }) {
                // The guard lets this transaction's events through; the row goes once they are in.
                try await transaction.execute("INSERT INTO mirror_writing (txn) VALUES (\(txn))")
                transaction.afterEvents { transaction, _ in
                    try await transaction.execute("DELETE FROM mirror_writing WHERE txn = \(txn)")
                }
            }
            var inserts: [(id: String, table: String, fields: String, createdAt: Int64, updatedAt: Int64)] = []
            var updates: [(id: String, fields: String, version: Int64, updatedAt: Int64)] = []
            var deletes: [String] = []
            func flush() async throws {
                if !inserts.isEmpty {
                    try await transaction.execute(
                        """
                        INSERT INTO records (id, table_id, fields, version, created_at, updated_at)
                        SELECT i, t, f, 1, c, u FROM unnest(\(inserts.map(\.id)), \(inserts.map(\.table)),
                            \(inserts.map(\.fields)), \(inserts.map(\.createdAt)), \(inserts.map(\.updatedAt)))
                            AS v(i, t, f, c, u)
                        """
                    )
                    inserts.removeAll()
                }
                if !updates.isEmpty {
                    try await transaction.execute(
                        """
                        UPDATE records AS r SET fields = v.f, version = v.n, updated_at = v.u
                        FROM unnest(\(updates.map(\.id)), \(updates.map(\.fields)), \(updates.map(\.version)),
                            \(updates.map(\.updatedAt))) AS v(i, f, n, u)
                        WHERE r.id = v.i
                        """
                    )
                    updates.removeAll()
                }
                if !deletes.isEmpty {
                    try await transaction.execute("DELETE FROM records WHERE id = ANY(\(deletes))")
                    deletes.removeAll()
                }
            }
            for operation in changes.operations {
                switch operation {
                case .insertRecord(let id, let table, let fields, let createdAt, let updatedAt):
                    if !updates.isEmpty || !deletes.isEmpty || inserts.count >= 1000 { try await flush() }
                    inserts.append((id.rawValue, table.rawValue, fields, createdAt, updatedAt))
                case .updateRecord(let id, let fields, let version, let updatedAt):
                    if !inserts.isEmpty || !deletes.isEmpty || updates.count >= 1000 { try await flush() }
                    updates.append((id.rawValue, fields, Int64(version), updatedAt))
                case .deleteRecord(let id):
                    if !inserts.isEmpty || !updates.isEmpty || deletes.count >= 1000 { try await flush() }
                    deletes.append(id.rawValue)
                case .event(let event):
                    try transaction.appendEvent(
                        type: event.type,
                        workspaceID: event.workspaceID,
                        baseID: event.baseID,
                        tableID: event.tableID,
                        recordID: event.recordID,
                        payload: event.payload,
                        context: context
                    )
                default:
                    try await flush()
                    try await Self.run(operation, transaction)
                }
            }
            try await flush()
            for expected in changes.expected {
                var digest = MirrorDigest()
                for row in try await transaction.rows(
                    "SELECT id, fields FROM records WHERE table_id = \(expected.table.rawValue)"
                ) {
                    digest.add(
                        id: try row.get("id", as: String.self),
                        storedFields: try row.get("fields", as: String.self),
                        fieldIDs: expected.fieldIDs
                    )
                }
                guard digest == expected.digest else {
                    throw MirrorSnapshotError(
                        description: """
                            table \(expected.table) would hold \(digest) (records-digest), not the \(expected.digest) the \
                            upstream sent; the snapshot was not applied
                            """
                    )
                }
            }
            let summary = changes.summary
            try await transaction.execute(
                """
                INSERT INTO mirror_bases (base_id, workspace_id, upstream, generation, sync_id, completed_at, tables, records, digest)
                VALUES (\(changes.baseID.rawValue), \(changes.workspaceID.rawValue), \(changes.upstream), \(generation + 1),
                    \(summary.syncID), \(summary.completedAt.millisecondsSince1970), \(Int64(summary.tables)),
                    \(Int64(summary.records)), \(summary.digest))
                ON CONFLICT (base_id) DO UPDATE SET workspace_id = excluded.workspace_id,
                    upstream = excluded.upstream, generation = excluded.generation, sync_id = excluded.sync_id,
                    completed_at = excluded.completed_at, tables = excluded.tables, records = excluded.records,
                    digest = excluded.digest
                """
            )
        }
        database.mirrorGuard.insert(changes.baseID.rawValue)
        schemaCache.withLock { $0.removeAll() }
    }

    func mirroredBases() async throws -> [MirroredBase] {
        try await database.read { transaction in
            try await transaction.rows(
                "SELECT m.* FROM mirror_bases m JOIN workspaces w ON w.id = m.workspace_id ORDER BY m.base_id"
            ).map { row in
                MirroredBase(
                    baseID: try row.id("base_id"),
                    workspaceID: try row.id("workspace_id"),
                    upstream: try row.get("upstream", as: String.self),
                    generation: try row.get("generation", as: Int64.self),
                    snapshot: MirrorSnapshotSummary(
                        syncID: try row.get("sync_id", as: String.self),
                        completedAt: try row.date("completed_at"),
                        tables: Int(try row.get("tables", as: Int64.self)),
                        records: Int(try row.get("records", as: Int64.self)),
                        digest: try row.get("digest", as: String.self)
                    )
                )
            }
        }
    }

    /// A schema operation (records and events are batched by the caller).
    private static func run(_ operation: MirrorOperation, _ transaction: PostgresTransaction) async throws {
        switch operation {
        case .insertWorkspace(let id, let name, let owner, let at):
            try await transaction.execute(
                """
                INSERT INTO workspaces (id, name, version, created_at, updated_at)
                VALUES (\(id.rawValue), \(name), 1, \(at), \(at))
                """
            )
            try await transaction.execute(
                """
                INSERT INTO members (workspace_id, user_id, role, added_at)
                VALUES (\(id.rawValue), \(owner.rawValue), 'owner', \(at))
                """
            )
        case .upsertBase(let id, let workspace, let name, let version, let createdAt, let updatedAt):
            try await transaction.execute(
                """
                INSERT INTO bases (id, workspace_id, name, version, created_at, updated_at)
                VALUES (\(id.rawValue), \(workspace.rawValue), \(name), \(Int64(version)), \(createdAt), \(updatedAt))
                ON CONFLICT (id) DO UPDATE SET name = excluded.name, version = excluded.version,
                    updated_at = excluded.updated_at
                """
            )
        case .upsertTable(
            let id,
            let base,
            let name,
            let description,
            let primary,
            let version,
            let createdAt,
            let updatedAt
        ):
            try await transaction.execute(
                """
                INSERT INTO tables (id, base_id, name, description, primary_field_id, version, created_at, updated_at)
                VALUES (\(id.rawValue), \(base.rawValue), \(name), \(description), \(primary.rawValue), \(Int64(version)),
                    \(createdAt), \(updatedAt))
                ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description,
                    primary_field_id = excluded.primary_field_id, version = excluded.version,
                    updated_at = excluded.updated_at
                """
            )
        case .deleteTable(let id):
            try await transaction.execute("DELETE FROM tables WHERE id = \(id.rawValue)")
        case .upsertField(
            let id,
            let table,
            let name,
            let type,
            let options,
            let description,
            let position,
            let version,
            let createdAt,
            let updatedAt
        ):
            try await transaction.execute(
                """
                INSERT INTO fields (id, table_id, name, type, options, description, position, version, created_at, updated_at)
                VALUES (\(id.rawValue), \(table.rawValue), \(name), \(type), \(options), \(description), \(Int64(position)),
                    \(Int64(version)), \(createdAt), \(updatedAt))
                ON CONFLICT (id) DO UPDATE SET name = excluded.name, type = excluded.type,
                    options = excluded.options, description = excluded.description,
                    position = excluded.position, version = excluded.version, updated_at = excluded.updated_at
                """
            )
        case .deleteField(let id):
            try await transaction.execute("DELETE FROM fields WHERE id = \(id.rawValue)")
        case .upsertView(let id, let table, let name, let type, let position, let version, let createdAt, let updatedAt):
            try await transaction.execute(
                """
                INSERT INTO views (id, table_id, name, type, position, version, created_at, updated_at)
                VALUES (\(id.rawValue), \(table.rawValue), \(name), \(type), \(Int64(position)), \(Int64(version)),
                    \(createdAt), \(updatedAt))
                ON CONFLICT (id) DO UPDATE SET name = excluded.name, type = excluded.type,
                    position = excluded.position, version = excluded.version, updated_at = excluded.updated_at
                """
            )
        case .deleteView(let id):
            try await transaction.execute("DELETE FROM views WHERE id = \(id.rawValue)")
        case .insertRecord, .updateRecord, .deleteRecord, .event:
            // Batched by applyMirror, which never hands them here.
            return
        }
    }
}
