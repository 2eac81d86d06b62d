import Foundation
import TestSupport
import Testing

@testable import ClientCache

@Suite("Tiers, sharing and recovery", .timeLimit(.minutes(15)))
struct TierTests {
    private func entry(_ key: String, bytes: Int) -> CacheEntry {
        let now = Date(timeIntervalSince1970: 0)
        return CacheEntry(
            key: key,
            value: Data(repeating: 1, count: bytes - key.utf8.count),
            storedAt: now,
            freshUntil: now,
            staleUntil: now
        )
    }

    @Test("The memory tier drops the least recently used entry at its entry bound")
    func memoryEntryBound() {
        var tier = MemoryTier(maximumEntries: 3, maximumBytes: 1000)
        for key in ["a", "b", "c"] { tier.set(entry(key, bytes: 10)) }
        _ = tier.get("a")
        #expect(tier.set(entry("d", bytes: 10)) == 1)
        #expect(tier.get("b") == nil)
        #expect(tier.count == 3)
        #expect(tier.bytes == 30)
        for key in ["a", "c", "d"] { #expect(tier.get(key) != nil) }
    }

    @Test("The memory tier drops least recently used entries at its byte bound")
    func memoryByteBound() {
        var tier = MemoryTier(maximumEntries: 100, maximumBytes: 100)
        for key in ["a", "b", "c", "d"] { tier.set(entry(key, bytes: 25)) }
        _ = tier.get("a")
        #expect(tier.set(entry("e", bytes: 50)) == 2)
        #expect(tier.get("b") == nil)
        #expect(tier.get("c") == nil)
        #expect(tier.bytes == 100)
        // Bigger than the whole tier: not kept.
        #expect(tier.set(entry("huge", bytes: 101)) == 0)
        #expect(tier.get("huge") == nil)
        tier.set(entry("a", bytes: 10))
        #expect(tier.bytes == 85)
        tier.remove("d")
        #expect(tier.count == 2)
        tier.removeAll()
        #expect(tier.count == 0)
        #expect(tier.bytes == 0)
    }

    @Test("The cache's memory tier evicts at its bound and the disk tier still answers")
    func memoryEvictionFallsBackToDisk() async throws {
        let directory = try TemporaryDirectory()
        let cache = try ClientCache.make(path: directory.cacheFile, clock: ManualWallClock(), memoryMaximumEntries: 2)
        for key in ["a", "b", "c"] { try await cache.set(key, value: Data(key.utf8)) }

        let statistics = cache.statistics()
        #expect(statistics.memoryEntries == 2)
        #expect(statistics.memoryEvictions == 1)
        #expect(cache.get("a")?.tier == .disk)
        #expect(cache.get("a")?.tier == .memory)
    }

    @Test("The disk tier evicts the least recently used entries at its byte bound")
    func diskEviction() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let cache = try ClientCache.make(path: directory.cacheFile, clock: clock, diskMaximumBytes: 1000)
        let value = Data(repeating: 0, count: 299)
        for key in ["a", "b", "c"] {
            try await cache.set(key, value: value)
            clock.advance(by: .seconds(1))
        }
        // Read "a" so "b" is now the least recently used; the access is batched, not yet written.
        #expect(cache.get("a") != nil)
        clock.advance(by: .seconds(1))

        try await cache.set("d", value: value)

        let statistics = cache.statistics()
        #expect(statistics.diskEvictions == 1)
        #expect(statistics.diskEntries == 3)
        #expect(statistics.diskBytes == 900)
        #expect(cache.get("b") == nil)
        let fresh = try ClientCache.make(path: directory.cacheFile, clock: clock)
        #expect(fresh.get("b") == nil)
        for key in ["a", "c", "d"] { #expect(fresh.get(key) != nil) }
    }

    @Test("Two caches on one file see each other's writes and invalidations")
    func twoProcessesShareOneFile() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let first = try ClientCache.make(path: directory.cacheFile, clock: clock)
        let second = try ClientCache.make(path: directory.cacheFile, clock: clock)

        try await first.set("k", value: Data("one".utf8), tags: ["record:rec1"])
        #expect(second.text("k") == "one")
        #expect(first.text("k") == "one")

        try await second.set("k", value: Data("two".utf8), tags: ["record:rec1"])
        #expect(first.text("k") == "two")

        #expect(try await first.invalidate(tags: ["record:rec1"]) == 1)
        #expect(second.get("k") == nil)

        try await first.set("p/1", value: Data("x".utf8))
        #expect(second.text("p/1") == "x")
        try await second.invalidate(keyPrefix: "p/")
        #expect(first.get("p/1") == nil)
    }

    @Test("Within its coherence interval the memory tier answers alone; after it, it sees other writers")
    func coherenceInterval() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        var configuration = ClientCache.Configuration(path: directory.cacheFile, coherenceInterval: .seconds(1))
        configuration.now = { clock.now }
        let first = try ClientCache(configuration: configuration)
        let second = try ClientCache(configuration: configuration)
        try await first.set("k", value: Data("one".utf8))
        #expect(first.text("k") == "one")

        try await second.set("k", value: Data("two".utf8))
        #expect(first.text("k") == "one")
        clock.advance(by: .seconds(1))
        #expect(first.text("k") == "two")
    }

    @Test("A corrupt file is moved aside and a working empty cache takes its place")
    func corruptFileRecovery() async throws {
        let directory = try TemporaryDirectory()
        let garbage = Data((0..<16_384).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        try garbage.write(to: URL(fileURLWithPath: directory.cacheFile))

        let cache = try ClientCache.make(path: directory.cacheFile, clock: ManualWallClock())

        #expect(cache.get("k") == nil)
        try await cache.set("k", value: Data("v".utf8))
        #expect(cache.text("k") == "v")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        let aside = try #require(names.first { $0.hasPrefix("cache.sqlite.corrupt-") })
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory.path + "/" + aside)) == garbage)
    }

    @Test("Two users on one file never see each other's entries")
    func namespacesIsolateUsers() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let alice = try ClientCache.make(path: directory.cacheFile, clock: clock, user: "usrAlice")
        let bob = try ClientCache.make(path: directory.cacheFile, clock: clock, user: "usrBob")

        try await alice.set("me", value: Data("alice".utf8), tags: ["user:me"])
        #expect(bob.get("me") == nil)
        try await bob.set("me", value: Data("bob".utf8), tags: ["user:me"])
        #expect(alice.text("me") == "alice")
        #expect(bob.text("me") == "bob")

        #expect(try await bob.invalidate(tags: ["user:me"]) == 1)
        #expect(alice.text("me") == "alice")
        #expect(try await bob.invalidate(keyPrefix: "m") == 0)
        #expect(alice.text("me") == "alice")
    }
}
