import Foundation
import PostgresNIO
import PyAirtableModels

/// Comments on records, on PostgreSQL (the rules are ``CommentRepository``'s: any member reads,
/// commenters and up write, authors edit and delete their own, owners delete any).
///
/// Where SQLite's single writer serialised everything, a change here locks what it decides on: a
/// new comment holds its record (`FOR KEY SHARE`, so a record deleted by another instance is either
/// gone before, a 404, or deleted after, taking the comment with it), and an edit or a deletion
/// locks the comment's row (`FOR UPDATE`), so two instances deleting one comment answer one 200
/// and one 404, not two events.
///
/// Pages are newest first by `ord`, an identity column, where SQLite uses `rowid`; the cursor is
/// that number, as on SQLite.
extension PostgresStore: CommentRepository {
    /// Where a record lives and the caller's role in its workspace (`nil`: not a member). Enough for
    /// comments, which need no more of the record than where to file their events; this does not
    /// load the table's schema.
    private struct CommentRecordScope: Sendable {
        var tableID: TableID
        var baseID: BaseID
        var workspaceID: WorkspaceID
        var role: Role?
    }

    /// The record's scope, checking the caller's role (404 "record" for a non-member, as on
    /// SQLite). With `lock`, the record's row is held (`FOR KEY SHARE`) to the transaction's end: a
    /// concurrent deletion of the record waits, then removes the comment this transaction adds.
    private static func commentRecordScope(
        _ transaction: PostgresTransaction,
        record: RecordID,
        user: UserID,
        minimum: Role,
        lock: Bool = false
    ) async throws -> CommentRecordScope {
        let query: PostgresQuery =
            lock
            ? """
            SELECT r.table_id, t.base_id, b.workspace_id, m.role FROM records r
            JOIN tables t ON t.id = r.table_id
            JOIN bases b ON b.id = t.base_id
            LEFT JOIN members m ON m.workspace_id = b.workspace_id AND m.user_id = \(user.rawValue)
            WHERE r.id = \(record.rawValue)
            FOR KEY SHARE OF r
            """
            : """
            SELECT r.table_id, t.base_id, b.workspace_id, m.role FROM records r
            JOIN tables t ON t.id = r.table_id
            JOIN bases b ON b.id = t.base_id
            LEFT JOIN members m ON m.workspace_id = b.workspace_id AND m.user_id = \(user.rawValue)
            WHERE r.id = \(record.rawValue)
            """
        guard let row = try await transaction.row(query) else { throw StorageError.notFound("record") }
        let role = try row.get("role", as: String?.self).flatMap(Role.init(rawValue:))
        try SQLiteStore.check(role: role, minimum: minimum, resource: "record")
        return CommentRecordScope(
            tableID: try row.id("table_id"),
            baseID: try row.id("base_id"),
            workspaceID: try row.id("workspace_id"),
            role: role
        )
    }

    /// `comments` rows as comments, their authors and mentioned users loaded in one query (a user
    /// since deleted reads as an empty email and name, as on SQLite).
    private static func decodeComments(
        _ transaction: PostgresTransaction,
        rows: [PostgresRandomAccessRow]
    ) async throws -> [Comment] {
        struct Partial {
            var row: PostgresRandomAccessRow
            var author: String
            var mentions: [String]
        }
        var partials: [Partial] = []
        var userIDs = Set<String>()
        for row in rows {
            let author = try row.get("author_id", as: String.self)
            let mentions =
                (try? JSONCoding.decoder.decode(
                    [String].self,
                    from: Data(try row.get("mentions", as: String.self).utf8)
                )) ?? []
            partials.append(Partial(row: row, author: author, mentions: mentions))
            userIDs.insert(author)
            userIDs.formUnion(mentions)
        }
        var users: [String: (email: String, name: String)] = [:]
        if !userIDs.isEmpty {
            for row in try await transaction.rows(
                "SELECT id, email, name FROM users WHERE id = ANY(\(Array(userIDs)))"
            ) {
                users[try row.get("id", as: String.self)] = (try row.get("email"), try row.get("name"))
            }
        }
        func author(_ id: String) -> CommentAuthor {
            CommentAuthor(id: UserID(unchecked: id), email: users[id]?.email ?? "", name: users[id]?.name ?? "")
        }
        return try partials.map { partial in
            Comment(
                id: try partial.row.id("id"),
                recordID: try partial.row.id("record_id"),
                tableID: try partial.row.id("table_id"),
                author: author(partial.author),
                text: try partial.row.get("text"),
                mentions: partial.mentions.map(author),
                createdAt: try partial.row.date("created_at"),
                updatedAt: try partial.row.optionalDate("updated_at")
            )
        }
    }

    /// One comment as stored now (after this transaction's change to it).
    private static func storedComment(_ transaction: PostgresTransaction, id: CommentID) async throws -> Comment {
        guard let row = try await transaction.row("SELECT * FROM comments WHERE id = \(id.rawValue)"),
            let comment = try await decodeComments(transaction, rows: [row]).first
        else { throw StorageError.notFound("comment") }
        return comment
    }

    /// The text checked: 1 to `maximumCommentLength` characters; every `@[usr…]` a member of the
    /// workspace (the first one who is not is named in the error, as on SQLite). Answers the
    /// mentioned ids.
    private func checkCommentText(
        _ transaction: PostgresTransaction,
        text: String,
        workspace: WorkspaceID
    ) async throws -> [String] {
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw StorageError.invalid("text must not be empty", field: "text")
        }
        guard text.count <= limits.maximumCommentLength else {
            throw StorageError.invalid(
                "text must be at most \(limits.maximumCommentLength) characters (maximumCommentLength)",
                field: "text"
            )
        }
        let mentioned = Comment.mentionedUsers(in: text).map(\.rawValue)
        guard !mentioned.isEmpty else { return [] }
        let members = Set(
            try await transaction.rows(
                """
                SELECT user_id FROM members WHERE workspace_id = \(workspace.rawValue) AND user_id = ANY(\(mentioned))
                """
            ).map { try $0.get("user_id", as: String.self) }
        )
        if let stranger = mentioned.first(where: { !members.contains($0) }) {
            throw StorageError.invalid(
                "text mentions \(stranger), who is not a member of this workspace",
                field: "text"
            )
        }
        return mentioned
    }

    /// A page of a record's comments, newest first (insertion order, `ord`, as SQLite's `rowid`);
    /// the cursor is the last comment's `ord`. Read in one snapshot so the access check, the page
    /// and its authors agree.
    public func comments(record: RecordID, user: UserID, limit: Int, after: String?) async throws -> Page<Comment> {
        try await database.snapshot { transaction in
            _ = try await Self.commentRecordScope(transaction, record: record, user: user, minimum: .viewer)
            // After the access check, as on SQLite: a bad cursor on a record you cannot see is a 404.
            var before = Int64.max
            if let after {
                guard let position = Int64(after), position > 0 else {
                    throw StorageError.invalid("cursor is not one this list gave", field: "cursor")
                }
                before = position
            }
            let rows = try await transaction.rows(
                """
                SELECT * FROM comments WHERE record_id = \(record.rawValue) AND ord < \(before)
                ORDER BY ord DESC LIMIT \(limit + 1)
                """
            )
            let page = Array(rows.prefix(limit))
            let next = rows.count > limit ? try page.last.map { String(try $0.get("ord", as: Int64.self)) } : nil
            return Page(data: try await Self.decodeComments(transaction, rows: page), nextCursor: next)
        }
    }

    public func comment(id: CommentID, user: UserID) async throws -> Comment {
        try await database.snapshot { transaction in
            guard let row = try await transaction.row("SELECT * FROM comments WHERE id = \(id.rawValue)") else {
                throw StorageError.notFound("comment")
            }
            _ = try await Self.commentRecordScope(
                transaction,
                record: try row.id("record_id"),
                user: user,
                minimum: .viewer
            )
            guard let comment = try await Self.decodeComments(transaction, rows: [row]).first else {
                throw StorageError.notFound("comment")
            }
            return comment
        }
    }

    public func createComment(
        record: RecordID,
        text: String,
        context: WriteContext
    ) async throws
        -> WriteResult<Comment>
    {
        let actor = try context.requireActor()
        return try await perform(context, status: 201) { transaction in
            let scope = try await Self.commentRecordScope(
                transaction,
                record: record,
                user: actor,
                minimum: .commenter,
                lock: true
            )
            let mentions = try await self.checkCommentText(transaction, text: text, workspace: scope.workspaceID)
            let id = CommentID.generate()
            let encodedMentions = String(decoding: try JSONCoding.encoder.encode(mentions), as: UTF8.self)
            try await transaction.execute(
                """
                INSERT INTO comments (id, record_id, table_id, author_id, text, mentions, created_at)
                VALUES (\(id.rawValue), \(record.rawValue), \(scope.tableID.rawValue), \(actor.rawValue), \(text),
                    \(encodedMentions), \(context.now.millisecondsSince1970))
                """
            )
            let comment = try await Self.storedComment(transaction, id: id)
            try transaction.appendEvent(
                type: .commentCreated,
                workspaceID: scope.workspaceID,
                baseID: scope.baseID,
                tableID: scope.tableID,
                recordID: record,
                payload: comment,
                context: context
            )
            return comment
        }
    }

    /// The comment's row, locked until the transaction ends, its record's scope, and the caller's
    /// role (404 when they may not see the record; a viewer at least otherwise).
    private static func commentForChange(
        _ transaction: PostgresTransaction,
        id: CommentID,
        user: UserID
    ) async throws -> (PostgresRandomAccessRow, CommentRecordScope, Role) {
        guard let row = try await transaction.row("SELECT * FROM comments WHERE id = \(id.rawValue) FOR UPDATE")
        else { throw StorageError.notFound("comment") }
        let scope = try await commentRecordScope(
            transaction,
            record: try row.id("record_id"),
            user: user,
            minimum: .viewer
        )
        return (row, scope, scope.role ?? .viewer)
    }

    public func updateComment(id: CommentID, text: String, context: WriteContext) async throws -> WriteResult<Comment> {
        let actor = try context.requireActor()
        return try await perform(context) { transaction in
            let (row, scope, role) = try await Self.commentForChange(transaction, id: id, user: actor)
            guard try row.get("author_id", as: String.self) == actor.rawValue else {
                throw StorageError.forbidden("only its author may edit a comment")
            }
            guard role >= .commenter else {
                throw StorageError.forbidden(
                    "editing a comment needs the commenter role or higher; you are \(role.rawValue)"
                )
            }
            let mentions = try await self.checkCommentText(transaction, text: text, workspace: scope.workspaceID)
            let encodedMentions = String(decoding: try JSONCoding.encoder.encode(mentions), as: UTF8.self)
            try await transaction.execute(
                """
                UPDATE comments SET text = \(text), mentions = \(encodedMentions),
                    updated_at = \(context.now.millisecondsSince1970)
                WHERE id = \(id.rawValue)
                """
            )
            let comment = try await Self.storedComment(transaction, id: id)
            try transaction.appendEvent(
                type: .commentUpdated,
                workspaceID: scope.workspaceID,
                baseID: scope.baseID,
                tableID: scope.tableID,
                recordID: comment.recordID,
                payload: comment,
                context: context
            )
            return comment
        }
    }

    public func deleteComment(id: CommentID, context: WriteContext) async throws -> WriteResult<Comment> {
        let actor = try context.requireActor()
        return try await perform(context) { transaction in
            let (row, scope, role) = try await Self.commentForChange(transaction, id: id, user: actor)
            guard try row.get("author_id", as: String.self) == actor.rawValue || role == .owner else {
                throw StorageError.forbidden("only its author or a workspace owner may delete a comment")
            }
            guard let comment = try await Self.decodeComments(transaction, rows: [row]).first else {
                throw StorageError.notFound("comment")
            }
            try await transaction.execute("DELETE FROM comments WHERE id = \(id.rawValue)")
            try transaction.appendEvent(
                type: .commentDeleted,
                workspaceID: scope.workspaceID,
                baseID: scope.baseID,
                tableID: scope.tableID,
                recordID: comment.recordID,
                payload: ["id": id.rawValue, "record_id": comment.recordID.rawValue],
                context: context
            )
            return comment
        }
    }

    /// How many comments each record has, records without any left out. Like SQLite's, this checks
    /// no access: callers pass records they already read.
    public func commentCounts(records: [RecordID], user: UserID) async throws -> [RecordID: Int] {
        guard !records.isEmpty else { return [:] }
        let ids = Array(Set(records.map(\.rawValue)))
        return try await database.read { transaction in
            var counts: [RecordID: Int] = [:]
            for row in try await transaction.rows(
                """
                SELECT record_id, COUNT(*) AS n FROM comments WHERE record_id = ANY(\(ids)) GROUP BY record_id
                """
            ) {
                counts[try row.id("record_id")] = Int(try row.get("n", as: Int64.self))
            }
            return counts
        }
    }
}
