import ClientCache
import Foundation
import Logging
import Synchronization

/// Creates the directory of `path` (and its parents) with mode 0700, if it does not exist: the cache
/// and the offline queue hold the user's data, which only the user may read.
func createPrivateDirectory(containing path: String) throws {
    let directory = (path as NSString).deletingLastPathComponent
    guard !directory.isEmpty, !FileManager.default.fileExists(atPath: directory) else { return }
    try FileManager.default.createDirectory(
        atPath: directory,
        withIntermediateDirectories: true,
        attributes: [.posixPermissions: 0o700]
    )
}

/// The SDK's side of the cache: one ``ClientCache`` per account (namespace) on the client's server,
/// opened on first use, plus a small table of decoded values so that a repeated read of an unchanged
/// entry skips JSON decoding. That table is bounded in entries and in bytes (the sizes of the
/// answers its values were decoded from), evicting the least recently used.
final class ResponseCache: Sendable {
    let settings: PyAirtableClient.CacheSettings
    let serverURL: String
    let logger: Logger

    private struct Decoded {
        var storedAt: Date
        var etag: String?
        var size: Int
        var value: any Sendable
        var lastUse: UInt64
    }

    /// A decoded value's key: the account's engine and the entry's key.
    private struct MemoKey: Hashable {
        var engine: ObjectIdentifier
        var key: String
    }

    private struct State {
        var engines: [String: ClientCache] = [:]
        /// Accounts whose cache could not be opened: reads go to the server without it.
        var failed: Set<String> = []
        var decoded: [MemoKey: Decoded] = [:]
        /// The sizes of the entries behind `decoded`, summed.
        var decodedBytes = 0
        var useCounter: UInt64 = 0

        mutating func removeDecoded(_ key: MemoKey) {
            if let removed = decoded.removeValue(forKey: key) { decodedBytes -= removed.size }
        }
    }

    private let state = Mutex(State())

    init(settings: PyAirtableClient.CacheSettings, serverURL: URL, logger: Logger) {
        self.settings = settings
        var server = serverURL.absoluteString
        while server.hasSuffix("/") { server.removeLast() }
        self.serverURL = server
        self.logger = logger
    }

    /// The cache of `identity` on this server; `nil` when it cannot be opened (logged once).
    func engine(for identity: String) -> ClientCache? {
        let existing: ClientCache?? = state.withLock { state in
            if let engine = state.engines[identity] { return .some(engine) }
            if state.failed.contains(identity) { return .some(nil) }
            return nil
        }
        if let existing { return existing }
        do {
            try createPrivateDirectory(containing: settings.path)
            let engine = try ClientCache(
                configuration: ClientCache.Configuration(
                    path: settings.path,
                    namespace: CacheNamespace(serverURL: serverURL, user: identity),
                    memoryMaximumEntries: settings.memoryMaximumEntries,
                    memoryMaximumBytes: settings.memoryMaximumBytes,
                    diskMaximumBytes: settings.diskMaximumBytes,
                    serveExpiredWhenLoaderFails: settings.serveExpiredWhenOffline,
                    now: settings.now
                ),
                logger: logger
            )
            return state.withLock { state in
                if let raced = state.engines[identity] { return raced }
                state.engines[identity] = engine
                return engine
            }
        } catch {
            logger.warning(
                "The cache could not be opened; reads go to the server",
                metadata: ["path": "\(settings.path)", "error": "\(error)"]
            )
            state.withLock { _ = $0.failed.insert(identity) }
            return nil
        }
    }

    /// The decoded value of `entry`, if the same entry (stored at the same moment, same validator and
    /// size) was decoded before.
    func decoded<T: Sendable>(_ entry: CacheEntry, engine: ClientCache, as type: T.Type) -> T? {
        state.withLock { state in
            let key = MemoKey(engine: ObjectIdentifier(engine), key: entry.key)
            guard let memo = state.decoded[key], memo.storedAt == entry.storedAt, memo.etag == entry.etag,
                memo.size == entry.value.count, let value = memo.value as? T
            else { return nil }
            state.useCounter &+= 1
            state.decoded[key]?.lastUse = state.useCounter
            return value
        }
    }

    /// Remembers the decoded value of `entry`. Past either bound it evicts least recently used
    /// values, down to nine tenths of the bound, so that eviction's sort is paid once per many calls.
    func remember(_ value: some Sendable, for entry: CacheEntry, engine: ClientCache) {
        let limit = settings.decodedValueLimit
        let maximumBytes = settings.decodedValueMaximumBytes
        let size = entry.value.count
        guard limit > 0, size <= maximumBytes else { return }
        state.withLock { state in
            state.useCounter &+= 1
            let key = MemoKey(engine: ObjectIdentifier(engine), key: entry.key)
            state.removeDecoded(key)
            state.decoded[key] = Decoded(
                storedAt: entry.storedAt,
                etag: entry.etag,
                size: size,
                value: value,
                lastUse: state.useCounter
            )
            state.decodedBytes += size
            guard state.decoded.count > limit || state.decodedBytes > maximumBytes else { return }
            let targetCount = limit - limit / 10
            let targetBytes = maximumBytes - maximumBytes / 10
            for victim in state.decoded.sorted(by: { $0.value.lastUse < $1.value.lastUse }) where victim.key != key {
                guard state.decoded.count > targetCount || state.decodedBytes > targetBytes else { break }
                state.removeDecoded(victim.key)
            }
        }
    }

    /// How many decoded values are kept, and the bytes they are counted as.
    var decodedFootprint: (count: Int, bytes: Int) {
        state.withLock { ($0.decoded.count, $0.decodedBytes) }
    }

    /// Forgets decoded values (after invalidation they can no longer match an entry, but they still
    /// take memory).
    func forgetDecoded() {
        state.withLock { state in
            state.decoded.removeAll(keepingCapacity: true)
            state.decodedBytes = 0
        }
    }
}
