import Foundation
import GRDB
import PyAirtableModels

/// Comments on records: any member reads them, commenters and up write them, authors edit and delete
/// their own (owners delete any). Each change appends `comment.created|updated|deleted`.
public protocol CommentRepository: Sendable {
    /// A page of a record's comments, newest first; `after` is the previous page's cursor.
    func comments(record: RecordID, user: UserID, limit: Int, after: String?) async throws -> Page<Comment>
    func createComment(record: RecordID, text: String, context: WriteContext) async throws -> WriteResult<Comment>
    func updateComment(id: CommentID, text: String, context: WriteContext) async throws -> WriteResult<Comment>
    func deleteComment(id: CommentID, context: WriteContext) async throws -> WriteResult<Comment>
    /// How many comments each record has (records without any are left out).
    func commentCounts(records: [RecordID], user: UserID) async throws -> [RecordID: Int]
    /// One comment, checking the caller may read its record.
    func comment(id: CommentID, user: UserID) async throws -> Comment
}

extension SQLiteStore: CommentRepository {
    static func author(_ db: Database, _ id: String) throws -> CommentAuthor {
        let row = try Row.fetchOne(db, sql: "SELECT email, name FROM users WHERE id = ?", arguments: [id])
        return CommentAuthor(
            id: UserID(unchecked: id),
            email: row?["email"] ?? "",
            name: row?["name"] ?? ""
        )
    }

    static func comment(_ db: Database, row: Row) throws -> Comment {
        let mentionIDs =
            (try? JSONCoding.decoder.decode([String].self, from: Data((row["mentions"] as String).utf8))) ?? []
        return Comment(
            id: CommentID(unchecked: row["id"]),
            recordID: RecordID(unchecked: row["record_id"]),
            tableID: TableID(unchecked: row["table_id"]),
            author: try author(db, row["author_id"]),
            text: row["text"],
            mentions: try mentionIDs.map { try author(db, $0) },
            createdAt: Date(millisecondsSince1970: row["created_at"]),
            updatedAt: (row["updated_at"] as Int64?).map(Date.init(millisecondsSince1970:))
        )
    }

    /// The text checked: 1 to `maximumCommentLength` characters; every `@[usr…]` a member of the
    /// workspace. Answers the mentioned ids.
    func checkComment(_ db: Database, text: String, workspace: WorkspaceID) throws -> [String] {
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw StorageError.invalid("text must not be empty", field: "text")
        }
        guard text.count <= limits.maximumCommentLength else {
            throw StorageError.invalid(
                "text must be at most \(limits.maximumCommentLength) characters (maximumCommentLength)",
                field: "text"
            )
        }
        let mentioned = Comment.mentionedUsers(in: text)
        for user in mentioned where try Self.role(db, workspace: workspace.rawValue, user: user) == nil {
            throw StorageError.invalid("text mentions \(user), who is not a member of this workspace", field: "text")
        }
        return mentioned.map(\.rawValue)
    }

    public func comments(record: RecordID, user: UserID, limit: Int, after: String?) async throws -> Page<Comment> {
        try await database.read { db in
            _ = try self.requireStoredRecord(db, id: record, user: user, minimum: .viewer)
            var sql = "SELECT rowid AS position, * FROM comments WHERE record_id = ?"
            var arguments: [any DatabaseValueConvertible] = [record.rawValue]
            if let after {
                guard let position = Int64(after), position > 0 else {
                    throw StorageError.invalid("cursor is not one this list gave", field: "cursor")
                }
                sql += " AND rowid < ?"
                arguments.append(position)
            }
            sql += " ORDER BY rowid DESC LIMIT ?"
            arguments.append(limit + 1)
            let rows = try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments))
            let page = rows.prefix(limit)
            let next = rows.count > limit ? (page.last?["position"] as Int64?).map(String.init) : nil
            return Page(data: try page.map { try Self.comment(db, row: $0) }, nextCursor: next)
        }
    }

    public func comment(id: CommentID, user: UserID) async throws -> Comment {
        try await database.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM comments WHERE id = ?", arguments: [id.rawValue])
            else { throw StorageError.notFound("comment") }
            _ = try self.requireStoredRecord(
                db,
                id: RecordID(unchecked: row["record_id"]),
                user: user,
                minimum: .viewer
            )
            return try Self.comment(db, row: row)
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
        return try await perform(context, status: 201) { db in
            let (schema, _) = try self.requireStoredRecord(db, id: record, user: actor, minimum: .commenter)
            let mentions = try self.checkComment(db, text: text, workspace: schema.workspaceID)
            let id = CommentID.generate()
            try db.execute(
                sql: """
                    INSERT INTO comments (id, record_id, table_id, author_id, text, mentions, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    id.rawValue, record.rawValue, schema.table.id.rawValue, actor.rawValue, text,
                    String(decoding: try JSONCoding.encoder.encode(mentions), as: UTF8.self),
                    context.now.millisecondsSince1970,
                ]
            )
            let comment = try Self.storedComment(db, id: id)
            try Self.appendEvent(
                db,
                type: .commentCreated,
                workspaceID: schema.workspaceID,
                baseID: schema.table.baseID,
                tableID: schema.table.id,
                recordID: record,
                payload: comment,
                context: context
            )
            return comment
        }
    }

    static func storedComment(_ db: Database, id: CommentID) throws -> Comment {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM comments WHERE id = ?", arguments: [id.rawValue])
        else { throw StorageError.notFound("comment") }
        return try comment(db, row: row)
    }

    /// The comment's row and its record's schema, checking the caller may see the record.
    private func commentForChange(_ db: Database, id: CommentID, user: UserID) throws -> (Row, TableSchema, Role) {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM comments WHERE id = ?", arguments: [id.rawValue])
        else { throw StorageError.notFound("comment") }
        let (schema, _) = try requireStoredRecord(
            db,
            id: RecordID(unchecked: row["record_id"]),
            user: user,
            minimum: .viewer
        )
        let role = try Self.role(db, workspace: schema.workspaceID.rawValue, user: user) ?? .viewer
        return (row, schema, role)
    }

    public func updateComment(id: CommentID, text: String, context: WriteContext) async throws -> WriteResult<Comment> {
        let actor = try context.requireActor()
        return try await perform(context) { db in
            let (row, schema, role) = try self.commentForChange(db, id: id, user: actor)
            guard row["author_id"] as String == actor.rawValue else {
                throw StorageError.forbidden("only its author may edit a comment")
            }
            guard role >= .commenter else {
                throw StorageError.forbidden(
                    "editing a comment needs the commenter role or higher; you are \(role.rawValue)"
                )
            }
            let mentions = try self.checkComment(db, text: text, workspace: schema.workspaceID)
            try db.execute(
                sql: "UPDATE comments SET text = ?, mentions = ?, updated_at = ? WHERE id = ?",
                arguments: [
                    text, String(decoding: try JSONCoding.encoder.encode(mentions), as: UTF8.self),
                    context.now.millisecondsSince1970, id.rawValue,
                ]
            )
            let comment = try Self.storedComment(db, id: id)
            try Self.appendEvent(
                db,
                type: .commentUpdated,
                workspaceID: schema.workspaceID,
                baseID: schema.table.baseID,
                tableID: schema.table.id,
                recordID: comment.recordID,
                payload: comment,
                context: context
            )
            return comment
        }
    }

    public func deleteComment(id: CommentID, context: WriteContext) async throws -> WriteResult<Comment> {
        let actor = try context.requireActor()
        return try await perform(context) { db in
            let (row, schema, role) = try self.commentForChange(db, id: id, user: actor)
            guard row["author_id"] as String == actor.rawValue || role == .owner else {
                throw StorageError.forbidden("only its author or a workspace owner may delete a comment")
            }
            let comment = try Self.comment(db, row: row)
            try db.execute(sql: "DELETE FROM comments WHERE id = ?", arguments: [id.rawValue])
            try Self.appendEvent(
                db,
                type: .commentDeleted,
                workspaceID: schema.workspaceID,
                baseID: schema.table.baseID,
                tableID: schema.table.id,
                recordID: comment.recordID,
                payload: ["id": id.rawValue, "record_id": comment.recordID.rawValue],
                context: context
            )
            return comment
        }
    }

    public func commentCounts(records: [RecordID], user: UserID) async throws -> [RecordID: Int] {
        guard !records.isEmpty else { return [:] }
        return try await database.read { db in
            var counts: [RecordID: Int] = [:]
            for chunk in stride(from: 0, to: records.count, by: 100) {
                let ids = records[chunk..<min(chunk + 100, records.count)]
                let marks = ids.map { _ in "?" }.joined(separator: ",")
                let rows = try Row.fetchAll(
                    db,
                    sql:
                        "SELECT record_id, COUNT(*) AS n FROM comments WHERE record_id IN (\(marks)) GROUP BY record_id",
                    arguments: StatementArguments(ids.map(\.rawValue))
                )
                for row in rows { counts[RecordID(unchecked: row["record_id"])] = row["n"] }
            }
            return counts
        }
    }
}
