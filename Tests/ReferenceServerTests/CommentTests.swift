import Foundation
import HTTPTypes
import HummingbirdTesting
import PyAirtableModels
import Testing

@testable import ReferenceServer

@Suite("Record comments, under /api/v1 and Airtable's /v0", .timeLimit(.minutes(5)))
struct CommentTests {
    typealias Meta = AirtableMetaTests

    @Test("commenters write, authors edit, owners delete; mentions of members only; newest first; events")
    func apiV1() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (owner, ownerUser) = try await api.register("Owner")
            let (commenter, commenterUser) = try await api.register("Commenter")
            let (viewer, viewerUser) = try await api.register("Viewer")
            let (_, strangerUser) = try await api.register("Stranger")
            let (workspace, _, table) = try await owner.scaffold()
            try await owner.addMember(workspace.id, user: commenterUser.id, role: .commenter)
            try await owner.addMember(workspace.id, user: viewerUser.id, role: .viewer)
            let record = try await owner.createRecord(in: table.id, ["Name": "a"])
            let since = try await owner.events().last?.seq ?? 0

            let first = try await commenter.call(
                .post,
                "records/\(record.id)/comments",
                json: CommentRequest(text: "Look, @[\(ownerUser.id)]!"),
                expect: .created,
                as: PyAirtableModels.Comment.self
            )
            #expect(first.id.rawValue.hasPrefix("com") && first.author.id == commenterUser.id)
            #expect(first.mentions.map(\.id) == [ownerUser.id] && first.mentions.first?.name == "Owner")
            let unknown = try await commenter.send(
                .post,
                "records/\(record.id)/comments",
                json: CommentRequest(text: "hi @[\(strangerUser.id)]")
            )
            #expect(unknown.status == .unprocessableContent && unknown.text.contains("not a member"))
            #expect(
                try await commenter.send(.post, "records/\(record.id)/comments", json: CommentRequest(text: "  "))
                    .status
                    == .unprocessableContent
            )
            #expect(
                try await viewer.send(.post, "records/\(record.id)/comments", json: CommentRequest(text: "no")).status
                    == .forbidden
            )
            for index in 0..<3 {
                _ = try await owner.call(
                    .post,
                    "records/\(record.id)/comments",
                    json: CommentRequest(text: "n\(index)"),
                    expect: .created,
                    as: PyAirtableModels.Comment.self
                )
            }
            // Newest first, two a page.
            let page = try await viewer.call(
                .get,
                "records/\(record.id)/comments?page_size=2",
                as: Page<PyAirtableModels.Comment>.self
            )
            #expect(page.data.map(\.text) == ["n2", "n1"])
            let cursor = try #require(page.nextCursor)
            let rest = try await viewer.call(
                .get,
                "records/\(record.id)/comments?page_size=2&cursor=\(cursor)",
                as: Page<PyAirtableModels.Comment>.self
            )
            #expect(rest.data.map(\.text) == ["n0", first.text] && rest.nextCursor == nil)

            #expect(
                try await owner.send(.patch, "comments/\(first.id)", json: CommentRequest(text: "mine?")).status
                    == .forbidden
            )
            let edited = try await commenter.call(
                .patch,
                "comments/\(first.id)",
                json: CommentRequest(text: "edited"),
                as: PyAirtableModels.Comment.self
            )
            #expect(edited.text == "edited" && edited.updatedAt != nil && edited.mentions.isEmpty)
            #expect(try await viewer.send(.delete, "comments/\(first.id)").status == .forbidden)
            // An author demoted to viewer no longer edits.
            let demoted = try await owner.send(
                .patch,
                "workspaces/\(workspace.id)/members/\(commenterUser.id)",
                json: UpdateMemberRequest(role: .viewer)
            )
            #expect(demoted.status == .ok, "\(demoted.text)")
            #expect(
                try await commenter.send(.patch, "comments/\(first.id)", json: CommentRequest(text: "again")).status
                    == .forbidden
            )
            #expect(try await owner.send(.delete, "comments/\(first.id)").status == .noContent)
            #expect(try await owner.send(.get, "comments/\(first.id)").status == .notFound)

            let types = try await owner.events(since: since).map(\.type).filter { $0.rawValue.hasPrefix("comment.") }
            #expect(
                types == [
                    .commentCreated, .commentCreated, .commentCreated, .commentCreated, .commentUpdated,
                    .commentDeleted,
                ]
            )
            // Comments go with their record.
            let survivor = try #require(rest.data.first)
            #expect(try await owner.send(.delete, "records/\(record.id)").status == .ok)
            #expect(try await owner.send(.get, "comments/\(survivor.id)").status == .notFound)
        }
    }

    @Test("Airtable's comment routes: shape with mentioned, pages by offset, edit, delete, commentCount")
    func airtable() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (owner, ownerUser) = try await api.register("Owner")
            let (_, base, table) = try await owner.scaffold()
            let other = try await owner.createTable(in: base.id, "Other")
            let record = try await owner.createRecord(in: table.id, ["Name": "a"])
            let quiet = try await owner.createRecord(in: table.id, ["Name": "b"])
            let path = "/v0/\(base.id)/\(table.id)/\(record.id)/comments"

            let created = try Meta.object(
                try await owner.send(.post, path, raw: #"{"text": "Hi @[\#(ownerUser.id)]"}"#)
            )
            let id = try #require(created["id"] as? String)
            #expect((created["author"] as? [String: Any])?["id"] as? String == ownerUser.id.rawValue)
            #expect(created["createdTime"] is String && created["lastUpdatedTime"] is NSNull)
            let mentioned = try #require(created["mentioned"] as? [String: [String: Any]])
            #expect(mentioned[ownerUser.id.rawValue]?["displayName"] as? String == "Owner")
            #expect(mentioned[ownerUser.id.rawValue]?["type"] as? String == "user")
            _ = try await owner.send(.post, path, raw: #"{"text": "second"}"#)

            let page = try Meta.object(try await owner.send(.get, "\(path)?pageSize=1"))
            #expect((page["comments"] as? [[String: Any]])?.first?["text"] as? String == "second")
            let offset = try #require(page["offset"] as? String)
            let next = try Meta.object(try await owner.send(.get, "\(path)?pageSize=1&offset=\(offset)"))
            #expect((next["comments"] as? [[String: Any]])?.first?["id"] as? String == id)
            #expect(next["offset"] is NSNull)

            let edited = try Meta.object(try await owner.send(.patch, "\(path)/\(id)", raw: #"{"text": "edited"}"#))
            #expect(edited["text"] as? String == "edited" && edited["lastUpdatedTime"] is String)

            // commentCount when asked, 0 for a record without any.
            let listed = try AirtableRecordsTests.records(
                try await owner.send(.get, "/v0/\(base.id)/\(table.id)?recordMetadata%5B%5D=commentCount")
            )
            let counts = Dictionary(
                uniqueKeysWithValues: listed.compactMap { item in
                    (item["id"] as? String).map { ($0, item["commentCount"] as? Int ?? -1) }
                }
            )
            #expect(counts == [record.id.rawValue: 2, quiet.id.rawValue: 0])

            let deleted = try Meta.object(try await owner.send(.delete, "\(path)/\(id)"))
            #expect(deleted["id"] as? String == id && deleted["deleted"] as? Bool == true)
            // The record through another table's path is not found; threads are refused, not dropped.
            try Meta.expectAirtableError(
                try await owner.send(.get, "/v0/\(base.id)/\(other.id)/\(record.id)/comments"),
                .notFound,
                "MODEL_ID_NOT_FOUND"
            )
            try Meta.expectAirtableError(
                try await owner.send(.post, path, raw: #"{"text": "reply", "parentCommentId": "com00000000000000"}"#),
                .unprocessableContent,
                "INVALID_REQUEST_UNKNOWN"
            )
        }
    }
}
