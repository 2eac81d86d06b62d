import Foundation

/// One cached value with its lifetime, tags and validator.
///
/// An entry is **fresh** until ``freshUntil`` (its TTL), then **stale** until ``staleUntil`` (the
/// stale-while-revalidate window), then **expired**: a plain ``ClientCache/get(_:)`` treats an expired
/// entry as a miss, though ``ClientCache/fetch(_:policy:lifetime:loader:)`` still answers from it when
/// the loader fails, and says so.
public struct CacheEntry: Sendable, Hashable {
    /// The key within the cache's namespace.
    public var key: String
    /// The cached bytes.
    public var value: Data
    /// The tags the entry provides, such as `table:tbl1` or `record:rec1`; see ``CacheTag``.
    public var tags: [CacheTag]
    /// When the value was stored.
    public var storedAt: Date
    /// Until when the value is fresh.
    public var freshUntil: Date
    /// Until when the value may be served stale while it is revalidated.
    public var staleUntil: Date
    /// The validator the server gave with the value (ETag or version), for conditional requests.
    public var etag: String?
    /// When the entry was last read or written.
    public var lastAccess: Date

    /// Makes an entry.
    public init(
        key: String,
        value: Data,
        tags: [CacheTag] = [],
        storedAt: Date,
        freshUntil: Date,
        staleUntil: Date,
        etag: String? = nil,
        lastAccess: Date? = nil
    ) {
        self.key = key
        self.value = value
        self.tags = tags
        self.storedAt = storedAt
        self.freshUntil = freshUntil
        self.staleUntil = max(staleUntil, freshUntil)
        self.etag = etag
        self.lastAccess = lastAccess ?? storedAt
    }

    /// The bytes the entry counts against the cache's bounds: its value, key, tags and validator.
    public var size: Int {
        var size = value.count + key.utf8.count + (etag?.utf8.count ?? 0)
        for tag in tags { size += tag.rawValue.utf8.count }
        return size
    }

    /// How usable the entry is at `now`.
    public func freshness(at now: Date) -> CacheFreshness {
        if now < freshUntil { return .fresh }
        if now < staleUntil { return .stale }
        return .expired
    }
}

/// How usable a cached entry is at a given time.
public enum CacheFreshness: String, Sendable, Hashable, Codable {
    /// Within its TTL: serve it.
    case fresh
    /// Past its TTL but within its stale-while-revalidate window: serve it and revalidate.
    case stale
    /// Past both: a miss, served only when the source cannot be reached.
    case expired
}

/// Which tier answered a read.
public enum CacheTier: String, Sendable, Hashable, Codable {
    /// The in-memory LRU tier.
    case memory
    /// The SQLite tier.
    case disk
}

/// A successful cache read: the entry, how fresh it is, and which tier answered.
public struct CacheHit: Sendable, Hashable {
    /// The entry read.
    public var entry: CacheEntry
    /// Its freshness at the time of the read.
    public var freshness: CacheFreshness
    /// The tier that answered.
    public var tier: CacheTier

    /// Makes a hit.
    public init(entry: CacheEntry, freshness: CacheFreshness, tier: CacheTier) {
        self.entry = entry
        self.freshness = freshness
        self.tier = tier
    }
}

/// How long a stored value stays fresh, and how long after that it may be served stale.
public struct CacheLifetime: Sendable, Hashable {
    /// How long the value is fresh.
    public var ttl: Duration
    /// How long after the TTL the value may be served stale while it is revalidated.
    public var staleWhileRevalidate: Duration

    /// Makes a lifetime.
    /// - Parameters:
    ///   - ttl: How long the value is fresh.
    ///   - staleWhileRevalidate: The stale window after the TTL; none by default.
    public init(ttl: Duration, staleWhileRevalidate: Duration = .zero) {
        self.ttl = ttl
        self.staleWhileRevalidate = staleWhileRevalidate
    }
}

extension Date {
    /// Microseconds since 1970, the cache file's time unit.
    var cacheMicroseconds: Int64 {
        Int64((timeIntervalSince1970 * 1_000_000).rounded())
    }

    init(cacheMicroseconds: Int64) {
        self.init(timeIntervalSince1970: Double(cacheMicroseconds) / 1_000_000)
    }

    func adding(_ duration: Duration) -> Date {
        let (seconds, attoseconds) = duration.components
        return addingTimeInterval(Double(seconds) + Double(attoseconds) / 1e18)
    }
}
