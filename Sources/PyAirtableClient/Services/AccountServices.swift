import Foundation
import HTTPTypes
import PyAirtableModels

/// Sign-up, sign-in, sign-out and personal access tokens. Signing in keeps the tokens in the
/// client's token store; access tokens are then refreshed automatically.
public struct AuthService: Sendable {
    let client: PyAirtableClient
    private static func operation(_ name: String) -> ClientOperation { .init(service: "auth", name: name) }

    /// Creates an account and signs in as it.
    @discardableResult
    public func register(email: String, password: String, name: String) async throws -> AuthResponse {
        let response = try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/auth/register",
                body: RegisterRequest(email: email, password: password, name: name),
                operation: Self.operation("register"),
                authenticated: false
            ),
            as: AuthResponse.self
        )
        try await client.tokens.update(StoredCredentials(tokens: response.tokens, user: response.user))
        client.replayScheduler.trigger(.signedIn, client: client)
        return response
    }

    /// Signs in; the tokens are kept and refreshed by the client.
    @discardableResult
    public func login(email: String, password: String) async throws -> AuthResponse {
        let response = try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/auth/login",
                body: LoginRequest(email: email, password: password),
                operation: Self.operation("login"),
                authenticated: false
            ),
            as: AuthResponse.self
        )
        try await client.tokens.update(StoredCredentials(tokens: response.tokens, user: response.user))
        client.replayScheduler.trigger(.signedIn, client: client)
        return response
    }

    /// Keeps a personal access token as this client's credentials (for example after `pyat login --token`).
    public func use(personalAccessToken token: String) async throws {
        try await client.tokens.update(StoredCredentials(personalAccessToken: token))
        client.replayScheduler.trigger(.signedIn, client: client)
    }

    /// Signs out: revokes the refresh token on the server and forgets the credentials.
    public func logout() async throws {
        let credentials = try await client.tokens.current()
        if let refreshToken = credentials?.refreshToken {
            do {
                try await client.execute(
                    PyAirtableClient.request(
                        .post,
                        "/api/v1/auth/logout",
                        body: RefreshRequest(refreshToken: refreshToken),
                        operation: Self.operation("logout")
                    )
                )
            } catch let error as PyAirtableError where error == .unauthorized || error == .notAuthenticated {
                // Already signed out on the server.
            }
        }
        try await client.tokens.clear()
    }

    /// Creates a personal access token; its secret is in the answer's `token`, only this once.
    public func createToken(name: String, expiresIn: Int? = nil) async throws -> AccessToken {
        try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/auth/tokens",
                body: CreateAccessTokenRequest(name: name, expiresIn: expiresIn),
                operation: Self.operation("createToken")
            ),
            as: AccessToken.self
        )
    }

    /// The caller's personal access tokens (without secrets), every page.
    public func tokens() async throws -> [AccessToken] {
        try await client.collection("/api/v1/auth/tokens", operation: Self.operation("listTokens"))
    }

    /// Revokes a personal access token.
    public func deleteToken(_ id: AccessTokenID) async throws {
        try await client.execute(
            PyAirtableClient.request(.delete, "/api/v1/auth/tokens/\(id)", operation: Self.operation("deleteToken"))
        )
    }
}

/// The signed-in user.
public struct UsersService: Sendable {
    let client: PyAirtableClient
    private static func operation(_ name: String) -> ClientOperation { .init(service: "users", name: name) }

    /// `GET /users/me`; with the cache on, read under the user rule (stale-while-revalidate, 15 minutes).
    public func me(policy: FetchPolicy? = nil) async throws -> User {
        try await meWithSource(policy: policy).value
    }

    /// The signed-in user, with where the answer came from (server or cache, fresh or stale).
    public func meWithSource(policy: FetchPolicy? = nil) async throws -> CachedResponse<User> {
        try await client.cachedRead(
            PyAirtableClient.request(.get, "/api/v1/users/me", operation: Self.operation("me")),
            as: User.self,
            kind: .user,
            policy: policy
        ) { user in [.user(user.id)] }
    }

    /// Renames the signed-in user; with `ifVersion`, a stale version fails with ``PyAirtableError/preconditionFailed``.
    public func update(name: String, ifVersion: Int? = nil) async throws -> User {
        let user = try await client.send(
            PyAirtableClient.request(
                .patch,
                "/api/v1/users/me",
                body: UpdateUserRequest(name: name),
                operation: Self.operation("update"),
                ifMatch: ifVersion
            ),
            as: User.self
        )
        await client.cacheAfterWrite(invalidating: [.user(user.id)])
        return user
    }
}

/// Workspaces and their members.
public struct WorkspacesService: Sendable {
    let client: PyAirtableClient
    private static func operation(_ name: String) -> ClientOperation { .init(service: "workspaces", name: name) }

    /// Every workspace the user belongs to, with their role in each (every page); with the cache on,
    /// read under the workspaces rule (stale-while-revalidate, 5 minutes).
    public func list(policy: FetchPolicy? = nil) async throws -> [Workspace] {
        try await listWithSource(policy: policy).value
    }

    /// The workspaces the user belongs to, with where the answer came from.
    public func listWithSource(policy: FetchPolicy? = nil) async throws -> CachedResponse<[Workspace]> {
        try await client.cachedCollection(
            "/api/v1/workspaces",
            operation: Self.operation("list"),
            kind: .workspaces,
            policy: policy
        ) { (page: Page<Workspace>) in [.workspaces] + page.data.map { .workspace($0.id) } }
    }

    /// A workspace, with the caller's role in it.
    public func get(_ id: WorkspaceID, policy: FetchPolicy? = nil) async throws -> Workspace {
        try await getWithSource(id, policy: policy).value
    }

    /// A workspace, with where the answer came from.
    public func getWithSource(_ id: WorkspaceID, policy: FetchPolicy? = nil) async throws -> CachedResponse<Workspace> {
        try await client.cachedRead(
            PyAirtableClient.request(.get, "/api/v1/workspaces/\(id)", operation: Self.operation("get")),
            as: Workspace.self,
            kind: .workspaces,
            policy: policy
        ) { _ in [.workspace(id)] }
    }

    /// Creates a workspace; the caller becomes its owner.
    public func create(name: String) async throws -> Workspace {
        let workspace = try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/workspaces",
                body: CreateWorkspaceRequest(name: name),
                operation: Self.operation("create")
            ),
            as: Workspace.self
        )
        await client.cacheAfterWrite(invalidating: [.workspaces])
        return workspace
    }

    public func update(_ id: WorkspaceID, name: String, ifVersion: Int? = nil) async throws -> Workspace {
        let workspace = try await client.send(
            PyAirtableClient.request(
                .patch,
                "/api/v1/workspaces/\(id)",
                body: UpdateWorkspaceRequest(name: name),
                operation: Self.operation("update"),
                ifMatch: ifVersion
            ),
            as: Workspace.self
        )
        await client.cacheAfterWrite(invalidating: [.workspace(id)])
        return workspace
    }

    /// Deletes a workspace with everything in it (owners only); the account's cache is cleared.
    public func delete(_ id: WorkspaceID, ifVersion: Int? = nil) async throws {
        try await client.execute(
            PyAirtableClient.request(
                .delete,
                "/api/v1/workspaces/\(id)",
                operation: Self.operation("delete"),
                ifMatch: ifVersion
            )
        )
        await client.cacheAfterWrite(invalidating: [], everything: true)
    }

    /// Every member of a workspace, with their roles.
    public func members(of id: WorkspaceID, policy: FetchPolicy? = nil) async throws -> [Member] {
        try await membersWithSource(of: id, policy: policy).value
    }

    /// The members of a workspace, with where the answer came from.
    public func membersWithSource(
        of id: WorkspaceID,
        policy: FetchPolicy? = nil
    ) async throws -> CachedResponse<[Member]> {
        try await client.cachedCollection(
            "/api/v1/workspaces/\(id)/members",
            operation: Self.operation("members"),
            kind: .workspaces,
            policy: policy
        ) { (_: Page<Member>) in [.members(of: id)] }
    }

    /// Adds a member by user id or by email.
    public func addMember(
        to id: WorkspaceID,
        userID: UserID? = nil,
        email: String? = nil,
        role: Role
    ) async throws
        -> Member
    {
        guard userID != nil || email != nil else {
            throw PyAirtableError.invalidArgument("give a user id or an email")
        }
        let member = try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/workspaces/\(id)/members",
                body: AddMemberRequest(userID: userID, email: email, role: role),
                operation: Self.operation("addMember")
            ),
            as: Member.self
        )
        await client.cacheAfterWrite(invalidating: [.members(of: id)])
        return member
    }

    public func updateMember(in id: WorkspaceID, user: UserID, role: Role) async throws -> Member {
        let member = try await client.send(
            PyAirtableClient.request(
                .patch,
                "/api/v1/workspaces/\(id)/members/\(user)",
                body: UpdateMemberRequest(role: role),
                operation: Self.operation("updateMember")
            ),
            as: Member.self
        )
        // The caller's own role shows in the workspace entries.
        await client.cacheAfterWrite(invalidating: [.members(of: id), .workspace(id)])
        return member
    }

    /// Removes a member (owners), or leaves the workspace (for the caller's own id).
    public func removeMember(from id: WorkspaceID, user: UserID) async throws {
        try await client.execute(
            PyAirtableClient.request(
                .delete,
                "/api/v1/workspaces/\(id)/members/\(user)",
                operation: Self.operation("removeMember")
            )
        )
        // Leaving a workspace takes away its bases, tables and records, which are not all known by tag.
        let own = try? await client.tokens.current()?.userID
        if own == user {
            await client.cacheAfterWrite(invalidating: [], everything: true)
        } else {
            await client.cacheAfterWrite(invalidating: [.members(of: id)])
        }
    }
}
