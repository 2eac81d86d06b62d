import Foundation
import OfflineQueue

extension PyAirtableClient {
    /// Where writes go when the server cannot be reached.
    ///
    /// With the queue on, a record write that fails because the server cannot be reached (refused,
    /// timeout, DNS, open circuit) is written to the queue file — with its idempotency key — before the
    /// call returns, and the call answers ``WriteResult/queued(_:)`` saying so.
    /// ``OfflineControl/replay(progress:)`` (or `pyat queue replay`) sends the queue in order; the server
    /// applies each write once, whatever was lost on the way.
    ///
    /// ```swift
    /// configuration.offline = .persistent()      // $XDG_CACHE_HOME/pyat/queue.sqlite
    /// ```
    public struct OfflineSettings: Sendable {
        /// Whether writes are queued when the server cannot be reached.
        public var isEnabled: Bool
        /// The queue file, shared by every client and process of the user on the machine.
        public var path: String
        /// The most writes the queue holds; past it a write fails with the queue's error.
        public var maximumEntries: Int
        /// The most bytes the queued requests take.
        public var maximumBytes: Int
        /// Whether writes go to the queue without trying the server (working offline on purpose).
        public var queueWithoutTrying = false
        /// Whether the queue replays by itself, in the background: when the client starts, and after a
        /// write was queued because the server could not be reached, once a probe sees the server
        /// answer again (see ``OfflineControl/replayState``). Never as a side effect of another call.
        public var replaysAutomatically = true
        /// How often the server is probed (`GET /health`, on the client's clock) while queued writes
        /// wait for it.
        public var probeInterval: Duration = .seconds(5)

        public init(
            isEnabled: Bool = true,
            path: String = OfflineQueue.Configuration.defaultPath,
            maximumEntries: Int = 100_000,
            maximumBytes: Int = 64 * 1024 * 1024
        ) {
            self.isEnabled = isEnabled
            self.path = path
            self.maximumEntries = maximumEntries
            self.maximumBytes = maximumBytes
        }

        /// No queue: a write that cannot reach the server fails.
        public static var disabled: OfflineSettings { OfflineSettings(isEnabled: false) }

        /// A queue in the file at `path`.
        public static func persistent(path: String = OfflineQueue.Configuration.defaultPath) -> OfflineSettings {
            OfflineSettings(path: path)
        }
    }
}
