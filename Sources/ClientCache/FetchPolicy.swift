import Foundation

/// Where ``ClientCache/fetch(_:policy:lifetime:loader:)`` looks for a value.
public enum FetchPolicy: String, Sendable, Hashable, Codable, CaseIterable {
    /// A fresh cached value if there is one, else the loader.
    case cacheFirst
    /// The loader, falling back to the cache when the loader fails.
    case networkFirst
    /// A fresh value from the cache; a stale one at once while one background load refreshes it;
    /// the loader on a miss.
    case staleWhileRevalidate
    /// The cache only (fresh or stale); never the loader.
    case cacheOnly
    /// The loader only; its answer is still stored.
    case networkOnly
}

/// What a loader answers.
public enum CacheLoad: Sendable, Hashable {
    /// A new value, with the tags it provides and its validator.
    case value(Data, tags: [CacheTag] = [], etag: String? = nil)
    /// The cached value is still current (for example HTTP 304): only its lifetime is renewed.
    case notModified
}

/// Where a fetched value came from.
public enum FetchSource: String, Sendable, Hashable, Codable {
    /// The cache answered.
    case cache
    /// The loader answered.
    case loader
}

/// The answer of ``ClientCache/fetch(_:policy:lifetime:loader:)``.
public struct FetchResult: Sendable {
    /// The value.
    public var value: Data
    /// The entry as now cached, with its tags and validator.
    public var entry: CacheEntry
    /// Where the value came from.
    public var source: FetchSource
    /// Whether the value is past its TTL.
    public var isStale: Bool
    /// Why the loader was not used, when the cache answered because the loader failed (offline).
    public var loaderError: (any Error)?

    /// Whether the cache answered.
    public var fromCache: Bool { source == .cache }
}
