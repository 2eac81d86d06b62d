import ClientCache
import Foundation

/// What ``CacheEngineBenchmark/run()`` measured.
struct CacheEngineFigures: Codable, Sendable {
    /// Median latency of a `set` of a record-sized value with three tags.
    var set3TagsP50Microseconds: Double
    /// 99th percentile of the same.
    var set3TagsP99Microseconds: Double
    /// One invalidation of a tag provided by 10,000 entries.
    var invalidateTagOver10kMilliseconds: Double
    /// Median latency of a `get` the memory tier cannot answer and the file can.
    var diskHitP50Microseconds: Double
    /// 99th percentile of the same.
    var diskHitP99Microseconds: Double
    /// Median latency of a `get` the memory tier answers.
    var memoryHitP50Microseconds: Double
    /// 99th percentile of the same.
    var memoryHitP99Microseconds: Double
}

/// Measurements of the ``ClientCache`` engine: writes, tag invalidation, reads per tier, and memory.
enum CacheEngineBenchmark {
    /// Runs in a temporary directory it creates and removes.
    /// - Returns: The latencies measured.
    /// - Throws: When the cache cannot be opened or written.
    static func run() async throws -> CacheEngineFigures {
        let directory = try TemporaryCacheDirectory()
        defer { directory.remove() }
        let value = recordValue(index: 0)

        // Sets: sequential, each awaited, with three tags as a record fetched from a list would carry.
        let writer = try ClientCache(configuration: .init(path: directory.file("sets.sqlite")))
        var setLatencies: [Double] = []
        let setCount = 3_000
        setLatencies.reserveCapacity(setCount)
        for index in 0..<(setCount + 300) {
            let tags: [CacheTag] = [
                "table:tbl\(index % 10)", "record:rec\(index)", "view:viw\(index % 3)",
            ]
            let start = ContinuousClock.now
            try await writer.set("tables/tbl1/records/rec\(index)", value: value, tags: tags)
            if index >= 300 { setLatencies.append(microseconds(ContinuousClock.now - start)) }
        }

        // Invalidation: 10,000 entries all providing `table:tbl1`, then that one tag; the median of 3 rounds.
        let invalidated = try ClientCache(configuration: .init(path: directory.file("invalidate.sqlite")))
        var invalidations: [Double] = []
        for _ in 0..<3 {
            for index in 0..<10_000 {
                try await invalidated.set(
                    "tables/tbl1/records/rec\(index)",
                    value: value,
                    tags: ["table:tbl1", "record:rec\(index)"]
                )
            }
            let start = ContinuousClock.now
            let removed = try await invalidated.invalidate(tags: ["table:tbl1"])
            invalidations.append(microseconds(ContinuousClock.now - start) / 1000)
            precondition(removed == 10_000, "the invalidation removed \(removed) entries, not 10,000")
            // The rows are deleted in the background; let that finish before measuring anything else.
            await invalidated.waitForPurge()
        }

        // Disk hits: a second instance on the sets file whose memory tier holds nothing.
        let diskOnly = try ClientCache(
            configuration: .init(path: directory.file("sets.sqlite"), memoryMaximumEntries: 0)
        )
        var diskLatencies: [Double] = []
        var generator = SplitMix64(seed: 42)
        for round in 0..<5_500 {
            let key = "tables/tbl1/records/rec\(generator.next() % UInt64(setCount))"
            let start = ContinuousClock.now
            let hit = diskOnly.get(key)
            let elapsed = ContinuousClock.now - start
            precondition(hit?.tier == .disk, "expected a disk hit for \(key)")
            if round >= 500 { diskLatencies.append(microseconds(elapsed)) }
        }

        // Memory hits: the same key again and again.
        let hotKey = "tables/tbl1/records/rec7"
        _ = writer.get(hotKey)
        var memoryLatencies: [Double] = []
        for round in 0..<20_000 {
            let start = ContinuousClock.now
            let hit = writer.get(hotKey)
            let elapsed = ContinuousClock.now - start
            precondition(hit?.tier == .memory, "expected a memory hit for \(hotKey)")
            if round >= 1_000 { memoryLatencies.append(microseconds(elapsed)) }
        }

        return CacheEngineFigures(
            set3TagsP50Microseconds: percentile(setLatencies, 0.5),
            set3TagsP99Microseconds: percentile(setLatencies, 0.99),
            invalidateTagOver10kMilliseconds: percentile(invalidations, 0.5),
            diskHitP50Microseconds: percentile(diskLatencies, 0.5),
            diskHitP99Microseconds: percentile(diskLatencies, 0.99),
            memoryHitP50Microseconds: percentile(memoryLatencies, 0.5),
            memoryHitP99Microseconds: percentile(memoryLatencies, 0.99)
        )
    }

    /// Inserts `count` record-sized entries (2 tags) with the default configuration, reads all back once, and
    /// answers VmRSS in MiB of this process afterwards.
    /// - Parameter count: How many entries to cache.
    /// - Returns: The resident set size in MiB, or -1 where `/proc/self/status` is not available.
    /// - Throws: When the cache cannot be opened or written.
    static func residentMegabytesAfterCaching(records count: Int) async throws -> Double {
        let directory = try TemporaryCacheDirectory()
        defer { directory.remove() }
        let cache = try ClientCache(configuration: .init(path: directory.file("records.sqlite")))
        for index in 0..<count {
            try await cache.set(
                "tables/tbl1/records/rec\(index)",
                value: recordValue(index: index),
                tags: ["table:tbl1", "record:rec\(index)"]
            )
        }
        for index in 0..<count {
            precondition(cache.get("tables/tbl1/records/rec\(index)") != nil, "record \(index) was not cached")
        }
        return residentMegabytes()
    }

    /// A record as the API answers it, about 300 bytes of JSON.
    private static func recordValue(index: Int) -> Data {
        let id = "rec" + String(index, radix: 36).padding(toLength: 14, withPad: "0", startingAt: 0)
        let json = """
            {"id":"\(id)","createdTime":"2026-01-02T03:04:05.000Z","fields":{"Name":"Record number \(index)",\
            "Status":"In progress","Notes":"Some free text that makes the record a realistic size for a cache",\
            "Priority":\(index % 5),"Done":false,"Tags":["alpha","beta"],"Owner":"usrAbCdEfGhIjKlMn"}}
            """
        return Data(json.utf8)
    }

    /// VmRSS of this process in MiB, from `/proc/self/status`.
    private static func residentMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kilobytes = line.split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? -1024
            return kilobytes / 1024
        }
        return -1
    }

    private static func microseconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) * 1e6 + Double(attoseconds) / 1e12
    }

    private static func percentile(_ values: [Double], _ fraction: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * fraction))]
    }
}

/// A directory under the temporary directory, removed by ``remove()``.
private struct TemporaryCacheDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "pyat-cache-bench-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A small deterministic generator, so runs read the same keys.
private struct SplitMix64 {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
