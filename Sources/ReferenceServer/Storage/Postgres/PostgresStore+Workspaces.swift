import Foundation
import PostgresNIO
import PyAirtableModels

extension PostgresStore: WorkspaceRepository {
    static func decodeWorkspace(from row: PostgresRandomAccessRow, role: Role) throws -> Workspace {
        Workspace(
            id: try row.id("id"),
            name: try row.get("name"),
            role: role,
            version: try row.get("version", as: Int.self),
            createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at")
        )
    }

    /// Loads a workspace the caller may see; with `lock`, its row stays locked until the
    /// transaction ends (a version check that a concurrent write cannot pass).
    static func fetchWorkspace(
        _ transaction: PostgresTransaction,
        id: WorkspaceID,
        user: UserID,
        minimum: Role,
        lock: Bool = false
    ) async throws -> Workspace {
        let role = try await authorize(
            transaction,
            workspace: id.rawValue,
            user: user,
            minimum: minimum,
            resource: "workspace"
        )
        let query: PostgresQuery =
            lock
            ? "SELECT * FROM workspaces WHERE id = \(id.rawValue) FOR UPDATE"
            : "SELECT * FROM workspaces WHERE id = \(id.rawValue)"
        guard let row = try await transaction.row(query) else { throw StorageError.notFound("workspace") }
        return try decodeWorkspace(from: row, role: role)
    }

    public func workspaces(user: UserID) async throws -> [Workspace] {
        try await database.read { transaction in
            try await transaction.rows(
                """
                SELECT w.*, m.role AS member_role FROM workspaces w
                JOIN members m ON m.workspace_id = w.id AND m.user_id = \(user.rawValue)
                ORDER BY w.created_at, w.ord
                """
            ).map { try Self.decodeWorkspace(from: $0, role: Role(rawValue: try $0.get("member_role")) ?? .viewer) }
        }
    }

    public func workspace(id: WorkspaceID, user: UserID) async throws -> Workspace {
        try await database.read { transaction in
            try await Self.fetchWorkspace(transaction, id: id, user: user, minimum: .viewer)
        }
    }

    public func createWorkspace(
        _ request: CreateWorkspaceRequest,
        context: WriteContext
    ) async throws
        -> WriteResult<Workspace>
    {
        let actor = try context.requireActor()
        return try await perform(context, status: 201) { transaction in
            let workspace = Workspace(
                id: .generate(),
                name: request.name,
                role: .owner,
                createdAt: context.now,
                updatedAt: context.now
            )
            let now = context.now.millisecondsSince1970
            try await transaction.execute(
                """
                INSERT INTO workspaces (id, name, version, created_at, updated_at)
                VALUES (\(workspace.id.rawValue), \(workspace.name), 1, \(now), \(now))
                """
            )
            try await transaction.execute(
                """
                INSERT INTO members (workspace_id, user_id, role, added_at)
                VALUES (\(workspace.id.rawValue), \(actor.rawValue), 'owner', \(now))
                """
            )
            try transaction.appendEvent(
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
        return try await perform(context) { transaction in
            var workspace = try await Self.fetchWorkspace(transaction, id: id, user: actor, minimum: .owner, lock: true)
            try Self.checkVersion(expected: ifVersion, actual: workspace.version, current: workspace)
            if let name = request.name { workspace.name = name }
            workspace.version += 1
            workspace.updatedAt = context.now
            try await transaction.execute(
                """
                UPDATE workspaces SET name = \(workspace.name), version = \(workspace.version),
                    updated_at = \(context.now.millisecondsSince1970)
                WHERE id = \(id.rawValue)
                """
            )
            try transaction.appendEvent(type: .workspaceUpdated, workspaceID: id, payload: workspace, context: context)
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
        return try await perform(context, status: 204) { transaction in
            let workspace = try await Self.fetchWorkspace(transaction, id: id, user: actor, minimum: .owner, lock: true)
            try Self.checkVersion(expected: ifVersion, actual: workspace.version, current: workspace)
            let members = try await transaction.rows(
                "SELECT user_id FROM members WHERE workspace_id = \(id.rawValue)"
            ).map { UserID(unchecked: try $0.get("user_id", as: String.self)) }
            try await transaction.execute("DELETE FROM workspaces WHERE id = \(id.rawValue)")
            try transaction.appendEvent(
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

    static func member(from row: PostgresRandomAccessRow) throws -> Member {
        Member(
            userID: try row.id("user_id"),
            email: try row.get("email"),
            name: try row.get("name"),
            role: Role(rawValue: try row.get("role")) ?? .viewer,
            addedAt: try row.date("added_at")
        )
    }

    static func fetchMember(
        _ transaction: PostgresTransaction,
        workspace: WorkspaceID,
        user: UserID,
        lock: Bool = false
    ) async throws -> Member? {
        let query: PostgresQuery =
            lock
            ? """
            SELECT m.user_id, m.role, m.added_at, u.email, u.name FROM members m
            JOIN users u ON u.id = m.user_id WHERE m.workspace_id = \(workspace.rawValue) AND m.user_id = \(user.rawValue)
            FOR UPDATE OF m
            """
            : """
            SELECT m.user_id, m.role, m.added_at, u.email, u.name FROM members m
            JOIN users u ON u.id = m.user_id WHERE m.workspace_id = \(workspace.rawValue) AND m.user_id = \(user.rawValue)
            """
        return try await transaction.row(query).map(member(from:))
    }

    public func members(workspace: WorkspaceID, user: UserID) async throws -> [Member] {
        try await database.read { transaction in
            try await Self.authorize(
                transaction,
                workspace: workspace.rawValue,
                user: user,
                minimum: .viewer,
                resource: "workspace"
            )
            return try await transaction.rows(
                """
                SELECT m.user_id, m.role, m.added_at, u.email, u.name FROM members m
                JOIN users u ON u.id = m.user_id WHERE m.workspace_id = \(workspace.rawValue)
                ORDER BY m.added_at, m.user_id
                """
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
        return try await perform(context, status: 201) { transaction in
            try await Self.authorize(
                transaction,
                workspace: workspace.rawValue,
                user: actor,
                minimum: .owner,
                resource: "workspace"
            )
            let userID: UserID
            if let id = request.userID {
                guard try await transaction.row("SELECT 1 FROM users WHERE id = \(id.rawValue)") != nil else {
                    throw StorageError.invalid("no user with id '\(id)'", field: "user_id")
                }
                userID = id
            } else if let email = request.email {
                guard
                    let id = try await transaction.scalar(
                        "SELECT id FROM users WHERE lower(email) = lower(\(email))",
                        as: String.self
                    )
                else { throw StorageError.invalid("no user with email '\(email)'", field: "email") }
                userID = UserID(unchecked: id)
            } else {
                throw StorageError.invalid("give user_id or email")
            }
            // The primary key decides between two instances adding the same member at once.
            let inserted = try await transaction.changes(
                """
                INSERT INTO members (workspace_id, user_id, role, added_at)
                VALUES (\(workspace.rawValue), \(userID.rawValue), \(request.role.rawValue),
                    \(context.now.millisecondsSince1970))
                ON CONFLICT DO NOTHING RETURNING 1
                """
            )
            guard inserted == 1 else { throw StorageError.conflict("that user is already a member") }
            guard let member = try await Self.fetchMember(transaction, workspace: workspace, user: userID) else {
                throw StorageError.notFound("member")
            }
            try transaction.appendEvent(type: .memberAdded, workspaceID: workspace, payload: member, context: context)
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
        return try await perform(context) { transaction in
            try await Self.authorize(
                transaction,
                workspace: workspace.rawValue,
                user: actor,
                minimum: .owner,
                resource: "workspace"
            )
            guard var member = try await Self.fetchMember(transaction, workspace: workspace, user: target, lock: true)
            else { throw StorageError.notFound("member") }
            if member.role == .owner, role != .owner {
                try await Self.requireAnotherOwner(transaction, workspace: workspace, besides: target)
            }
            member.role = role
            try await transaction.execute(
                """
                UPDATE members SET role = \(role.rawValue)
                WHERE workspace_id = \(workspace.rawValue) AND user_id = \(target.rawValue)
                """
            )
            try transaction.appendEvent(type: .memberUpdated, workspaceID: workspace, payload: member, context: context)
            if role < SQLiteStore.webhookRole {
                try await Self.disableWebhooks(
                    transaction,
                    of: target,
                    in: workspace,
                    reason: "its creator \(target) is now \(role.rawValue) in the workspace, below the "
                        + "\(SQLiteStore.webhookRole.rawValue) role webhooks need; \(Self.reenableHint)",
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
        return try await perform(context, status: 204) { transaction in
            if target != actor {
                try await Self.authorize(
                    transaction,
                    workspace: workspace.rawValue,
                    user: actor,
                    minimum: .owner,
                    resource: "workspace"
                )
            }
            guard let member = try await Self.fetchMember(transaction, workspace: workspace, user: target, lock: true)
            else { throw StorageError.notFound(target == actor ? "workspace" : "member") }
            if member.role == .owner {
                try await Self.requireAnotherOwner(transaction, workspace: workspace, besides: target)
            }
            try await transaction.execute(
                "DELETE FROM members WHERE workspace_id = \(workspace.rawValue) AND user_id = \(target.rawValue)"
            )
            try transaction.appendEvent(
                type: .memberRemoved,
                workspaceID: workspace,
                payload: member,
                context: context,
                recipients: [target]
            )
            try await Self.disableWebhooks(
                transaction,
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
    private static let reenableHint = "a creator or owner who turns it back on becomes responsible for it"

    /// Refuses to leave a workspace without an owner. The owners' rows are locked: two instances
    /// demoting the last two owners at once cannot both pass.
    private static func requireAnotherOwner(
        _ transaction: PostgresTransaction,
        workspace: WorkspaceID,
        besides user: UserID
    ) async throws {
        let owners = try await transaction.rows(
            """
            SELECT user_id FROM members WHERE workspace_id = \(workspace.rawValue) AND role = 'owner'
            ORDER BY user_id FOR UPDATE
            """
        ).map { try $0.get("user_id", as: String.self) }
        if owners.allSatisfy({ $0 == user.rawValue }) {
            throw StorageError.conflict("a workspace needs at least one owner")
        }
    }

    // MARK: Webhooks of a member who lost access

    /// Turns off the enabled webhooks of `workspace` that `user` is responsible for, in the
    /// transaction that took away the role they need (see ``SQLiteStore/disableWebhooks(_:of:in:reason:context:)``).
    static func disableWebhooks(
        _ transaction: PostgresTransaction,
        of user: UserID,
        in workspace: WorkspaceID,
        reason: String,
        context: WriteContext
    ) async throws {
        let rows = try await transaction.rows(
            """
            UPDATE webhooks SET enabled = FALSE, disabled_reason = \(reason),
                updated_at = \(context.now.millisecondsSince1970)
            WHERE workspace_id = \(workspace.rawValue) AND created_by = \(user.rawValue) AND enabled
            RETURNING *
            """
        )
        for row in rows {
            let webhook = try decodeWebhook(from: row)
            transaction.webhooksChanged = true
            try transaction.appendEvent(
                type: .webhookUpdated,
                workspaceID: workspace,
                baseID: webhook.baseID,
                payload: WebhookEventPayload(webhook),
                context: context
            )
        }
    }

    static func decodeWebhook(from row: PostgresRandomAccessRow) throws -> Webhook {
        let events = try JSONCoding.decoder.decode(
            [EventType].self,
            from: Data(try row.get("events", as: String.self).utf8)
        )
        return Webhook(
            id: try row.id("id"),
            baseID: try row.id("base_id"),
            url: try row.get("url"),
            events: events,
            tableID: try row.optionalID("table_id"),
            enabled: try row.get("enabled", as: Bool.self),
            disabledReason: try row.get("disabled_reason", as: String?.self),
            failureCount: try row.get("failure_count", as: Int.self),
            createdAt: try row.date("created_at")
        )
    }
}
