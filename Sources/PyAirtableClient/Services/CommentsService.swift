import Foundation
import HTTPTypes
import PyAirtableModels

/// Comments on records. Any member reads them; commenters and up write; authors edit and delete
/// their own (owners delete any). Mention a member with `@[usr…]` in the text.
///
/// ```swift
/// let comment = try await client.comments.create(on: record, text: "Done? @[\(teammate)]")
/// for try await comment in client.comments.all(on: record) { print(comment.author.name, comment.text) }
/// ```
///
/// Reads are not cached: comments are listened for through realtime (`comment.*` events) instead.
public struct CommentsService: Sendable {
    let client: PyAirtableClient
    private static func operation(_ name: String) -> ClientOperation { .init(service: "comments", name: name) }

    /// One page of a record's comments, newest first.
    /// - Parameters:
    ///   - record: The record.
    ///   - pageSize: At most this many (1…100; the server's default is 50).
    ///   - cursor: The `nextCursor` of the previous page.
    public func list(on record: RecordID, pageSize: Int? = nil, cursor: String? = nil) async throws -> Page<Comment> {
        var query: [QueryItem] = []
        if let pageSize { query.append(QueryItem("page_size", String(pageSize))) }
        if let cursor { query.append(QueryItem("cursor", cursor)) }
        return try await client.send(
            PyAirtableClient.request(
                .get,
                "/api/v1/records/\(record)/comments",
                query: query,
                operation: Self.operation("list")
            ),
            as: Page<Comment>.self
        )
    }

    /// Every comment of a record, newest first, fetched a page at a time as the loop asks.
    public func all(on record: RecordID, pageSize: Int? = 100) -> PageSequence<Comment> {
        PageSequence { cursor in try await list(on: record, pageSize: pageSize, cursor: cursor) }
    }

    /// One comment.
    public func get(_ id: CommentID) async throws -> Comment {
        try await client.send(
            PyAirtableClient.request(.get, "/api/v1/comments/\(id)", operation: Self.operation("get")),
            as: Comment.self
        )
    }

    /// Comments on a record (the commenter role or higher).
    /// - Throws: ``PyAirtableError/validation`` for an empty or too long text, or a mention
    ///   of someone who is not a member.
    public func create(on record: RecordID, text: String) async throws -> Comment {
        try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/records/\(record)/comments",
                body: CommentRequest(text: text),
                operation: Self.operation("create")
            ),
            as: Comment.self
        )
    }

    /// Replaces a comment's text (its author only).
    public func update(_ id: CommentID, text: String) async throws -> Comment {
        try await client.send(
            PyAirtableClient.request(
                .patch,
                "/api/v1/comments/\(id)",
                body: CommentRequest(text: text),
                operation: Self.operation("update")
            ),
            as: Comment.self
        )
    }

    /// Deletes a comment (its author, or a workspace owner).
    public func delete(_ id: CommentID) async throws {
        try await client.execute(
            PyAirtableClient.request(.delete, "/api/v1/comments/\(id)", operation: Self.operation("delete"))
        )
    }
}
