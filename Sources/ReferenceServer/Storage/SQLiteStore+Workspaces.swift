import Foundation
import GRDB
import PyAirtableModels

extension SQLiteStore {
    static func decodeWorkspace(from row: Row, role: Role) -> Workspace {
        Workspace(
            id: row.id("id"),
            name: row["name"],
            role: role,
            version: row["version"],
            createdAt: row.date("created_at"),
            updatedAt: row.date("updated_at")
        )
    }

    static func fetchWorkspace(_ db: Database, id: WorkspaceID, user: UserID, minimum: Role) throws -> Workspace {
        let role = try authorize(db, workspace: id.rawValue, user: user, minimum: minimum, resource: "workspace")
        guard
            let row = try Row.fetchOne(db, sql: "SELECT * FROM workspaces WHERE id = ?", arguments: [id.rawValue])
        else { throw StorageError.notFound("workspace") }
        return decodeWorkspace(from: row, role: role)
    }

    public func workspaces(user: UserID) async throws -> [Workspace] {
        try await database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT w.*, m.role AS member_role FROM workspaces w
                    JOIN members m ON m.workspace_id = w.id AND m.user_id = ?
                    ORDER BY w.created_at, w.rowid
                    """,
                arguments: [user.rawValue]
            ).map { Self.decodeWorkspace(from: $0, role: Role(rawValue: $0["member_role"]) ?? .viewer) }
        }
    }

    public func workspace(id: WorkspaceID, user: UserID) async throws -> Workspace {
        try await database.read { db in try Self.fetchWorkspace(db, id: id, user: user, minimum: .viewer) }
    }

    public func createWorkspace(
        _ request: CreateWorkspaceRequest,
        context: WriteContext
    ) async throws
        -> WriteResult<Workspace>
    {
        let actor = try context.requireActor()
        return try await perform(context, status: 201) { db in
            let workspace = Workspace(
                id: .generate(),
                name: request.name,
                role: .owner,
                createdAt: context.now,
                updatedAt: context.now
            )
            let now = context.now.millisecondsSince1970
            try db.execute(
                sql: "INSERT INTO workspaces (id, name, version, created_at, updated_at) VALUES (?, ?, 1, ?, ?)",
                arguments: [workspace.id.rawValue, workspace.name, now, now]
            )
            try db.execute(
                sql: "INSERT INTO members (workspace_id, user_id, role, added_at) VALUES (?, ?, 'owner', ?)",
                arguments: [workspace.id.rawValue, actor.rawValue, now]
            )
            try Self.membersChanged(db)
            try Self.appendEvent(
                db,
                type: .workspaceCreated,
                workspaceID: workspace.id,
                payload: workspace,
                context: context
            )
            return workspace
        }
    }

    public func updateWorkspace(
        id: WorkspaceID,
        _ request: UpdateWorkspaceRequest,
        ifVersion: Int?,
        context: WriteContext
    )
        async throws -> WriteResult<Workspace>
    {
        let actor = try context.requireActor()
        return try await perform(context) { db in
            var workspace = try Self.fetchWorkspace(db, id: id, user: actor, minimum: .owner)
            try Self.checkVersion(expected: ifVersion, actual: workspace.version, current: workspace)
            if let name = request.name { workspace.name = name }
            workspace.version += 1
            workspace.updatedAt = context.now
            try db.execute(
                sql: "UPDATE workspaces SET name = ?, version = ?, updated_at = ? WHERE id = ?",
                arguments: [workspace.name, workspace.version, context.now.millisecondsSince1970, id.rawValue]
            )
            try Self.appendEvent(
                db,
                type: .workspaceUpdated,
                workspaceID: id,
                payload: workspace,
                context: context
            )
            return workspace
        }
    }

    public func deleteWorkspace(
        id: WorkspaceID,
        ifVersion: Int?,
        context: WriteContext
    ) async throws
        -> WriteResult<EmptyBody>
    {
        let actor = try context.requireActor()
        return try await perform(context, status: 204) { db in
            let workspace = try Self.fetchWorkspace(db, id: id, user: actor, minimum: .owner)
            try Self.checkVersion(expected: ifVersion, actual: workspace.version, current: workspace)
            let members = try String.fetchAll(
                db,
                sql: "SELECT user_id FROM members WHERE workspace_id = ?",
                arguments: [id.rawValue]
            ).map(UserID.init(unchecked:))
            try db.execute(sql: "DELETE FROM workspaces WHERE id = ?", arguments: [id.rawValue])
            try Self.appendEvent(
                db,
                type: .workspaceDeleted,
                workspaceID: id,
                payload: ["id": id.rawValue],
                context: context,
                recipients: members
            )
            return EmptyBody()
        }
    }

    // MARK: Members

    static func member(from row: Row) -> Member {
        Member(
            userID: row.id("user_id"),
            email: row["email"],
            name: row["name"],
            role: Role(rawValue: row["role"]) ?? .viewer,
            addedAt: row.date("added_at")
        )
    }

    static func fetchMember(_ db: Database, workspace: WorkspaceID, user: UserID) throws -> Member? {
        try Row.fetchOne(
            db,
            sql: """
                SELECT m.user_id, m.role, m.added_at, u.email, u.name FROM members m
                JOIN users u ON u.id = m.user_id WHERE m.workspace_id = ? AND m.user_id = ?
                """,
            arguments: [workspace.rawValue, user.rawValue]
        ).map(member(from:))
    }

    public func members(workspace: WorkspaceID, user: UserID) async throws -> [Member] {
        try await database.read { db in
            try Self.authorize(db, workspace: workspace.rawValue, user: user, minimum: .viewer, resource: "workspace")
            return try Row.fetchAll(
                db,
                sql: """
                    SELECT m.user_id, m.role, m.added_at, u.email, u.name FROM members m
                    JOIN users u ON u.id = m.user_id WHERE m.workspace_id = ? ORDER BY m.added_at, m.user_id
                    """,
                arguments: [workspace.rawValue]
            ).map(Self.member(from:))
        }
    }

    public func addMember(
        workspace: WorkspaceID,
        _ request: AddMemberRequest,
        context: WriteContext
    ) async throws
        -> WriteResult<Member>
    {
        let actor = try context.requireActor()
        return try await perform(context, status: 201) { db in
            try Self.authorize(db, workspace: workspace.rawValue, user: actor, minimum: .owner, resource: "workspace")
            let userID: UserID
            if let id = request.userID {
                guard try Bool.fetchOne(db, sql: "SELECT 1 FROM users WHERE id = ?", arguments: [id.rawValue]) == true
                else { throw StorageError.invalid("no user with id '\(id)'", field: "user_id") }
                userID = id
            } else if let email = request.email {
                guard let id = try String.fetchOne(db, sql: "SELECT id FROM users WHERE email = ?", arguments: [email])
                else { throw StorageError.invalid("no user with email '\(email)'", field: "email") }
                userID = UserID(unchecked: id)
            } else {
                throw StorageError.invalid("give user_id or email")
            }
            if try Self.role(db, workspace: workspace.rawValue, user: userID) != nil {
                throw StorageError.conflict("that user is already a member")
            }
            try db.execute(
                sql: "INSERT INTO members (workspace_id, user_id, role, added_at) VALUES (?, ?, ?, ?)",
                arguments: [
                    workspace.rawValue, userID.rawValue, request.role.rawValue, context.now.millisecondsSince1970,
                ]
            )
            try Self.membersChanged(db)
            guard let member = try Self.fetchMember(db, workspace: workspace, user: userID) else {
                throw StorageError.notFound("member")
            }
            try Self.appendEvent(db, type: .memberAdded, workspaceID: workspace, payload: member, context: context)
            return member
        }
    }

    public func updateMember(
        workspace: WorkspaceID,
        user target: UserID,
        role: Role,
        context: WriteContext
    ) async throws
        -> WriteResult<Member>
    {
        let actor = try context.requireActor()
        return try await perform(context) { db in
            try Self.authorize(db, workspace: workspace.rawValue, user: actor, minimum: .owner, resource: "workspace")
            guard var member = try Self.fetchMember(db, workspace: workspace, user: target) else {
                throw StorageError.notFound("member")
            }
            if member.role == .owner, role != .owner {
                try Self.requireAnotherOwner(db, workspace: workspace, besides: target)
            }
            member.role = role
            try db.execute(
                sql: "UPDATE members SET role = ? WHERE workspace_id = ? AND user_id = ?",
                arguments: [role.rawValue, workspace.rawValue, target.rawValue]
            )
            try Self.membersChanged(db)
            try Self.appendEvent(db, type: .memberUpdated, workspaceID: workspace, payload: member, context: context)
            if role < Self.webhookRole {
                try Self.disableWebhooks(
                    db,
                    of: target,
                    in: workspace,
                    reason: "its creator \(target) is now \(role.rawValue) in the workspace, below the "
                        + "\(Self.webhookRole.rawValue) role webhooks need; \(Self.reenableHint)",
                    context: context
                )
            }
            return member
        }
    }

    /// Removes a member. Owners may remove anyone; any member may remove themselves (leave).
    public func removeMember(
        workspace: WorkspaceID,
        user target: UserID,
        context: WriteContext
    ) async throws
        -> WriteResult<EmptyBody>
    {
        let actor = try context.requireActor()
        return try await perform(context, status: 204) { db in
            if target != actor {
                try Self.authorize(
                    db,
                    workspace: workspace.rawValue,
                    user: actor,
                    minimum: .owner,
                    resource: "workspace"
                )
            }
            guard let member = try Self.fetchMember(db, workspace: workspace, user: target) else {
                throw StorageError.notFound(target == actor ? "workspace" : "member")
            }
            if member.role == .owner {
                try Self.requireAnotherOwner(db, workspace: workspace, besides: target)
            }
            try db.execute(
                sql: "DELETE FROM members WHERE workspace_id = ? AND user_id = ?",
                arguments: [workspace.rawValue, target.rawValue]
            )
            try Self.membersChanged(db)
            try Self.appendEvent(
                db,
                type: .memberRemoved,
                workspaceID: workspace,
                payload: member,
                context: context,
                recipients: [target]
            )
            try Self.disableWebhooks(
                db,
                of: target,
                in: workspace,
                reason: "its creator \(target) \(target == actor ? "left" : "was removed from") the workspace; "
                    + Self.reenableHint,
                context: context
            )
            return EmptyBody()
        }
    }

    /// How a webhook disabled for its creator's lost access comes back.
    private static let reenableHint =
        "a creator or owner who turns it back on becomes responsible for it"

    private static func requireAnotherOwner(_ db: Database, workspace: WorkspaceID, besides user: UserID) throws {
        let owners =
            try Int.fetchOne(
                db,
                sql: "SELECT COUNT(*) FROM members WHERE workspace_id = ? AND role = 'owner' AND user_id != ?",
                arguments: [workspace.rawValue, user.rawValue]
            ) ?? 0
        if owners == 0 {
            throw StorageError.conflict("a workspace needs at least one owner")
        }
    }
}

extension SQLiteStore {
    /// Tells transaction observers (the record read cache) that `members` changed: it is a WITHOUT
    /// ROWID table, for which SQLite reports no row changes.
    static func membersChanged(_ db: Database) throws {
        try db.notifyChanges(in: GRDB.Table("members"))
    }
}
