import AsyncHTTPClient
import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1

/// The default transport: AsyncHTTPClient with pooled keep-alive connections.
public final class AsyncHTTPClientTransport: ClientTransport {
    private let client: HTTPClient
    private let ownsClient: Bool
    private let maximumResponseSize: Int

    /// Makes a transport with its own connection pool.
    /// - Parameters:
    ///   - connectTimeout: How long establishing a connection may take.
    ///   - maximumConnectionsPerHost: The pool's size per server.
    ///   - maximumResponseSize: The largest response body accepted.
    public init(
        connectTimeout: Duration = .seconds(10),
        maximumConnectionsPerHost: Int = 16,
        maximumResponseSize: Int = 64 * 1024 * 1024
    ) {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .nanoseconds(connectTimeout.nanoseconds), read: nil)
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60),
            concurrentHTTP1ConnectionsPerHostSoftLimit: maximumConnectionsPerHost
        )
        configuration.redirectConfiguration = .disallow
        // A refused connection is reported at once; the SDK's retry policy decides what happens next,
        // instead of AsyncHTTPClient retrying silently until the connect timeout.
        configuration.connectionPool.retryConnectionEstablishment = false
        self.client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        self.ownsClient = true
        self.maximumResponseSize = maximumResponseSize
    }

    /// Uses an existing `HTTPClient`, which the caller keeps and shuts down.
    public init(client: HTTPClient, maximumResponseSize: Int = 64 * 1024 * 1024) {
        self.client = client
        self.ownsClient = false
        self.maximumResponseSize = maximumResponseSize
    }

    public func send(_ request: ClientRequest, baseURL: URL, timeout: Duration) async throws -> ClientResponse {
        var base = baseURL.absoluteString
        if base.hasSuffix("/") { base.removeLast() }
        var outgoing = HTTPClientRequest(url: base + request.target)
        outgoing.method = HTTPMethod(rawValue: request.method.rawValue)
        for field in request.headerFields {
            outgoing.headers.add(name: field.name.rawName, value: field.value)
        }
        if let body = request.body {
            outgoing.body = .bytes(ByteBuffer(bytes: body))
        }
        let response: HTTPClientResponse
        let collected: ByteBuffer
        do {
            response = try await client.execute(outgoing, timeout: .nanoseconds(timeout.nanoseconds))
            collected = try await response.body.collect(upTo: maximumResponseSize)
        } catch let error as HTTPClientError {
            throw PyAirtableError.transport(error, operation: request.operation)
        } catch let error as NIOTooManyBytesError {
            throw PyAirtableError.responseTooLarge(limit: maximumResponseSize, underlying: error)
        } catch is CancellationError {
            throw PyAirtableError.cancelledError
        } catch {
            throw PyAirtableError.transport(error, operation: request.operation)
        }
        var fields = HTTPFields()
        for header in response.headers {
            if let name = HTTPField.Name(header.name) { fields.append(HTTPField(name: name, value: header.value)) }
        }
        return ClientResponse(
            status: HTTPResponse.Status(code: Int(response.status.code)),
            headerFields: fields,
            body: Data(collected.readableBytesView)
        )
    }

    public func shutdown() async throws {
        if ownsClient { try await client.shutdown() }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

extension AsyncHTTPClientTransport: StreamingClientTransport {
    public func execute<Result: Sendable>(
        _ request: ClientRequest,
        body: StreamingRequestBody?,
        baseURL: URL,
        timeout: Duration,
        handle: (ClientResponse, ResponseBodyStream) async throws -> Result
    ) async throws -> Result {
        var base = baseURL.absoluteString
        if base.hasSuffix("/") { base.removeLast() }
        var outgoing = HTTPClientRequest(url: base + request.target)
        outgoing.method = HTTPMethod(rawValue: request.method.rawValue)
        for field in request.headerFields {
            outgoing.headers.add(name: field.name.rawName, value: field.value)
        }
        if let body {
            outgoing.body = .stream(try body.makeChunks(), length: body.length.map { .known($0) } ?? .unknown)
        } else if let data = request.body {
            outgoing.body = .bytes(ByteBuffer(bytes: data))
        }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(outgoing, timeout: .nanoseconds(timeout.nanoseconds))
        } catch let error as PyAirtableError {
            throw error
        } catch is CancellationError {
            throw PyAirtableError.cancelledError
        } catch {
            throw PyAirtableError.transport(error, operation: request.operation)
        }
        var fields = HTTPFields()
        for header in response.headers {
            if let name = HTTPField.Name(header.name) { fields.append(HTTPField(name: name, value: header.value)) }
        }
        let head = ClientResponse(status: HTTPResponse.Status(code: Int(response.status.code)), headerFields: fields)
        return try await handle(head, ResponseBodyStream(response.body))
    }
}
