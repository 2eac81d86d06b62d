import Foundation
import GRDB
import TestSupport
import Testing

@testable import ClientCache

@Suite("Recovery from a file damaged while open", .timeLimit(.minutes(15)))
struct RecoveryTests {
    /// Overwrites a file's bytes in place (keeping its length, so mappings of it stay valid).
    private func scribble(over path: String) throws {
        guard let handle = FileHandle(forWritingAtPath: path) else { return }
        defer { try? handle.close() }
        let length = try handle.seekToEnd()
        try handle.seek(toOffset: 0)
        let garbage = Data((0..<Int(length)).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 17) })
        try handle.write(contentsOf: garbage)
    }

    private func movedAside(in directory: TemporaryDirectory) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasPrefix("cache.sqlite.corrupt-") && !$0.hasSuffix("-wal") && !$0.hasSuffix("-shm") }
    }

    @Test(
        "A file overwritten with garbage while open is moved aside; reads miss and writes go on",
        arguments: [false, true]
    )
    func fileOverwrittenWhileOpen(checkpointedFirst: Bool) async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        // No memory tier: every read goes to the file.
        let cache = try ClientCache.make(path: directory.cacheFile, clock: clock, memoryMaximumEntries: 0)
        for index in 0..<50 {
            try await cache.set("k\(index)", value: Data("v\(index)".utf8), tags: ["table:tbl1"])
        }
        #expect(cache.text("k1") == "v1")

        if checkpointedFirst {
            // Everything in the main file, nothing left in the WAL: garbage over the main file alone shows.
            try await cache.database.writer.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            }
            try scribble(over: directory.cacheFile)
        } else {
            for suffix in ["", "-wal", "-shm"] {
                try scribble(over: directory.cacheFile + suffix)
            }
        }

        #expect(cache.get("k2") == nil)
        try await cache.set("k3", value: Data("new".utf8))
        #expect(cache.text("k3") == "new")
        #expect(cache.get("k4") == nil)
        #expect(try movedAside(in: directory).count == 1)
        #expect(cache.statistics().diskEntries == 1)
    }

    @Test("A write is what first meets the damage: it lands in the new file")
    func writeMeetsTheDamage() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let cache = try ClientCache.make(path: directory.cacheFile, clock: clock)
        for index in 0..<50 {
            try await cache.set("k\(index)", value: Data("v\(index)".utf8), tags: ["table:tbl1"])
        }
        #expect(cache.get("k1")?.tier == .memory)

        for suffix in ["", "-wal", "-shm"] {
            try scribble(over: directory.cacheFile + suffix)
        }

        try await cache.set("fresh", value: Data("new".utf8))
        #expect(try movedAside(in: directory).count == 1)
        // The memory tier was emptied with the file: nothing from before is answered.
        #expect(cache.get("k1") == nil)
        #expect(cache.text("fresh") == "new")
        let other = try ClientCache.make(path: directory.cacheFile, clock: clock)
        #expect(other.text("fresh") == "new")
    }

    @Test("An instance whose file another instance replaced opens the new file")
    func fileReplacedByAnotherInstance() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualWallClock()
        let first = try ClientCache.make(path: directory.cacheFile, clock: clock)
        let second = try ClientCache.make(path: directory.cacheFile, clock: clock)
        #expect(first.database.file != nil)
        try await first.set("old", value: Data("v".utf8))
        #expect(second.text("old") == "v")
        try await first.database.writer.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }

        try scribble(over: directory.cacheFile)
        #expect(second.get("missing") == nil)
        try await second.set("new", value: Data("n".utf8))

        #expect(first.get("old") == nil)
        #expect(first.text("new") == "n")
        try await first.set("newer", value: Data("m".utf8))
        #expect(second.text("newer") == "m")
        #expect(try movedAside(in: directory).count == 1)
    }
}
