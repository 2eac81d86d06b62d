import Foundation
import PostgresNIO
import PyAirtableModels

/// Uploaded files' metadata and their blobs' reference counts, on PostgreSQL (see
/// ``SQLiteStore`` for the rules: who reads, uploads and deletes a file, the upload quota).
///
/// SQLite's single writer made "sum the uploader's bytes, then insert" and "select the unreferenced
/// blobs, then delete them" atomic for free; here several instances write at once, so:
/// - an upload takes a transaction-scoped advisory lock of its uploader before summing, so two
///   instances cannot both pass the quota with the same headroom;
/// - a blob's count changes only by `INSERT … ON CONFLICT DO UPDATE` (+1) and the `files` delete
///   trigger (−1), both row-locked, and a sweep deletes only the rows still at zero when it locks
///   them (`DELETE … RETURNING`): an upload that raced it either raised the count first (the row
///   stays) or finds the row gone and inserts it again.
///
/// Lists are in upload order: `ord`, an identity column, where SQLite uses `rowid`.
extension PostgresStore: FileRepository {
    /// A `files` row as metadata.
    static func fileMetadata(from row: PostgresRandomAccessRow) throws -> FileMetadata {
        FileMetadata(
            id: try row.id("id"),
            name: try row.get("name"),
            contentType: try row.get("content_type"),
            size: try row.get("size", as: Int64.self),
            sha256: try row.get("sha256"),
            workspaceID: try row.optionalID("workspace_id"),
            createdBy: try row.id("created_by") as UserID,
            createdAt: try row.date("created_at")
        )
    }

    /// A file the user may read, with their role in its workspace (`nil` for their private file).
    /// Files they may not read do not exist for them (404). With `lock`, the file's row stays
    /// locked until the transaction ends, so two instances deleting it cannot both succeed.
    static func fetchFile(
        _ transaction: PostgresTransaction,
        id: FileID,
        user: UserID,
        lock: Bool = false
    ) async throws -> (FileMetadata, Role?) {
        let query: PostgresQuery =
            lock
            ? "SELECT * FROM files WHERE id = \(id.rawValue) FOR UPDATE"
            : "SELECT * FROM files WHERE id = \(id.rawValue)"
        guard let row = try await transaction.row(query) else { throw StorageError.notFound("file") }
        let file = try fileMetadata(from: row)
        guard let workspace = file.workspaceID else {
            guard file.createdBy == user else { throw StorageError.notFound("file") }
            return (file, nil)
        }
        guard let role = try await role(transaction, workspace: workspace.rawValue, user: user) else {
            throw StorageError.notFound("file")
        }
        return (file, role)
    }

    public func fileForSignedURL(id: FileID) async throws -> FileMetadata {
        try await database.read { transaction in
            guard let row = try await transaction.row("SELECT * FROM files WHERE id = \(id.rawValue)") else {
                throw StorageError.notFound("file")
            }
            return try Self.fileMetadata(from: row)
        }
    }

    /// A page of the files the user may read, in upload order (`ord`, as SQLite's `rowid`), after
    /// the file `after`. As on SQLite, an `after` that names no file (deleted since) starts over.
    public func files(user: UserID, workspace: WorkspaceID?, limit: Int, after: FileID?) async throws -> [FileMetadata]
    {
        try await database.snapshot { transaction in
            var afterOrd: Int64 = 0
            if let after {
                afterOrd =
                    try await transaction.scalar("SELECT ord FROM files WHERE id = \(after.rawValue)", as: Int64.self)
                    ?? 0
            }
            if let workspace {
                try await Self.authorize(
                    transaction,
                    workspace: workspace.rawValue,
                    user: user,
                    minimum: .viewer,
                    resource: "workspace"
                )
                return try await transaction.rows(
                    """
                    SELECT * FROM files WHERE workspace_id = \(workspace.rawValue) AND ord > \(afterOrd)
                    ORDER BY ord LIMIT \(limit)
                    """
                ).map(Self.fileMetadata(from:))
            }
            return try await transaction.rows(
                """
                SELECT * FROM files
                WHERE ((workspace_id IS NULL AND created_by = \(user.rawValue))
                       OR workspace_id IN (SELECT workspace_id FROM members WHERE user_id = \(user.rawValue)))
                  AND ord > \(afterOrd)
                ORDER BY ord LIMIT \(limit)
                """
            ).map(Self.fileMetadata(from:))
        }
    }

    public func file(id: FileID, user: UserID) async throws -> FileMetadata {
        try await database.read { transaction in try await Self.fetchFile(transaction, id: id, user: user).0 }
    }

    /// The bytes of the files `user` uploaded that still exist. `SUM` of a `BIGINT` is a
    /// `NUMERIC` in PostgreSQL, hence the cast.
    static func sumUploadedBytes(_ transaction: PostgresTransaction, user: UserID) async throws -> Int64 {
        try await transaction.scalar(
            "SELECT COALESCE(SUM(size), 0)::BIGINT FROM files WHERE created_by = \(user.rawValue)",
            as: Int64.self
        ) ?? 0
    }

    public func uploadedBytes(user: UserID) async throws -> Int64 {
        try await database.read { transaction in try await Self.sumUploadedBytes(transaction, user: user) }
    }

    public func createFile(_ new: NewFile, context: WriteContext) async throws -> WriteResult<FileMetadata> {
        let actor = try context.requireActor()
        let quota = uploadQuotaBytes
        return try await perform(context, status: 201) { transaction in
            if quota > 0 {
                // Another instance may be recording an upload of the same user right now: the lock
                // (held to the commit) makes their sums and inserts take turns, and the sum below
                // (a new snapshot, READ COMMITTED) then sees the other's committed file.
                try await transaction.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(\("upload:" + actor.rawValue)))"
                )
                let used = try await Self.sumUploadedBytes(transaction, user: actor)
                if used + new.size > quota { throw StorageError.uploadQuotaExceeded(used: used, quota: quota) }
            }
            if let workspace = new.workspaceID {
                try await Self.authorize(
                    transaction,
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
            // When a sweep of another instance is deleting this blob's row, the insert waits for it
            // and, the row gone, inserts it afresh (at 1); when the row exists it is locked and +1.
            try await transaction.execute(
                """
                INSERT INTO blobs (sha256, size, ref_count, created_at) VALUES (\(file.sha256), \(file.size), 1, \(now))
                ON CONFLICT (sha256) DO UPDATE SET ref_count = blobs.ref_count + 1
                """
            )
            do {
                try await transaction.execute(
                    """
                    INSERT INTO files (id, name, content_type, size, sha256, workspace_id, created_by, created_at)
                    VALUES (\(file.id.rawValue), \(file.name), \(file.contentType), \(file.size), \(file.sha256),
                        \(file.workspaceID?.rawValue), \(actor.rawValue), \(now))
                    """
                )
            } catch  where Self.isFileForeignKeyViolation(error) {
                // The workspace was deleted by another instance since the role check.
                throw StorageError.notFound("workspace")
            }
            try transaction.appendEvent(
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
        return try await perform(context, status: 204) { transaction in
            let (file, role) = try await Self.fetchFile(transaction, id: id, user: actor, lock: true)
            if let role, file.createdBy != actor, role < .creator {
                throw StorageError.forbidden(
                    "only the file's uploader or a creator or higher may delete it; you are \(role.rawValue)"
                )
            }
            // The `files_release_blob` trigger takes one off the blob's count.
            try await transaction.execute("DELETE FROM files WHERE id = \(id.rawValue)")
            try transaction.appendEvent(
                type: .fileDeleted,
                workspaceID: file.workspaceID,
                payload: ["id": id.rawValue],
                context: context
            )
            return EmptyBody()
        }
    }

    /// Deletes the blob rows no file references and answers their digests: exactly the rows this
    /// statement deleted. A row whose count an uncommitted upload raised is waited for and then
    /// kept (the condition is checked again on the row as committed), and a sweep of another
    /// instance that deleted a row first leaves nothing here to answer twice.
    public func sweepUnreferencedBlobs() async throws -> [String] {
        try await database.write { transaction in
            try await transaction.rows("DELETE FROM blobs WHERE ref_count <= 0 RETURNING sha256")
                .map { try $0.get("sha256", as: String.self) }
        }
    }

    public func blobDigests() async throws -> Set<String> {
        try await database.read { transaction in
            Set(try await transaction.rows("SELECT sha256 FROM blobs").map { try $0.get("sha256", as: String.self) })
        }
    }

    /// Whether `error` is PostgreSQL's foreign key violation (23503).
    private static func isFileForeignKeyViolation(_ error: any Error) -> Bool {
        (error as? PSQLError)?.serverInfo?[.sqlState] == "23503"
    }
}
