import ClientCache
import Foundation

extension PyAirtableClient {
    /// The kinds of answer the SDK caches; each has its own default policy and lifetime.
    public enum CachedResource: String, Sendable, Hashable, CaseIterable, Codable {
        /// The signed-in user (`users.me`).
        case user
        /// Workspaces and their members.
        case workspaces
        /// Bases.
        case bases
        /// Tables, fields and views: the schema.
        case schema
        /// Records and pages of records.
        case records
    }

    /// How reads of one kind of resource use the cache by default.
    public struct CacheRule: Sendable, Hashable {
        /// Where a read looks when the call names no policy.
        public var policy: FetchPolicy
        /// How long an answer stays fresh, then how long it may be served stale while it is refreshed.
        public var lifetime: CacheLifetime

        public init(policy: FetchPolicy, lifetime: CacheLifetime) {
            self.policy = policy
            self.lifetime = lifetime
        }
    }

    /// The client's cache of answers: where it lives, its bounds, and the default rule of each kind of
    /// resource.
    ///
    /// The defaults follow the platform's documented strategy: the user 15 minutes and workspaces
    /// 5 minutes, both stale-while-revalidate; record lists 2 minutes, invalidated on change; the
    /// schema 30 minutes. When the server cannot be reached, reads answer from the cache — stale, or
    /// even expired — and say so on ``CachedResponse``.
    ///
    /// ```swift
    /// var configuration = PyAirtableClient.Configuration(serverURL: url)
    /// configuration.cache = .persistent()                       // $XDG_CACHE_HOME/pyat/cache.sqlite
    /// configuration.cache.rules[.records] = .init(policy: .networkFirst, lifetime: .init(ttl: .seconds(30)))
    /// ```
    public struct CacheSettings: Sendable {
        /// Whether reads and writes use the cache at all.
        public var isEnabled: Bool
        /// The SQLite file, shared by every client and process of this user on the machine.
        public var path: String
        /// The memory tier's bound in entries.
        public var memoryMaximumEntries: Int
        /// The memory tier's bound in bytes.
        public var memoryMaximumBytes: Int
        /// The file's bound in bytes; least recently used entries are evicted beyond it.
        public var diskMaximumBytes: Int
        /// The default rule of each kind of resource.
        public var rules: [CachedResource: CacheRule]
        /// Whether an unreachable server lets a read answer from an expired entry (flagged stale).
        public var serveExpiredWhenOffline: Bool
        /// How many decoded values are kept beside the memory tier, so a repeated read skips decoding.
        public var decodedValueLimit: Int
        /// The memory those decoded values may take, counted as the size of the cached answers they
        /// were decoded from; least recently used ones go first, and an answer larger than this is
        /// not kept decoded at all. 0 keeps none.
        public var decodedValueMaximumBytes: Int
        /// The wall clock of entries' lifetimes; tests inject a manual one.
        public var now: @Sendable () -> Date

        /// The default rules (see ``CacheSettings``).
        public static let defaultRules: [CachedResource: CacheRule] = [
            .user: CacheRule(
                policy: .staleWhileRevalidate,
                lifetime: CacheLifetime(ttl: .seconds(15 * 60), staleWhileRevalidate: .seconds(24 * 3600))
            ),
            .workspaces: CacheRule(
                policy: .staleWhileRevalidate,
                lifetime: CacheLifetime(ttl: .seconds(5 * 60), staleWhileRevalidate: .seconds(24 * 3600))
            ),
            .bases: CacheRule(
                policy: .staleWhileRevalidate,
                lifetime: CacheLifetime(ttl: .seconds(5 * 60), staleWhileRevalidate: .seconds(24 * 3600))
            ),
            .schema: CacheRule(policy: .cacheFirst, lifetime: CacheLifetime(ttl: .seconds(30 * 60))),
            .records: CacheRule(policy: .cacheFirst, lifetime: CacheLifetime(ttl: .seconds(2 * 60))),
        ]

        /// Makes settings; see the properties for each parameter.
        public init(
            isEnabled: Bool = true,
            path: String = ClientCache.Configuration.defaultPath,
            memoryMaximumEntries: Int = 10_000,
            memoryMaximumBytes: Int = 16 * 1024 * 1024,
            diskMaximumBytes: Int = 256 * 1024 * 1024,
            rules: [CachedResource: CacheRule] = CacheSettings.defaultRules,
            serveExpiredWhenOffline: Bool = true,
            decodedValueLimit: Int = 1_000,
            decodedValueMaximumBytes: Int = 8 * 1024 * 1024,
            now: @escaping @Sendable () -> Date = { Date() }
        ) {
            self.isEnabled = isEnabled
            self.path = path
            self.memoryMaximumEntries = memoryMaximumEntries
            self.memoryMaximumBytes = memoryMaximumBytes
            self.diskMaximumBytes = diskMaximumBytes
            self.rules = rules
            self.serveExpiredWhenOffline = serveExpiredWhenOffline
            self.decodedValueLimit = decodedValueLimit
            self.decodedValueMaximumBytes = decodedValueMaximumBytes
            self.now = now
        }

        /// No cache: every read goes to the server, as with `FetchPolicy.networkOnly`.
        public static var disabled: CacheSettings { CacheSettings(isEnabled: false) }

        /// A cache in the file at `path` (by default `$XDG_CACHE_HOME/pyat/cache.sqlite`).
        public static func persistent(path: String = ClientCache.Configuration.defaultPath) -> CacheSettings {
            CacheSettings(path: path)
        }

        /// The rule of `kind`: the configured one, else the default.
        public func rule(for kind: CachedResource) -> CacheRule {
            rules[kind] ?? Self.defaultRules[kind]!
        }
    }
}
