import Foundation
import HTTPTypes
import PyAirtableClient
import PyAirtableModels
import PyAirtableTesting
import ReferenceServer
import ReferenceServerTesting
import Synchronization

/// A wall clock for the server that only tests move (`ServerConfiguration.now`).
final class ServerTime: Sendable {
    private let current = Mutex(Date())

    func now() -> Date { current.withLock { $0 } }

    func advance(by interval: TimeInterval) {
        current.withLock { $0.addTimeInterval(interval) }
    }

    /// Makes the server read the time from here: `TestServer.withRunning(configure: time.install)`.
    @Sendable func install(_ configuration: inout ServerConfiguration) {
        configuration.now = { self.now() }
    }
}

/// Counts the requests entering the client's middleware chain (installed outermost).
final class ArrivalCounter: ClientMiddleware {
    private let count = Mutex(0)

    var arrivals: Int { count.withLock { $0 } }

    func intercept(
        _ request: ClientRequest,
        next: @Sendable (ClientRequest) async throws -> ClientResponse
    ) async throws -> ClientResponse {
        count.withLock { $0 += 1 }
        return try await next(request)
    }
}

/// Removes the `Idempotency-Key` the SDK puts on writes, to test what happens to unkeyed writes.
struct StripIdempotencyKey: ClientMiddleware {
    func intercept(
        _ request: ClientRequest,
        next: @Sendable (ClientRequest) async throws -> ClientResponse
    ) async throws -> ClientResponse {
        var request = request
        request.headerFields[.idempotencyKey] = nil
        return try await next(request)
    }
}

/// A one-shot signal between tasks.
final class Signal: Sendable {
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: Void.self)
    }

    func fire() { continuation.finish() }

    func wait() async {
        for await _ in stream {}
    }
}

extension HTTPField.Name {
    static let idempotencyKey = Self(HeaderName.idempotencyKey)!
    static let idempotentReplayed = Self(HeaderName.idempotentReplayed)!
}

/// Yields until `condition` holds (never sleeps); `false` when it did not within `attempts` yields.
@discardableResult
func eventually(attempts: Int = 100_000, _ condition: () -> Bool) async -> Bool {
    for _ in 0..<attempts {
        if condition() { return true }
        await Task.yield()
    }
    return condition()
}

enum Fixtures {
    static let mockURL = URL(string: "http://mock.invalid")!

    /// A configuration for `server` with a personal access token.
    ///
    /// The clock is the real one unless a test passes a ``TestClock`` to drive waits itself: on a
    /// manual clock nobody advances, a retry after a transient failure (a connection refused or timed
    /// out on a loaded machine) would wait forever and hang the test. A request may take two minutes
    /// rather than the SDK's default 30 s: when the whole suite starts at once on two cores, an
    /// answer can take longer than 30 s, and a test that is not about timeouts should not fail on
    /// one (each suite's time limit still bounds it).
    static func configuration(
        _ server: TestServer,
        token: String? = nil,
        transport: (any ClientTransport)? = nil,
        clock: any Clock<Duration> = ContinuousClock()
    ) -> PyAirtableClient.Configuration {
        PyAirtableClient.Configuration(
            serverURL: URL(string: server.url)!,
            credentials: token.map { .personalAccessToken($0) } ?? .none,
            timeouts: .init(connect: .seconds(30), request: .seconds(120)),
            clock: clock,
            transport: transport
        )
    }

    /// Runs `body` with a client of `server`, shut down afterwards.
    static func withClient<T: Sendable>(
        _ server: TestServer,
        token: String?,
        transport: (any ClientTransport)? = nil,
        clock: any Clock<Duration> = ContinuousClock(),
        configure: (inout PyAirtableClient.Configuration) -> Void = { _ in },
        _ body: (PyAirtableClient) async throws -> T
    ) async throws -> T {
        var configuration = configuration(server, token: token, transport: transport, clock: clock)
        configure(&configuration)
        return try await withPyAirtableClient(configuration: configuration, body)
    }

    /// Runs `body` with a client of the demo user over a fresh test server.
    static func withDemoClient<T: Sendable>(
        configure: @Sendable (inout PyAirtableClient.Configuration) -> Void = { _ in },
        _ body: @Sendable (PyAirtableClient, TestServer) async throws -> T
    ) async throws -> T {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            var configuration = configuration(server, token: demo.token)
            configure(&configuration)
            return try await withPyAirtableClient(configuration: configuration) { client in
                try await body(client, server)
            }
        }
    }

    /// A workspace, base and a `Contacts` table with Name, Score and Status fields.
    static func makeTable(_ client: PyAirtableClient, name: String = "Contacts") async throws -> Table {
        let workspace = try await client.workspaces.create(name: "Tests \(UUID().uuidString.prefix(6))")
        let base = try await client.bases.create(in: workspace.id, name: "CRM")
        return try await client.tables.create(
            in: base.id,
            name: name,
            fields: [
                CreateFieldRequest(name: "Name", type: .singleLineText),
                CreateFieldRequest(name: "Score", type: .number),
                CreateFieldRequest(
                    name: "Status",
                    type: .singleSelect,
                    options: FieldOptions(choices: [SelectChoice(name: "Todo"), SelectChoice(name: "Done")])
                ),
            ]
        )
    }

    /// A record as the server would send it, for mock answers.
    static func record(id: RecordID = .generate(), name: String = "Ada") -> Record {
        let date = Date(timeIntervalSince1970: 1_700_000_000)
        return Record(
            id: id,
            tableID: .generate(),
            fields: ["Name": .string(name)],
            createdAt: date,
            updatedAt: date
        )
    }

    /// A client over `mock` alone, with a test clock.
    static func mockClient(
        _ mock: MockTransport,
        clock: TestClock,
        retry: RetryPolicy = RetryPolicy(),
        circuitBreaker: CircuitBreakerPolicy = .disabled,
        middlewares: [any ClientMiddleware] = []
    ) -> PyAirtableClient {
        PyAirtableClient(
            configuration: .init(
                serverURL: mockURL,
                credentials: .personalAccessToken("pat_test"),
                retry: retry,
                circuitBreaker: circuitBreaker,
                clock: clock,
                transport: mock,
                middlewares: middlewares
            )
        )
    }
}
