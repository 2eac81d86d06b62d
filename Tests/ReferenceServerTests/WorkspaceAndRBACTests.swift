import Foundation
import HTTPTypes
import HummingbirdTesting
import PyAirtableModels
import Testing

@testable import ReferenceServer

@Suite("Workspaces, members and role-based access", .timeLimit(.minutes(15)))
struct WorkspaceAndRBACTests {
    // MARK: Workspaces

    @Test("workspace create, list, get, rename and delete")
    func workspaceCRUD() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (client, _) = try await api.register("Ada")
            let created = try await client.send(.post, "workspaces", json: CreateWorkspaceRequest(name: "  Research  "))
            #expect(created.status == .created)
            #expect(created.headers[.eTag] == "\"1\"")
            let workspace = try created.decode(Workspace.self)
            #expect(workspace.name == "Research")
            #expect(workspace.role == .owner)
            #expect(workspace.version == 1)
            #expect(WorkspaceID.isValid(workspace.id.rawValue))

            let other = try await client.createWorkspace("Other")
            let listed = try await client.call(.get, "workspaces", as: Page<Workspace>.self)
            #expect(Set(listed.data.map(\.id)) == [workspace.id, other.id])
            #expect(listed.nextCursor == nil)

            let fetched = try await client.call(.get, "workspaces/\(workspace.id)", as: Workspace.self)
            #expect(fetched == workspace)

            let renamed = try await client.call(
                .patch,
                "workspaces/\(workspace.id)",
                json: UpdateWorkspaceRequest(name: "Lab"),
                as: Workspace.self
            )
            #expect(renamed.name == "Lab")
            #expect(renamed.version == 2)
            #expect(try await client.call(.get, "workspaces/\(workspace.id)", as: Workspace.self) == renamed)

            let empty = try await client.send(
                .patch,
                "workspaces/\(workspace.id)",
                json: UpdateWorkspaceRequest(name: "  ")
            )
            expectError(empty, .unprocessableContent, .validation)

            let deleted = try await client.send(.delete, "workspaces/\(workspace.id)")
            #expect(deleted.status == .noContent)
            expectError(try await client.send(.get, "workspaces/\(workspace.id)"), .notFound, .notFound)
            let after = try await client.call(.get, "workspaces", as: Page<Workspace>.self)
            #expect(after.data.map(\.id) == [other.id])
        }
    }

    // MARK: Members

    @Test("members: add by user_id and by email, list, change role, remove")
    func members() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (owner, ownerUser) = try await api.register("Owner")
            let (grace, graceUser) = try await api.register("Grace")
            let (_, linusUser) = try await api.register("Linus", email: "linus@example.com")
            let workspace = try await owner.createWorkspace()

            let byID = try await owner.addMember(workspace.id, user: graceUser.id, role: .editor)
            #expect(byID.userID == graceUser.id)
            #expect(byID.email == graceUser.email)
            #expect(byID.role == .editor)

            let byEmail = try await owner.call(
                .post,
                "workspaces/\(workspace.id)/members",
                json: AddMemberRequest(email: "  LINUS@Example.com ", role: .viewer),
                expect: .created,
                as: Member.self
            )
            #expect(byEmail.userID == linusUser.id)
            #expect(byEmail.role == .viewer)

            // Grace now sees the workspace with her own role.
            let graceList = try await grace.call(.get, "workspaces", as: Page<Workspace>.self)
            #expect(graceList.data.map(\.id) == [workspace.id])
            #expect(graceList.data.first?.role == .editor)

            // Any member can list the members.
            let listed = try await grace.call(.get, "workspaces/\(workspace.id)/members", as: Page<Member>.self)
            #expect(Set(listed.data.map(\.userID)) == [ownerUser.id, graceUser.id, linusUser.id])
            #expect(listed.data.first { $0.userID == ownerUser.id }?.role == .owner)

            let promoted = try await owner.call(
                .patch,
                "workspaces/\(workspace.id)/members/\(graceUser.id)",
                json: UpdateMemberRequest(role: .creator),
                as: Member.self
            )
            #expect(promoted.role == .creator)
            #expect(try await grace.call(.get, "workspaces/\(workspace.id)", as: Workspace.self).role == .creator)

            // Already a member, unknown user, unknown email, neither given.
            expectError(
                try await owner.send(
                    .post,
                    "workspaces/\(workspace.id)/members",
                    json: AddMemberRequest(userID: graceUser.id, role: .viewer)
                ),
                .conflict,
                .conflict
            )
            let unknownUser = try await owner.send(
                .post,
                "workspaces/\(workspace.id)/members",
                json: AddMemberRequest(userID: .generate(), role: .viewer)
            )
            #expect(expectError(unknownUser, .unprocessableContent, .validation)?.field == "user_id")
            let unknownEmail = try await owner.send(
                .post,
                "workspaces/\(workspace.id)/members",
                json: AddMemberRequest(email: "nobody@example.com", role: .viewer)
            )
            #expect(expectError(unknownEmail, .unprocessableContent, .validation)?.field == "email")
            expectError(
                try await owner.send(.post, "workspaces/\(workspace.id)/members", raw: #"{"role": "viewer"}"#),
                .unprocessableContent,
                .validation
            )
            expectError(
                try await owner.send(
                    .post,
                    "workspaces/\(workspace.id)/members",
                    raw: #"{"email": "x@y.z", "role": "boss"}"#
                ),
                .badRequest,
                .validation
            )
            // A user who is not a member cannot be updated.
            let (_, stranger) = try await api.register("Stranger")
            expectError(
                try await owner.send(
                    .patch,
                    "workspaces/\(workspace.id)/members/\(stranger.id)",
                    json: UpdateMemberRequest(role: .editor)
                ),
                .notFound,
                .notFound
            )

            let removed = try await owner.send(.delete, "workspaces/\(workspace.id)/members/\(linusUser.id)")
            #expect(removed.status == .noContent)
            let remaining = try await owner.call(.get, "workspaces/\(workspace.id)/members", as: Page<Member>.self)
            #expect(Set(remaining.data.map(\.userID)) == [ownerUser.id, graceUser.id])
        }
    }

    @Test("the last owner can be neither demoted nor removed; with a second owner both work")
    func lastOwner() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (owner, ownerUser) = try await api.register("Owner")
            let (second, secondUser) = try await api.register("Second")
            let workspace = try await owner.createWorkspace()
            let members = "workspaces/\(workspace.id)/members"

            let demote = try await owner.send(
                .patch,
                "\(members)/\(ownerUser.id)",
                json: UpdateMemberRequest(role: .editor)
            )
            expectError(demote, .conflict, .conflict)
            expectError(try await owner.send(.delete, "\(members)/\(ownerUser.id)"), .conflict, .conflict)
            #expect(try await owner.call(.get, "workspaces/\(workspace.id)", as: Workspace.self).role == .owner)

            try await owner.addMember(workspace.id, user: secondUser.id, role: .owner)
            let demoted = try await second.call(
                .patch,
                "\(members)/\(ownerUser.id)",
                json: UpdateMemberRequest(role: .editor),
                as: Member.self
            )
            #expect(demoted.role == .editor)
            // Now `second` is the last owner.
            expectError(
                try await second.send(.patch, "\(members)/\(secondUser.id)", json: UpdateMemberRequest(role: .creator)),
                .conflict,
                .conflict
            )
            expectError(try await second.send(.delete, "\(members)/\(secondUser.id)"), .conflict, .conflict)
            // An owner may leave while another owner remains.
            _ = try await second.call(
                .patch,
                "\(members)/\(ownerUser.id)",
                json: UpdateMemberRequest(role: .owner),
                as: Member.self
            )
            #expect(try await second.send(.delete, "\(members)/\(secondUser.id)").status == .noContent)
            expectError(try await second.send(.get, "workspaces/\(workspace.id)"), .notFound, .notFound)
        }
    }

    @Test(
        "a member of any role may leave; afterwards the workspace is gone for them",
        arguments: [
            Role.viewer, .commenter, .editor, .creator,
        ]
    )
    func leave(role: Role) async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let (owner, ownerUser) = try await api.register("Owner")
            let (member, memberUser) = try await api.register("Member")
            let workspace = try await owner.createWorkspace()
            try await owner.addMember(workspace.id, user: memberUser.id, role: role)
            #expect(
                try await member.call(.get, "workspaces", as: Page<Workspace>.self).data.map(\.id) == [workspace.id]
            )

            let left = try await member.send(.delete, "workspaces/\(workspace.id)/members/\(memberUser.id)")
            #expect(left.status == .noContent)
            #expect(try await member.call(.get, "workspaces", as: Page<Workspace>.self).data.isEmpty)
            expectError(try await member.send(.get, "workspaces/\(workspace.id)"), .notFound, .notFound)
            let members = try await owner.call(.get, "workspaces/\(workspace.id)/members", as: Page<Member>.self)
            #expect(members.data.map(\.userID) == [ownerUser.id])
        }
    }

    // MARK: The RBAC matrix

    @Test(
        "RBAC: each role gets exactly the write routes its rank allows; the rest are 403",
        arguments: Role.allCases,
        WriteRoute.allCases
    )
    func matrix(role: Role, route: WriteRoute) async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let world = try await RBACWorld.make(api, actorRole: role)
            let before = try await world.owner.stats()
            let response = try await route.perform(as: world.actor, in: world)
            if role >= route.minimumRole {
                #expect(response.status == route.successStatus, "\(role) \(route): \(response.text)")
            } else {
                expectError(response, .forbidden, .forbidden, "\(role) \(route)")
                // A refused write changes nothing and logs nothing.
                let after = try await world.owner.stats()
                #expect(after.lastEventSeq == before.lastEventSeq)
                #expect(after.records == before.records)
                #expect(after.tables == before.tables)
            }
        }
    }

    @Test("a non-member gets 404 on every read and write route of another workspace, and never lists it")
    func nonMember() async throws {
        try await Harness.withServer(via: .router) { api, _ in
            let world = try await RBACWorld.make(api, actorRole: nil)
            let stranger = world.actor
            let own = try await stranger.createWorkspace("Mine")
            let reads = [
                "workspaces/\(world.workspace.id)",
                "workspaces/\(world.workspace.id)/members",
                "workspaces/\(world.workspace.id)/bases",
                "bases/\(world.base.id)",
                "bases/\(world.base.id)/tables",
                "tables/\(world.table.id)",
                "tables/\(world.table.id)/fields",
                "tables/\(world.table.id)/views",
                "views/\(world.view.id)",
                "tables/\(world.table.id)/records",
                "tables/\(world.table.id)/records?filter=\(queryValue("{Name} = 'x'"))&sort=Name",
                "records/\(world.record.id)",
            ]
            for path in reads {
                let response = try await stranger.send(.get, path)
                expectError(response, .notFound, .notFound, "GET \(path)")
                #expect(!response.text.contains(world.record.id.rawValue), "GET \(path) leaks data")
            }
            let before = try await world.owner.stats()
            for route in WriteRoute.allCases {
                let response = try await route.perform(as: stranger, in: world)
                expectError(response, .notFound, .notFound, "\(route)")
            }
            let after = try await world.owner.stats()
            #expect(after.lastEventSeq == before.lastEventSeq)
            #expect(after.records == before.records)

            let listed = try await stranger.call(.get, "workspaces", as: Page<Workspace>.self)
            #expect(listed.data.map(\.id) == [own.id])
            // The owner's world is intact.
            #expect(try await world.owner.record(world.record.id) == world.record)
            #expect(
                try await world.owner.call(.get, "workspaces/\(world.workspace.id)", as: Workspace.self).version == 1
            )
        }
    }
}

/// A write route of the RBAC matrix, with the least role that may use it.
enum WriteRoute: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case workspacePatch, workspaceDelete
    case memberAdd, memberPatch, memberDelete
    case basePost, basePatch, baseDelete
    case tablePost, tablePatch, tableDelete
    case fieldPost, fieldPatch, fieldDelete
    case viewPost, viewPatch, viewDelete
    case recordPost, recordPatch, recordPut, recordDelete
    case batchPost

    var testDescription: String { rawValue }

    var minimumRole: Role {
        switch self {
        case .workspacePatch, .workspaceDelete, .memberAdd, .memberPatch, .memberDelete: .owner
        case .basePost, .basePatch, .baseDelete, .tablePost, .tablePatch, .tableDelete, .fieldPost, .fieldPatch,
            .fieldDelete, .viewPost, .viewPatch, .viewDelete:
            .creator
        case .recordPost, .recordPatch, .recordPut, .recordDelete, .batchPost: .editor
        }
    }

    var successStatus: HTTPResponse.Status {
        switch self {
        case .memberAdd, .basePost, .tablePost, .fieldPost, .viewPost, .recordPost: .created
        case .workspaceDelete, .memberDelete, .baseDelete, .tableDelete, .fieldDelete, .viewDelete: .noContent
        case .workspacePatch, .memberPatch, .basePatch, .tablePatch, .fieldPatch, .viewPatch, .recordPatch,
            .recordPut, .recordDelete, .batchPost:
            .ok
        }
    }

    func perform(as client: API, in world: RBACWorld) async throws -> APIResponse {
        let workspace = world.workspace.id
        switch self {
        case .workspacePatch:
            return try await client.send(
                .patch,
                "workspaces/\(workspace)",
                json: UpdateWorkspaceRequest(name: "Renamed")
            )
        case .workspaceDelete:
            return try await client.send(.delete, "workspaces/\(workspace)")
        case .memberAdd:
            return try await client.send(
                .post,
                "workspaces/\(workspace)/members",
                json: AddMemberRequest(userID: world.newcomer.id, role: .viewer)
            )
        case .memberPatch:
            return try await client.send(
                .patch,
                "workspaces/\(workspace)/members/\(world.bystander.id)",
                json: UpdateMemberRequest(role: .editor)
            )
        case .memberDelete:
            return try await client.send(.delete, "workspaces/\(workspace)/members/\(world.bystander.id)")
        case .basePost:
            return try await client.send(.post, "workspaces/\(workspace)/bases", json: CreateBaseRequest(name: "New"))
        case .basePatch:
            return try await client.send(.patch, "bases/\(world.base.id)", json: UpdateBaseRequest(name: "Renamed"))
        case .baseDelete:
            return try await client.send(.delete, "bases/\(world.base.id)")
        case .tablePost:
            return try await client.send(
                .post,
                "bases/\(world.base.id)/tables",
                json: CreateTableRequest(name: "New", fields: [.init(name: "Title", type: .singleLineText)])
            )
        case .tablePatch:
            return try await client.send(.patch, "tables/\(world.table.id)", json: UpdateTableRequest(name: "Renamed"))
        case .tableDelete:
            return try await client.send(.delete, "tables/\(world.table.id)")
        case .fieldPost:
            return try await client.send(
                .post,
                "tables/\(world.table.id)/fields",
                json: CreateFieldRequest(name: "Extra", type: .number)
            )
        case .fieldPatch:
            return try await client.send(.patch, "fields/\(world.field.id)", json: UpdateFieldRequest(name: "Remarks"))
        case .fieldDelete:
            return try await client.send(.delete, "fields/\(world.field.id)")
        case .viewPost:
            return try await client.send(
                .post,
                "tables/\(world.table.id)/views",
                json: CreateViewRequest(name: "Another")
            )
        case .viewPatch:
            return try await client.send(.patch, "views/\(world.view.id)", json: UpdateViewRequest(name: "Renamed"))
        case .viewDelete:
            return try await client.send(.delete, "views/\(world.view.id)")
        case .recordPost:
            return try await client.send(
                .post,
                "tables/\(world.table.id)/records",
                json: RecordFieldsRequest(fields: ["Name": "new"])
            )
        case .recordPatch:
            return try await client.send(
                .patch,
                "records/\(world.record.id)",
                json: RecordFieldsRequest(fields: ["Score": 2])
            )
        case .recordPut:
            return try await client.send(
                .put,
                "records/\(world.record.id)",
                json: RecordFieldsRequest(fields: ["Name": "b"])
            )
        case .recordDelete:
            return try await client.send(.delete, "records/\(world.record.id)")
        case .batchPost:
            return try await client.send(
                .post,
                "tables/\(world.table.id)/records/batch",
                json: BatchRequest(operations: [
                    .create(fields: ["Name": "x"]), .delete(id: world.record.id, ifVersion: nil),
                ])
            )
        }
    }
}

/// A workspace with a base, a table (plus a non-primary field, a view and a record), another member
/// to manage, a user to invite, and the actor under test with the given role (or no membership).
struct RBACWorld: Sendable {
    var owner: API
    var actor: API
    var workspace: Workspace
    var base: Base
    var table: PyAirtableModels.Table
    var field: Field
    var view: View
    var record: PyAirtableModels.Record
    var bystander: User
    var newcomer: User

    static func make(_ api: API, actorRole: Role?) async throws -> RBACWorld {
        let (owner, _) = try await api.register("Owner")
        let (actor, actorUser) = try await api.register("Actor")
        let (_, bystander) = try await api.register("Bystander")
        let (_, newcomer) = try await api.register("Newcomer")
        let (workspace, base, table) = try await owner.scaffold()
        let field = try await owner.call(
            .post,
            "tables/\(table.id)/fields",
            json: CreateFieldRequest(name: "Notes", type: .multilineText),
            expect: .created,
            as: Field.self
        )
        let view = try await owner.call(
            .post,
            "tables/\(table.id)/views",
            json: CreateViewRequest(name: "Mine"),
            expect: .created,
            as: View.self
        )
        let record = try await owner.createRecord(in: table.id, ["Name": "a", "Score": 1])
        try await owner.addMember(workspace.id, user: bystander.id, role: .viewer)
        if let actorRole {
            try await owner.addMember(workspace.id, user: actorUser.id, role: actorRole)
        }
        return RBACWorld(
            owner: owner,
            actor: actor,
            workspace: workspace,
            base: base,
            table: try await owner.table(table.id),
            field: field,
            view: view,
            record: record,
            bystander: bystander,
            newcomer: newcomer
        )
    }
}
