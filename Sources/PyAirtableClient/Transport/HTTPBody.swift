import Foundation
import Synchronization

/// A request or response body: an async sequence of byte chunks, in the shape of
/// swift-openapi-runtime's `HTTPBody`.
///
/// A body knows its length when it can (sent as `Content-Length`) and says whether it can be read
/// more than once: a body made from bytes in memory, or from a source that starts again on each
/// iteration (a file read from disk), is ``IterationBehavior/multiple``, so a middleware may send its
/// request again (after a refreshed token, on a retry); a body streamed from the network is
/// ``IterationBehavior/single``, and middlewares do not send its request twice.
///
/// ```swift
/// let body = HTTPBody("{\"name\":\"Ada\"}")
/// let data = try await response.body?.collect(upTo: 1 << 20)
/// for try await chunk in download.body ?? HTTPBody() { write(chunk) }
/// ```
public final class HTTPBody: AsyncSequence, Sendable, Hashable {
    public typealias Element = ArraySlice<UInt8>
    public typealias Failure = any Error

    /// Whether a body can be iterated more than once.
    public enum IterationBehavior: Sendable, Hashable {
        /// Once only: a second iteration throws ``TooManyIterationsError``.
        case single
        /// As often as wanted, each iteration giving the same bytes.
        case multiple
    }

    /// A body's length in bytes, when known.
    public enum Length: Sendable, Hashable {
        case unknown
        case known(Int64)
    }

    /// A second iteration of a ``IterationBehavior/single`` body.
    public struct TooManyIterationsError: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String { "the body can be read only once, and it was already read" }
    }

    /// A body longer than the limit given to ``collect(upTo:)``.
    public struct TooManyBytesError: Error, Sendable, Hashable, CustomStringConvertible {
        public var maximumBytes: Int
        public var description: String { "the body is longer than \(maximumBytes) bytes" }
    }

    public let length: Length
    public let iterationBehavior: IterationBehavior
    /// The bytes, when the body was made from bytes in memory.
    let buffered: Data?
    private let makeIterator: @Sendable () -> Iterator
    private let iterated = Mutex(false)

    /// A body of the chunks of `sequence`.
    /// - Parameters:
    ///   - sequence: The chunks; for ``IterationBehavior/multiple``, each iteration must give the same bytes.
    ///   - length: The total length, when known.
    ///   - iterationBehavior: Whether `sequence` can be iterated more than once.
    public init<Chunks: AsyncSequence & Sendable>(
        _ sequence: Chunks,
        length: Length,
        iterationBehavior: IterationBehavior
    ) where Chunks.Element == ArraySlice<UInt8> {
        self.length = length
        self.iterationBehavior = iterationBehavior
        self.buffered = nil
        self.makeIterator = { Iterator(sequence.makeAsyncIterator()) }
    }

    /// A body of bytes in memory (replayable).
    public init(_ data: Data) {
        self.length = .known(Int64(data.count))
        self.iterationBehavior = .multiple
        self.buffered = data
        self.makeIterator = { Iterator(data: data) }
    }

    /// A body of bytes in memory (replayable).
    public convenience init(_ bytes: [UInt8]) {
        self.init(Data(bytes))
    }

    /// A body of bytes in memory (replayable).
    public convenience init(_ bytes: ArraySlice<UInt8>) {
        self.init(Data(bytes))
    }

    /// A body of a string's UTF-8 bytes (replayable).
    public convenience init(_ string: some StringProtocol) {
        self.init(Data(string.utf8))
    }

    /// An empty body.
    public convenience init() {
        self.init(Data())
    }

    /// A body of a stream of chunks, read once.
    public convenience init(_ stream: AsyncThrowingStream<ArraySlice<UInt8>, any Error>, length: Length = .unknown) {
        self.init(stream, length: length, iterationBehavior: .single)
    }

    public func makeAsyncIterator() -> Iterator {
        if iterationBehavior == .single {
            let again = iterated.withLock { iterated in
                defer { iterated = true }
                return iterated
            }
            if again { return Iterator(failing: TooManyIterationsError()) }
        }
        return makeIterator()
    }

    /// All the bytes, at most `maximumBytes` of them.
    /// - Throws: ``TooManyBytesError`` when the body is longer, or the source's error.
    public func collect(upTo maximumBytes: Int) async throws -> Data {
        if case .known(let known) = length, known > maximumBytes { throw TooManyBytesError(maximumBytes: maximumBytes) }
        if let buffered { return buffered }
        var data = Data()
        for try await chunk in self {
            guard data.count + chunk.count <= maximumBytes else { throw TooManyBytesError(maximumBytes: maximumBytes) }
            data.append(contentsOf: chunk)
        }
        return data
    }

    /// Bodies made from bytes are equal when their bytes are; others only to themselves.
    public static func == (lhs: HTTPBody, rhs: HTTPBody) -> Bool {
        if lhs === rhs { return true }
        guard let left = lhs.buffered, let right = rhs.buffered else { return false }
        return left == right
    }

    public func hash(into hasher: inout Hasher) {
        if let buffered {
            hasher.combine(buffered)
        } else {
            hasher.combine(ObjectIdentifier(self))
        }
    }

    /// Reads a body's chunks.
    public struct Iterator: AsyncIteratorProtocol {
        private let produce: () async throws -> ArraySlice<UInt8>?

        init<Base: AsyncIteratorProtocol>(_ base: Base) where Base.Element == ArraySlice<UInt8> {
            let box = IteratorBox(base)
            self.produce = { try await box.next() }
        }

        init(data: Data) {
            var done = data.isEmpty
            self.produce = {
                guard !done else { return nil }
                done = true
                return ArraySlice(data)
            }
        }

        init(failing error: any Error) {
            self.produce = { throw error }
        }

        public mutating func next() async throws -> ArraySlice<UInt8>? {
            try await produce()
        }
    }
}

/// The iterator of a wrapped sequence, kept in a class so the body's iterator can be a value.
private final class IteratorBox<Base: AsyncIteratorProtocol> where Base.Element == ArraySlice<UInt8> {
    var base: Base

    init(_ base: Base) {
        self.base = base
    }

    func next() async throws -> ArraySlice<UInt8>? {
        try await base.next()
    }
}

extension HTTPBody {
    /// A replayable body reading the file at `path` in pieces of `chunkSize` bytes as the transport
    /// asks for them: each iteration opens the file again, so a request can be sent again after a
    /// refreshed token without holding the file in memory.
    static func file(
        atPath path: String,
        length: Int64,
        chunkSize: Int,
        progress: (@Sendable (TransferProgress) -> Void)?
    ) -> HTTPBody {
        HTTPBody(
            FileChunks(path: path, total: length, chunkSize: chunkSize, progress: progress),
            length: .known(length),
            iterationBehavior: .multiple
        )
    }
}

/// A file's bytes, read piece by piece; every iteration starts at the beginning.
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = ArraySlice<UInt8>

    let path: String
    let total: Int64
    let chunkSize: Int
    let progress: (@Sendable (TransferProgress) -> Void)?

    struct AsyncIterator: AsyncIteratorProtocol {
        let chunks: FileChunks
        let reader = FileReader()
        var sent: Int64 = 0

        mutating func next() async throws -> ArraySlice<UInt8>? {
            guard let data = try reader.read(path: chunks.path, upToCount: chunks.chunkSize) else { return nil }
            sent += Int64(data.count)
            chunks.progress?(TransferProgress(completed: sent, total: chunks.total))
            return ArraySlice(data)
        }
    }

    /// The open file of one iteration, closed at its end or when the iteration is abandoned.
    final class FileReader {
        private var handle: FileHandle?
        private var finished = false

        func read(path: String, upToCount count: Int) throws -> Data? {
            guard !finished else { return nil }
            if handle == nil { handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path)) }
            guard let data = try handle?.read(upToCount: count), !data.isEmpty else {
                try? handle?.close()
                handle = nil
                finished = true
                return nil
            }
            return data
        }

        deinit {
            try? handle?.close()
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(chunks: self)
    }
}
