import Foundation
import TestSupport
import Testing

@testable import ClientCache

@Suite("ClientCache", .timeLimit(.minutes(15)))
struct ClientCacheTests {
    @Test("An entry is fresh for its TTL, stale for its SWR window, then a miss")
    func ttlAndStaleWindow() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let cache = try ClientCache.make(path: directory.cacheFile, clock: clock)

        try await cache.set(
            "k",
            value: Data("v".utf8),
            lifetime: CacheLifetime(ttl: .seconds(10), staleWhileRevalidate: .seconds(5))
        )
        #expect(cache.get("k")?.freshness == .fresh)

        clock.advance(by: .seconds(9))
        #expect(cache.get("k")?.freshness == .fresh)

        clock.advance(by: .seconds(1))
        #expect(cache.get("k")?.freshness == .stale)

        clock.advance(by: .seconds(4))
        #expect(cache.get("k")?.freshness == .stale)

        clock.advance(by: .seconds(1))
        #expect(cache.get("k") == nil)

        // The file agrees once the memory tier is gone.
        let other = try ClientCache.make(path: directory.cacheFile, clock: clock)
        #expect(other.get("k") == nil)
        let statistics = cache.statistics()
        #expect(statistics.staleServed == 2)
    }

    @Test("An entry keeps its tags, ETag and times through the disk tier")
    func roundTripThroughDisk() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let writer = try ClientCache.make(path: directory.cacheFile, clock: clock)
        let stored = try await writer.set(
            "k",
            value: Data([0, 1, 2, 255]),
            tags: ["table:tbl1", "record:rec1"],
            etag: "\"v3\""
        )

        let reader = try ClientCache.make(path: directory.cacheFile, clock: clock)
        let hit = try #require(reader.get("k"))
        #expect(hit.tier == .disk)
        #expect(hit.entry == stored)
        #expect(reader.get("k")?.tier == .memory)
    }

    @Test("Hits and misses are counted per tier")
    func statisticsPerTier() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let writer = try ClientCache.make(path: directory.cacheFile, clock: clock)
        try await writer.set("k", value: Data("value".utf8))
        let cache = try ClientCache.make(path: directory.cacheFile, clock: clock)

        _ = cache.get("missing")
        _ = cache.get("k")
        _ = cache.get("k")

        let statistics = cache.statistics()
        #expect(statistics.memoryHits == 1)
        #expect(statistics.memoryMisses == 2)
        #expect(statistics.diskHits == 1)
        #expect(statistics.diskMisses == 1)
        #expect(statistics.memoryEntries == 1)
        #expect(statistics.diskEntries == 1)
        #expect(statistics.diskBytes == "k".utf8.count + "value".utf8.count)
    }

    @Test("Invalidating a key prefix removes exactly the keys under it")
    func prefixInvalidation() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let cache = try ClientCache.make(path: directory.cacheFile, clock: clock)
        for key in ["tables/tbl1/records", "tables/tbl1/records?page=2", "tables/tbl10/records", "tables/tbl2"] {
            try await cache.set(key, value: Data(key.utf8))
        }

        let removed = try await cache.invalidate(keyPrefix: "tables/tbl1/")

        #expect(removed == 2)
        #expect(cache.get("tables/tbl1/records") == nil)
        #expect(cache.get("tables/tbl1/records?page=2") == nil)
        #expect(cache.get("tables/tbl10/records") != nil)
        #expect(cache.get("tables/tbl2") != nil)
        #expect(try await cache.invalidate(keyPrefix: "") == 2)
        #expect(cache.statistics().diskEntries == 0)
    }

    @Test("Prefix upper bounds", arguments: [("ab", "ac"), ("a\u{10FFFF}", "b"), ("", nil), ("\u{D7FF}", "\u{E000}")])
    func prefixUpperBound(prefix: String, upper: String?) {
        #expect(ClientCache.upperBound(ofPrefix: prefix) == upper)
    }

    @Test("Concurrent writes are committed together and every one lands")
    func concurrentWrites() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let cache = try ClientCache.make(path: directory.cacheFile, clock: clock)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<200 {
                group.addTask {
                    try await cache.set("k\(index)", value: Data("v\(index)".utf8), tags: ["record:rec\(index % 7)"])
                    if index % 10 == 0 { try await cache.remove("k\(index)") }
                }
            }
            try await group.waitForAll()
        }

        let reader = try ClientCache.make(path: directory.cacheFile, clock: clock)
        for index in 0..<200 {
            #expect(reader.text("k\(index)") == (index % 10 == 0 ? nil : "v\(index)"))
            #expect(cache.text("k\(index)") == (index % 10 == 0 ? nil : "v\(index)"))
        }
        #expect(reader.statistics().diskEntries == 180)
        #expect(try await cache.invalidate(tags: ["record:rec3"]) == 26)
    }

    @Test("Remove and clear")
    func removeAndClear() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let cache = try ClientCache.make(path: directory.cacheFile, clock: clock)
        let other = try ClientCache.make(path: directory.cacheFile, clock: clock, user: "usr2")
        try await cache.set("a", value: Data("a".utf8))
        try await cache.set("b", value: Data("b".utf8))
        try await other.set("a", value: Data("other".utf8))

        #expect(try await cache.remove("a"))
        #expect(try await cache.remove("a") == false)
        #expect(cache.get("a") == nil)
        #expect(try await cache.clear() == 1)
        #expect(cache.get("b") == nil)
        #expect(other.text("a") == "other")
        #expect(try await cache.clear(allNamespaces: true) == 1)
        #expect(other.get("a") == nil)
        #expect(cache.statistics().diskBytes == 0)
    }
}
