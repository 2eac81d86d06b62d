import Foundation
import GRDB
import PyAirtableModels
import Synchronization

/// A user with the password hash, for login.
public struct UserCredentials: Sendable {
    public var user: User
    public var passwordHash: String
}

/// What presenting a refresh token found.
public enum RefreshOutcome: Sendable {
    /// The token was live; it is now spent and belongs to `family`.
    case rotated(user: UserID, family: String)
    /// The token was already spent or revoked: the whole family is now revoked.
    case reused(family: String)
    /// No such token, or it expired.
    case invalid
}

extension SQLiteStore {
    static func decodeUser(from row: Row) -> User {
        User(
            id: row.id("id"),
            email: row["email"],
            name: row["name"],
            version: row["version"],
            createdAt: row.date("created_at"),
            updatedAt: row.date("updated_at")
        )
    }

    public func createUser(
        email: String,
        name: String,
        passwordHash: String,
        context: WriteContext
    ) async throws
        -> WriteResult<User>
    {
        try await perform(context, status: 201) { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM users WHERE email = ?", arguments: [email]) == true {
                throw StorageError.conflict("an account with email '\(email)' already exists")
            }
            let user = User(
                id: .generate(),
                email: email,
                name: name,
                createdAt: context.now,
                updatedAt: context.now
            )
            try db.execute(
                sql: """
                    INSERT INTO users (id, email, name, password_hash, version, created_at, updated_at)
                    VALUES (?, ?, ?, ?, 1, ?, ?)
                    """,
                arguments: [
                    user.id.rawValue, email, name, passwordHash, context.now.millisecondsSince1970,
                    context.now.millisecondsSince1970,
                ]
            )
            return user
        }
    }

    public func credentials(email: String) async throws -> UserCredentials? {
        try await database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM users WHERE email = ?", arguments: [email]).map {
                UserCredentials(user: Self.decodeUser(from: $0), passwordHash: $0["password_hash"])
            }
        }
    }

    public func user(id: UserID) async throws -> User? {
        try await database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM users WHERE id = ?", arguments: [id.rawValue]).map(
                Self.decodeUser(from:)
            )
        }
    }

    public func userByEmail(_ email: String) async throws -> User? {
        try await database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM users WHERE email = ?", arguments: [email]).map(
                Self.decodeUser(from:)
            )
        }
    }

    public func updateUser(
        _ request: UpdateUserRequest,
        ifVersion: Int?,
        context: WriteContext
    ) async throws
        -> WriteResult<User>
    {
        let actor = try context.requireActor()
        return try await perform(context) { db in
            guard
                var user = try Row.fetchOne(db, sql: "SELECT * FROM users WHERE id = ?", arguments: [actor.rawValue])
                    .map(Self.decodeUser(from:))
            else { throw StorageError.notFound("user") }
            try Self.checkVersion(expected: ifVersion, actual: user.version, current: user)
            if let name = request.name { user.name = name }
            user.version += 1
            user.updatedAt = context.now
            try db.execute(
                sql: "UPDATE users SET name = ?, version = ?, updated_at = ? WHERE id = ?",
                arguments: [user.name, user.version, context.now.millisecondsSince1970, user.id.rawValue]
            )
            try Self.appendEvent(db, type: .userUpdated, workspaceID: nil, payload: user, context: context)
            return user
        }
    }

    // MARK: Refresh tokens

    public func storeRefreshToken(hash: String, family: String, user: UserID, expiresAt: Date, now: Date) async throws {
        try await database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at)
                    VALUES (?, ?, ?, ?, ?)
                    """,
                arguments: [hash, family, user.rawValue, now.millisecondsSince1970, expiresAt.millisecondsSince1970]
            )
        }
    }

    /// Spends a refresh token; a second presentation of a spent token revokes its family.
    public func consumeRefreshToken(hash: String, now: Date) async throws -> RefreshOutcome {
        try await database.write { db in
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: "SELECT * FROM refresh_tokens WHERE token_hash = ?",
                    arguments: [hash]
                )
            else { return .invalid }
            let family: String = row["family_id"]
            if row["used_at"] as Int64? != nil || row["revoked_at"] as Int64? != nil {
                try db.execute(
                    sql: "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE family_id = ?",
                    arguments: [now.millisecondsSince1970, family]
                )
                return .reused(family: family)
            }
            if (row["expires_at"] as Int64) <= now.millisecondsSince1970 {
                return .invalid
            }
            try db.execute(
                sql: "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?",
                arguments: [now.millisecondsSince1970, hash]
            )
            return .rotated(user: row.id("user_id"), family: family)
        }
    }

    public func refreshTokenOwner(hash: String) async throws -> UserID? {
        try await database.read { db in
            try String.fetchOne(db, sql: "SELECT user_id FROM refresh_tokens WHERE token_hash = ?", arguments: [hash])
                .map(UserID.init(unchecked:))
        }
    }

    /// Revokes the family of a refresh token (logout). Returns whether the token was known.
    public func revokeRefreshFamily(ofTokenHash hash: String, user: UserID, now: Date) async throws -> Bool {
        try await database.write { db in
            guard
                let family = try String.fetchOne(
                    db,
                    sql: "SELECT family_id FROM refresh_tokens WHERE token_hash = ? AND user_id = ?",
                    arguments: [hash, user.rawValue]
                )
            else { return false }
            try db.execute(
                sql: "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE family_id = ?",
                arguments: [now.millisecondsSince1970, family]
            )
            return true
        }
    }

    // MARK: Personal access tokens

    static func accessToken(from row: Row) -> AccessToken {
        AccessToken(
            id: row.id("id"),
            name: row["name"],
            createdAt: row.date("created_at"),
            expiresAt: row.optionalDate("expires_at"),
            lastUsedAt: row.optionalDate("last_used_at")
        )
    }

    public func createAccessToken(
        name: String,
        secret: String,
        hash: String,
        expiresAt: Date?,
        context: WriteContext
    )
        async throws -> WriteResult<AccessToken>
    {
        let actor = try context.requireActor()
        return try await perform(context, status: 201) { db in
            let token = AccessToken(
                id: .generate(),
                name: name,
                token: secret,
                createdAt: context.now,
                expiresAt: expiresAt
            )
            try db.execute(
                sql: """
                    INSERT INTO access_tokens (id, user_id, name, token_hash, created_at, expires_at)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    token.id.rawValue, actor.rawValue, name, hash, context.now.millisecondsSince1970,
                    expiresAt?.millisecondsSince1970,
                ]
            )
            return token
        }
    }

    public func accessTokens(user: UserID) async throws -> [AccessToken] {
        try await database.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM access_tokens WHERE user_id = ? ORDER BY created_at, rowid",
                arguments: [user.rawValue]
            ).map(Self.accessToken(from:))
        }
    }

    /// Deletes one of the caller's tokens; returns its hash so caches can forget it.
    public func deleteAccessToken(
        id: AccessTokenID,
        context: WriteContext
    ) async throws -> (WriteResult<EmptyBody>, String?) {
        let actor = try context.requireActor()
        let hash = Mutex<String?>(nil)
        let result = try await perform(context, status: 204) { db in
            guard
                let tokenHash = try String.fetchOne(
                    db,
                    sql: "SELECT token_hash FROM access_tokens WHERE id = ? AND user_id = ?",
                    arguments: [id.rawValue, actor.rawValue]
                )
            else { throw StorageError.notFound("access token") }
            try db.execute(sql: "DELETE FROM access_tokens WHERE id = ?", arguments: [id.rawValue])
            hash.withLock { $0 = tokenHash }
            return EmptyBody()
        }
        return (result, hash.withLock { $0 })
    }

    /// The user a personal access token belongs to, when it is live.
    public func principal(forAccessTokenHash hash: String, now: Date) async throws -> (UserID, AccessTokenID)? {
        try await database.read { db in
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: "SELECT id, user_id, expires_at FROM access_tokens WHERE token_hash = ?",
                    arguments: [hash]
                )
            else { return nil }
            if let expires = row["expires_at"] as Int64?, expires <= now.millisecondsSince1970 { return nil }
            return (row.id("user_id"), row.id("id"))
        }
    }

    public func touchAccessToken(id: AccessTokenID, now: Date) async throws {
        try await database.write { db in
            try db.execute(
                sql: "UPDATE access_tokens SET last_used_at = ? WHERE id = ?",
                arguments: [now.millisecondsSince1970, id.rawValue]
            )
        }
    }
}

/// The empty answer of a 204.
public struct EmptyBody: Codable, Sendable, Hashable {
    public init() {}
}
