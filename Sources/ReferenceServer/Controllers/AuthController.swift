import Foundation
import Hummingbird
import PyAirtableModels

/// `/auth/*` and `/users/me`.
struct AuthController {
    let services: ServerServices
    let store: any AccountRepository & EventLogRepository
    var auth: Authenticator { services.auth }
    var now: Date { services.configuration.now() }

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.post("auth/register", use: register)
        group.post("auth/login", use: login)
        group.post("auth/refresh", use: refresh)
        group.post("auth/logout", use: logout)
        group.post("auth/tokens", use: createToken)
        group.get("auth/tokens", use: listTokens)
        group.delete("auth/tokens/{id}", use: deleteToken)
        group.get("users/me", use: me)
        group.patch("users/me", use: updateMe)
    }

    static func normalizedEmail(_ email: String) throws -> String {
        let trimmed = email.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let parts = trimmed.split(separator: "@", omittingEmptySubsequences: false)
        guard trimmed.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."),
            !trimmed.contains(" ")
        else { throw ServerError.validation("'\(email)' is not an email address", field: "email") }
        return trimmed
    }

    /// The client as the per-address throttles count it.
    func client(_ request: Request, context: AppRequestContext) -> ClientAddress? {
        services.proxies.client(peer: context.remoteAddress, forwardedFor: request.headers[.forwardedFor])
    }

    @Sendable func register(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await request.decodeJSON(as: RegisterRequest.self)
        let email = try Self.normalizedEmail(body.email)
        let name = try InputRules.name(body.name)
        guard body.password.count >= RegisterRequest.minimumPasswordLength else {
            throw ServerError.validation(
                "the password must be at least \(RegisterRequest.minimumPasswordLength) characters",
                field: "password"
            )
        }
        guard body.password.utf8.count <= 72 else {
            throw ServerError.validation("the password must be at most 72 bytes", field: "password")
        }
        let current = now
        try auth.throttle.admit(.signIn, address: client(request, context: context), now: current)
        try auth.throttle.admit(.signIn, account: email, now: current)
        let hash = try await auth.hashPassword(body.password)
        let created = try await store.createUser(
            email: email,
            name: name,
            passwordHash: hash,
            context: context.write(now: current)
        )
        auth.throttle.refundSignIn(account: email, now: current)
        // A replay (same key, same body, so the same password) signs in again: tokens are never stored.
        let user = try created.value ?? JSONCoding.decoder.decode(User.self, from: created.response.body)
        let tokens = try await auth.issueTokens(for: user.id)
        var response = try Response.json(AuthResponse(user: user, tokens: tokens), status: .created)
        if created.response.replayed { response.headers[.idempotentReplayed] = "true" }
        return response
    }

    @Sendable func login(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await request.decodeJSON(as: LoginRequest.self)
        let email = body.email.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let current = now
        try auth.throttle.admit(.signIn, address: client(request, context: context), now: current)
        try auth.throttle.admit(.signIn, account: email, now: current)
        // An unknown email is checked against a hash too: the answer takes as long either way.
        let credentials = try await store.credentials(email: email)
        guard try await auth.verifyPassword(body.password, hash: credentials?.passwordHash),
            let credentials
        else {
            throw ServerError.unauthorized("wrong email or password")
        }
        auth.throttle.refundSignIn(account: email, now: current)
        let tokens = try await auth.issueTokens(for: credentials.user.id)
        return try .json(AuthResponse(user: credentials.user, tokens: tokens))
    }

    @Sendable func refresh(_ request: Request, context: AppRequestContext) async throws -> Response {
        let body = try await request.decodeJSON(as: RefreshRequest.self)
        let current = now
        try auth.throttle.admit(.refresh, address: client(request, context: context), now: current)
        // Counted before the token is spent, so a refused refresh leaves the session intact.
        if let owner = try await store.refreshTokenOwner(hash: Authenticator.hash(body.refreshToken)) {
            try auth.throttle.admit(.refresh, account: owner.rawValue, now: current)
        }
        // A retry of a refresh whose answer was lost gets that answer, rather than presenting the
        // spent token again (which would sign the whole family out).
        let write = context.write(now: current)
        if let stored = try await store.replayedAnswer(context: write) { return .stored(stored) }
        let tokens = try await auth.refresh(body.refreshToken)
        let answer = StoredResponse(
            status: 200,
            body: try JSONCoding.encoder.encode(RefreshResponse(tokens: tokens)),
            eTag: nil,
            replayed: false
        )
        try await store.storeAnswer(answer, context: write)
        return .stored(answer)
    }

    @Sendable func logout(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let body = try await request.decodeJSON(as: RefreshRequest.self)
        _ = try await store.revokeRefreshFamily(
            ofTokenHash: Authenticator.hash(body.refreshToken),
            user: user,
            now: now
        )
        return Response(status: .noContent)
    }

    @Sendable func createToken(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        let body = try await request.decodeJSON(as: CreateAccessTokenRequest.self)
        let name = try InputRules.name(body.name)
        if let expiresIn = body.expiresIn {
            let longest = Int(auth.configuration.maximumPersonalTokenLifetime)
            guard (1...longest).contains(expiresIn) else {
                throw ServerError.validation("expires_in must be 1 to \(longest) seconds", field: "expires_in")
            }
        }
        let secret = Authenticator.newPersonalToken()
        let current = now
        let result = try await store.createAccessToken(
            name: name,
            secret: secret,
            hash: Authenticator.hash(secret),
            expiresAt: body.expiresIn.map { current.addingTimeInterval(TimeInterval($0)) },
            context: context.write(now: current)
        )
        return .stored(result)
    }

    @Sendable func listTokens(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        return try .json(Page(data: try await store.accessTokens(user: user)))
    }

    @Sendable func deleteToken(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        let id: AccessTokenID = try context.id("id", "access token")
        let (result, hash) = try await store.deleteAccessToken(id: id, context: context.write(now: now))
        if let hash { auth.forgetPersonalToken(hash: hash) }
        return .stored(result)
    }

    @Sendable func me(_ request: Request, context: AppRequestContext) async throws -> Response {
        let id = try context.requireUser()
        guard let user = try await store.user(id: id) else { throw ServerError.notFound("user") }
        if request.matchesNoneMatch(version: user.version) { return .notModified(version: user.version) }
        return try .json(user, eTag: VersionTag.format(user.version))
    }

    @Sendable func updateMe(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        var body = try await request.decodeJSON(as: UpdateUserRequest.self)
        body.name = try InputRules.optionalName(body.name)
        return .stored(
            try await store.updateUser(body, ifVersion: try request.ifMatchVersion(), context: context.write(now: now))
        )
    }
}
