import Foundation
import PyAirtableModels

extension OfflineQueue {
    /// How an ``OfflineQueue`` is set up.
    public struct Configuration: Sendable {
        /// The SQLite file.
        public var path: String
        /// The account whose mutations this queue holds and replays.
        public var namespace: QueueNamespace
        /// The most mutations the file holds, across namespaces.
        public var maximumEntries: Int
        /// The most bytes (see ``QueuedRequest/size``) the file's mutations hold, across namespaces.
        public var maximumBytes: Int
        /// How long a claim holds while its process is alive. Past it, the mutation is taken back even
        /// from a live process (one that hangs); a dead process's claims are taken back at once.
        public var leaseDuration: Duration
        /// After this many failed attempts, a retryable failure moves the mutation to the failed list;
        /// `nil` retries for ever.
        public var maximumAttempts: Int?
        /// How long resolved temporary-id mappings are kept, so late requests naming them are rewritten.
        public var temporaryIDRetention: Duration
        /// How often ``OfflineQueue/waitUntilDrained()`` re-reads the file, to see progress made by
        /// other processes.
        public var drainPollInterval: Duration
        /// The wall clock: claims' leases are wall-clock times shared with other processes.
        public var now: @Sendable () -> Date

        /// Makes a configuration.
        /// - Parameters:
        ///   - path: The SQLite file; by default `$XDG_CACHE_HOME/pyat/queue.sqlite`.
        ///   - namespace: The server and user; by default an anonymous one.
        ///   - maximumEntries: The entry bound.
        ///   - maximumBytes: The byte bound.
        ///   - leaseDuration: How long a live process's claim holds.
        ///   - maximumAttempts: Failed attempts before a mutation moves to the failed list.
        ///   - temporaryIDRetention: How long resolved temporary ids are remembered.
        ///   - drainPollInterval: How often a drain wait looks at other processes' progress.
        ///   - now: The wall clock.
        public init(
            path: String = Configuration.defaultPath,
            namespace: QueueNamespace = QueueNamespace(serverURL: "", user: ""),
            maximumEntries: Int = 100_000,
            maximumBytes: Int = 64 * 1024 * 1024,
            leaseDuration: Duration = .seconds(300),
            maximumAttempts: Int? = nil,
            temporaryIDRetention: Duration = .seconds(30 * 24 * 3600),
            drainPollInterval: Duration = .seconds(1),
            now: @escaping @Sendable () -> Date = { Date() }
        ) {
            self.path = path
            self.namespace = namespace
            self.maximumEntries = maximumEntries
            self.maximumBytes = maximumBytes
            self.leaseDuration = leaseDuration
            self.maximumAttempts = maximumAttempts
            self.temporaryIDRetention = temporaryIDRetention
            self.drainPollInterval = drainPollInterval
            self.now = now
        }

        /// `$XDG_CACHE_HOME/pyat/queue.sqlite`, or `$HOME/.cache/pyat/queue.sqlite`.
        public static var defaultPath: String {
            UserDirectories.cacheHome() + "/pyat/queue.sqlite"
        }
    }
}
