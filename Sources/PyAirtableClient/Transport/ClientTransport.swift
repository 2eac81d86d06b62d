import Foundation
import HTTPTypes

/// Which service call a request is: the label of its metrics, logs, circuit breaker and errors.
public struct ClientOperation: Sendable, Hashable, CustomStringConvertible {
    /// The service, such as `records`; each service has its own circuit breaker.
    public var service: String
    /// The call, such as `list`.
    public var name: String

    public init(service: String, name: String) {
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
    public var body: Data?
    public var operation: ClientOperation
    /// Whether the request carries the client's credentials (not for login, register, refresh).
    public var authenticated: Bool

    public init(
        method: HTTPRequest.Method,
        path: String,
        query: [QueryItem] = [],
        headerFields: HTTPFields = [:],
        body: Data? = nil,
        operation: ClientOperation,
        authenticated: Bool = true
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headerFields = headerFields
        self.body = body
        self.operation = operation
        self.authenticated = authenticated
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

/// A response as the transport received it.
public struct ClientResponse: Sendable, Hashable {
    public var status: HTTPResponse.Status
    public var headerFields: HTTPFields
    public var body: Data

    public init(status: HTTPResponse.Status, headerFields: HTTPFields = [:], body: Data = Data()) {
        self.status = status
        self.headerFields = headerFields
        self.body = body
    }
}

/// Sends requests to the server: the seam between the SDK and the network.
///
/// ``AsyncHTTPClientTransport`` is the default; tests put a failing or scripted transport here.
public protocol ClientTransport: Sendable {
    /// Sends `request` to `baseURL` and returns the whole response.
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
