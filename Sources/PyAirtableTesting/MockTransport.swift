import Foundation
import HTTPTypes
import PyAirtableClient
import PyAirtableModels
import Synchronization

/// A `ClientTransport` for failure injection: it answers from a script — a queue of outcomes or
/// a closure — optionally forwards the rest to a real transport, and records every request it saw.
///
/// Every request of the client reaches it: JSON calls, file uploads (their body streamed from disk;
/// read it with `request.body?.collect(upTo:)`) and downloads, the realtime event stream (answer it
/// with ``Outcome/eventStream(_:)``) and polling, and token refreshes.
///
/// ```swift
/// let mock = MockTransport(
///     [.connectionRefused, .status(503, retryAfter: .seconds(2)), .dropResponseAfterSending],
///     forwardingTo: AsyncHTTPClientTransport()  // everything after the script goes to the server
/// )
/// var configuration = PyAirtableClient.Configuration(serverURL: url, transport: mock)
/// // … run the code under test, then:
/// #expect(mock.requestCount == 4)
/// #expect(mock.requests.allSatisfy { $0.headerFields[.authorization] != nil })
/// ```
public final class MockTransport: ClientTransport {
    /// What the transport does with one request.
    public enum Outcome: Sendable {
        /// Answers with this response without sending anything.
        case response(ClientResponse)
        /// Throws this error without sending anything (a `PyAirtableError` or any other error).
        case error(any Error)
        /// Fails as if the server refused the connection; nothing reaches the server.
        case connectionRefused
        /// Fails as if the server did not answer in time; nothing reaches the server.
        case timeout
        /// Fails as if the connection was reset before the request was sent.
        case connectionReset
        /// Sends the request to the real transport, so the server applies it, then fails as if
        /// the answer was lost on the way back.
        case dropResponseAfterSending
        /// Sends the request to the real transport and returns its answer.
        case passThrough

        /// An error answer with the wire error body, as the server would send it.
        /// - Parameters:
        ///   - code: The HTTP status, such as 503.
        ///   - retryAfter: The `Retry-After` header, in whole or fractional seconds.
        ///   - message: The error body's message.
        public static func status(_ code: Int, retryAfter: Duration? = nil, message: String? = nil) -> Outcome {
            .response(MockTransport.errorResponse(code, retryAfter: retryAfter, message: message))
        }

        /// A success answer carrying `value` as JSON, such as a `Record` or a `Page`.
        /// - Throws: The encoding error, if `value` cannot be encoded.
        public static func json(_ value: some Encodable, status: Int = 200) throws -> Outcome {
            .response(
                ClientResponse(
                    status: HTTPResponse.Status(code: status),
                    headerFields: [.contentType: "application/json"],
                    body: try JSONCoding.encoder.encode(value)
                )
            )
        }

        /// A `200 text/event-stream` answer whose body is `messages`, each a whole Server-Sent Events
        /// message (such as `"id: 7\ndata: {…}\n\n"`), sent as it is yielded; the stream ends when
        /// `messages` finishes.
        public static func eventStream(_ messages: AsyncStream<String>) -> Outcome {
            .response(
                ClientResponse(
                    status: .ok,
                    headerFields: [.contentType: "text/event-stream"],
                    body: HTTPBody(EventStreamChunks(messages: messages), length: .unknown, iterationBehavior: .single)
                )
            )
        }
    }

    /// The local stand-ins for network failures (the errors underneath the `PyAirtableError`s
    /// the mock throws).
    public enum TransportFailure: Error, Sendable, Hashable, CustomStringConvertible {
        case connectionRefused
        case connectionReset
        case timeout
        /// The answer was lost after the request reached the server.
        case responseLost

        public var description: String {
            switch self {
            case .connectionRefused: "mock: connection refused"
            case .connectionReset: "mock: connection reset by peer"
            // The SDK classifies transport errors that mention a timeout as `.timeout`.
            case .timeout: "mock: request timeout"
            case .responseLost: "mock: connection reset by peer after the request was sent"
            }
        }
    }

    /// The mock was asked for something its script does not cover.
    public struct ScriptError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// One request the mock received and, once known, what it answered.
    public struct Exchange: Sendable {
        public var request: ClientRequest
        /// The response returned, if the request completed with one.
        public var response: ClientResponse?
        /// The error thrown, if the request failed.
        public var error: (any Error)?
    }

    /// Decides the outcome of request number `index` (0 for the first request the mock sees).
    public typealias Handler = @Sendable (_ request: ClientRequest, _ index: Int) async throws -> Outcome

    private struct State {
        var outcomes: [Outcome]
        var exchanges: [Exchange] = []
    }

    private let state: Mutex<State>
    private let handler: Handler?
    private let realTransport: (any ClientTransport)?

    /// A mock that answers requests with `outcomes` in order, then with `.passThrough` when a real
    /// transport is given, else by throwing ``ScriptError``.
    /// - Parameters:
    ///   - outcomes: What to do with the first requests, one outcome each.
    ///   - realTransport: Where `.passThrough` and `.dropResponseAfterSending` send requests; the
    ///     mock shuts it down on ``shutdown()``.
    public init(_ outcomes: [Outcome] = [], forwardingTo realTransport: (any ClientTransport)? = nil) {
        self.state = Mutex(State(outcomes: outcomes))
        self.handler = nil
        self.realTransport = realTransport
    }

    /// A mock that asks `handler` what to do with each request.
    /// - Parameters:
    ///   - realTransport: Where `.passThrough` and `.dropResponseAfterSending` send requests.
    ///   - handler: Given the request and its index among all requests the mock saw (0-based).
    public init(forwardingTo realTransport: (any ClientTransport)? = nil, handler: @escaping Handler) {
        self.state = Mutex(State(outcomes: []))
        self.handler = handler
        self.realTransport = realTransport
    }

    /// Adds outcomes to the end of the script.
    public func enqueue(_ outcomes: Outcome...) {
        state.withLock { $0.outcomes.append(contentsOf: outcomes) }
    }

    /// Every request received so far, in arrival order (recorded before it is answered).
    public var requests: [ClientRequest] {
        state.withLock { $0.exchanges.map(\.request) }
    }

    /// How many requests reached the mock.
    public var requestCount: Int {
        state.withLock { $0.exchanges.count }
    }

    /// Every request with its answer or error, in arrival order.
    public var exchanges: [Exchange] {
        state.withLock { $0.exchanges }
    }

    /// The requests whose path is `path` (without the query).
    public func requests(path: String) -> [ClientRequest] {
        requests.filter { $0.path == path }
    }

    public func send(_ request: ClientRequest, baseURL: URL, timeout: Duration) async throws -> ClientResponse {
        let (index, scripted) = state.withLock { state -> (Int, Outcome?) in
            state.exchanges.append(Exchange(request: request))
            let scripted = handler == nil && !state.outcomes.isEmpty ? state.outcomes.removeFirst() : nil
            return (state.exchanges.count - 1, scripted)
        }
        do {
            let outcome: Outcome
            if let handler {
                outcome = try await handler(request, index)
            } else {
                outcome = scripted ?? .passThrough
            }
            let response = try await perform(outcome, request: request, baseURL: baseURL, timeout: timeout)
            state.withLock { $0.exchanges[index].response = response }
            return response
        } catch {
            state.withLock { $0.exchanges[index].error = error }
            throw error
        }
    }

    public func shutdown() async throws {
        try await realTransport?.shutdown()
    }

    private func perform(
        _ outcome: Outcome,
        request: ClientRequest,
        baseURL: URL,
        timeout: Duration
    ) async throws -> ClientResponse {
        switch outcome {
        case .response(let response):
            return response
        case .error(let error):
            throw error
        case .connectionRefused:
            throw await Self.transportError(.connectionRefused)
        case .timeout:
            throw await Self.transportError(.timeout)
        case .connectionReset:
            throw await Self.transportError(.connectionReset)
        case .dropResponseAfterSending:
            let response = try await forward(request, baseURL: baseURL, timeout: timeout)
            // Read the answer whole, so the server finished with the request, then lose it.
            if let body = response.body { for try await _ in body {} }
            throw await Self.transportError(.responseLost)
        case .passThrough:
            return try await forward(request, baseURL: baseURL, timeout: timeout)
        }
    }

    private func forward(_ request: ClientRequest, baseURL: URL, timeout: Duration) async throws -> ClientResponse {
        guard let realTransport else {
            throw ScriptError(description: "MockTransport has no script for \(request.method) \(request.path)")
        }
        return try await realTransport.send(request, baseURL: baseURL, timeout: timeout)
    }

    /// `failure` as the `PyAirtableError` a real transport would throw (`PyAirtableError.transportFailure`
    /// or `PyAirtableError.timeout`), with `failure` as its underlying error.
    ///
    /// The SDK's retry and circuit breaker act only on `PyAirtableError`s, whose factory for
    /// transport failures is internal; a throwaway client over a throwing transport makes one the
    /// way `PyAirtableClient.execute` wraps every non-SDK error. Its `operation` is `health.get`.
    public static func transportError(_ failure: TransportFailure) async -> any Error {
        guard let url = URL(string: "http://mock.invalid") else { return failure }
        let client = PyAirtableClient(
            configuration: .init(
                serverURL: url,
                retry: .none,
                circuitBreaker: .disabled,
                deduplicateRequests: false,
                transport: ThrowingTransport(error: failure)
            )
        )
        do {
            _ = try await client.health()
        } catch {
            return error
        }
        return failure
    }

    /// An error answer with the wire body `{"error": {"type", "code", "message", "request_id"}}`.
    public static func errorResponse(
        _ code: Int,
        retryAfter: Duration? = nil,
        message: String? = nil
    )
        -> ClientResponse
    {
        let type: ErrorType =
            switch code {
            case 400, 422: .validation
            case 401: .auth
            case 403: .forbidden
            case 404: .notFound
            case 409, 412: .conflict
            case 413: .payloadTooLarge
            case 429: .rateLimited
            default: .server
            }
        let requestID = "mock-\(UUID().uuidString.lowercased())"
        let body = ErrorResponse(
            error: APIErrorDetail(
                type: type,
                code: code,
                message: message ?? "mock answer \(code)",
                requestID: requestID
            )
        )
        var fields: HTTPFields = [.contentType: "application/json"]
        if let name = HTTPField.Name(HeaderName.requestID) { fields[name] = requestID }
        if let retryAfter, let name = HTTPField.Name(HeaderName.retryAfter) {
            let (seconds, attoseconds) = retryAfter.components
            fields[name] =
                attoseconds == 0
                ? String(seconds) : String(Double(seconds) + Double(attoseconds) / 1e18)
        }
        return ClientResponse(
            status: HTTPResponse.Status(code: code),
            headerFields: fields,
            body: (try? JSONCoding.encoder.encode(body)) ?? Data()
        )
    }
}

/// Server-Sent Events messages as body chunks.
private struct EventStreamChunks: AsyncSequence, Sendable {
    typealias Element = ArraySlice<UInt8>
    let messages: AsyncStream<String>

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<String>.AsyncIterator

        mutating func next() async throws -> ArraySlice<UInt8>? {
            await base.next().map { ArraySlice($0.utf8) }
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: messages.makeAsyncIterator())
    }
}

/// A transport that always throws one error.
private struct ThrowingTransport: ClientTransport {
    let error: any Error

    func send(_ request: ClientRequest, baseURL: URL, timeout: Duration) async throws -> ClientResponse {
        throw error
    }
}
