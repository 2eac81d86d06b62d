import Foundation
import GRDB
import PyAirtableModels

extension SQLiteStore {
    static func fileMetadata(from row: Row) -> FileMetadata {
        FileMetadata(
            id: row.id("id"),
            name: row["name"],
            contentType: row["content_type"],
            size: row["size"],
            sha256: row["sha256"],
            workspaceID: row.optionalID("workspace_id"),
            createdBy: row.id("created_by"),
            createdAt: row.date("created_at")
        )
    }

    /// A file the user may read, with their role in its workspace (`nil` for their private file).
    /// Files they may not read do not exist for them (404).
    static func fetchFile(_ db: Database, id: FileID, user: UserID) throws -> (FileMetadata, Role?) {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM files WHERE id = ?", arguments: [id.rawValue]) else {
            throw StorageError.notFound("file")
        }
        let file = fileMetadata(from: row)
        guard let workspace = file.workspaceID else {
            guard file.createdBy == user else { throw StorageError.notFound("file") }
            return (file, nil)
        }
        guard let role = try role(db, workspace: workspace.rawValue, user: user) else {
            throw StorageError.notFound("file")
        }
        return (file, role)
    }

    public func fileForSignedURL(id: FileID) async throws -> FileMetadata {
        try await database.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM files WHERE id = ?", arguments: [id.rawValue])
            else { throw StorageError.notFound("file") }
            return Self.fileMetadata(from: row)
        }
    }

    public func files(user: UserID, workspace: WorkspaceID?, limit: Int, after: FileID?) async throws -> [FileMetadata]
    {
        try await database.read { db in
            var afterRow: Int64 = 0
            if let after {
                afterRow =
                    try Int64.fetchOne(db, sql: "SELECT rowid FROM files WHERE id = ?", arguments: [after.rawValue])
                    ?? 0
            }
            if let workspace {
                try Self.authorize(
                    db,
                    workspace: workspace.rawValue,
                    user: user,
                    minimum: .viewer,
                    resource: "workspace"
                )
                return try Row.fetchAll(
                    db,
                    sql: "SELECT * FROM files WHERE workspace_id = ? AND rowid > ? ORDER BY rowid LIMIT ?",
                    arguments: [workspace.rawValue, afterRow, limit]
                ).map(Self.fileMetadata(from:))
            }
            return try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM files
                    WHERE ((workspace_id IS NULL AND created_by = ?)
                           OR workspace_id IN (SELECT workspace_id FROM members WHERE user_id = ?))
                      AND rowid > ?
                    ORDER BY rowid LIMIT ?
                    """,
                arguments: [user.rawValue, user.rawValue, afterRow, limit]
            ).map(Self.fileMetadata(from:))
        }
    }

    public func file(id: FileID, user: UserID) async throws -> FileMetadata {
        try await database.read { db in try Self.fetchFile(db, id: id, user: user).0 }
    }

    static func sumUploadedBytes(_ db: Database, user: UserID) throws -> Int64 {
        try Int64.fetchOne(
            db,
            sql: "SELECT COALESCE(SUM(size), 0) FROM files WHERE created_by = ?",
            arguments: [user.rawValue]
        ) ?? 0
    }

    public func uploadedBytes(user: UserID) async throws -> Int64 {
        try await database.read { db in try Self.sumUploadedBytes(db, user: user) }
    }

    public func createFile(_ new: NewFile, context: WriteContext) async throws -> WriteResult<FileMetadata> {
        let actor = try context.requireActor()
        let quota = uploadQuotaBytes
        return try await perform(context, status: 201) { db in
            if quota > 0 {
                // Checked in the transaction that records the file, so concurrent uploads cannot
                // pass the quota together.
                let used = try Self.sumUploadedBytes(db, user: actor)
                if used + new.size > quota { throw StorageError.uploadQuotaExceeded(used: used, quota: quota) }
            }
            if let workspace = new.workspaceID {
                try Self.authorize(
                    db,
                    workspace: workspace.rawValue,
                    user: actor,
                    minimum: .editor,
                    resource: "workspace"
                )
            }
            let file = FileMetadata(
                id: .generate(),
                name: new.name,
                contentType: new.contentType,
                size: new.size,
                sha256: new.sha256,
                workspaceID: new.workspaceID,
                createdBy: actor,
                createdAt: context.now
            )
            let now = context.now.millisecondsSince1970
            try db.execute(
                sql: """
                    INSERT INTO blobs (sha256, size, ref_count, created_at) VALUES (?, ?, 1, ?)
                    ON CONFLICT (sha256) DO UPDATE SET ref_count = ref_count + 1
                    """,
                arguments: [file.sha256, file.size, now]
            )
            try db.execute(
                sql: """
                    INSERT INTO files (id, name, content_type, size, sha256, workspace_id, created_by, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    file.id.rawValue, file.name, file.contentType, file.size, file.sha256,
                    file.workspaceID?.rawValue, actor.rawValue, now,
                ]
            )
            try Self.appendEvent(
                db,
                type: .fileCreated,
                workspaceID: file.workspaceID,
                payload: file,
                context: context
            )
            return file
        }
    }

    public func deleteFile(id: FileID, context: WriteContext) async throws -> WriteResult<EmptyBody> {
        let actor = try context.requireActor()
        return try await perform(context, status: 204) { db in
            let (file, role) = try Self.fetchFile(db, id: id, user: actor)
            if let role, file.createdBy != actor, role < .creator {
                throw StorageError.forbidden(
                    "only the file's uploader or a creator or higher may delete it; you are \(role.rawValue)"
                )
            }
            try db.execute(sql: "DELETE FROM files WHERE id = ?", arguments: [id.rawValue])
            try Self.appendEvent(
                db,
                type: .fileDeleted,
                workspaceID: file.workspaceID,
                payload: ["id": id.rawValue],
                context: context
            )
            return EmptyBody()
        }
    }

    public func sweepUnreferencedBlobs() async throws -> [String] {
        try await database.write { db in
            let digests = try String.fetchAll(db, sql: "SELECT sha256 FROM blobs WHERE ref_count <= 0")
            try db.execute(sql: "DELETE FROM blobs WHERE ref_count <= 0")
            return digests
        }
    }

    public func blobDigests() async throws -> Set<String> {
        try await database.read { db in try String.fetchSet(db, sql: "SELECT sha256 FROM blobs") }
    }

    // MARK: Attachments

    /// Attachment cells name files; each must be one the writer may read. The server fills in the
    /// name, type, size and URL from the file, whatever the request said of them.
    static func resolveAttachments(
        _ db: Database,
        _ attachments: [Attachment],
        field: Field,
        user: UserID?
    ) throws -> [Attachment] {
        var seen = Set<FileID>()
        var resolved: [Attachment] = []
        for attachment in attachments where seen.insert(attachment.id).inserted {
            let unknown = StorageError.invalid(
                "field '\(field.name)': file '\(attachment.id)' does not exist or you cannot read it",
                field: field.name
            )
            guard let user else { throw unknown }
            let file: FileMetadata
            do {
                file = try fetchFile(db, id: attachment.id, user: user).0
            } catch StorageError.notFound {
                throw unknown
            }
            resolved.append(
                Attachment(
                    id: file.id,
                    filename: file.name,
                    contentType: file.contentType,
                    size: Int(file.size),
                    url: file.contentPath
                )
            )
        }
        return resolved
    }
}
