import AsyncHTTPClient
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import PyAirtableModels
import ReferenceServerTesting
import TestSupport
import Testing

@testable import ReferenceServer

@Suite("Auth throttles and the password pool", .timeLimit(.minutes(15)))
struct AuthThrottleTests {
    static func configuration(
        _ directory: String,
        clock: ManualWallClock,
        throttle: AuthThrottleConfiguration = .forTests,
        passwordHashing: PasswordHashingConfiguration = .init(),
        bcryptCost: UInt8 = 4,
        trustedProxies: [String] = []
    ) -> ServerConfiguration {
        var configuration = Harness.configuration(dataDirectory: directory, clock: clock)
        configuration.auth.throttle = throttle
        configuration.auth.passwordHashing = passwordHashing
        configuration.auth.bcryptCost = bcryptCost
        configuration.trustedProxies = trustedProxies
        return configuration
    }

    static func throttle(
        signInPerAccount: AuthThrottleConfiguration.Limit = .init(attempts: 100_000, period: 60),
        signInPerAddress: AuthThrottleConfiguration.Limit = .init(attempts: 100_000, period: 60),
        refreshPerAccount: AuthThrottleConfiguration.Limit = .init(attempts: 100_000, period: 60)
    ) -> AuthThrottleConfiguration {
        AuthThrottleConfiguration(
            signInPerAccount: signInPerAccount,
            signInPerAddress: signInPerAddress,
            refreshPerAccount: refreshPerAccount,
            refreshPerAddress: .init(attempts: 100_000, period: 60)
        )
    }

    /// Checks a 429: `Retry-After` in whole seconds within `range`, and the wire error body.
    static func expectRateLimited(
        _ response: APIResponse,
        retryAfter range: ClosedRange<Int>,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(response.status == .tooManyRequests, "\(response.text)", sourceLocation: sourceLocation)
        let seconds = response.headers[.retryAfter].flatMap(Int.init)
        #expect(seconds.map(range.contains) == true, "Retry-After: \(seconds ?? -1)", sourceLocation: sourceLocation)
        #expect(response.error?.error.type == .rateLimited, sourceLocation: sourceLocation)
        #expect(response.error?.error.code == 429, sourceLocation: sourceLocation)
        #expect(response.error?.error.requestID?.isEmpty == false, sourceLocation: sourceLocation)
    }

    @Test("wrong passwords for one account: 429 with Retry-After past the allowance, back once it refills")
    func perAccount() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let configuration = Self.configuration(
            directory.path,
            clock: clock,
            throttle: Self.throttle(signInPerAccount: .init(attempts: 3, period: 60))
        )
        try await Harness.withServer(configuration: configuration) { api, _ in
            let (_, victim) = try await api.register("Victim")
            let (_, bystander) = try await api.register("Bystander")
            for _ in 0..<3 {
                let wrong = try await api.send(
                    .post,
                    "auth/login",
                    json: LoginRequest(email: victim.email, password: "wrong one")
                )
                #expect(wrong.status == .unauthorized)
            }
            let throttled = try await api.send(
                .post,
                "auth/login",
                json: LoginRequest(email: victim.email, password: "wrong one")
            )
            Self.expectRateLimited(throttled, retryAfter: 1...20)
            #expect(throttled.error?.error.message.contains("account") == true)
            // The right password waits too: the allowance counts attempts, not who makes them.
            let right = LoginRequest(email: victim.email, password: "correct horse")
            Self.expectRateLimited(try await api.send(.post, "auth/login", json: right), retryAfter: 1...20)
            // Another account is not affected.
            let other = try await api.send(
                .post,
                "auth/login",
                json: LoginRequest(email: bystander.email, password: "correct horse")
            )
            #expect(other.status == .ok)
            // An unknown email is throttled the same way, so a 429 does not tell accounts apart.
            for _ in 0..<3 {
                _ = try await api.send(
                    .post,
                    "auth/login",
                    json: LoginRequest(email: "nobody@example.com", password: "x")
                )
            }
            let unknown = try await api.send(
                .post,
                "auth/login",
                json: LoginRequest(email: "nobody@example.com", password: "x")
            )
            Self.expectRateLimited(unknown, retryAfter: 1...20)
            #expect(unknown.error?.error.message == throttled.error?.error.message)

            clock.advance(by: 20)
            #expect(try await api.send(.post, "auth/login", json: right).status == .ok)
        }
    }

    @Test("a successful sign-in gives its attempt back: signing in often is never throttled")
    func successesDoNotCount() async throws {
        let directory = try TemporaryDirectory()
        let configuration = Self.configuration(
            directory.path,
            clock: ManualWallClock(),
            throttle: Self.throttle(signInPerAccount: .init(attempts: 2, period: 300))
        )
        try await Harness.withServer(configuration: configuration) { api, _ in
            let (_, user) = try await api.register()
            for _ in 0..<8 {
                let login = try await api.send(
                    .post,
                    "auth/login",
                    json: LoginRequest(email: user.email, password: "correct horse")
                )
                #expect(login.status == .ok)
            }
        }
    }

    @Test("spraying emails from one address is throttled; X-Forwarded-For counts only from a trusted proxy")
    func perAddress() async throws {
        let limit = Self.throttle(signInPerAddress: .init(attempts: 4, period: 60))
        let directory = try TemporaryDirectory()
        try await Harness.withServer(
            configuration: Self.configuration(directory.path, clock: ManualWallClock(), throttle: limit)
        ) { api, _ in
            for index in 0..<4 {
                let login = LoginRequest(email: "spray\(index)@example.com", password: "guess guess")
                #expect(try await api.send(.post, "auth/login", json: login).status == .unauthorized)
            }
            let login = LoginRequest(email: "spray-last@example.com", password: "guess guess")
            let throttled = try await api.send(.post, "auth/login", json: login)
            Self.expectRateLimited(throttled, retryAfter: 1...15)
            #expect(throttled.error?.error.message.contains("address") == true)
            // Registration shares the allowance.
            let register = RegisterRequest(email: "new@example.com", password: "long enough", name: "N")
            Self.expectRateLimited(try await api.send(.post, "auth/register", json: register), retryAfter: 1...15)
            // Not from a trusted proxy: the header is the client's own word, and ignored.
            let spoofed = try await api.send(.post, "auth/login", json: login, headers: [.forwardedFor: "203.0.113.9"])
            Self.expectRateLimited(spoofed, retryAfter: 1...15)
        }

        let proxied = try TemporaryDirectory()
        let configuration = Self.configuration(
            proxied.path,
            clock: ManualWallClock(),
            throttle: limit,
            trustedProxies: ["127.0.0.1", "::1"]
        )
        try await Harness.withServer(configuration: configuration) { api, _ in
            let login = LoginRequest(email: "someone@example.com", password: "guess guess")
            for _ in 0..<4 {
                let answer = try await api.send(
                    .post,
                    "auth/login",
                    json: login,
                    headers: [.forwardedFor: "203.0.113.9"]
                )
                #expect(answer.status == .unauthorized)
            }
            let throttled = try await api.send(
                .post,
                "auth/login",
                json: login,
                headers: [.forwardedFor: "203.0.113.9"]
            )
            Self.expectRateLimited(throttled, retryAfter: 1...15)
            // What the client wrote left of the proxy's entry proves nothing.
            let spoofed = try await api.send(
                .post,
                "auth/login",
                json: login,
                headers: [.forwardedFor: "198.51.100.1, 203.0.113.9"]
            )
            Self.expectRateLimited(spoofed, retryAfter: 1...15)
            // Another client behind the same proxy has its own allowance.
            let other = try await api.send(.post, "auth/login", json: login, headers: [.forwardedFor: "198.51.100.7"])
            #expect(other.status == .unauthorized)
        }
    }

    @Test("refreshes are refused before the token is spent, so the same token works once allowed again")
    func refreshThrottle() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let configuration = Self.configuration(
            directory.path,
            clock: clock,
            throttle: Self.throttle(refreshPerAccount: .init(attempts: 2, period: 60))
        )
        try await Harness.withServer(configuration: configuration) { api, _ in
            let auth = try await api.call(
                .post,
                "auth/register",
                json: RegisterRequest(email: "refresher@example.com", password: "correct horse", name: "R"),
                expect: .created,
                as: AuthResponse.self
            )
            var token = auth.tokens.refreshToken
            for _ in 0..<2 {
                token = try await api.call(
                    .post,
                    "auth/refresh",
                    json: RefreshRequest(refreshToken: token),
                    as: RefreshResponse.self
                ).tokens.refreshToken
            }
            let throttled = try await api.send(.post, "auth/refresh", json: RefreshRequest(refreshToken: token))
            Self.expectRateLimited(throttled, retryAfter: 1...30)
            clock.advance(by: 30)
            let allowed = try await api.send(.post, "auth/refresh", json: RefreshRequest(refreshToken: token))
            #expect(allowed.status == .ok, "\(allowed.text)")
        }
    }

    @Test("an unknown email costs a bcrypt, as a wrong password does, and takes about as long")
    func unknownEmailTiming() async throws {
        let directory = try TemporaryDirectory()
        let configuration = Self.configuration(directory.path, clock: ManualWallClock(), bcryptCost: 8)
        try await Harness.withServer(configuration: configuration) { api, services in
            let (_, user) = try await api.register()
            let wrong = LoginRequest(email: user.email, password: "not the password")
            let unknown = LoginRequest(email: "nobody-\(UUID().uuidString.prefix(6))@example.com", password: "whatever")
            let passwords = services.auth.passwords

            var count = passwords.computationCount
            #expect(try await api.send(.post, "auth/login", json: wrong).status == .unauthorized)
            #expect(passwords.computationCount == count + 1)
            count = passwords.computationCount
            #expect(try await api.send(.post, "auth/login", json: unknown).status == .unauthorized)
            #expect(passwords.computationCount == count + 1)

            // Alternated, so load on the machine falls on both alike; medians, so a stall does not decide.
            var wrongTimes: [Duration] = []
            var unknownTimes: [Duration] = []
            for _ in 0..<9 {
                let clock = ContinuousClock()
                wrongTimes.append(try await clock.measure { _ = try await api.send(.post, "auth/login", json: wrong) })
                unknownTimes.append(
                    try await clock.measure { _ = try await api.send(.post, "auth/login", json: unknown) }
                )
            }
            let wrongMedian = wrongTimes.sorted()[4]
            let unknownMedian = unknownTimes.sorted()[4]
            #expect(unknownMedian * 3 >= wrongMedian, "unknown \(unknownMedian) vs wrong \(wrongMedian)")
            #expect(wrongMedian * 3 >= unknownMedian, "unknown \(unknownMedian) vs wrong \(wrongMedian)")
        }
    }

    @Test("a burst of sign-ins gets 429 and 503 with Retry-After, never an unbounded queue, while /health answers")
    func burst() async throws {
        let directory = try TemporaryDirectory()
        let configuration = Self.configuration(
            directory.path,
            clock: ManualWallClock(),
            throttle: Self.throttle(signInPerAccount: .init(attempts: 5, period: 60)),
            passwordHashing: .init(threads: 1, maximumPending: 2),
            bcryptCost: 10
        )
        try await Harness.withServer(configuration: configuration) { api, services in
            let (owner, victim) = try await api.register()
            let port = try #require(api.client.port)
            // File bytes are read on the I/O thread pool, which bcrypt used to share.
            let file = try await owner.upload(Array(repeating: 7, count: 64 * 1024), name: "probe.bin")
            let probe = Probe(port: port, token: try #require(owner.token), file: file.id)

            // One account, many wrong passwords at once: the account's allowance answers most.
            let accountBurst = try await Self.burst(port: port, count: 20) { _ in
                LoginRequest(email: victim.email, password: "wrong password")
            } whileProbing: {
                try await probe.latencies()
            }
            #expect(accountBurst.statuses.allSatisfy { [401, 429, 503].contains($0.code) })
            #expect(accountBurst.statuses.filter { $0.code == 429 }.count >= 15)
            #expect(
                accountBurst.statuses.filter { $0.code == 429 }.allSatisfy { $0.retryAfter.map { $0 >= 1 } == true }
            )

            // Many accounts at once: past the pool's queue of 2, 503 at once rather than waiting.
            let before = services.auth.passwords.computationCount
            let poolBurst = try await Self.burst(port: port, count: 24) { index in
                LoginRequest(email: "burst\(index)@example.com", password: "wrong password")
            } whileProbing: {
                try await probe.latencies()
            }
            let busy = poolBurst.statuses.filter { $0.code == 503 }
            #expect(poolBurst.statuses.allSatisfy { [401, 503].contains($0.code) })
            #expect(!busy.isEmpty)
            #expect(busy.allSatisfy { $0.retryAfter.map { $0 >= 1 } == true && $0.type == .server })
            let checked = services.auth.passwords.computationCount - before
            #expect(checked == poolBurst.statuses.filter { $0.code == 401 }.count)

            // Bounded generously: in a full parallel test run every request of the process waits on
            // the same two cores; a starved route would not answer at all while the burst lasts.
            for latencies in [accountBurst.probes, poolBurst.probes] {
                #expect(latencies.count == 10)
                #expect(latencies.allSatisfy { $0 < .seconds(20) }, "/health and download latencies: \(latencies)")
            }
        }
    }

    struct Answer: Sendable {
        var code: Int
        var retryAfter: Int?
        var type: ErrorType?
    }

    /// Sends `count` sign-ins at once (each its own request), and runs `probe` meanwhile.
    static func burst(
        port: Int,
        count: Int,
        _ body: @escaping @Sendable (Int) -> LoginRequest,
        whileProbing probe: @escaping @Sendable () async throws -> [Duration]
    ) async throws -> (statuses: [Answer], probes: [Duration]) {
        try await withThrowingTaskGroup(of: ([Answer], [Duration]).self) { group in
            group.addTask { ([], try await probe()) }
            for index in 0..<count {
                group.addTask {
                    var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/v1/auth/login")
                    request.method = .POST
                    request.headers.add(name: "Content-Type", value: "application/json")
                    request.body = .bytes(ByteBuffer(bytes: try JSONCoding.encoder.encode(body(index))))
                    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
                    let bytes = try await response.body.collect(upTo: 1 << 20)
                    let error = try? JSONCoding.decoder.decode(ErrorResponse.self, from: Data(bytes.readableBytesView))
                    let answer = Answer(
                        code: Int(response.status.code),
                        retryAfter: response.headers.first(name: "Retry-After").flatMap(Int.init),
                        type: error?.error.type
                    )
                    return ([answer], [])
                }
            }
            var statuses: [Answer] = []
            var probes: [Duration] = []
            for try await (answers, latencies) in group {
                statuses += answers
                probes += latencies
            }
            return (statuses, probes)
        }
    }

    /// `GET /health` and a file download, five times each, one after another, each timed, on a
    /// client of their own: the burst's requests fill the shared client's connections to the
    /// server, and waiting for one of those would be timed too.
    struct Probe: Sendable {
        var port: Int
        var token: String
        var file: FileID

        func latencies() async throws -> [Duration] {
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
            do {
                var latencies: [Duration] = []
                for _ in 0..<5 {
                    latencies.append(try await timed(client, "/health", expectBytes: nil))
                    latencies.append(try await timed(client, "/api/v1/files/\(file)/content", expectBytes: 64 * 1024))
                }
                try await client.shutdown()
                return latencies
            } catch {
                try? await client.shutdown()
                throw error
            }
        }

        private func timed(_ client: HTTPClient, _ path: String, expectBytes: Int?) async throws -> Duration {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            return try await ContinuousClock().measure {
                let response = try await client.execute(request, timeout: .seconds(30))
                #expect(response.status.code == 200, "\(path)")
                let body = try await response.body.collect(upTo: 1 << 20)
                if let expectBytes { #expect(body.readableBytes == expectBytes) }
            }
        }
    }
}

@Suite("Rate limit tables and client addresses", .timeLimit(.minutes(15)))
struct RateLimitTableTests {
    @Test("a key regains its attempts evenly: throttled for the time one attempt takes to come back, never for good")
    func refills() {
        let table = RateLimitTable(limit: .init(attempts: 3, period: 30), maximumKeys: 10)
        let start = Date(timeIntervalSince1970: 1_000_000)
        for _ in 0..<3 { #expect(table.take("victim", now: start) == nil) }
        let wait = table.take("victim", now: start)
        #expect(wait.map { abs($0 - 10) < 0.001 } == true)
        #expect(table.take("victim", now: start.addingTimeInterval(9)) != nil)
        #expect(table.take("victim", now: start.addingTimeInterval(10.5)) == nil)
        #expect(table.take("victim", now: start.addingTimeInterval(10.6)) != nil)
        table.refund("victim", now: start.addingTimeInterval(10.6))
        #expect(table.take("victim", now: start.addingTimeInterval(10.6)) == nil)
        // A clock that steps back does not add attempts.
        #expect(table.take("victim", now: start) != nil)
    }

    @Test("spraying keys keeps the table bounded and cannot reset a throttled key; refilled entries make room")
    func bounded() {
        let table = RateLimitTable(limit: .init(attempts: 3, period: 30), maximumKeys: 100)
        let start = Date(timeIntervalSince1970: 1_000_000)
        for _ in 0..<3 { _ = table.take("victim", now: start) }
        #expect(table.take("victim", now: start) != nil)
        var refused = 0
        for index in 0..<10_000 where table.take("spray-\(index)", now: start.addingTimeInterval(1)) != nil {
            refused += 1
        }
        #expect(table.count == 100)
        // Keys past the table share one allowance: 3 attempts among all of them.
        #expect(refused == 10_000 - 99 - 3)
        #expect(table.take("victim", now: start.addingTimeInterval(1)) != nil)

        // Everything has refilled a period later: the sweep drops it, the victim included.
        let later = start.addingTimeInterval(40)
        #expect(table.take("newcomer", now: later) == nil)
        #expect(table.count == 1)
        #expect(table.take("victim", now: later) == nil)
    }

    @Test("IPv6 clients count per /64, IPv4-mapped addresses as IPv4, and proxies only when trusted")
    func addresses() throws {
        func address(_ text: String) throws -> ClientAddress? {
            ClientAddress(try SocketAddress(ipAddress: text, port: 1))
        }
        #expect(try address("2001:db8:1:2::1") == address("2001:db8:1:2:ffff::9"))
        #expect(try address("2001:db8:1:2::1") != address("2001:db8:1:3::1"))
        #expect(try address("::ffff:192.0.2.1") == address("192.0.2.1"))
        #expect(try address("192.0.2.1")?.description == "192.0.2.1")

        let proxies = try TrustedProxies(["10.0.0.1", "10.0.0.2"])
        let proxy = try SocketAddress(ipAddress: "10.0.0.1", port: 1)
        let stranger = try SocketAddress(ipAddress: "192.0.2.50", port: 1)
        #expect(proxies.client(peer: stranger, forwardedFor: "198.51.100.1") == ClientAddress(stranger))
        #expect(proxies.client(peer: proxy, forwardedFor: nil) == ClientAddress(proxy))
        #expect(try proxies.client(peer: proxy, forwardedFor: "198.51.100.1, 10.0.0.2") == address("198.51.100.1"))
        #expect(try proxies.client(peer: proxy, forwardedFor: "203.0.113.5, 198.51.100.1") == address("198.51.100.1"))
        #expect(proxies.client(peer: proxy, forwardedFor: "not an address") == ClientAddress(proxy))
        #expect(throws: ServerConfigurationError.self) { try TrustedProxies(["proxy.example.com"]) }
    }
}
