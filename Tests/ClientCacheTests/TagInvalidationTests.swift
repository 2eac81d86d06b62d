import Foundation
import GRDB
import TestSupport
import Testing

@testable import ClientCache

@Suite("Tag invalidation (RTK Query rules)", .timeLimit(.minutes(15)))
struct TagInvalidationTests {
    @Test(
        "Which provided tags an invalidated tag matches",
        arguments: [
            ("record:rec1", "record:rec1", true),
            ("record:rec1", "record:rec2", false),
            ("record:rec10", "record:rec1", false),
            ("record:rec1", "record", true),
            ("record", "record", true),
            ("record", "record:rec1", false),
            ("records:rec1", "record", false),
            ("table:tbl1", "record", false),
        ]
    )
    func matching(provided: String, invalidated: String, expected: Bool) {
        #expect(CacheTag.matches(provided: provided, invalidated: invalidated) == expected)
    }

    /// A list of table tbl1 showing rec1 and rec2, a list of tbl2 showing rec3, record rec1, and an
    /// entry providing the bare `record` type.
    private func seeded() async throws -> (ClientCache, TemporaryDirectory) {
        let directory = try TemporaryDirectory()
        let cache = try ClientCache.make(path: directory.cacheFile, clock: ManualWallClock())
        try await cache.set("list1", value: Data("l1".utf8), tags: ["table:tbl1", "record:rec1", "record:rec2"])
        try await cache.set("list2", value: Data("l2".utf8), tags: ["table:tbl2", "record:rec3"])
        try await cache.set("rec1", value: Data("r1".utf8), tags: ["record:rec1"])
        try await cache.set("rec10", value: Data("r10".utf8), tags: ["record:rec10"])
        try await cache.set("anyRecord", value: Data("any".utf8), tags: ["record"])
        try await cache.set("user", value: Data("me".utf8), tags: ["user:usr1"])
        return (cache, directory)
    }

    private func remaining(_ cache: ClientCache) -> Set<String> {
        Set(["list1", "list2", "rec1", "rec10", "anyRecord", "user"].filter { cache.get($0) != nil })
    }

    @Test("A specific record tag invalidates the lists containing the record and nothing else")
    func specificRecordTag() async throws {
        let (cache, directory) = try await seeded()
        #expect(try await cache.invalidate(tags: ["record:rec2"]) == 1)
        #expect(remaining(cache) == ["list2", "rec1", "rec10", "anyRecord", "user"])
        _ = directory
    }

    @Test("A specific tag hits every provider of exactly that tag, not lookalikes or the general type")
    func specificTagExactMatch() async throws {
        let (cache, directory) = try await seeded()
        #expect(try await cache.invalidate(tags: ["record:rec1"]) == 2)
        #expect(remaining(cache) == ["list2", "rec10", "anyRecord", "user"])
        _ = directory
    }

    @Test("A table tag invalidates every entry of the table")
    func tableTag() async throws {
        let (cache, directory) = try await seeded()
        #expect(try await cache.invalidate(tags: ["table:tbl2"]) == 1)
        #expect(remaining(cache) == ["list1", "rec1", "rec10", "anyRecord", "user"])
        _ = directory
    }

    @Test("A general type invalidates every entry providing the type, with or without an id")
    func generalTag() async throws {
        let (cache, directory) = try await seeded()
        #expect(try await cache.invalidate(tags: ["record"]) == 5)
        #expect(remaining(cache) == ["user"])
        _ = directory
    }

    @Test("Several tags invalidate the union; unknown tags nothing")
    func unionAndUnknown() async throws {
        let (cache, directory) = try await seeded()
        #expect(try await cache.invalidate(tags: ["record:rec3", "user:usr1"]) == 2)
        #expect(try await cache.invalidate(tags: ["record:rec99", "table:tbl9"]) == 0)
        #expect(try await cache.invalidate(tags: []) == 0)
        #expect(remaining(cache) == ["list1", "rec1", "rec10", "anyRecord"])
        _ = directory
    }

    @Test("Replacing an entry replaces the tags it provides")
    func retagging() async throws {
        let (cache, directory) = try await seeded()
        try await cache.set("list1", value: Data("l1b".utf8), tags: ["table:tbl1", "record:rec4"])
        #expect(try await cache.invalidate(tags: ["record:rec2"]) == 0)
        #expect(try await cache.invalidate(tags: ["record:rec4"]) == 1)
        #expect(cache.get("list1") == nil)
        _ = directory
    }

    @Test("Invalidated entries are gone at once for every instance; their rows are purged in the background")
    func invalidationThenPurge() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let cache = try ClientCache.make(path: directory.cacheFile, clock: clock)
        let other = try ClientCache.make(path: directory.cacheFile, clock: clock)
        for index in 0..<300 {
            try await cache.set("tbl1/rec\(index)", value: Data("v".utf8), tags: ["table:tbl1", "record:rec\(index)"])
        }
        try await cache.set("tbl2/list", value: Data("l".utf8), tags: ["table:tbl2", "record:rec7"])
        #expect(other.text("tbl1/rec7") == "v")

        #expect(try await cache.invalidate(tags: ["table:tbl1"]) == 300)
        #expect(cache.get("tbl1/rec7") == nil)
        #expect(other.get("tbl1/rec7") == nil)
        #expect(other.statistics().diskEntries == 1)
        // Whether or not the purge has run yet, what is already invalidated is not counted twice.
        #expect(try await cache.invalidate(tags: ["record:rec8"]) == 0)
        #expect(try await other.invalidate(tags: ["record:rec7"]) == 1)

        // Stored again after the invalidation: alive.
        try await cache.set("tbl1/rec9", value: Data("again".utf8), tags: ["table:tbl1", "record:rec9"])
        #expect(other.text("tbl1/rec9") == "again")

        await cache.waitForPurge()
        await other.waitForPurge()
        let rows = try await cache.database.writer.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT count(*) FROM cache_entries") ?? -1,
                try Int.fetchOne(
                    db,
                    sql: "SELECT count(*) FROM cache_tags WHERE entry_id NOT IN (SELECT id FROM cache_entries)"
                ) ?? -1,
                try Int.fetchOne(db, sql: "SELECT count(*) FROM cache_tombstones") ?? -1
            )
        }
        #expect(rows.0 == 1)
        #expect(rows.1 == 0)
        #expect(rows.2 == 0)
        let statistics = cache.statistics()
        #expect(statistics.diskEntries == 1)
        #expect(
            statistics.diskBytes
                == CacheEntry.sizeForTest(key: "tbl1/rec9", value: "again", tags: ["table:tbl1", "record:rec9"])
        )
        #expect(cache.text("tbl1/rec9") == "again")
        #expect(try await cache.invalidate(tags: ["table"]) == 1)
    }

    @Test("An instance opening a file with invalidations left unpurged purges them")
    func purgeLeftByAnotherProcess() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let writer = try ClientCache.make(path: directory.cacheFile, clock: clock)
        for index in 0..<20 {
            try await writer.set("k\(index)", value: Data("v".utf8), tags: ["table:tbl\(index % 2)"])
        }
        // As a process that stopped right after invalidating would leave the file.
        let namespace = writer.namespace
        try await writer.database.writer.write { db in
            let meta = try CacheDatabase.meta(db)
            var context = CacheWriteContext(meta: meta, tombstones: [])
            #expect(
                try CacheDatabase.invalidate(db, tags: ["table:tbl0"], namespace: namespace, context: &context) == 10
            )
            context.meta.generation += 1
            try CacheDatabase.save(db, meta: context.meta)
        }

        let reader = try ClientCache.make(path: directory.cacheFile, clock: clock)
        #expect(reader.get("k0") == nil)
        #expect(reader.text("k1") == "v")
        await reader.waitForPurge()
        let left = try await reader.database.writer.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT count(*) FROM cache_entries") ?? -1,
                try Int.fetchOne(db, sql: "SELECT count(*) FROM cache_tombstones") ?? -1
            )
        }
        #expect(left.0 == 10)
        #expect(left.1 == 0)
        #expect(reader.statistics().diskEntries == 10)
    }

    @Test("Invalidating one tag over 10k entries")
    func manyEntries() async throws {
        let directory = try TemporaryDirectory()
        let cache = try ClientCache.make(path: directory.cacheFile, clock: ManualWallClock())
        let value = Data(repeating: 7, count: 64)
        for index in 0..<10_000 {
            try await cache.set(
                "records/rec\(index)",
                value: value,
                tags: ["table:tbl\(index % 10)", "record:rec\(index)", "view:viw\(index % 3)"]
            )
        }
        let start = ContinuousClock.now
        let removed = try await cache.invalidate(tags: ["table:tbl3"])
        let elapsed = ContinuousClock.now - start
        #expect(removed == 1000)
        #expect(cache.get("records/rec3") == nil)
        #expect(cache.get("records/rec4") != nil)
        #expect(cache.statistics().diskEntries == 9000)
        // Generous for debug builds; the release target is 20 ms.
        #expect(elapsed < .seconds(2))
    }
}
