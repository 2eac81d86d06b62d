import AsyncHTTPClient
import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1

/// The default transport: AsyncHTTPClient with pooled keep-alive connections. Request bodies are
/// streamed to the server and response bodies handed over as they arrive, so a file or an event
/// stream never sits whole in memory.
public final class AsyncHTTPClientTransport: ClientTransport {
    private let client: HTTPClient
    private let ownsClient: Bool

    /// Makes a transport with its own connection pool.
    /// - Parameters:
    ///   - connectTimeout: How long establishing a connection may take.
    ///   - maximumConnectionsPerHost: The pool's size per server.
    public init(
        connectTimeout: Duration = .seconds(10),
        maximumConnectionsPerHost: Int = 16
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
    }

    /// Uses an existing `HTTPClient`, which the caller keeps and shuts down.
    public init(client: HTTPClient) {
        self.client = client
        self.ownsClient = false
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
            if let data = body.buffered {
                outgoing.body = .bytes(ByteBuffer(bytes: data))
            } else {
                let length: HTTPClientRequest.Body.Length =
                    switch body.length {
                    case .known(let length): .known(length)
                    case .unknown: .unknown
                    }
                outgoing.body = .stream(ByteBufferChunks(body: body), length: length)
            }
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
        let length: HTTPBody.Length = fields[.contentLength].flatMap(Int64.init).map { .known($0) } ?? .unknown
        return ClientResponse(
            status: HTTPResponse.Status(code: Int(response.status.code)),
            headerFields: fields,
            body: HTTPBody(
                ResponseChunks(body: response.body, operation: request.operation),
                length: length,
                iterationBehavior: .single
            )
        )
    }

    public func shutdown() async throws {
        if ownsClient { try await client.shutdown() }
    }
}

/// A request body's chunks as AsyncHTTPClient takes them.
private struct ByteBufferChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let body: HTTPBody

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: HTTPBody.Iterator

        mutating func next() async throws -> ByteBuffer? {
            try await base.next().map { ByteBuffer(bytes: $0) }
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: body.makeAsyncIterator())
    }
}

/// A response body's chunks as they arrive; a failure on the way is a ``PyAirtableError``.
private struct ResponseChunks: AsyncSequence, Sendable {
    typealias Element = ArraySlice<UInt8>
    let body: HTTPClientResponse.Body
    let operation: ClientOperation

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: HTTPClientResponse.Body.AsyncIterator
        let operation: ClientOperation

        mutating func next() async throws -> ArraySlice<UInt8>? {
            do {
                return try await base.next().map { ArraySlice($0.readableBytesView) }
            } catch is CancellationError {
                throw PyAirtableError.cancelledError
            } catch {
                throw PyAirtableError.transport(error, operation: operation)
            }
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: body.makeAsyncIterator(), operation: operation)
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
