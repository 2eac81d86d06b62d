/// Counters and sizes of a ``ClientCache``.
///
/// Hits and misses count reads by this instance since it opened; the disk sizes cover the whole
/// file, every namespace and every process sharing it.
public struct CacheStatistics: Sendable, Hashable, Codable {
    /// Reads answered by the memory tier.
    public var memoryHits: Int = 0
    /// Reads the memory tier could not answer.
    public var memoryMisses: Int = 0
    /// Reads answered by the disk tier.
    public var diskHits: Int = 0
    /// Reads neither tier could answer.
    public var diskMisses: Int = 0
    /// Stale values served (in the stale-while-revalidate window, or because the loader failed).
    public var staleServed: Int = 0
    /// Entries the memory tier dropped to stay within its bounds.
    public var memoryEvictions: Int = 0
    /// Entries this instance removed from the disk tier to keep the file within its bound.
    public var diskEvictions: Int = 0
    /// Background revalidations started.
    public var revalidations: Int = 0
    /// Entries in the memory tier.
    public var memoryEntries: Int = 0
    /// Bytes in the memory tier (see ``CacheEntry/size``).
    public var memoryBytes: Int = 0
    /// Entries in the cache file.
    public var diskEntries: Int = 0
    /// Bytes in the cache file's entries (see ``CacheEntry/size``).
    public var diskBytes: Int = 0

    /// Makes statistics with every counter at zero.
    public init() {}
}
