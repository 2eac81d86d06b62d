import Crypto
import Foundation
import HTTPTypes
import PyAirtableModels

/// Hands out the bearer token for each request and refreshes access tokens: ahead of expiry, and
/// after a 401 — once for all concurrent callers (single flight).
actor TokenManager {
    typealias Refresh = @Sendable (String) async throws -> Tokens

    private let store: any TokenStore
    private let server: String
    private let fixedToken: String?
    private let refreshLeeway: TimeInterval
    private let now: @Sendable () -> Date
    private let refresh: Refresh
    private var cached: StoredCredentials?
    private var loaded = false
    private var inFlight: Task<String?, any Error>?
    /// How many refreshes ran: tests assert single flight with it.
    private(set) var refreshCount = 0

    init(
        store: any TokenStore,
        server: String,
        fixedToken: String?,
        refreshLeeway: TimeInterval = 60,
        now: @escaping @Sendable () -> Date = { Date() },
        refresh: @escaping Refresh
    ) {
        self.store = store
        self.server = server
        self.fixedToken = fixedToken
        self.refreshLeeway = refreshLeeway
        self.now = now
        self.refresh = refresh
    }

    private func credentials() async throws -> StoredCredentials? {
        if !loaded {
            cached = try await store.load(server: server)
            loaded = true
        }
        return cached
    }

    /// The token for the next request, refreshed first when it is about to expire.
    func token() async throws -> String? {
        if let fixedToken { return fixedToken }
        guard let credentials = try await credentials() else { return nil }
        if let pat = credentials.personalAccessToken { return pat }
        guard let access = credentials.accessToken else { return nil }
        if let expiresAt = credentials.expiresAt, expiresAt.timeIntervalSince(now()) < refreshLeeway,
            credentials.refreshToken != nil
        {
            return try await refreshed(replacing: access)
        }
        return access
    }

    /// A new access token after `rejected` got a 401; `nil` when there is nothing to refresh with.
    /// Concurrent callers share one refresh; a caller whose token was already replaced gets the
    /// replacement without another refresh.
    func refreshed(replacing rejected: String) async throws -> String? {
        if fixedToken != nil { return nil }
        if let inFlight { return try await inFlight.value }
        guard let credentials = try await credentials(), credentials.personalAccessToken == nil else { return nil }
        if let current = credentials.accessToken, current != rejected { return current }
        guard let refreshToken = credentials.refreshToken else { return nil }
        let refresh = self.refresh
        let task = Task { () -> String? in
            let tokens = try await refresh(refreshToken)
            var updated = credentials
            updated.accessToken = tokens.accessToken
            updated.refreshToken = tokens.refreshToken
            updated.expiresAt = self.now().addingTimeInterval(TimeInterval(tokens.expiresIn))
            try await self.update(updated)
            return tokens.accessToken
        }
        inFlight = task
        refreshCount += 1
        defer { inFlight = nil }
        do {
            return try await task.value
        } catch let error as PyAirtableError where error == .unauthorized {
            // The refresh token is dead (expired, revoked, reused): sign out rather than loop.
            try await clear()
            throw PyAirtableError.notAuthenticated("the session expired; sign in again")
        }
    }

    func update(_ credentials: StoredCredentials) async throws {
        cached = credentials
        loaded = true
        try await store.save(credentials, server: server)
    }

    func clear() async throws {
        cached = nil
        loaded = true
        try await store.remove(server: server)
    }

    func current() async throws -> StoredCredentials? {
        try await credentials()
    }

    /// Who the cache's entries belong to: the signed-in user's id, else a digest of the token (never
    /// the token itself), else `anonymous`. Two accounts never share an identity.
    func cacheIdentity() async -> String {
        if let fixedToken { return tokenIdentity(fixedToken) }
        return await storedCacheIdentity()
    }

    private func storedCacheIdentity() async -> String {
        guard let credentials = try? await credentials() else { return "anonymous" }
        if let pat = credentials.personalAccessToken { return tokenIdentity(pat) }
        if let userID = credentials.userID { return userID.rawValue }
        if let access = credentials.accessToken { return tokenIdentity(access) }
        return "anonymous"
    }

    /// The last token digested and its identity: reads ask for it every time.
    private var lastIdentity: (token: String, identity: String)?

    private func tokenIdentity(_ token: String) -> String {
        if let lastIdentity, lastIdentity.token == token { return lastIdentity.identity }
        let identity = Self.identity(ofToken: token)
        lastIdentity = (token, identity)
        return identity
    }

    /// `token-` and the first 12 bytes of the token's SHA-256, in hex.
    nonisolated static func identity(ofToken token: String) -> String {
        let hex = Array("0123456789abcdef".utf8)
        var text: [UInt8] = Array("token-".utf8)
        for byte in SHA256.hash(data: Data(token.utf8)).prefix(12) {
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
