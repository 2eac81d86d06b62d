import Foundation
import PyAirtableModels

extension ClientCache {
    /// How a ``ClientCache`` is set up.
    public struct Configuration: Sendable {
        /// The SQLite file.
        public var path: String
        /// The account whose entries this cache reads and writes.
        public var namespace: CacheNamespace
        /// The most entries the memory tier holds.
        public var memoryMaximumEntries: Int
        /// The most bytes (see ``CacheEntry/size``) the memory tier holds.
        public var memoryMaximumBytes: Int
        /// The most bytes the cache file's entries hold, across namespaces; least recently used go first.
        public var diskMaximumBytes: Int
        /// The lifetime of values stored without one.
        public var defaultLifetime: CacheLifetime
        /// How long the memory tier may answer before it checks whether another process changed the
        /// file. Zero checks on every read.
        public var coherenceInterval: Duration
        /// How many reads' last-access times are batched before they are written to the file.
        public var accessFlushThreshold: Int
        /// Whether a fetch answers from an expired entry (flagged stale) when its loader fails.
        public var serveExpiredWhenLoaderFails: Bool
        /// The wall clock: entries' lifetimes are wall-clock times shared with other processes.
        public var now: @Sendable () -> Date

        /// Makes a configuration.
        /// - Parameters:
        ///   - path: The SQLite file; by default `$XDG_CACHE_HOME/pyat/cache.sqlite`.
        ///   - namespace: The server and user; by default an anonymous one.
        ///   - memoryMaximumEntries: The memory tier's entry bound.
        ///   - memoryMaximumBytes: The memory tier's byte bound.
        ///   - diskMaximumBytes: The cache file's byte bound.
        ///   - defaultLifetime: The lifetime of values stored without one.
        ///   - coherenceInterval: How stale the memory tier may be relative to other processes' writes.
        ///   - accessFlushThreshold: How many last-access updates are batched.
        ///   - serveExpiredWhenLoaderFails: Whether an offline fetch may answer from an expired entry.
        ///   - now: The wall clock.
        public init(
            path: String = Configuration.defaultPath,
            namespace: CacheNamespace = CacheNamespace(serverURL: "", user: ""),
            memoryMaximumEntries: Int = 10_000,
            memoryMaximumBytes: Int = 16 * 1024 * 1024,
            diskMaximumBytes: Int = 256 * 1024 * 1024,
            defaultLifetime: CacheLifetime = CacheLifetime(ttl: .seconds(120)),
            coherenceInterval: Duration = .milliseconds(100),
            accessFlushThreshold: Int = 256,
            serveExpiredWhenLoaderFails: Bool = true,
            now: @escaping @Sendable () -> Date = { Date() }
        ) {
            self.path = path
            self.namespace = namespace
            self.memoryMaximumEntries = memoryMaximumEntries
            self.memoryMaximumBytes = memoryMaximumBytes
            self.diskMaximumBytes = diskMaximumBytes
            self.defaultLifetime = defaultLifetime
            self.coherenceInterval = coherenceInterval
            self.accessFlushThreshold = accessFlushThreshold
            self.serveExpiredWhenLoaderFails = serveExpiredWhenLoaderFails
            self.now = now
        }

        /// `$XDG_CACHE_HOME/pyat/cache.sqlite`, or `$HOME/.cache/pyat/cache.sqlite`.
        public static var defaultPath: String {
            UserDirectories.cacheHome() + "/pyat/cache.sqlite"
        }
    }
}
