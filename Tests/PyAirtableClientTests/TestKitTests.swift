import Foundation
import HTTPTypes
import PyAirtableClient
import PyAirtableModels
import PyAirtableTesting
import ReferenceServer
import Testing

@Suite("TestClock", .timeLimit(.minutes(15)))
struct TestClockTests {
    @Test("a sleeper wakes only when time reaches its deadline")
    func sleepUntilAdvanced() async throws {
        let clock = TestClock()
        let woke = Counter()
        let sleeper = Task {
            try await clock.sleep(for: .seconds(5))
            _ = woke.increment()
        }
        await clock.waitForSleepers(1)
        #expect(clock.pendingDurations() == [.seconds(5)])
        clock.advance(by: .seconds(4))
        #expect(clock.sleepers() == 1)
        #expect(woke.current == 0)
        clock.advance(by: .seconds(1))
        try await sleeper.value
        #expect(woke.current == 1)
        #expect(clock.sleepers() == 0)
        #expect(clock.now == TestClock.Instant(offset: .seconds(5)))
        #expect(clock.requestedSleeps() == [.seconds(5)])
    }

    @Test("advance(to:) wakes every due sleeper and leaves the later ones")
    func advanceToWakesDueSleepers() async throws {
        let clock = TestClock()
        let start = clock.now
        let tasks = [1, 2, 3].map { seconds in
            Task { try await clock.sleep(until: start.advanced(by: .seconds(seconds)), tolerance: nil) }
        }
        await clock.waitForSleepers(3)
        clock.advance(to: start.advanced(by: .seconds(2)))
        try await tasks[0].value
        try await tasks[1].value
        #expect(clock.sleepers() == 1)
        #expect(clock.pendingDurations() == [.seconds(1)])
        clock.advance(to: start)
        #expect(clock.now == start.advanced(by: .seconds(2)), "time never goes backwards")
        clock.advance(by: .seconds(1))
        try await tasks[2].value
    }

    @Test("a deadline already passed returns at once")
    func pastDeadline() async throws {
        let clock = TestClock()
        clock.advance(by: .seconds(10))
        try await clock.sleep(until: TestClock.Instant(offset: .seconds(3)), tolerance: nil)
        try await clock.sleep(for: .zero)
        #expect(clock.sleepers() == 0)
    }

    @Test("cancelling a sleeper throws CancellationError and removes it")
    func cancellation() async throws {
        let clock = TestClock()
        let sleeper = Task { try await clock.sleep(for: .seconds(60)) }
        await clock.waitForSleepers(1)
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        #expect(clock.sleepers() == 0)

        let cancelledFirst = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await clock.sleep(for: .seconds(1))
        }
        await #expect(throws: CancellationError.self) { try await cancelledFirst.value }
        #expect(clock.sleepers() == 0)
    }

    @Test("instants measure durations between them")
    func instants() {
        let start = TestClock.Instant(offset: .seconds(1))
        let later = start.advanced(by: .milliseconds(1500))
        #expect(start.duration(to: later) == .milliseconds(1500))
        #expect(later.duration(to: start) == .milliseconds(-1500))
        #expect(start < later)
        #expect(TestClock().minimumResolution == .zero)
    }
}

@Suite("MockTransport", .timeLimit(.minutes(15)))
struct MockTransportTests {
    static let request = ClientRequest(
        method: .get,
        path: "/api/v1/users/me",
        operation: ClientOperation(service: "users", name: "me")
    )

    @Test("scripted failures become the SDK's transport errors")
    func failuresMapToSDKErrors() async throws {
        let mock = MockTransport([.connectionRefused, .timeout, .connectionReset, .error(PyAirtableError.forbidden)])
        let url = Fixtures.mockURL
        let refused = await #expect(throws: PyAirtableError.self) {
            try await mock.send(Self.request, baseURL: url, timeout: .seconds(1))
        }
        #expect(refused == .transportFailure)
        #expect((refused?.underlying as? MockTransport.TransportFailure) == .connectionRefused)
        await #expect(throws: PyAirtableError.timeout) {
            try await mock.send(Self.request, baseURL: url, timeout: .seconds(1))
        }
        await #expect(throws: PyAirtableError.transportFailure) {
            try await mock.send(Self.request, baseURL: url, timeout: .seconds(1))
        }
        await #expect(throws: PyAirtableError.forbidden) {
            try await mock.send(Self.request, baseURL: url, timeout: .seconds(1))
        }
        #expect(mock.requestCount == 4)
        #expect(mock.exchanges.allSatisfy { $0.error != nil && $0.response == nil })
        await #expect(throws: MockTransport.ScriptError.self) {
            try await mock.send(Self.request, baseURL: url, timeout: .seconds(1))
        }
    }

    @Test(".status builds the wire error body with Retry-After")
    func statusOutcome() async throws {
        let response = MockTransport.errorResponse(429, retryAfter: .milliseconds(1500), message: "slow down")
        #expect(response.status.code == 429)
        #expect(response.headerFields[HTTPField.Name(HeaderName.retryAfter)!] == "1.5")
        let body = try JSONCoding.decoder.decode(
            ErrorResponse.self,
            from: try #require(try await response.body?.collect(upTo: 1 << 20))
        )
        #expect(body.error.type == .rateLimited)
        #expect(body.error.message == "slow down")
        #expect(body.error.requestID == response.headerFields[HTTPField.Name(HeaderName.requestID)!])
    }

    @Test("a handler decides per request and sees each request's index")
    func handler() async throws {
        let mock = MockTransport { request, index in
            index == 0 ? .status(503) : try .json(Page<Workspace>(data: []))
        }
        let client = Fixtures.mockClient(mock, clock: TestClock(), retry: .none)
        await #expect(throws: PyAirtableError.server) { try await client.workspaces.list() }
        #expect(try await client.workspaces.list().isEmpty)
        #expect(mock.requests.map(\.path) == ["/api/v1/workspaces", "/api/v1/workspaces"])
        #expect(mock.requests.allSatisfy { $0.headerFields[.authorization] == "Bearer pat_test" })
    }

    @Test("passThrough and dropResponseAfterSending reach the real server; the drop still throws")
    func forwarding() async throws {
        try await TestServer.withRunning { server in
            let mock = MockTransport(
                [.dropResponseAfterSending, .passThrough],
                forwardingTo: AsyncHTTPClientTransport()
            )
            try await Fixtures.withClient(server, token: nil, transport: mock) { client in
                let probe = ClientRequest(
                    method: .get,
                    path: "/health",
                    operation: ClientOperation(service: "health", name: "get")
                )
                await #expect(throws: PyAirtableError.transportFailure) {
                    try await mock.send(probe, baseURL: URL(string: server.url)!, timeout: .seconds(60))
                }
                let first = try await client.health()
                let second = try await client.health()
                #expect(first.status == "ok")
                #expect(second.status == "ok", "after the script, requests pass through")
                #expect(mock.requestCount == 3)
                #expect(mock.exchanges.last?.response?.status == .ok)
            }
        }
    }
}
