import Foundation
import HTTPTypes
import PyAirtableClient
import PyAirtableModels
import PyAirtableTesting
import Testing

@Suite("Retry and backoff", .timeLimit(.minutes(15)))
struct RetryTests {
    /// The jittered bounds of retry `attempt` under the default policy: half to all of
    /// `min(200 ms × 2^attempt, 30 s)`.
    static func bounds(ofRetry attempt: Int) -> ClosedRange<Duration> {
        let capped = min(Duration.milliseconds(200) * (1 << attempt), .seconds(30))
        return (capped / 2)...capped
    }

    @Test("a GET that fails 3 times is retried with backoff within the jittered bounds, then succeeds")
    func retriesUntilSuccess() async throws {
        let record = Fixtures.record()
        let mock = MockTransport([.connectionRefused, .timeout, .status(503), try .json(record)])
        let clock = TestClock()
        let client = Fixtures.mockClient(mock, clock: clock)
        let call = Task { try await client.records.get(record.id) }
        for retry in 0..<3 {
            await clock.waitForSleepers(1)
            let wait = try #require(clock.pendingDurations().first)
            #expect(Self.bounds(ofRetry: retry).contains(wait), "retry \(retry) waited \(wait)")
            #expect(mock.requestCount == retry + 1, "no attempt before the backoff has passed")
            clock.advance(by: wait)
        }
        let fetched = try await call.value
        #expect(fetched == record)
        #expect(mock.requestCount == 4)
        #expect(clock.requestedSleeps().count == 3)
        #expect(mock.requests.allSatisfy { $0.path == "/api/v1/records/\(record.id)" })
    }

    @Test(
        "after maximumRetries the last failure is thrown",
        arguments: [
            (MockTransport.Outcome.connectionRefused, PyAirtableError.transportFailure),
            (.timeout, .timeout),
            (.status(503), .server),
            (.status(502), .server),
            (.status(504), .server),
            (.status(429), .rateLimited),
        ]
    )
    func givesUpAfterMaximumRetries(failure: MockTransport.Outcome, expected: PyAirtableError) async throws {
        let mock = MockTransport(Array(repeating: failure, count: 4))
        let clock = TestClock()
        let client = Fixtures.mockClient(mock, clock: clock)
        let call = Task { try await client.records.get(.generate()) }
        for _ in 0..<3 {
            await clock.waitForSleepers(1)
            clock.advance(by: .seconds(60))
        }
        let error = await #expect(throws: PyAirtableError.self) { try await call.value }
        #expect(error == expected)
        #expect(error?.isRetryable == true)
        #expect(mock.requestCount == 4, "1 attempt + 3 retries")
        #expect(clock.requestedSleeps().count == 3)
    }

    @Test("backoff doubles from 200 ms and is capped at 30 s")
    func backoffDoublesUpToTheCap() async throws {
        var policy = RetryPolicy()
        policy.maximumRetries = 10
        let mock = MockTransport(Array(repeating: .timeout, count: 11))
        let clock = TestClock()
        let client = Fixtures.mockClient(mock, clock: clock, retry: policy)
        let call = Task { try await client.records.get(.generate()) }
        var waits: [Duration] = []
        for retry in 0..<10 {
            await clock.waitForSleepers(1)
            let wait = try #require(clock.pendingDurations().first)
            #expect(Self.bounds(ofRetry: retry).contains(wait), "retry \(retry) waited \(wait)")
            waits.append(wait)
            clock.advance(by: wait)
        }
        await #expect(throws: PyAirtableError.timeout) { try await call.value }
        #expect(mock.requestCount == 11)
        // Retries 8 and 9 (51.2 s and 102.4 s uncapped) are both held to at most 30 s.
        #expect(waits.suffix(2).allSatisfy { $0 <= .seconds(30) && $0 >= .seconds(15) })
    }

    @Test("the jitter-free policy waits exactly 200 ms, 400 ms, 800 ms")
    func exactBackoffWithoutJitter() async throws {
        var policy = RetryPolicy()
        policy.jitter = false
        let record = Fixtures.record()
        let mock = MockTransport([.connectionReset, .connectionReset, .connectionReset, try .json(record)])
        let clock = TestClock()
        let client = Fixtures.mockClient(mock, clock: clock, retry: policy)
        let call = Task { try await client.records.get(record.id) }
        for _ in 0..<3 {
            await clock.waitForSleepers(1)
            clock.advance(by: try #require(clock.pendingDurations().first))
        }
        #expect(try await call.value == record)
        #expect(clock.requestedSleeps() == [.milliseconds(200), .milliseconds(400), .milliseconds(800)])
    }

    @Test(
        "4xx and other non-retryable statuses are never retried",
        arguments: [400, 401, 403, 404, 409, 412, 413, 422, 500, 501]
    )
    func clientErrorsAreNotRetried(status: Int) async throws {
        let mock = MockTransport([.status(status)], forwardingTo: nil)
        let clock = TestClock()
        let client = Fixtures.mockClient(mock, clock: clock)
        let error = await #expect(throws: PyAirtableError.self) { try await client.records.get(.generate()) }
        #expect(error?.status == status)
        #expect(error?.isRetryable == false)
        #expect(error?.requestID?.hasPrefix("mock-") == true)
        #expect(mock.requestCount == 1)
        #expect(clock.requestedSleeps().isEmpty)
    }

    @Test("Retry-After is honoured: the wait is exactly what the server asked", arguments: [429, 503])
    func retryAfterIsHonoured(status: Int) async throws {
        let record = Fixtures.record()
        let mock = MockTransport([.status(status, retryAfter: .seconds(2)), try .json(record)])
        let clock = TestClock()
        let client = Fixtures.mockClient(mock, clock: clock)
        let call = Task { try await client.records.get(record.id) }
        await clock.waitForSleepers(1)
        #expect(clock.pendingDurations() == [.seconds(2)])
        clock.advance(by: .milliseconds(1999))
        #expect(clock.sleepers() == 1, "still waiting before 2 s have passed")
        #expect(mock.requestCount == 1)
        clock.advance(by: .milliseconds(1))
        #expect(try await call.value == record)
        #expect(mock.requestCount == 2)
        #expect(clock.requestedSleeps() == [.seconds(2)])
    }

    @Test("a Retry-After longer than the cap waits the cap")
    func retryAfterIsCapped() async throws {
        let record = Fixtures.record()
        let mock = MockTransport([.status(429, retryAfter: .seconds(120)), try .json(record)])
        let clock = TestClock()
        let client = Fixtures.mockClient(mock, clock: clock)
        let call = Task { try await client.records.get(record.id) }
        await clock.waitForSleepers(1)
        #expect(clock.pendingDurations() == [.seconds(30)])
        clock.advance(by: .seconds(30))
        #expect(try await call.value == record)
    }

    @Test("every SDK write carries an Idempotency-Key and a retry reuses it")
    func writesAreRetriedWithTheSameKey() async throws {
        let record = Fixtures.record()
        let mock = MockTransport([.connectionRefused, .status(503), try .json(record, status: 201)])
        let clock = TestClock()
        let client = Fixtures.mockClient(mock, clock: clock)
        let call = Task { try await client.records.create(in: record.tableID, fields: ["Name": "Ada"]).get() }
        for _ in 0..<2 {
            await clock.waitForSleepers(1)
            clock.advance(by: .seconds(1))
        }
        #expect(try await call.value == record)
        let keys = mock.requests.map { $0.headerFields[.idempotencyKey] }
        #expect(keys.count == 3)
        #expect(keys[0] != nil)
        #expect(Set(keys).count == 1, "all attempts share one key")
    }

    @Test("each write gets its own Idempotency-Key")
    func eachWriteHasItsOwnKey() async throws {
        let record = Fixtures.record()
        let mock = MockTransport([try .json(record), try .json(record), try .json(DeletedRecord(id: record.id))])
        let client = Fixtures.mockClient(mock, clock: TestClock())
        _ = try await client.records.update(record.id, fields: ["Name": "A"])
        _ = try await client.records.replace(record.id, fields: ["Name": "B"])
        try await client.records.delete(record.id)
        let keys = mock.requests.compactMap { $0.headerFields[.idempotencyKey] }
        #expect(keys.count == 3)
        #expect(Set(keys).count == 3)
        #expect(mock.requests.map(\.method) == [.patch, .put, .delete])
    }

    @Test("a write without an Idempotency-Key is not retried")
    func unkeyedWritesAreNotRetried() async throws {
        let mock = MockTransport([.connectionRefused, .status(503)])
        let clock = TestClock()
        let client = Fixtures.mockClient(mock, clock: clock, middlewares: [StripIdempotencyKey()])
        await #expect(throws: PyAirtableError.transportFailure) {
            try await client.records.create(in: .generate(), fields: ["Name": "Ada"]).get()
        }
        #expect(mock.requestCount == 1)
        #expect(mock.requests[0].headerFields[.idempotencyKey] == nil)
        await #expect(throws: PyAirtableError.server) {
            try await client.records.update(.generate(), fields: ["Name": "Ada"]).get()
        }
        #expect(mock.requestCount == 2)
        #expect(clock.requestedSleeps().isEmpty)
    }

    @Test("cancelling a call during its backoff ends it with .cancelled and removes the sleeper")
    func cancellationDuringBackoff() async throws {
        let mock = MockTransport([.connectionRefused])
        let clock = TestClock()
        let client = Fixtures.mockClient(mock, clock: clock)
        let call = Task { try await client.records.get(.generate()) }
        await clock.waitForSleepers(1)
        call.cancel()
        await #expect(throws: PyAirtableError.cancelled) { try await call.value }
        #expect(clock.sleepers() == 0)
        #expect(mock.requestCount == 1)
    }
}
