import Foundation
import Hummingbird
import PyAirtableModels

/// Comments on records: `GET|POST /records/{id}/comments`, `GET|PATCH|DELETE /comments/{id}`. Any
/// member reads them; commenters and up write; authors edit and delete their own, owners delete any.
/// Mentions are `@[usr…]` in the text, of members of the workspace.
struct CommentsController {
    let services: ServerServices
    var store: any DataStore { services.store }
    var now: Date { services.configuration.now() }
    static let maximumPageSize = 100

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("records/{id}/comments", use: list)
        group.post("records/{id}/comments", use: create)
        group.get("comments/{id}", use: get)
        group.patch("comments/{id}", use: update)
        group.delete("comments/{id}", use: delete)
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let query = request.uri.queryParameters
        var limit = 50
        if let raw = query.get("page_size") {
            guard let size = Int(raw), (1...Self.maximumPageSize).contains(size) else {
                throw ServerError.validation("page_size must be 1 to \(Self.maximumPageSize)", field: "page_size")
            }
            limit = size
        }
        let page = try await store.comments(
            record: try context.id("id", "record"),
            user: user,
            limit: limit,
            after: query.get("cursor").map { String($0) }
        )
        return try .json(page)
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        let body = try await request.decodeJSON(as: CommentRequest.self)
        let record: RecordID = try context.id("id", "record")
        return .stored(try await store.createComment(record: record, text: body.text, context: context.write(now: now)))
    }

    @Sendable func get(_ request: Request, context: AppRequestContext) async throws -> Response {
        try .json(try await store.comment(id: try context.id("id", "comment"), user: try context.requireUser()))
    }

    @Sendable func update(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        let body = try await request.decodeJSON(as: CommentRequest.self)
        let id: CommentID = try context.id("id", "comment")
        return .stored(try await store.updateComment(id: id, text: body.text, context: context.write(now: now)))
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        let id: CommentID = try context.id("id", "comment")
        let result = try await store.deleteComment(id: id, context: context.write(now: now))
        var response = Response(status: .noContent)
        if result.response.replayed { response.headers[.idempotentReplayed] = "true" }
        return response
    }
}
