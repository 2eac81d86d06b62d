import Crypto
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOFileSystem
import PyAirtableModels

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The bytes of uploaded files, addressed by their SHA-256: `<blobs>/<2 hex>/<2 hex>/<sha256>`.
///
/// Paths derive from hashes only, so no name a client sends ever reaches the file system; every
/// directory is 0700 and every file 0600. An
/// upload streams into `<blobs>/tmp/` while it is hashed and counted, then moves into place;
/// the database row of the blob and its reference count change in the transaction that adds or
/// removes a file, and the bytes are removed once the last reference's removal has committed.
/// Placing and removing bytes run one at a time (``BlobStore/exclusively(_:)``), so a blob
/// removed by one request is never the blob another has just found in place.
///
/// ```swift
/// let received = try await blobs.receive(request.body, limit: 1 << 30)
/// ```
public final class BlobStore: Sendable {
    /// An upload written to a temporary file: its hash, size and where it is.
    public struct Received: Sendable {
        public var sha256: String
        public var size: Int64
        let temporaryPath: String
    }

    /// The root directory of the blobs.
    public let directory: String
    let temporaryDirectory: String
    /// Whether received bytes reach the disk (fsync) before the row naming them can commit.
    let durable: Bool
    private let logger: Logger
    private let gate = SerialGate()
    private let coordination: (any InstanceCoordination)?

    /// Opens (creating) the blob directory.
    /// - Parameters:
    ///   - directory: Where the blobs live.
    ///   - durable: Whether each upload is fsynced before it is recorded (with durable commits, a
    ///     committed file row never names bytes a power cut lost).
    ///   - logger: Where removals and failures are logged.
    ///   - instance: With a directory several instances share, this instance's name: its partial
    ///     uploads go to `tmp/<instance>`, so its recovery at start never removes another's.
    ///   - coordination: With several instances, the store whose ``InstanceLock/blobs`` lock makes
    ///     placing and removing bytes exclusive across them (in-process exclusion is always on).
    public init(
        directory: String,
        durable: Bool = true,
        instance: String? = nil,
        coordination: (any InstanceCoordination)? = nil,
        logger: Logger
    ) throws {
        self.directory = directory
        self.durable = durable
        var temporary = (directory as NSString).appendingPathComponent("tmp")
        if let instance { temporary = (temporary as NSString).appendingPathComponent(instance) }
        self.temporaryDirectory = temporary
        self.coordination = coordination
        self.logger = logger
        try PrivateFiles.createDirectory(atPath: (directory as NSString).appendingPathComponent("tmp"))
        try PrivateFiles.createDirectory(atPath: temporaryDirectory)
    }

    /// Whether `text` is a lowercase hex SHA-256, the only thing a blob path is made of.
    static func isDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// The path of the blob with this digest.
    public func path(of sha256: String) -> String {
        precondition(Self.isDigest(sha256), "a blob path is made of a SHA-256 only")
        let first = sha256.prefix(2)
        let second = sha256.dropFirst(2).prefix(2)
        return "\(directory)/\(first)/\(second)/\(sha256)"
    }

    /// Streams `body` into a temporary file while hashing and counting it.
    ///
    /// - Throws: `PAYLOAD_TOO_LARGE` as soon as more than `limit` bytes arrived; the partial file
    ///   is removed, as it is on any other failure.
    public func receive<Body: AsyncSequence>(
        _ body: Body,
        limit: Int64
    ) async throws -> Received where Body.Element == ByteBuffer {
        let path = "\(temporaryDirectory)/\(UUID().uuidString.lowercased()).part"
        var hasher = SHA256()
        var size: Int64 = 0
        do {
            try await FileSystem.shared.withFileHandle(
                forWritingAt: FilePath(path),
                options: .newFile(replaceExisting: false, permissions: .ownerReadWrite)
            ) { handle in
                try await handle.withBufferedWriter { writer in
                    for try await buffer in body {
                        size += Int64(buffer.readableBytes)
                        guard size <= limit else { throw ServerError.fileTooLarge(limit: limit) }
                        buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                        _ = try await writer.write(contentsOf: buffer)
                    }
                }
                if durable { try await handle.synchronize() }
            }
        } catch {
            unlink(path)
            throw error
        }
        return Received(sha256: Hex.encode(hasher.finalize()), size: size, temporaryPath: path)
    }

    /// Drops a received upload that will not be kept.
    public func discard(_ received: Received) {
        unlink(received.temporaryPath)
    }

    /// Puts a received upload's bytes in place (unless the same bytes already are), then runs
    /// `transaction`, which records the reference. When `transaction` fails, or answers that it
    /// did not reference the blob (an idempotent replay), bytes this call placed are removed again.
    func store<T: Sendable>(
        _ received: Received,
        _ transaction: @Sendable () async throws -> (value: T, referenced: Bool)
    ) async throws -> T {
        try await exclusively {
            let destination = path(of: received.sha256)
            var placed = false
            if FileManager.default.fileExists(atPath: destination) {
                unlink(received.temporaryPath)
            } else {
                try PrivateFiles.createDirectory(atPath: (destination as NSString).deletingLastPathComponent)
                guard rename(received.temporaryPath, destination) == 0 else {
                    let code = errno
                    unlink(received.temporaryPath)
                    throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
                }
                placed = true
            }
            do {
                let (value, referenced) = try await transaction()
                if placed && !referenced { unlink(destination) }
                return value
            } catch {
                if placed { unlink(destination) }
                throw error
            }
        }
    }

    /// Runs `transaction` (a removal that may leave blobs unreferenced), then `sweep`, which
    /// deletes the rows of unreferenced blobs and answers their digests, and removes those bytes.
    func release<T: Sendable>(
        _ transaction: @Sendable () async throws -> T,
        sweep: @Sendable () async throws -> [String]
    ) async throws -> T {
        try await exclusively {
            let value = try await transaction()
            try removeBytes(of: try await sweep())
            return value
        }
    }

    /// Deletes the rows of blobs no file references (a deleted workspace's files go by cascade) and
    /// then their bytes.
    func removeUnreferenced(store: any FileRepository) async throws {
        try await release({}, sweep: { try await store.sweepUnreferencedBlobs() })
    }

    /// Removes the bytes of blobs whose rows are gone (committed).
    private func removeBytes(of digests: [String]) throws {
        for digest in digests where Self.isDigest(digest) {
            let path = path(of: digest)
            if unlink(path) != 0 && errno != ENOENT {
                logger.warning("could not remove a blob", metadata: ["sha256": "\(digest)", "errno": "\(errno)"])
            }
        }
    }

    /// Runs `body` while no other placement or removal of bytes runs, in this process and (with a
    /// coordinating store) in every instance sharing the directory.
    func exclusively<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        await gate.acquire()
        do {
            let value: T
            if let coordination {
                guard let shared = try await coordination.exclusively(.blobs, wait: true, body) else {
                    throw CancellationError()
                }
                value = shared
            } else {
                value = try await body()
            }
            await gate.release()
            return value
        } catch {
            await gate.release()
            throw error
        }
    }

    /// After a start: removes partial uploads, bytes of unreferenced blobs and bytes no row names
    /// (a crash between a commit and the file system catching up).
    func recover(store: any FileRepository) async throws {
        let fileManager = FileManager.default
        var removed = 0
        for name in (try? fileManager.contentsOfDirectory(atPath: temporaryDirectory)) ?? [] {
            if unlink("\(temporaryDirectory)/\(name)") == 0 { removed += 1 }
        }
        removed += try await exclusively {
            var removed = 0
            try removeBytes(of: try await store.sweepUnreferencedBlobs())
            let known = try await store.blobDigests()
            for first in (try? fileManager.contentsOfDirectory(atPath: directory)) ?? [] where first.count == 2 {
                let level = "\(directory)/\(first)"
                for second in (try? fileManager.contentsOfDirectory(atPath: level)) ?? [] {
                    let inner = "\(level)/\(second)"
                    for name in (try? fileManager.contentsOfDirectory(atPath: inner)) ?? [] where !known.contains(name)
                    {
                        if unlink("\(inner)/\(name)") == 0 { removed += 1 }
                    }
                }
            }
            return removed
        }
        if removed > 0 {
            logger.info("removed leftover upload files", metadata: ["count": "\(removed)"])
        }
    }
}

/// A FIFO lock for async code: one holder at a time, waiters resumed in order.
actor SerialGate {
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        if busy {
            await withCheckedContinuation { waiters.append($0) }
        } else {
            busy = true
        }
    }

    func release() {
        if waiters.isEmpty {
            busy = false
        } else {
            waiters.removeFirst().resume()
        }
    }
}

extension ServerError {
    static func fileTooLarge(limit: Int64) -> ServerError {
        ServerError(.contentTooLarge, .payloadTooLarge, "the file is larger than the server's limit of \(limit) bytes")
    }
}
