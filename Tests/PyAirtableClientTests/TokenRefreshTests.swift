import Foundation
import HTTPTypes
import PyAirtableClient
import PyAirtableModels
import PyAirtableTesting
import ReferenceServer
import ReferenceServerTesting
import TestSupport
import Testing

@Suite("Access-token refresh", .timeLimit(.minutes(15)))
struct TokenRefreshTests {
    static let refreshPath = "/api/v1/auth/refresh"

    /// Runs 100 `users.me()` calls at once (dedup off, so each is its own request).
    static func hundredCalls(_ client: PyAirtableClient) async throws -> [User] {
        try await withThrowingTaskGroup(of: User.self) { group in
            for _ in 0..<100 { group.addTask { try await client.users.me() } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }

    /// Whether the refreshes were one flight: exactly one answered 2xx, and it was the last; any
    /// before it failed without an answer or with a 5xx. A refresh that timed out on a loaded machine
    /// is sent again by the retry middleware with the same `Idempotency-Key` (the server answers a
    /// repeat from its key store), or by the retry of the requests that waited on it, as a new flight
    /// with a new key — one flight at a time. Two flights at once would both send the same refresh
    /// token, and the server would answer the second with a 401 and sign the session out.
    static func expectOneFlight(_ mock: MockTransport, refreshCount: Int) {
        let refreshes = mock.exchanges.filter { $0.request.path == refreshPath }
        let outcomes = refreshes.map { exchange in
            exchange.response.map { "\($0.status.code)" } ?? "error: \(exchange.error.map { "\($0)" } ?? "none")"
        }
        var keys: [String] = []
        for refresh in refreshes {
            let key = refresh.request.headerFields[HTTPField.Name("Idempotency-Key")!] ?? ""
            if keys.last != key { keys.append(key) }
        }
        #expect(!keys.contains(""), "every refresh carries an idempotency key")
        #expect(Set(keys).count == keys.count, "a key is one flight, its retries sent back to back: \(outcomes)")
        #expect(refreshCount == keys.count, "refreshes sent: \(outcomes)")
        #expect(refreshes.last?.response?.status.code == 200, "refreshes sent: \(outcomes)")
        #expect(
            refreshes.dropLast().allSatisfy { $0.response == nil || $0.response!.status.code >= 500 },
            "only a refresh that failed is followed by another: \(outcomes)"
        )
    }

    // A hundred calls at once, and as many again after the refresh: they take turns with the
    // other tests that load the machine on their own (both timed out together in runs beside two
    // CPU hogs, each call's four attempts unanswered for 30 s).
    @Test("100 concurrent calls with an access token the server considers expired cause exactly one refresh", .heavy)
    func singleFlightRefreshOn401() async throws {
        let time = ServerTime()
        try await TestServer.withRunning(configure: time.install) { server in
            let demo = try await server.seedDemo()
            let mock = MockTransport(forwardingTo: AsyncHTTPClientTransport())
            try await Fixtures.withClient(
                server,
                token: nil,
                transport: mock,
                configure: {
                    $0.credentials = .store(InMemoryTokenStore())
                    $0.deduplicateRequests = false
                }
            ) { client in
                let login = try await client.auth.login(email: demo.email, password: demo.password)
                #expect(try await client.users.me().email == demo.email)

                // The server's clock moves past the 15-minute lifetime; the client's does not, so
                // the client finds out from the 401s.
                time.advance(by: 20 * 60)
                let users = try await Self.hundredCalls(client)

                #expect(users.count == 100)
                #expect(users.allSatisfy { $0.id == login.user.id })
                Self.expectOneFlight(mock, refreshCount: await client.refreshCount)
                let rejected = mock.exchanges.filter { $0.response?.status == .unauthorized }
                #expect(!rejected.isEmpty, "the old token was sent and refused")
                #expect(rejected.allSatisfy { $0.request.path == "/api/v1/users/me" })
                let credentials = try #require(try await client.credentials())
                #expect(credentials.accessToken != login.tokens.accessToken)
                #expect(credentials.refreshToken != login.tokens.refreshToken, "refresh tokens rotate")
            }
        }
    }

    // A hundred calls at once, and as many again after the refresh: they take turns with the
    // other tests that load the machine on their own (both timed out together in runs beside two
    // CPU hogs, each call's four attempts unanswered for 30 s).
    @Test("100 concurrent calls with credentials past their expiry refresh once, before sending", .heavy)
    func singleFlightRefreshBeforeExpiry() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let store = InMemoryTokenStore()
            let serverKey = URL(string: server.url)!.absoluteString
            _ = try await Fixtures.withClient(server, token: nil, configure: { $0.credentials = .store(store) }) {
                try await $0.auth.login(email: demo.email, password: demo.password)
            }
            var saved = try #require(try await store.load(server: serverKey))
            saved.expiresAt = Date().addingTimeInterval(-1)
            try await store.save(saved, server: serverKey)

            let mock = MockTransport(forwardingTo: AsyncHTTPClientTransport())
            try await Fixtures.withClient(
                server,
                token: nil,
                transport: mock,
                configure: {
                    $0.credentials = .store(store)
                    $0.deduplicateRequests = false
                }
            ) { client in
                let users = try await Self.hundredCalls(client)
                #expect(users.count == 100)
                Self.expectOneFlight(mock, refreshCount: await client.refreshCount)
                #expect(mock.exchanges.allSatisfy { $0.response?.status != .unauthorized })
                let stored = try #require(try await store.load(server: serverKey))
                #expect(stored.accessToken != saved.accessToken, "the refreshed tokens are written back")
                #expect(try #require(stored.expiresAt) > Date().addingTimeInterval(10 * 60))
            }
        }
    }

    @Test("a dead refresh token signs the client out with .notAuthenticated instead of looping")
    func deadRefreshTokenSignsOut() async throws {
        let time = ServerTime()
        try await TestServer.withRunning(configure: time.install) { server in
            let demo = try await server.seedDemo()
            let mock = MockTransport(forwardingTo: AsyncHTTPClientTransport())
            try await Fixtures.withClient(
                server,
                token: nil,
                transport: mock,
                configure: {
                    $0.credentials = .store(InMemoryTokenStore())
                }
            ) { client in
                try await client.auth.login(email: demo.email, password: demo.password)
                // Past both the access and the refresh token lifetimes.
                time.advance(by: 31 * 24 * 3600)
                await #expect(throws: PyAirtableError.notAuthenticated) { try await client.users.me() }
                #expect(try await client.credentials() == nil)
                #expect(mock.requests(path: Self.refreshPath).count == 1)
            }
        }
    }
}
