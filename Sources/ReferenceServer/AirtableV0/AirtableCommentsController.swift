import Foundation
import HTTPTypes
import Hummingbird
import PyAirtableModels

/// Airtable's record comments: `GET|POST /v0/{base}/{table}/{record}/comments` and
/// `PATCH|DELETE /v0/{base}/{table}/{record}/comments/{id}`, over the comments of `/api/v1`, in
/// Airtable's shape (`author`, `createdTime`, `lastUpdatedTime`, `mentioned` keyed by user id).
struct AirtableCommentsController {
    let services: ServerServices
    let records: AirtableRecordsController
    var store: any DataStore { services.store }
    var now: Date { services.configuration.now() }

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("{base}/{table}/{record}/comments", use: list)
        group.post("{base}/{table}/{record}/comments", use: create)
        group.patch("{base}/{table}/{record}/comments/{comment}", use: update)
        group.delete("{base}/{table}/{record}/comments/{comment}", use: delete)
    }

    /// The record named in the path, checked to be in the path's table.
    private func record(_ context: AppRequestContext, user: UserID) async throws -> RecordID {
        let schema = try await records.schema(context, user: user)
        let raw = context.parameters.get("record") ?? ""
        let notFound = AirtableErrors.error(.notFound, "MODEL_ID_NOT_FOUND", "Record not found: \(raw)")
        guard let id = RecordID(raw) else { throw notFound }
        do {
            let encoded = try await store.encodedRecord(id: id, user: user)
            guard AirtableRecordJSON.record(fromAPI: encoded.json, schema: schema, options: .init()) != nil else {
                throw notFound
            }
        } catch let error as StorageError {
            throw AirtableErrors.recordError(error)
        }
        return id
    }

    private func comment(_ context: AppRequestContext) throws -> CommentID {
        guard let id = CommentID(context.parameters.get("comment") ?? "") else {
            throw AirtableErrors.error(.notFound, "MODEL_ID_NOT_FOUND", "Comment not found")
        }
        return id
    }

    private func text(_ request: Request) async throws -> String {
        let buffer = try await request.body.collect(upTo: .max)
        guard let value = try? JSONCoding.decoder.decode(JSONValue.self, from: Data(buffer.readableBytesView)) else {
            throw AirtableErrors.error(.unprocessableContent, "INVALID_REQUEST_BODY", "the body must be a JSON object")
        }
        if let parent = value["parentCommentId"], parent != .null {
            throw AirtableErrors.invalidRequest("threaded replies (parentCommentId) are not supported by this server")
        }
        guard case .string(let text)? = value["text"] else {
            throw AirtableErrors.error(.unprocessableContent, "INVALID_REQUEST_MISSING_FIELDS", "text is required")
        }
        return text
    }

    /// Airtable's form of a comment.
    static func airtable(_ comment: Comment) -> JSONValue {
        var object: [String: JSONValue] = [
            "id": .string(comment.id.rawValue),
            "author": .object([
                "id": .string(comment.author.id.rawValue), "email": .string(comment.author.email),
                "name": .string(comment.author.name),
            ]),
            "text": .string(comment.text),
            "createdTime": .string(Timestamp.format(comment.createdAt)),
            "lastUpdatedTime": comment.updatedAt.map { .string(Timestamp.format($0)) } ?? .null,
        ]
        if !comment.mentions.isEmpty {
            object["mentioned"] = .object(
                Dictionary(
                    comment.mentions.map { user in
                        (
                            user.id.rawValue,
                            JSONValue.object([
                                "type": .string("user"), "id": .string(user.id.rawValue),
                                "displayName": .string(user.name), "email": .string(user.email),
                            ])
                        )
                    },
                    uniquingKeysWith: { first, _ in first }
                )
            )
        }
        return .object(object)
    }

    private func mapped<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StorageError {
            if case .notFound(let what) = error, what == "comment" {
                throw AirtableErrors.error(.notFound, "MODEL_ID_NOT_FOUND", "Comment not found")
            }
            throw AirtableErrors.recordError(error)
        }
    }

    /// Newest first; `pageSize` up to 100, `offset` from the previous page.
    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let record = try await record(context, user: user)
        let query = AirtableQuery(request.uri.query.map { Substring($0) })
        var limit = 100
        if let raw = query.first("pageSize") {
            guard let size = Int(raw), (1...100).contains(size) else {
                throw AirtableErrors.invalidRequest("pageSize must be from 1 to 100")
            }
            limit = size
        }
        let offset = query.first("offset")
        let page = try await mapped {
            do {
                return try await store.comments(record: record, user: user, limit: limit, after: offset)
            } catch StorageError.invalid {
                throw AirtableErrors.error(.unprocessableContent, "INVALID_OFFSET_VALUE", "The offset is not valid")
            }
        }
        let answer: JSONValue = .object([
            "comments": .array(page.data.map(Self.airtable)),
            "offset": page.nextCursor.map(JSONValue.string) ?? .null,
        ])
        return try AirtableJSON.response(answer)
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let record = try await record(context, user: user)
        let text = try await text(request)
        let write = context.write(now: now)
        let result = try await mapped { try await store.createComment(record: record, text: text, context: write) }
        return try answer(result)
    }

    @Sendable func update(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let record = try await record(context, user: user)
        let id = try comment(context)
        let text = try await text(request)
        let existing = try await mapped { try await store.comment(id: id, user: user) }
        guard existing.recordID == record else {
            throw AirtableErrors.error(.notFound, "MODEL_ID_NOT_FOUND", "Comment not found")
        }
        let write = context.write(now: now)
        let result = try await mapped { try await store.updateComment(id: id, text: text, context: write) }
        return try answer(result)
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let record = try await record(context, user: user)
        let id = try comment(context)
        let existing = try await mapped { try await store.comment(id: id, user: user) }
        guard existing.recordID == record else {
            throw AirtableErrors.error(.notFound, "MODEL_ID_NOT_FOUND", "Comment not found")
        }
        let write = context.write(now: now)
        _ = try await mapped { try await store.deleteComment(id: id, context: write) }
        return try AirtableJSON.response(JSONValue.object(["id": .string(id.rawValue), "deleted": .bool(true)]))
    }

    /// A comment write's answer in Airtable's shape (a replayed answer is the `/api/v1` comment stored).
    private func answer(_ result: WriteResult<Comment>) throws -> Response {
        let comment = try result.value ?? JSONCoding.decoder.decode(Comment.self, from: result.response.body)
        return try AirtableJSON.response(Self.airtable(comment))
    }
}
