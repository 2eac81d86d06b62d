import Foundation
import HTTPTypes
import HummingbirdTesting
import PyAirtableModels
import Testing

@testable import ReferenceServer

/// The rules openapi.yaml's conventions state for every route, checked where the server enforces them:
/// unknown body members are ignored, and the header patterns the document declares are exactly what
/// the server accepts.
@Suite("Contract policies: unknown members, declared header patterns", .timeLimit(.minutes(15)))
struct ContractPolicyTests {
    @Test("unknown members of a JSON body are ignored on every kind of write, at every depth")
    func unknownMembersAreIgnored() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, user) = try await api.register()
            let workspace = try await client.send(
                .post,
                "workspaces",
                raw: #"{"name": "W", "colour": "teal", "settings": {"deep": [1, 2]}}"#
            )
            #expect(workspace.status == .created, "\(workspace.text)")
            #expect(!workspace.text.contains("colour"))
            let workspaceID = try workspace.decode(Workspace.self).id

            let base = try await client.send(
                .post,
                "workspaces/\(workspaceID)/bases",
                raw: #"{"name": "B", "icon": null}"#
            )
            #expect(base.status == .created, "\(base.text)")
            let baseID = try base.decode(Base.self).id

            let table = try await client.send(
                .post,
                "bases/\(baseID)/tables",
                raw: #"""
                    {"name": "T", "x-client": "v9",
                     "fields": [{"name": "Name", "type": "singleLineText", "width": 120},
                                {"name": "Score", "type": "number", "options": {"precision": 1, "format": "pct"}}]}
                    """#
            )
            #expect(table.status == .created, "\(table.text)")
            let tableID = try table.decode(PyAirtableModels.Table.self).id

            // Both the fast record-body parser and the JSONDecoder path (an attachment-free object value
            // sends it there) must ignore the unknown top-level member alike.
            let fast = try await client.send(
                .post,
                "tables/\(tableID)/records",
                raw: #"{"fields": {"Name": "a", "Score": 1}, "typecast": true}"#
            )
            #expect(fast.status == .created, "\(fast.text)")
            let record = try fast.decode(PyAirtableModels.Record.self)
            #expect(record.fields == ["Name": .string("a"), "Score": .number(1)])

            let slow = try await client.send(
                .post,
                "tables/\(tableID)/records",
                raw: #"{"typecast": {"nested": true}, "fields": {"Name": "b"}, "fields_by_id": {}}"#
            )
            #expect(slow.status == .created, "\(slow.text)")

            let batch = try await client.send(
                .post,
                "tables/\(tableID)/records/batch",
                raw: #"""
                    {"operations": [{"op": "update", "id": "\#(record.id)", "fields": {"Score": 2}, "note": "x"}],
                     "atomic": false}
                    """#
            )
            #expect(batch.status == .ok, "\(batch.text)")
            #expect(try await client.record(record.id).fields["Score"] == .number(2))

            let me = try await client.send(.patch, "users/me", raw: #"{"name": "Ada L.", "avatar": "x.png"}"#)
            #expect(me.status == .ok, "\(me.text)")
            #expect(try me.decode(User.self).name == "Ada L.")

            let token = try await client.send(.post, "auth/tokens", raw: #"{"name": "ci", "scopes": ["all"]}"#)
            #expect(token.status == .created, "\(token.text)")

            let member = try await client.send(
                .patch,
                "workspaces/\(workspaceID)/members/\(user.id)",
                raw: #"{"role": "owner", "notify": true}"#
            )
            #expect(member.status == .ok, "\(member.text)")
        }
    }

    @Test("an optional member sent as null is read as left out; an empty workspace_id on upload is no workspace (404)")
    func nullMembersAndEmptyIDs() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let workspace = try await client.createWorkspace("Kept")
            let patched = try await client.send(.patch, "workspaces/\(workspace.id)", raw: #"{"name": null}"#)
            #expect(patched.status == .ok, "\(patched.text)")
            #expect(try patched.decode(Workspace.self).name == "Kept")
            let token = try await client.send(.post, "auth/tokens", raw: #"{"name": "t", "expires_in": null}"#)
            #expect(token.status == .created, "\(token.text)")
            #expect(try token.decode(AccessToken.self).expiresAt == nil)

            // Past the limit (here 2^63 - 1 seconds, which once overflowed the stored expiry and stopped
            // the server) is a 422, and the server goes on serving.
            for expiresIn in ["315360001", "9223372036854775807"] {
                let refused = try await client.send(
                    .post,
                    "auth/tokens",
                    raw: #"{"name": "t", "expires_in": \#(expiresIn)}"#
                )
                expectError(refused, .unprocessableContent, .validation, "expires_in \(expiresIn)")
            }
            let longest = try await client.send(.post, "auth/tokens", raw: #"{"name": "t", "expires_in": 315360000}"#)
            #expect(longest.status == .created, "\(longest.text)")

            let upload = try await client.send(.post, "files?name=a.txt&workspace_id=", raw: "bytes")
            expectError(upload, .notFound, .notFound, "upload with an empty workspace_id")
            let files = try await client.send(.get, "files")
            #expect(files.status == .ok)
            #expect(try files.decode(Page<FileMetadata>.self).data.isEmpty)
        }
    }

    @Test(
        "If-Match takes *, \"3\", W/\"3\" or 3 (up to 18 digits); anything else is 400 and changes nothing",
        arguments: [
            ("*", true), ("\"1\"", true), ("W/\"1\"", true), ("1", true), (" \"1\" ", true),
            ("\"1", false), ("1\"", false), ("+1", false), ("\"-1\"", false), ("\"1.0\"", false),
            ("\"\"", false), ("W/", false), ("\"1\", \"2\"", false),
            (String(repeating: "0", count: 18) + "1", false), ("\"\(String(repeating: "9", count: 19))\"", false),
        ]
    )
    func ifMatchPattern(value: String, accepted: Bool) async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let workspace = try await client.createWorkspace()
            let response = try await client.send(
                .patch,
                "workspaces/\(workspace.id)",
                json: UpdateWorkspaceRequest(name: "Renamed"),
                headers: [.ifMatch: value]
            )
            if accepted {
                #expect(response.status == .ok, "If-Match '\(value)': \(response.text)")
            } else {
                expectError(response, .badRequest, .validation, "If-Match '\(value)'")
                let current = try await client.call(.get, "workspaces/\(workspace.id)", as: Workspace.self)
                #expect(current.name == workspace.name)
                #expect(current.version == workspace.version)
            }
        }
    }

    @Test("Idempotency-Key is 1 to 255 of ! to ~; a space, a tab or 256 characters is 400 and writes nothing")
    func idempotencyKeyPattern() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let longest = String(repeating: "k", count: 255)
            let fine = try await client.send(
                .post,
                "workspaces",
                json: CreateWorkspaceRequest(name: "Keyed"),
                headers: [.idempotencyKey: "!~" + longest.dropFirst(2)]
            )
            #expect(fine.status == .created, "\(fine.text)")
            let before = try await client.stats().workspaces
            for key in ["a b", "a\tb", String(repeating: "k", count: 256)] {
                let refused = try await client.send(
                    .post,
                    "workspaces",
                    json: CreateWorkspaceRequest(name: "Refused"),
                    headers: [.idempotencyKey: key]
                )
                expectError(refused, .badRequest, .validation, "Idempotency-Key '\(key)'")
            }
            #expect(try await client.stats().workspaces == before)
        }
    }

    @Test("a webhook's deliveries cursor is the canonical positive number the route hands out")
    func deliveriesCursorPattern() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register()
            let (_, base, _) = try await client.scaffold()
            let webhook = try await client.call(
                .post,
                "bases/\(base.id)/webhooks",
                // A literal public address needs no DNS; this harness runs no delivery service.
                json: CreateWebhookRequest(url: "https://93.184.216.34/hook"),
                expect: .created,
                as: Webhook.self
            )
            let ok = try await client.send(.get, "webhooks/\(webhook.id)/deliveries?cursor=5")
            #expect(ok.status == .ok, "\(ok.text)")
            for cursor in ["0", "+5", "05", "5.0", "", String(repeating: "9", count: 19)] {
                let refused = try await client.send(.get, "webhooks/\(webhook.id)/deliveries?cursor=\(cursor)")
                expectError(refused, .unprocessableContent, .validation, "cursor '\(cursor)'")
            }
        }
    }
}
