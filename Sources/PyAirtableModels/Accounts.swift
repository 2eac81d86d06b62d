import Foundation

/// A person with an account.
public struct User: Codable, Sendable, Hashable, Identifiable {
    public var id: UserID
    public var email: String
    public var name: String
    public var version: Int
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: UserID, email: String, name: String, version: Int = 1, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.email = email
        self.name = name
        self.version = version
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, email, name, version
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
}

/// `PATCH /users/me`.
public struct UpdateUserRequest: Codable, Sendable, Hashable {
    public var name: String?
    public init(name: String? = nil) { self.name = name }
}

/// `POST /auth/register`.
public struct RegisterRequest: Codable, Sendable, Hashable {
    /// The shortest password the server accepts.
    public static let minimumPasswordLength = 8

    public var email: String
    public var password: String
    public var name: String

    public init(email: String, password: String, name: String) {
        self.email = email
        self.password = password
        self.name = name
    }
}

/// `POST /auth/login`.
public struct LoginRequest: Codable, Sendable, Hashable {
    public var email: String
    public var password: String

    public init(email: String, password: String) {
        self.email = email
        self.password = password
    }
}

/// `POST /auth/refresh` and `POST /auth/logout`.
public struct RefreshRequest: Codable, Sendable, Hashable {
    public var refreshToken: String

    public init(refreshToken: String) { self.refreshToken = refreshToken }

    enum CodingKeys: String, CodingKey {
        case refreshToken = "refresh_token"
    }
}

/// An access token and the refresh token that renews it.
public struct Tokens: Codable, Sendable, Hashable {
    public var accessToken: String
    public var refreshToken: String
    public var tokenType: String
    /// Seconds until the access token expires.
    public var expiresIn: Int

    public init(accessToken: String, refreshToken: String, tokenType: String = "Bearer", expiresIn: Int) {
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.tokenType = tokenType
        self.expiresIn = expiresIn
    }

    enum CodingKeys: String, CodingKey {
        case accessToken = "access_token"
        case refreshToken = "refresh_token"
        case tokenType = "token_type"
        case expiresIn = "expires_in"
    }
}

/// The answer of register and login.
public struct AuthResponse: Codable, Sendable, Hashable {
    public var user: User
    public var tokens: Tokens

    public init(user: User, tokens: Tokens) {
        self.user = user
        self.tokens = tokens
    }
}

/// The answer of refresh.
public struct RefreshResponse: Codable, Sendable, Hashable {
    public var tokens: Tokens
    public init(tokens: Tokens) { self.tokens = tokens }
}

/// `POST /auth/tokens`: a personal access token for scripts and the CLI.
public struct CreateAccessTokenRequest: Codable, Sendable, Hashable {
    public var name: String
    /// Seconds until the token expires; `nil` for a token that does not expire.
    public var expiresIn: Int?

    public init(name: String, expiresIn: Int? = nil) {
        self.name = name
        self.expiresIn = expiresIn
    }

    enum CodingKeys: String, CodingKey {
        case name
        case expiresIn = "expires_in"
    }
}

/// A personal access token. The secret (`pat_…`) is in `token` only in the answer that created it.
public struct AccessToken: Codable, Sendable, Hashable, Identifiable {
    public var id: AccessTokenID
    public var name: String
    public var token: String?
    public var createdAt: Date
    public var expiresAt: Date?
    public var lastUsedAt: Date?

    public init(
        id: AccessTokenID,
        name: String,
        token: String? = nil,
        createdAt: Date,
        expiresAt: Date? = nil,
        lastUsedAt: Date? = nil
    ) {
        self.id = id
        self.name = name
        self.token = token
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.lastUsedAt = lastUsedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name, token
        case createdAt = "created_at"
        case expiresAt = "expires_at"
        case lastUsedAt = "last_used_at"
    }
}

/// A member's role in a workspace, from most to least powerful:
/// `owner > creator > editor > commenter > viewer`.
public enum Role: String, Codable, Sendable, Hashable, CaseIterable, Comparable {
    case viewer, commenter, editor, creator, owner

    private var rank: Int {
        switch self {
        case .viewer: 0
        case .commenter: 1
        case .editor: 2
        case .creator: 3
        case .owner: 4
        }
    }

    public static func < (lhs: Role, rhs: Role) -> Bool { lhs.rank < rhs.rank }

    /// Whether the role may write records.
    public var canEditRecords: Bool { self >= .editor }
    /// Whether the role may change schema: bases, tables, fields, views, webhooks.
    public var canEditSchema: Bool { self >= .creator }
    /// Whether the role may manage members and the workspace itself.
    public var canManageWorkspace: Bool { self == .owner }
}

/// A workspace: the unit of membership and access.
public struct Workspace: Codable, Sendable, Hashable, Identifiable {
    public var id: WorkspaceID
    public var name: String
    /// The calling user's role in this workspace.
    public var role: Role
    public var version: Int
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: WorkspaceID, name: String, role: Role, version: Int = 1, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.name = name
        self.role = role
        self.version = version
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name, role, version
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
}

/// `POST /workspaces`.
public struct CreateWorkspaceRequest: Codable, Sendable, Hashable {
    public var name: String
    public init(name: String) { self.name = name }
}

/// `PATCH /workspaces/{id}`.
public struct UpdateWorkspaceRequest: Codable, Sendable, Hashable {
    public var name: String?
    public init(name: String? = nil) { self.name = name }
}

/// A user's membership of a workspace.
public struct Member: Codable, Sendable, Hashable {
    public var userID: UserID
    public var email: String
    public var name: String
    public var role: Role
    public var addedAt: Date

    public init(userID: UserID, email: String, name: String, role: Role, addedAt: Date) {
        self.userID = userID
        self.email = email
        self.name = name
        self.role = role
        self.addedAt = addedAt
    }

    enum CodingKeys: String, CodingKey {
        case userID = "user_id"
        case email, name, role
        case addedAt = "added_at"
    }
}

/// `POST /workspaces/{id}/members`: by `user_id` or by `email`.
public struct AddMemberRequest: Codable, Sendable, Hashable {
    public var userID: UserID?
    public var email: String?
    public var role: Role

    public init(userID: UserID? = nil, email: String? = nil, role: Role) {
        self.userID = userID
        self.email = email
        self.role = role
    }

    enum CodingKeys: String, CodingKey {
        case userID = "user_id"
        case email, role
    }
}

/// `PATCH /workspaces/{id}/members/{user_id}`.
public struct UpdateMemberRequest: Codable, Sendable, Hashable {
    public var role: Role
    public init(role: Role) { self.role = role }
}
