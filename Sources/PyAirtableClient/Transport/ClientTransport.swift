import Foundation
import HTTPTypes

/// A service of the API, as metrics, logs and circuit breakers name it: each service has its own
/// circuit breaker (``PyAirtableClient/PyAirtableClient/circuitState(of:)``).
public struct ServiceName: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    /// Sign-up, sign-in, refresh and personal access tokens.
    public static let auth: ServiceName = "auth"
    /// The signed-in user.
    public static let users: ServiceName = "users"
    public static let workspaces: ServiceName = "workspaces"
    public static let bases: ServiceName = "bases"
    public static let tables: ServiceName = "tables"
    public static let fields: ServiceName = "fields"
    public static let views: ServiceName = "views"
    public static let records: ServiceName = "records"
    public static let files: ServiceName = "files"
    public static let webhooks: ServiceName = "webhooks"
    /// The event stream, WebSocket head and polling of realtime.
    public static let realtime: ServiceName = "realtime"
    /// Offline replay and its connectivity probe.
    public static let offline: ServiceName = "offline"
    /// `GET /health`.
    public static let health: ServiceName = "health"

    public var description: String { rawValue }

    public static func < (lhs: ServiceName, rhs: ServiceName) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Which service call a request is: the label of its metrics, logs, circuit breaker and errors.
public struct ClientOperation: Sendable, Hashable, CustomStringConvertible {
    /// The service, such as ``ServiceName/records``; each service has its own circuit breaker.
    public var service: ServiceName
    /// The call, such as `list`.
    public var name: String

    public init(service: ServiceName, name: String) {
        self.service = service
        self.name = name
    }

    public var description: String { "\(service).\(name)" }
}

/// A request on its way to the server: what the middleware chain sees and may change.
public struct ClientRequest: Sendable, Hashable {
    public var method: HTTPRequest.Method
    /// The path under the server URL, such as `/api/v1/records/rec…`.
    public var path: String
    public var query: [QueryItem]
    public var headerFields: HTTPFields
    /// The body: JSON in memory, or a file streamed from disk. Its ``HTTPBody/iterationBehavior``
    /// says whether the request may be sent again (after a refreshed token, on a retry).
    public var body: HTTPBody?
    public var operation: ClientOperation
    /// Whether the request carries the client's credentials (not for login, register, refresh):
    /// the auth middleware leaves a request without them alone, so a refresh never waits on itself.
    public var authenticated: Bool
    /// How long the transport may wait for the response's head; `nil` for the client's
    /// ``PyAirtableClient/Timeouts/request``. File transfers and event streams set a
    /// longer one.
    public var timeout: Duration?
    /// Whether the answer is read into memory at the end of the chain, inside retry and the circuit
    /// breaker, so a connection lost while the body arrives is retried like one lost before it (set
    /// by the client for the calls whose answer it decodes; never for transfers and streams).
    var collectsResponse = false

    public init(
        method: HTTPRequest.Method,
        path: String,
        query: [QueryItem] = [],
        headerFields: HTTPFields = [:],
        body: HTTPBody? = nil,
        operation: ClientOperation,
        authenticated: Bool = true,
        timeout: Duration? = nil
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headerFields = headerFields
        self.body = body
        self.operation = operation
        self.authenticated = authenticated
        self.timeout = timeout
    }

    /// Whether the request can be sent more than once: it has no body, or a body that can be read again.
    public var isReplayable: Bool {
        body.map { $0.iterationBehavior == .multiple } ?? true
    }

    /// Whether sending this request twice has the effect of sending it once: reads, and writes that
    /// carry an `Idempotency-Key`.
    public var isIdempotent: Bool {
        switch method {
        case .get, .head, .options: true
        default: headerFields[.idempotencyKey] != nil
        }
    }

    /// The path with its percent-encoded query.
    public var target: String {
        guard !query.isEmpty else { return path }
        var components = URLComponents()
        components.queryItems = query.map { URLQueryItem(name: $0.name, value: $0.value) }
        // `+` is a space to many servers; encode it so formulas with `+` arrive intact.
        let encoded = (components.percentEncodedQuery ?? "").replacingOccurrences(of: "+", with: "%2B")
        return path + "?" + encoded
    }
}

/// One `name=value` of a query string.
public struct QueryItem: Sendable, Hashable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// A response as the transport received it: its head, and its body as it arrives (an event stream,
/// a download) or already in memory.
public struct ClientResponse: Sendable, Hashable {
    public var status: HTTPResponse.Status
    public var headerFields: HTTPFields
    /// The body; `nil` for none.
    public var body: HTTPBody?

    public init(status: HTTPResponse.Status, headerFields: HTTPFields = [:], body: HTTPBody? = nil) {
        self.status = status
        self.headerFields = headerFields
        self.body = body
    }

    /// A response whose body is `data`.
    public init(status: HTTPResponse.Status, headerFields: HTTPFields = [:], body data: Data) {
        self.init(status: status, headerFields: headerFields, body: HTTPBody(data))
    }

    /// This response with its body read into memory, at most `maximumBytes` of it.
    /// - Throws: ``HTTPBody/TooManyBytesError`` past the limit, or the body's error.
    public func collected(upTo maximumBytes: Int) async throws -> ClientResponse {
        guard let body, body.buffered == nil else { return self }
        var response = self
        response.body = HTTPBody(try await body.collect(upTo: maximumBytes))
        return response
    }

    /// The body's bytes when it is in memory (see ``collected(upTo:)``), else empty.
    var data: Data { body?.buffered ?? Data() }
}

extension ClientRequest {
    /// The body's bytes when it is in memory (JSON), else `nil`.
    var bodyData: Data? { body?.buffered }
}

/// Sends requests to the server: the seam between the SDK and the network.
///
/// ``AsyncHTTPClientTransport`` is the default; tests put a failing or scripted transport here.
public protocol ClientTransport: Sendable {
    /// Sends `request` to `baseURL` and returns the response once its head has arrived; its body may
    /// still be arriving (a ``HTTPBody/IterationBehavior/single`` body), or be in memory.
    ///
    /// `timeout` bounds the wait for the head (the request's body is sent within it); reading the
    /// response's body is bounded by whoever reads it.
    /// - Throws: ``PyAirtableError`` for transport failures (connection refused, timeout, …).
    func send(_ request: ClientRequest, baseURL: URL, timeout: Duration) async throws -> ClientResponse

    /// Releases connections. The transport is not used afterwards.
    func shutdown() async throws
}

extension ClientTransport {
    public func shutdown() async throws {}
}

extension HTTPField.Name {
    static let idempotencyKey = Self("Idempotency-Key")!
    static let idempotentReplayed = Self("Idempotent-Replayed")!
    static let requestID = Self("X-Request-ID")!
}
