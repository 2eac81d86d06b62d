import Foundation
import PyAirtableClient
import PyAirtableModels
import PyAirtableTesting
import Testing

@Suite("Circuit breaker", .timeLimit(.minutes(15)))
struct CircuitBreakerTests {
    static let failures: [MockTransport.Outcome] = [
        .connectionRefused, .status(503), .timeout, .status(500), .connectionReset,
    ]

    /// A client without retries, so each call is one attempt and one breaker outcome.
    static func client(_ mock: MockTransport, clock: TestClock) -> PyAirtableClient {
        Fixtures.mockClient(mock, clock: clock, retry: .none, circuitBreaker: CircuitBreakerPolicy())
    }

    /// Makes five failing `records` calls.
    static func failFiveTimes(_ client: PyAirtableClient) async {
        for _ in 0..<5 {
            await #expect(throws: PyAirtableError.self) { try await client.records.get(.generate()) }
        }
    }

    @Test("5 consecutive failures open the circuit; calls then fail fast without reaching the transport")
    func opensAfterFiveFailures() async throws {
        let mock = MockTransport(Self.failures)
        let clock = TestClock()
        let client = Self.client(mock, clock: clock)
        for attempt in 0..<4 {
            await #expect(throws: PyAirtableError.self) { try await client.records.get(.generate()) }
            #expect(client.circuitState(of: .records) == .closed, "closed after \(attempt + 1) failures")
        }
        await #expect(throws: PyAirtableError.self) { try await client.records.get(.generate()) }
        #expect(client.circuitState(of: .records) == .open)
        #expect(mock.requestCount == 5)

        let error = await #expect(throws: PyAirtableError.self) { try await client.records.get(.generate()) }
        #expect(error == .circuitOpen)
        #expect(error?.retryAfter == .seconds(30))
        #expect(error?.isConnectivityFailure == true)
        #expect(mock.requestCount == 5, "the rejected call never reached the transport")
    }

    @Test("other services keep their own closed circuits")
    func circuitsArePerService() async throws {
        let mock = MockTransport(Self.failures)
        let clock = TestClock()
        let client = Self.client(mock, clock: clock)
        await Self.failFiveTimes(client)
        #expect(client.circuitState(of: .records) == .open)
        #expect(client.circuitState(of: .workspaces) == .closed)
        #expect(client.circuitState(of: .tables) == .closed)
        mock.enqueue(try .json(Page<Workspace>(data: [])))
        #expect(try await client.workspaces.list().isEmpty)
        #expect(mock.requestCount == 6)
        #expect(client.circuitState(of: .records) == .open)
    }

    @Test("after 30 s one probe goes through; its success closes the circuit")
    func halfOpenProbeSuccessCloses() async throws {
        let record = Fixtures.record()
        let mock = MockTransport(Self.failures)
        let clock = TestClock()
        let client = Self.client(mock, clock: clock)
        await Self.failFiveTimes(client)

        clock.advance(by: .seconds(29))
        let early = await #expect(throws: PyAirtableError.circuitOpen) { try await client.records.get(record.id) }
        #expect(early?.retryAfter == .seconds(1))
        #expect(mock.requestCount == 5)

        clock.advance(by: .seconds(1))
        mock.enqueue(try .json(record))
        #expect(try await client.records.get(record.id) == record)
        #expect(mock.requestCount == 6)
        #expect(client.circuitState(of: .records) == .closed)

        // Closed again, with the failure count reset: one failure does not reopen it.
        mock.enqueue(.status(503), try .json(record))
        await #expect(throws: PyAirtableError.server) { try await client.records.get(record.id) }
        #expect(client.circuitState(of: .records) == .closed)
        #expect(try await client.records.get(record.id) == record)
    }

    @Test("while the probe is in flight the circuit is half-open and other calls fail fast")
    func onlyOneProbe() async throws {
        let record = Fixtures.record()
        let probeArrived = Signal()
        let releaseProbe = Signal()
        let mock = MockTransport { _, index in
            if index < 5 { return Self.failures[index] }
            if index == 5 {
                probeArrived.fire()
                await releaseProbe.wait()
            }
            return try .json(record)
        }
        let clock = TestClock()
        let client = Self.client(mock, clock: clock)
        await Self.failFiveTimes(client)
        clock.advance(by: .seconds(30))

        let probe = Task { try await client.records.get(record.id) }
        await probeArrived.wait()
        #expect(client.circuitState(of: .records) == .halfOpen)
        await #expect(throws: PyAirtableError.circuitOpen) { try await client.records.list(in: record.tableID) }
        #expect(mock.requestCount == 6)

        releaseProbe.fire()
        #expect(try await probe.value == record)
        #expect(client.circuitState(of: .records) == .closed)
    }

    @Test("a failed probe re-opens the circuit for another 30 s")
    func failedProbeReopens() async throws {
        let record = Fixtures.record()
        let mock = MockTransport(Self.failures)
        let clock = TestClock()
        let client = Self.client(mock, clock: clock)
        await Self.failFiveTimes(client)

        clock.advance(by: .seconds(30))
        mock.enqueue(.status(503))
        await #expect(throws: PyAirtableError.server) { try await client.records.get(record.id) }
        #expect(mock.requestCount == 6)
        #expect(client.circuitState(of: .records) == .open)

        let rejected = await #expect(throws: PyAirtableError.circuitOpen) { try await client.records.get(record.id) }
        #expect(rejected?.retryAfter == .seconds(30), "the wait restarts from the failed probe")
        #expect(mock.requestCount == 6)

        clock.advance(by: .seconds(30))
        mock.enqueue(try .json(record))
        #expect(try await client.records.get(record.id) == record)
        #expect(client.circuitState(of: .records) == .closed)
    }

    @Test("4xx answers say nothing about the server's health and never open the circuit")
    func clientErrorsDoNotOpen() async throws {
        let mock = MockTransport(Array(repeating: .status(404), count: 8))
        let client = Self.client(mock, clock: TestClock())
        for _ in 0..<8 {
            await #expect(throws: PyAirtableError.notFound) { try await client.records.get(.generate()) }
        }
        #expect(client.circuitState(of: .records) == .closed)
        #expect(mock.requestCount == 8)
    }

    @Test("a success between failures resets the count")
    func successResetsCount() async throws {
        let record = Fixtures.record()
        let mock = MockTransport(Array(Self.failures.prefix(4)) + [try .json(record)] + Self.failures.prefix(4))
        let client = Self.client(mock, clock: TestClock())
        for index in 0..<9 {
            _ = try? await client.records.get(record.id)
            #expect(client.circuitState(of: .records) == .closed, "call \(index)")
        }
        #expect(mock.requestCount == 9)
    }

    @Test("retries inside one call count as one breaker failure")
    func retriesCountOnce() async throws {
        let mock = MockTransport(Array(repeating: .connectionRefused, count: 8))
        let clock = TestClock()
        let client = Fixtures.mockClient(mock, clock: clock, circuitBreaker: CircuitBreakerPolicy())
        for _ in 0..<2 {
            let call = Task { try await client.records.get(.generate()) }
            for _ in 0..<3 {
                await clock.waitForSleepers(1)
                clock.advance(by: .seconds(1))
            }
            await #expect(throws: PyAirtableError.transportFailure) { try await call.value }
        }
        #expect(mock.requestCount == 8)
        #expect(client.circuitState(of: .records) == .closed)
    }
}
