import AsyncHTTPClient
import Foundation
import NIOCore

/// A request body read piece by piece (a file from disk), never held whole in memory.
///
/// `makeChunks` is called once per attempt, so a request sent again (after a refreshed token)
/// reads its source from the start.
public struct StreamingRequestBody: Sendable {
    /// The body's length in bytes, sent as `Content-Length`, when known.
    public var length: Int64?
    /// Makes a fresh sequence of the body's bytes.
    public var makeChunks: @Sendable () throws -> AsyncThrowingStream<ByteBuffer, any Error>

    public init(length: Int64?, makeChunks: @escaping @Sendable () throws -> AsyncThrowingStream<ByteBuffer, any Error>)
    {
        self.length = length
        self.makeChunks = makeChunks
    }

    /// All the bytes, for transports that cannot stream.
    func collect() async throws -> Data {
        var data = Data()
        for try await chunk in try makeChunks() { data.append(contentsOf: chunk.readableBytesView) }
        return data
    }
}

/// A response body as it arrives from the network.
public struct ResponseBodyStream: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer

    enum Source: Sendable {
        case buffered(Data)
        case httpClient(HTTPClientResponse.Body)
    }

    let source: Source

    /// A body already received whole (what transports that cannot stream hand over).
    public init(data: Data) {
        self.source = .buffered(data)
    }

    init(_ body: HTTPClientResponse.Body) {
        self.source = .httpClient(body)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        enum State {
            case buffered(Data?)
            case httpClient(HTTPClientResponse.Body.AsyncIterator)
        }

        var state: State

        public mutating func next() async throws -> ByteBuffer? {
            switch state {
            case .buffered(let data):
                state = .buffered(nil)
                guard let data, !data.isEmpty else { return nil }
                return ByteBuffer(bytes: data)
            case .httpClient(var iterator):
                let chunk = try await iterator.next()
                state = .httpClient(iterator)
                return chunk
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        switch source {
        case .buffered(let data): AsyncIterator(state: .buffered(data))
        case .httpClient(let body): AsyncIterator(state: .httpClient(body.makeAsyncIterator()))
        }
    }

    /// Reads the rest of the body, up to `limit` bytes (an error answer's JSON).
    func collect(upTo limit: Int) async throws -> Data {
        var data = Data()
        for try await chunk in self {
            data.append(contentsOf: chunk.readableBytesView.prefix(Swift.max(0, limit - data.count)))
            if data.count >= limit { break }
        }
        return data
    }
}

/// A transport that can stream request and response bodies: file uploads and downloads use it,
/// so a large file never sits whole in memory. ``AsyncHTTPClientTransport`` is one; with any
/// other transport the files service falls back to whole bodies through ``ClientTransport/send(_:baseURL:timeout:)``.
public protocol StreamingClientTransport: ClientTransport {
    /// Sends `request` with `body` streamed (when given, instead of `request.body`) and hands the
    /// response's head (its `body` empty) and streamed body to `handle`, within the exchange.
    func execute<Result: Sendable>(
        _ request: ClientRequest,
        body: StreamingRequestBody?,
        baseURL: URL,
        timeout: Duration,
        handle: (ClientResponse, ResponseBodyStream) async throws -> Result
    ) async throws -> Result
}
