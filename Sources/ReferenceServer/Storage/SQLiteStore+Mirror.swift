import Foundation
import GRDB
import PyAirtableModels
import Synchronization

extension SQLiteStore: MirrorStore {
    func mirrorState(base: BaseID) async throws -> MirrorCurrentState {
        try await database.read { db in
            var state = MirrorCurrentState()
            if let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT m.generation, m.workspace_id FROM mirror_bases m
                    JOIN workspaces w ON w.id = m.workspace_id WHERE m.base_id = ?
                    """,
                arguments: [base.rawValue]
            ) {
                state.generation = row["generation"]
                state.workspaceID = row.id("workspace_id")
            }
            if let row = try Row.fetchOne(db, sql: "SELECT * FROM bases WHERE id = ?", arguments: [base.rawValue]) {
                let found = Self.decodeBase(from: row)
                // A base of that id outside the mirror's workspace is not the mirror's to change.
                guard found.workspaceID == state.workspaceID else {
                    throw MirrorSnapshotError(
                        description: "a local base has the id \(base) already, outside the mirror's workspace"
                    )
                }
                state.base = found
            }
            guard state.base != nil else { return state }
            let tableIDs = try String.fetchAll(
                db,
                sql: "SELECT id FROM tables WHERE base_id = ? ORDER BY rowid",
                arguments: [base.rawValue]
            )
            for id in tableIDs {
                guard let schema = try Self.fetchTableSchema(db, id: TableID(unchecked: id)) else { continue }
                state.tables.append(schema.table)
                var records: [String: MirrorStoredRecord] = [:]
                let rows = try Row.fetchCursor(
                    db,
                    sql: "SELECT id, fields, version, created_at FROM records WHERE table_id = ?",
                    arguments: [id]
                )
                while let row = try rows.next() {
                    records[row["id"]] = MirrorStoredRecord(
                        fields: row["fields"],
                        version: row["version"],
                        createdAt: row["created_at"]
                    )
                }
                state.records[TableID(unchecked: id)] = records
            }
            return state
        }
    }

    func applyMirror(_ changes: MirrorChangeSet, context: WriteContext) async throws {
        try await database.write { db in
            let generation =
                try Int64.fetchOne(
                    db,
                    sql: """
                        SELECT m.generation FROM mirror_bases m JOIN workspaces w ON w.id = m.workspace_id
                        WHERE m.base_id = ?
                        """,
                    arguments: [changes.baseID.rawValue]
                ) ?? 0
            guard generation == changes.expectedGeneration else {
                throw MirrorSnapshotError(description: "another snapshot of \(changes.baseID) was applied meanwhile")
            }
            try db.execute(sql: "INSERT INTO mirror_writing (id) VALUES (1)")
            for operation in changes.operations {
                try Self.run(operation, db, context: context)
            }
            for expected in changes.expected {
                var digest = MirrorDigest()
                let rows = try Row.fetchCursor(
                    db,
                    sql: "SELECT id, fields FROM records WHERE table_id = ?",
                    arguments: [expected.table.rawValue]
                )
                while let row = try rows.next() {
                    digest.add(id: row["id"], storedFields: row["fields"], fieldIDs: expected.fieldIDs)
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
            try db.execute(
                sql: """
                    INSERT INTO mirror_bases (base_id, workspace_id, upstream, generation, sync_id, completed_at, tables, records, digest)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (base_id) DO UPDATE SET workspace_id = excluded.workspace_id,
                        upstream = excluded.upstream, generation = excluded.generation, sync_id = excluded.sync_id,
                        completed_at = excluded.completed_at, tables = excluded.tables, records = excluded.records,
                        digest = excluded.digest
                    """,
                arguments: [
                    changes.baseID.rawValue, changes.workspaceID.rawValue, changes.upstream, generation + 1,
                    summary.syncID, summary.completedAt.millisecondsSince1970, summary.tables, summary.records,
                    summary.digest,
                ]
            )
            try db.execute(sql: "DELETE FROM mirror_writing")
        }
        schemaCache.withLock { $0.removeAll() }
    }

    func mirroredBases() async throws -> [MirroredBase] {
        try await database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT m.* FROM mirror_bases m JOIN workspaces w ON w.id = m.workspace_id ORDER BY m.base_id
                    """
            ).map { row in
                MirroredBase(
                    baseID: row.id("base_id"),
                    workspaceID: row.id("workspace_id"),
                    upstream: row["upstream"],
                    generation: row["generation"],
                    snapshot: MirrorSnapshotSummary(
                        syncID: row["sync_id"],
                        completedAt: row.date("completed_at"),
                        tables: row["tables"],
                        records: row["records"],
                        digest: row["digest"]
                    )
                )
            }
        }
    }

    private static func run(_ operation: MirrorOperation, _ db: Database, context: WriteContext) throws {
        switch operation {
        case .insertWorkspace(let id, let name, let owner, let at):
            try db.execute(
                sql: "INSERT INTO workspaces (id, name, version, created_at, updated_at) VALUES (?, ?, 1, ?, ?)",
                arguments: [id.rawValue, name, at, at]
            )
            try db.execute(
                sql: "INSERT INTO members (workspace_id, user_id, role, added_at) VALUES (?, ?, 'owner', ?)",
                arguments: [id.rawValue, owner.rawValue, at]
            )
            try membersChanged(db)
        case .upsertBase(let id, let workspace, let name, let version, let createdAt, let updatedAt):
            try db.execute(
                sql: """
                    INSERT INTO bases (id, workspace_id, name, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET name = excluded.name, version = excluded.version,
                        updated_at = excluded.updated_at
                    """,
                arguments: [id.rawValue, workspace.rawValue, name, version, createdAt, updatedAt]
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
            try db.execute(
                sql: """
                    INSERT INTO tables (id, base_id, name, description, primary_field_id, version, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description,
                        primary_field_id = excluded.primary_field_id, version = excluded.version,
                        updated_at = excluded.updated_at
                    """,
                arguments: [
                    id.rawValue, base.rawValue, name, description, primary.rawValue, version, createdAt, updatedAt,
                ]
            )
        case .deleteTable(let id):
            try db.execute(sql: "DELETE FROM tables WHERE id = ?", arguments: [id.rawValue])
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
            try db.execute(
                sql: """
                    INSERT INTO fields (id, table_id, name, type, options, description, position, version, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET name = excluded.name, type = excluded.type,
                        options = excluded.options, description = excluded.description,
                        position = excluded.position, version = excluded.version, updated_at = excluded.updated_at
                    """,
                arguments: [
                    id.rawValue, table.rawValue, name, type, options, description, position, version, createdAt,
                    updatedAt,
                ]
            )
        case .deleteField(let id):
            try db.execute(sql: "DELETE FROM fields WHERE id = ?", arguments: [id.rawValue])
        case .upsertView(let id, let table, let name, let type, let position, let version, let createdAt, let updatedAt):
            try db.execute(
                sql: """
                    INSERT INTO views (id, table_id, name, type, position, version, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET name = excluded.name, type = excluded.type,
                        position = excluded.position, version = excluded.version, updated_at = excluded.updated_at
                    """,
                arguments: [id.rawValue, table.rawValue, name, type, position, version, createdAt, updatedAt]
            )
        case .deleteView(let id):
            try db.execute(sql: "DELETE FROM views WHERE id = ?", arguments: [id.rawValue])
        case .insertRecord(let id, let table, let fields, let createdAt, let updatedAt):
            try db.cachedStatement(
                sql:
                    "INSERT INTO records (id, table_id, fields, version, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)"
            ).execute(arguments: [id.rawValue, table.rawValue, fields, createdAt, updatedAt])
        case .updateRecord(let id, let fields, let version, let updatedAt):
            try db.cachedStatement(sql: "UPDATE records SET fields = ?, version = ?, updated_at = ? WHERE id = ?")
                .execute(arguments: [fields, version, updatedAt, id.rawValue])
        case .deleteRecord(let id):
            try db.cachedStatement(sql: "DELETE FROM records WHERE id = ?").execute(arguments: [id.rawValue])
        case .event(let event):
            try appendEvent(
                db,
                type: event.type,
                workspaceID: event.workspaceID,
                baseID: event.baseID,
                tableID: event.tableID,
                recordID: event.recordID,
                payload: event.payload,
                context: context
            )
        }
    }
}
