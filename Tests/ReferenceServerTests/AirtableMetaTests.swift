import Foundation
import HTTPTypes
import HummingbirdTesting
import PyAirtableModels
import Testing

@testable import ReferenceServer

/// Airtable's meta API under `/v0/meta`, and Airtable's error shape under `/v0`.
@Suite("Airtable v0: meta API and errors", .timeLimit(.minutes(5)))
struct AirtableMetaTests {
    /// A JSON object answer.
    static func object(
        _ response: APIResponse,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws
        -> [String: Any]
    {
        let value = try JSONSerialization.jsonObject(with: response.body)
        return try #require(value as? [String: Any], "\(response.text)", sourceLocation: sourceLocation)
    }

    /// Airtable's error body: exactly `{"error": {"type", "message"}}`.
    static func expectAirtableError(
        _ response: APIResponse,
        _ status: HTTPResponse.Status,
        _ type: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        #expect(response.status == status, "\(response.text)", sourceLocation: sourceLocation)
        let body = try object(response, sourceLocation: sourceLocation)
        #expect(Set(body.keys) == ["error"], "\(response.text)", sourceLocation: sourceLocation)
        let error = try #require(body["error"] as? [String: Any], sourceLocation: sourceLocation)
        #expect(Set(error.keys) == ["type", "message"], "\(response.text)", sourceLocation: sourceLocation)
        #expect(error["type"] as? String == type, "\(response.text)", sourceLocation: sourceLocation)
        #expect((error["message"] as? String)?.isEmpty == false, sourceLocation: sourceLocation)
    }

    @Test("whoami answers the token's user id and email")
    func whoami() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, user) = try await api.register()
            let body = try Self.object(try await client.send(.get, "/v0/meta/whoami"))
            #expect(body["id"] as? String == user.id.rawValue)
            #expect(body["email"] as? String == user.email)
            #expect(Set(body.keys) == ["id", "email"])
        }
    }

    @Test("bases lists every base the caller sees, with Airtable's permission level for their role")
    func bases() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (owner, _) = try await api.register("Owner")
            let (viewer, viewerUser) = try await api.register("Viewer")
            let (stranger, _) = try await api.register("Stranger")
            let (workspace, base, _) = try await owner.scaffold()
            let second = try await owner.createBase(in: workspace.id, "Second")
            try await owner.addMember(workspace.id, user: viewerUser.id, role: .viewer)

            let ownerBases = try #require(
                try Self.object(try await owner.send(.get, "/v0/meta/bases"))["bases"] as? [[String: Any]]
            )
            #expect(
                ownerBases.compactMap { $0["id"] as? String }.sorted()
                    == [base.id.rawValue, second.id.rawValue].sorted()
            )
            #expect(ownerBases.allSatisfy { $0["permissionLevel"] as? String == "create" })
            #expect(ownerBases.contains { $0["name"] as? String == "Second" })

            let viewerBases = try #require(
                try Self.object(try await viewer.send(.get, "/v0/meta/bases"))["bases"] as? [[String: Any]]
            )
            #expect(viewerBases.count == 2 && viewerBases.allSatisfy { $0["permissionLevel"] as? String == "read" })
            let strangerBases = try #require(
                try Self.object(try await stranger.send(.get, "/v0/meta/bases"))["bases"] as? [[String: Any]]
            )
            #expect(strangerBases.isEmpty)
        }
    }

    @Test("a base's collaborators: the workspace's members with their permission levels, when asked")
    func collaborators() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (owner, ownerUser) = try await api.register("Owner")
            let (viewer, viewerUser) = try await api.register("Viewer")
            let (stranger, _) = try await api.register("Stranger")
            let (workspace, base, _) = try await owner.scaffold()
            try await owner.addMember(workspace.id, user: viewerUser.id, role: .viewer)
            let path = "/v0/meta/bases/\(base.id)"

            let plain = try Self.object(try await viewer.send(.get, path))
            #expect(
                plain["id"] as? String == base.id.rawValue && plain["workspaceId"] as? String == workspace.id.rawValue
            )
            #expect(plain["permissionLevel"] as? String == "read" && plain["createdTime"] is String)
            #expect(plain["individualCollaborators"] == nil)

            let full = try Self.object(
                try await owner.send(.get, "\(path)?include=collaborators&include=inviteLinks&include=interfaces")
            )
            #expect(full["permissionLevel"] as? String == "create")
            let individual = try #require(full["individualCollaborators"] as? [String: Any])
            let members = try #require(individual["workspaceCollaborators"] as? [[String: Any]])
            let levels = Dictionary(
                uniqueKeysWithValues: members.compactMap { member in
                    (member["userId"] as? String).map { ($0, member["permissionLevel"] as? String ?? "") }
                }
            )
            #expect(levels == [ownerUser.id.rawValue: "create", viewerUser.id.rawValue: "read"])
            #expect(
                members.allSatisfy {
                    $0["grantedByUserId"] as? String == ownerUser.id.rawValue && $0["email"] is String
                }
            )
            #expect((individual["baseCollaborators"] as? [Any])?.isEmpty == true)
            #expect((full["inviteLinks"] as? [String: Any])?["baseInviteLinks"] as? [Any] != nil)

            try Self.expectAirtableError(
                try await stranger.send(.get, path),
                .forbidden,
                "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"
            )
        }
    }

    @Test("a base's schema has each field's type and options, views, and visibleFieldIds when asked")
    func tables() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, base, _) = try await client.scaffold()
            let people = try await client.createTable(
                in: base.id,
                "People",
                fields: [
                    .singleLineText("Name"), .singleSelect("Stage", choices: ["Lead", "Won"]),
                    .number("Score", precision: 2),
                    .checkbox("Done"), .date("Due"), .dateTime("When"), .attachments("Files"),
                ]
            )
            let view = try await client.call(
                .post,
                "tables/\(people.id)/views",
                json: CreateViewRequest(name: "Short", fields: ["Score", "Name"]),
                expect: .created,
                as: View.self
            )
            let plain = try Self.object(try await client.send(.get, "/v0/meta/bases/\(base.id)/tables"))
            let tables = try #require(plain["tables"] as? [[String: Any]])
            #expect(tables.compactMap { $0["name"] as? String } == ["Tasks", "People"])
            let table = try #require(tables.first { $0["id"] as? String == people.id.rawValue })
            #expect(table["primaryFieldId"] as? String == people.primaryFieldID.rawValue)
            let fields = try #require(table["fields"] as? [[String: Any]])
            #expect(fields.compactMap { $0["id"] as? String } == people.fields.map(\.id.rawValue))
            #expect(
                fields.compactMap { $0["type"] as? String } == [
                    "singleLineText", "singleSelect", "number", "checkbox", "date", "dateTime", "multipleAttachments",
                ]
            )
            #expect(fields[0]["options"] == nil)
            let stage = try #require(fields[1]["options"] as? [String: Any])
            let choices = try #require(stage["choices"] as? [[String: Any]])
            #expect(choices.compactMap { $0["name"] as? String } == ["Lead", "Won"])
            let choiceIDs = choices.compactMap { $0["id"] as? String }
            #expect(choiceIDs.count == 2 && choiceIDs.allSatisfy { $0.hasPrefix("sel") && $0.count == 17 })
            #expect((fields[2]["options"] as? [String: Any])?["precision"] as? Int == 2)
            #expect((fields[3]["options"] as? [String: Any])?["icon"] as? String == "check")
            #expect(((fields[5]["options"] as? [String: Any])?["timeZone"]) as? String == "utc")
            let views = try #require(table["views"] as? [[String: Any]])
            #expect(views.contains { $0["id"] as? String == view.id.rawValue && $0["type"] as? String == "grid" })
            #expect(views.allSatisfy { $0["visibleFieldIds"] == nil })

            // The same choice ids on every read; visible fields in the table's order when asked.
            let again = try Self.object(
                try await client.send(.get, "/v0/meta/bases/\(base.id)/tables?include=visibleFieldIds")
            )
            let againTable = try #require(
                (again["tables"] as? [[String: Any]])?.first { $0["id"] as? String == people.id.rawValue }
            )
            let againChoices =
                (((againTable["fields"] as? [[String: Any]])?[1]["options"] as? [String: Any])?["choices"])
                as? [[String: Any]]
            #expect(againChoices?.compactMap { $0["id"] as? String } == choiceIDs)
            let short = try #require(
                (againTable["views"] as? [[String: Any]])?.first { $0["id"] as? String == view.id.rawValue }
            )
            #expect(
                short["visibleFieldIds"] as? [String] == [people.fields[0].id.rawValue, people.fields[2].id.rawValue]
            )
        }
    }

    @Test("errors under /v0 are Airtable's: 401, a base not shared or not there (403), an unknown route (404)")
    func errors() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (owner, _) = try await api.register("Owner")
            let (stranger, _) = try await api.register("Stranger")
            let (_, base, _) = try await owner.scaffold()
            try Self.expectAirtableError(
                try await api.send(.get, "/v0/meta/whoami"),
                .unauthorized,
                "AUTHENTICATION_REQUIRED"
            )
            try Self.expectAirtableError(
                try await api.authorized("not-a-token").send(.get, "/v0/meta/bases"),
                .unauthorized,
                "AUTHENTICATION_REQUIRED"
            )
            // Someone else's base and a base that does not exist answer alike.
            let foreign = try await stranger.send(.get, "/v0/meta/bases/\(base.id)/tables")
            let missing = try await stranger.send(.get, "/v0/meta/bases/\(BaseID.generate())/tables")
            try Self.expectAirtableError(foreign, .forbidden, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND")
            try Self.expectAirtableError(missing, .forbidden, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND")
            try Self.expectAirtableError(
                try await stranger.send(.get, "/v0/meta/bases/nonsense/tables"),
                .forbidden,
                "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"
            )
            try Self.expectAirtableError(try await owner.send(.get, "/v0/nothing/here/at/all"), .notFound, "NOT_FOUND")
            // /api/v1 keeps its own error body.
            let v1 = try await api.send(.get, "users/me")
            #expect(v1.status == .unauthorized && v1.text.contains("\"code\":401"))
        }
    }
}
