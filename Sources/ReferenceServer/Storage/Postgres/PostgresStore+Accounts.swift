import Foundation
import PostgresNIO
import PyAirtableModels
import Synchronization

extension PostgresStore: AccountRepository {
    static func decodeUser(from row: PostgresRandomAccessRow) throws -> User {
        User(
            id: try row.id("id"),
            email: try row.get("email"),
            name: try row.get("name"),
            version: try row.get("version", as: Int.self),
            createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at")
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
        try await perform(context, status: 201) { transaction in
            let user = User(id: .generate(), email: email, name: name, createdAt: context.now, updatedAt: context.now)
            // The unique index on lower(email) decides between concurrent registrations.
            let inserted = try await transaction.changes(
                """
                INSERT INTO users (id, email, name, password_hash, version, created_at, updated_at)
                VALUES (\(user.id.rawValue), \(email), \(name), \(passwordHash), 1,
                    \(context.now.millisecondsSince1970), \(context.now.millisecondsSince1970))
                ON CONFLICT DO NOTHING RETURNING 1
                """
            )
            guard inserted == 1 else {
                throw StorageError.conflict("an account with email '\(email)' already exists")
            }
            return user
        }
    }

    public func credentials(email: String) async throws -> UserCredentials? {
        try await database.read { transaction in
            try await transaction.row("SELECT * FROM users WHERE lower(email) = lower(\(email))").map {
                UserCredentials(user: try Self.decodeUser(from: $0), passwordHash: try $0.get("password_hash"))
            }
        }
    }

    public func user(id: UserID) async throws -> User? {
        try await database.read { transaction in
            try await transaction.row("SELECT * FROM users WHERE id = \(id.rawValue)").map(Self.decodeUser(from:))
        }
    }

    public func userByEmail(_ email: String) async throws -> User? {
        try await database.read { transaction in
            try await transaction.row("SELECT * FROM users WHERE lower(email) = lower(\(email))").map(
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
        return try await perform(context) { transaction in
            guard
                var user = try await transaction.row(
                    "SELECT * FROM users WHERE id = \(actor.rawValue) FOR UPDATE"
                ).map(Self.decodeUser(from:))
            else { throw StorageError.notFound("user") }
            try Self.checkVersion(expected: ifVersion, actual: user.version, current: user)
            if let name = request.name { user.name = name }
            user.version += 1
            user.updatedAt = context.now
            try await transaction.execute(
                """
                UPDATE users SET name = \(user.name), version = \(user.version),
                    updated_at = \(context.now.millisecondsSince1970)
                WHERE id = \(user.id.rawValue)
                """
            )
            try transaction.appendEvent(type: .userUpdated, workspaceID: nil, payload: user, context: context)
            return user
        }
    }

    // MARK: Refresh tokens

    public func storeRefreshToken(hash: String, family: String, user: UserID, expiresAt: Date, now: Date) async throws {
        try await database.write { transaction in
            try await transaction.execute(
                """
                INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at)
                VALUES (\(hash), \(family), \(user.rawValue), \(now.millisecondsSince1970),
                    \(expiresAt.millisecondsSince1970))
                """
            )
        }
    }

    /// Spends a refresh token; a second presentation of a spent token revokes its family. The
    /// token's row is locked, so two instances presented the same token rotate it once.
    public func consumeRefreshToken(hash: String, now: Date) async throws -> RefreshOutcome {
        try await database.write { transaction in
            guard
                let row = try await transaction.row(
                    "SELECT * FROM refresh_tokens WHERE token_hash = \(hash) FOR UPDATE"
                )
            else { return .invalid }
            let family = try row.get("family_id", as: String.self)
            if try row.get("used_at", as: Int64?.self) != nil || row.get("revoked_at", as: Int64?.self) != nil {
                try await transaction.execute(
                    """
                    UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, \(now.millisecondsSince1970))
                    WHERE family_id = \(family)
                    """
                )
                return .reused(family: family)
            }
            if try row.get("expires_at", as: Int64.self) <= now.millisecondsSince1970 {
                return .invalid
            }
            try await transaction.execute(
                "UPDATE refresh_tokens SET used_at = \(now.millisecondsSince1970) WHERE token_hash = \(hash)"
            )
            return .rotated(user: try row.id("user_id"), family: family)
        }
    }

    public func refreshTokenOwner(hash: String) async throws -> UserID? {
        try await database.read { transaction in
            try await transaction.scalar(
                "SELECT user_id FROM refresh_tokens WHERE token_hash = \(hash)",
                as: String.self
            ).map(UserID.init(unchecked:))
        }
    }

    /// Revokes the family of a refresh token (logout). Returns whether the token was known.
    public func revokeRefreshFamily(ofTokenHash hash: String, user: UserID, now: Date) async throws -> Bool {
        try await database.write { transaction in
            guard
                let family = try await transaction.scalar(
                    "SELECT family_id FROM refresh_tokens WHERE token_hash = \(hash) AND user_id = \(user.rawValue)",
                    as: String.self
                )
            else { return false }
            try await transaction.execute(
                """
                UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, \(now.millisecondsSince1970))
                WHERE family_id = \(family)
                """
            )
            return true
        }
    }

    // MARK: Personal access tokens

    static func accessToken(from row: PostgresRandomAccessRow) throws -> AccessToken {
        AccessToken(
            id: try row.id("id"),
            name: try row.get("name"),
            createdAt: try row.date("created_at"),
            expiresAt: try row.optionalDate("expires_at"),
            lastUsedAt: try row.optionalDate("last_used_at")
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
        return try await perform(context, status: 201) { transaction in
            let token = AccessToken(
                id: .generate(),
                name: name,
                token: secret,
                createdAt: context.now,
                expiresAt: expiresAt
            )
            try await transaction.execute(
                """
                INSERT INTO access_tokens (id, user_id, name, token_hash, created_at, expires_at)
                VALUES (\(token.id.rawValue), \(actor.rawValue), \(name), \(hash), \(context.now.millisecondsSince1970),
                    \(expiresAt?.millisecondsSince1970))
                """
            )
            return token
        }
    }

    public func accessTokens(user: UserID) async throws -> [AccessToken] {
        try await database.read { transaction in
            try await transaction.rows(
                "SELECT * FROM access_tokens WHERE user_id = \(user.rawValue) ORDER BY created_at, ord"
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
        let result = try await perform(context, status: 204) { transaction in
            guard
                let tokenHash = try await transaction.scalar(
                    """
                    DELETE FROM access_tokens WHERE id = \(id.rawValue) AND user_id = \(actor.rawValue)
                    RETURNING token_hash
                    """,
                    as: String.self
                )
            else { throw StorageError.notFound("access token") }
            hash.withLock { $0 = tokenHash }
            return EmptyBody()
        }
        return (result, hash.withLock { $0 })
    }

    /// The user a personal access token belongs to, when it is live.
    public func principal(forAccessTokenHash hash: String, now: Date) async throws -> (UserID, AccessTokenID)? {
        try await database.read { transaction in
            guard
                let row = try await transaction.row(
                    "SELECT id, user_id, expires_at FROM access_tokens WHERE token_hash = \(hash)"
                )
            else { return nil }
            if let expires = try row.get("expires_at", as: Int64?.self), expires <= now.millisecondsSince1970 {
                return nil
            }
            return (try row.id("user_id"), try row.id("id"))
        }
    }

    public func touchAccessToken(id: AccessTokenID, now: Date) async throws {
        // Not a mutation of record: outside the group commit, on any connection.
        try await database.read { transaction in
            try await transaction.execute(
                "UPDATE access_tokens SET last_used_at = \(now.millisecondsSince1970) WHERE id = \(id.rawValue)"
            )
        }
    }
}
