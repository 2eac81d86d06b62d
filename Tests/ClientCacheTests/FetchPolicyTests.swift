import Foundation
import TestSupport
import Testing

@testable import ClientCache

@Suite("Fetch policies", .timeLimit(.minutes(15)))
struct FetchPolicyTests {
    private let lifetime = CacheLifetime(ttl: .seconds(60), staleWhileRevalidate: .seconds(30))

    @Test("cacheFirst loads on a miss, then answers from the cache until the TTL passes")
    func cacheFirst() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let cache = try ClientCache.make(path: directory.cacheFile, clock: clock)
        let loader = ScriptedLoader()

        let first = try await cache.fetch("k", policy: .cacheFirst, lifetime: lifetime) { try loader.load($0) }
        #expect(first.source == .loader)
        let second = try await cache.fetch("k", policy: .cacheFirst, lifetime: lifetime) { try loader.load($0) }
        #expect(second.fromCache)
        #expect(second.text == "v1")
        #expect(loader.calls == 1)

        clock.advance(by: .seconds(61))
        loader.answer("v2")
        let third = try await cache.fetch("k", policy: .cacheFirst, lifetime: lifetime) { try loader.load($0) }
        #expect(third.source == .loader)
        #expect(third.text == "v2")
        #expect(loader.calls == 2)
    }

    @Test("networkFirst always loads, and answers from the cache, flagged, when the loader fails")
    func networkFirst() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let cache = try ClientCache.make(path: directory.cacheFile, clock: clock)
        let loader = ScriptedLoader()

        _ = try await cache.fetch("k", policy: .networkFirst) { try loader.load($0) }
        let again = try await cache.fetch("k", policy: .networkFirst) { try loader.load($0) }
        #expect(again.source == .loader)
        #expect(loader.calls == 2)

        loader.fail()
        let offline = try await cache.fetch("k", policy: .networkFirst) { try loader.load($0) }
        #expect(offline.fromCache)
        #expect(offline.isStale == false)
        #expect(offline.loaderError is ScriptedLoader.LoaderFailure)

        await #expect(throws: ScriptedLoader.LoaderFailure.self) {
            _ = try await cache.fetch("other", policy: .networkFirst) { try loader.load($0) }
        }
    }

    @Test("staleWhileRevalidate answers stale at once and revalidates once in the background")
    func staleWhileRevalidate() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let cache = try ClientCache.make(path: directory.cacheFile, clock: clock)
        let loader = ScriptedLoader()
        let gate = Gate()
        _ = try await cache.fetch("k", policy: .staleWhileRevalidate, lifetime: lifetime) { try loader.load($0) }

        clock.advance(by: .seconds(70))
        loader.answer("v2")
        let gatedLoader: ClientCache.Loader = { cached in
            await gate.wait()
            return try loader.load(cached)
        }
        for _ in 0..<3 {
            let stale = try await cache.fetch(
                "k",
                policy: .staleWhileRevalidate,
                lifetime: lifetime,
                loader: gatedLoader
            )
            #expect(stale.fromCache)
            #expect(stale.isStale)
            #expect(stale.text == "v1")
        }
        await gate.open()
        await cache.waitForRevalidations()

        #expect(await gate.arrivals == 1)
        #expect(loader.calls == 2)
        let fresh = try await cache.fetch("k", policy: .staleWhileRevalidate, lifetime: lifetime) {
            try loader.load($0)
        }
        #expect(fresh.fromCache)
        #expect(fresh.isStale == false)
        #expect(fresh.text == "v2")
        let statistics = cache.statistics()
        #expect(statistics.revalidations == 1)
        #expect(statistics.staleServed == 3)

        // Past the stale window, a miss: the loader answers in the foreground.
        clock.advance(by: .seconds(91))
        loader.answer("v3")
        let reloaded = try await cache.fetch("k", policy: .staleWhileRevalidate, lifetime: lifetime) {
            try loader.load($0)
        }
        #expect(reloaded.source == .loader)
        #expect(reloaded.text == "v3")
    }

    @Test("Offline, an expired entry is answered and flagged stale")
    func offlineAnswersExpired() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let cache = try ClientCache.make(path: directory.cacheFile, clock: clock)
        let loader = ScriptedLoader()
        _ = try await cache.fetch("k", policy: .cacheFirst, lifetime: lifetime) { try loader.load($0) }

        clock.advance(by: .seconds(3600))
        loader.fail()
        for policy in [FetchPolicy.cacheFirst, .staleWhileRevalidate, .networkFirst] {
            let result = try await cache.fetch("k", policy: policy, lifetime: lifetime) { try loader.load($0) }
            #expect(result.fromCache)
            #expect(result.isStale)
            #expect(result.loaderError != nil)
            #expect(result.text == "v1")
        }
        await #expect(throws: ScriptedLoader.LoaderFailure.self) {
            _ = try await cache.fetch("k", policy: .networkOnly) { try loader.load($0) }
        }
    }

    @Test("cacheOnly never calls the loader")
    func cacheOnly() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let cache = try ClientCache.make(path: directory.cacheFile, clock: clock)
        let loader = ScriptedLoader()

        await #expect(throws: ClientCacheError.notCached("k")) {
            _ = try await cache.fetch("k", policy: .cacheOnly) { try loader.load($0) }
        }
        try await cache.set("k", value: Data("cached".utf8), lifetime: lifetime)
        clock.advance(by: .seconds(61))
        let stale = try await cache.fetch("k", policy: .cacheOnly) { try loader.load($0) }
        #expect(stale.isStale)
        #expect(stale.text == "cached")
        #expect(loader.calls == 0)
    }

    @Test("networkOnly always loads and stores the answer")
    func networkOnly() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let cache = try ClientCache.make(path: directory.cacheFile, clock: clock)
        let loader = ScriptedLoader()
        try await cache.set("k", value: Data("old".utf8))

        loader.answer("new", tags: ["record:rec1"], etag: "\"2\"")
        let result = try await cache.fetch("k", policy: .networkOnly) { try loader.load($0) }
        #expect(result.source == .loader)
        #expect(cache.get("k")?.entry.etag == "\"2\"")
        #expect(try await cache.invalidate(tags: ["record:rec1"]) == 1)
    }

    @Test("A not-modified answer renews the cached entry's lifetime")
    func notModified() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let cache = try ClientCache.make(path: directory.cacheFile, clock: clock)
        let loader = ScriptedLoader()
        loader.answer("body", tags: ["table:tbl1"], etag: "\"1\"")
        _ = try await cache.fetch("k", lifetime: lifetime) { try loader.load($0) }

        clock.advance(by: .seconds(61))
        loader.answer(.notModified)
        let result = try await cache.fetch("k", lifetime: lifetime) { cached in
            #expect(cached?.etag == "\"1\"")
            return try loader.load(cached)
        }
        #expect(result.text == "body")
        #expect(cache.get("k")?.freshness == .fresh)
        #expect(cache.get("k")?.entry.tags == ["table:tbl1"])

        await #expect(throws: ClientCacheError.notModifiedWithoutEntry("other")) {
            _ = try await cache.fetch("other", policy: .networkOnly) { try loader.load($0) }
        }
    }
}
