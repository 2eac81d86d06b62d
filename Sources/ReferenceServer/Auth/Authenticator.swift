import Crypto
import Foundation
import JWTKit
import PyAirtableModels
import Synchronization

/// The claims of an access token.
struct AccessClaims: JWTPayload {
    var sub: SubjectClaim
    var exp: ExpirationClaim
    var iat: IssuedAtClaim
    var jti: IDClaim

    /// Expiry is checked against the server's injected clock by ``Authenticator``, not here.
    func verify(using algorithm: some JWTAlgorithm) throws {}
}

/// Passwords, access tokens (JWT), refresh tokens with rotation and reuse detection, and personal
/// access tokens.
public final class Authenticator: Sendable {
    public struct Configuration: Sendable {
        /// Access token lifetime.
        public var accessTokenLifetime: TimeInterval = 15 * 60
        /// Refresh token lifetime.
        public var refreshTokenLifetime: TimeInterval = 30 * 24 * 3600
        /// The bcrypt cost (4 to 31): 12 in production; tests lower it to stay fast.
        public var bcryptCost: UInt8 = 12
        /// The threads and the queue bound of password hashing.
        public var passwordHashing: PasswordHashingConfiguration
        /// How often sign-in, registration and refresh may be tried, per account and per address.
        public var throttle: AuthThrottleConfiguration
        /// The longest `expires_in` a personal access token may be created with (10 years by default);
        /// longer is a 422. Without it, a huge value overflowed the stored expiry and stopped the server.
        public var maximumPersonalTokenLifetime: TimeInterval = 10 * 365 * 24 * 3600

        public init(
            accessTokenLifetime: TimeInterval = 15 * 60,
            refreshTokenLifetime: TimeInterval = 30 * 24 * 3600,
            bcryptCost: UInt8 = 12,
            passwordHashing: PasswordHashingConfiguration = .init(),
            throttle: AuthThrottleConfiguration = .init(),
            maximumPersonalTokenLifetime: TimeInterval = 10 * 365 * 24 * 3600
        ) {
            self.accessTokenLifetime = accessTokenLifetime
            self.refreshTokenLifetime = refreshTokenLifetime
            self.bcryptCost = bcryptCost
            self.passwordHashing = passwordHashing
            self.throttle = throttle
            self.maximumPersonalTokenLifetime = maximumPersonalTokenLifetime
        }
    }

    private struct CachedPrincipal {
        var principal: Principal
        var tokenHash: String
        var until: Date
    }

    let configuration: Configuration
    let store: any AccountRepository
    /// bcrypt, on its own threads.
    let passwords: PasswordHasher
    /// The allowances of sign-in, registration and refresh.
    let throttle: AuthThrottle
    private let keys: JWTKeyCollection
    private let now: @Sendable () -> Date
    /// Personal access tokens seen recently, keyed by the token itself, so each request neither
    /// hashes nor reads the database to authenticate. Entries live 30 s; revocation removes them at
    /// once on this server.
    private let patCache = Mutex<[String: CachedPrincipal]>([:])
    private static let patCacheLifetime: TimeInterval = 30
    private static let patCacheLimit = 10_000

    init(
        configuration: Configuration,
        secret: [UInt8],
        store: any AccountRepository,
        now: @escaping @Sendable () -> Date
    ) async {
        self.configuration = configuration
        self.store = store
        self.now = now
        self.passwords = PasswordHasher(configuration: configuration.passwordHashing, cost: configuration.bcryptCost)
        self.throttle = AuthThrottle(configuration: configuration.throttle)
        self.keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
    }

    // MARK: Passwords

    func hashPassword(_ password: String) async throws -> String {
        try await passwords.hash(password)
    }

    /// Whether `password` is the one `hash` was made from. Without a hash (no such account) the
    /// password is checked against one no password matches, so the answer takes as long as for a
    /// wrong password and does not tell which emails have accounts.
    func verifyPassword(_ password: String, hash: String?) async throws -> Bool {
        let matches = try await passwords.verify(password, hash: hash ?? passwords.unmatchableHash)
        return matches && hash != nil
    }

    // MARK: Tokens

    /// Issues an access token and a refresh token; the refresh token joins `family` or starts one.
    func issueTokens(for user: UserID, family: String? = nil) async throws -> Tokens {
        let issuedAt = now()
        let claims = AccessClaims(
            sub: SubjectClaim(value: user.rawValue),
            exp: ExpirationClaim(value: issuedAt.addingTimeInterval(configuration.accessTokenLifetime)),
            iat: IssuedAtClaim(value: issuedAt),
            jti: IDClaim(value: Self.randomToken(bytes: 12))
        )
        let access = try await keys.sign(claims)
        let refresh = "rt_" + Self.randomToken(bytes: 32)
        try await store.storeRefreshToken(
            hash: Self.hash(refresh),
            family: family ?? Self.randomToken(bytes: 12),
            user: user,
            expiresAt: issuedAt.addingTimeInterval(configuration.refreshTokenLifetime),
            now: issuedAt
        )
        return Tokens(accessToken: access, refreshToken: refresh, expiresIn: Int(configuration.accessTokenLifetime))
    }

    /// Rotates a refresh token. A token presented twice revokes its whole family.
    func refresh(_ token: String) async throws -> Tokens {
        switch try await store.consumeRefreshToken(hash: Self.hash(token), now: now()) {
        case .rotated(let user, let family):
            return try await issueTokens(for: user, family: family)
        case .reused:
            throw ServerError.unauthorized(
                "this refresh token was already used: every session it started is now signed out"
            )
        case .invalid:
            throw ServerError.unauthorized("the refresh token is invalid or expired")
        }
    }

    /// The principal of a bearer token: an access JWT or a personal access token.
    func authenticate(bearer token: String) async throws -> Principal? {
        if token.hasPrefix("pat_") { return try await authenticatePersonalToken(token) }
        guard let claims = try? await keys.verify(token, as: AccessClaims.self) else { return nil }
        guard claims.exp.value > now(), let user = UserID(claims.sub.value) else { return nil }
        return Principal(userID: user, credential: .accessToken)
    }

    private func authenticatePersonalToken(_ token: String) async throws -> Principal? {
        let current = now()
        if let cached = patCache.withLock({ $0[token] }), cached.until > current {
            return cached.principal
        }
        let hash = Self.hash(token)
        guard let (user, id) = try await store.principal(forAccessTokenHash: hash, now: current) else {
            patCache.withLock { _ = $0.removeValue(forKey: token) }
            return nil
        }
        let principal = Principal(userID: user, credential: .personalAccessToken(id))
        patCache.withLock { cache in
            if cache.count >= Self.patCacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[token] = CachedPrincipal(
                principal: principal,
                tokenHash: hash,
                until: current.addingTimeInterval(Self.patCacheLifetime)
            )
        }
        try? await store.touchAccessToken(id: id, now: current)
        return principal
    }

    /// Forgets a revoked personal access token at once.
    func forgetPersonalToken(hash: String) {
        patCache.withLock { cache in
            for (token, entry) in cache where entry.tokenHash == hash {
                cache.removeValue(forKey: token)
            }
        }
    }

    /// A new personal access token secret.
    static func newPersonalToken() -> String {
        "pat_" + randomToken(bytes: 30)
    }

    /// Hex SHA-256 of a token: tokens are stored only as hashes.
    static func hash(_ token: String) -> String {
        Hex.sha256(Data(token.utf8))
    }

    /// URL-safe random text with `bytes` bytes of entropy.
    static func randomToken(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        let data = Data((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &generator) })
        return data.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
