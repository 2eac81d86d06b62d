import Foundation
import Hummingbird
import PyAirtableModels

/// `/workspaces` and members.
struct WorkspacesController {
    let services: ServerServices
    let store: any WorkspaceRepository
    var now: Date { services.configuration.now() }

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("workspaces", use: list)
        group.post("workspaces", use: create)
        group.get("workspaces/{id}", use: get)
        group.patch("workspaces/{id}", use: update)
        group.delete("workspaces/{id}", use: delete)
        group.get("workspaces/{id}/members", use: members)
        group.post("workspaces/{id}/members", use: addMember)
        group.patch("workspaces/{id}/members/{user_id}", use: updateMember)
        group.delete("workspaces/{id}/members/{user_id}", use: removeMember)
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        try .listJSON(Page(data: try await store.workspaces(user: try context.requireUser())), request: request)
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        var body = try await request.decodeJSON(as: CreateWorkspaceRequest.self)
        body.name = try InputRules.name(body.name)
        return .stored(try await store.createWorkspace(body, context: context.write(now: now)))
    }

    @Sendable func get(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let workspace = try await store.workspace(id: try context.id("id", "workspace"), user: user)
        if request.matchesNoneMatch(version: workspace.version) { return .notModified(version: workspace.version) }
        return try .json(workspace, eTag: VersionTag.format(workspace.version))
    }

    @Sendable func update(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        var body = try await request.decodeJSON(as: UpdateWorkspaceRequest.self)
        body.name = try InputRules.optionalName(body.name)
        return .stored(
            try await store.updateWorkspace(
                id: try context.id("id", "workspace"),
                body,
                ifVersion: try request.ifMatchVersion(),
                context: context.write(now: now)
            )
        )
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        return .stored(
            try await store.deleteWorkspace(
                id: try context.id("id", "workspace"),
                ifVersion: try request.ifMatchVersion(),
                context: context.write(now: now)
            )
        )
    }

    @Sendable func members(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        return try .listJSON(
            Page(data: try await store.members(workspace: try context.id("id", "workspace"), user: user)),
            request: request
        )
    }

    @Sendable func addMember(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        var body = try await request.decodeJSON(as: AddMemberRequest.self)
        if let email = body.email { body.email = email.trimmingCharacters(in: .whitespaces).lowercased() }
        return .stored(
            try await store.addMember(
                workspace: try context.id("id", "workspace"),
                body,
                context: context.write(now: now)
            )
        )
    }

    @Sendable func updateMember(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        let body = try await request.decodeJSON(as: UpdateMemberRequest.self)
        return .stored(
            try await store.updateMember(
                workspace: try context.id("id", "workspace"),
                user: try context.id("user_id", "member"),
                role: body.role,
                context: context.write(now: now)
            )
        )
    }

    @Sendable func removeMember(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        return .stored(
            try await store.removeMember(
                workspace: try context.id("id", "workspace"),
                user: try context.id("user_id", "member"),
                context: context.write(now: now)
            )
        )
    }
}
