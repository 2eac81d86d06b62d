import ArgumentParser
import Foundation
import Logging
import PyAirtableClient
import ReferenceServer
import ReferenceServerTesting

extension Pyat.Bench {
    /// `pyat bench cache`: a read from the network against the same read from each cache tier, the
    /// engine's write and invalidation costs, and its memory with 100k records, in one run.
    struct CacheBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cache",
            abstract: "Cold (network) reads against warm reads from the disk and memory tiers, through the SDK.",
            discussion: """
                Runs an embedded server unless --server is given. Each figure is a typed
                `client.records.get(id)`: cold with policy networkOnly (request, decode, store) and
                memory from a warm client, both of one record (the memory figure reuses its decoded
                value); disk over --disk-records distinct records, each cached and then read once by
                a client whose memory tier holds nothing, so every read fetches from the file and
                decodes. Then the engine alone: a set with 3 tags, one tag invalidated over 10k
                entries, and the resident memory of a fresh process after caching 100k records.
                """
        )

        @Option(help: "A running server (with --token); by default an embedded one is started.")
        var server: String?

        @Option(help: "A token for --server.")
        var token: String?

        @Option(help: "Reads per tier.")
        var reads: Int = 2_000

        @Option(help: "Records cached for the memory figure.")
        var records: Int = 100_000

        @Option(help: "Distinct records cached, then each read once from the disk tier.")
        var diskRecords: Int = 10_000

        @Flag(help: "Print JSON.")
        var json = false

        @Option(help: .hidden)
        var residentChild: Int?

        func validate() throws {
            guard reads > 0, records > 0, diskRecords > 0 else {
                throw ValidationError("--reads, --records and --disk-records must be positive")
            }
            guard (server == nil) == (token == nil) else { throw ValidationError("give --server and --token together") }
        }

        func run() async throws {
            if let residentChild {
                // The child of the memory figure: cache, measure, print, exit.
                print(try await CacheEngineBenchmark.residentMegabytesAfterCaching(records: residentChild))
                return
            }
            var figures: [(String, Double)]
            if let server, let token {
                figures = try await measureSDK(server: server, token: token)
            } else {
                let fast: @Sendable (inout ServerConfiguration) -> Void = { $0.durableCommits = false }
                figures = try await TestServer.withRunning(configure: fast) { server in
                    let demo = try await server.seedDemo()
                    return try await measureSDK(server: server.url, token: demo.token)
                }
            }
            let engine = try await CacheEngineBenchmark.run()
            figures += [
                ("engine_memory_p50_us", engine.memoryHitP50Microseconds),
                ("engine_memory_p99_us", engine.memoryHitP99Microseconds),
                ("engine_disk_p50_us", engine.diskHitP50Microseconds),
                ("engine_disk_p99_us", engine.diskHitP99Microseconds),
                ("set_3_tags_p50_us", engine.set3TagsP50Microseconds),
                ("set_3_tags_p99_us", engine.set3TagsP99Microseconds),
                ("invalidate_tag_10k_ms", engine.invalidateTagOver10kMilliseconds),
            ]
            figures.append(("rss_\(records / 1000)k_records_mb", try residentMegabytes()))
            report(figures)
        }

        /// Cold, disk and memory reads of one record through the SDK, with a cache in a throwaway file.
        private func measureSDK(server: String, token: String) async throws -> [(String, Double)] {
            guard let url = URL(string: server) else { throw ValidationError("--server is not a URL") }
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-bench-\(UUID())")
            defer { try? FileManager.default.removeItem(at: directory) }
            var configuration = PyAirtableClient.Configuration(serverURL: url, credentials: .personalAccessToken(token))
            configuration.logger.logLevel = .warning
            configuration.cache = .persistent(path: directory.appendingPathComponent("cache.sqlite").path)
            var diskOnly = configuration
            diskOnly.cache.memoryMaximumEntries = 0

            return try await withPyAirtableClient(configuration: configuration) { client in
                guard let workspace = try await client.workspaces.list().first,
                    let base = try await client.bases.list(in: workspace.id).first,
                    let table = try await client.tables.list(in: base.id).first,
                    let record = try await client.records.list(in: table.id, query: RecordQuery(pageSize: 1)).data.first
                else { throw ValidationError("the server has no record to read; run it with --demo") }
                let id = record.id
                for _ in 0..<50 { _ = try await client.records.get(id, policy: .networkOnly) }
                var cold: [Double] = []
                for _ in 0..<reads {
                    let start = ContinuousClock.now
                    _ = try await client.records.get(id, policy: .networkOnly)
                    cold.append(microseconds(ContinuousClock.now - start))
                }
                // The same read with no cache at all: what the cache's store adds to a cold read.
                var uncachedConfiguration = configuration
                uncachedConfiguration.cache = .disabled
                let uncached: [Double] = try await withPyAirtableClient(configuration: uncachedConfiguration) { plain in
                    for _ in 0..<50 { _ = try await plain.records.get(id) }
                    var samples: [Double] = []
                    for _ in 0..<reads {
                        let start = ContinuousClock.now
                        _ = try await plain.records.get(id)
                        samples.append(microseconds(ContinuousClock.now - start))
                    }
                    return samples
                }
                var memory: [Double] = []
                for _ in 0..<(reads + 100) {
                    let start = ContinuousClock.now
                    let answer = try await client.records.getWithSource(id, policy: .cacheOnly)
                    memory.append(microseconds(ContinuousClock.now - start))
                    guard answer.fromCache else { throw CommandFailure("a warm read went to the network") }
                }
                memory.removeFirst(100)
                let disk = try await measureDisk(
                    client: client,
                    base: base.id,
                    configuration: diskOnly,
                    count: diskRecords
                )
                let coldP50 = percentile(cold, 0.5)
                let diskP50 = percentile(disk, 0.5)
                let memoryP50 = percentile(memory, 0.5)
                return [
                    ("cold_p50_us", coldP50), ("cold_p99_us", percentile(cold, 0.99)),
                    ("uncached_p50_us", percentile(uncached, 0.5)),
                    ("disk_distinct_decoded_p50_us", diskP50),
                    ("disk_distinct_decoded_p99_us", percentile(disk, 0.99)),
                    ("disk_distinct_records", Double(diskRecords)),
                    ("memory_decoded_reused_p50_us", memoryP50),
                    ("memory_decoded_reused_p99_us", percentile(memory, 0.99)),
                    ("memory_vs_cold_ratio", coldP50 / memoryP50),
                    ("disk_vs_cold_ratio", coldP50 / diskP50),
                ]
            }
        }

        /// Disk-tier reads over `count` distinct records: a table of them is made, each is read once
        /// through `client` (network, decode, store), then each is read once, timed, by a client on
        /// the same file whose memory tier holds nothing. A key read once cannot be answered from the
        /// table of decoded values, so every timed read fetches the stored answer and decodes it.
        private func measureDisk(
            client: PyAirtableClient,
            base: BaseID,
            configuration: PyAirtableClient.Configuration,
            count: Int
        ) async throws -> [Double] {
            let table = try await client.tables.create(
                in: base,
                name: "Cache bench \(UUID().uuidString.prefix(8))",
                fields: [
                    CreateFieldRequest(name: "Name", type: .singleLineText),
                    CreateFieldRequest(name: "Score", type: .number),
                ]
            )
            var ids: [RecordID] = []
            ids.reserveCapacity(count)
            for start in stride(from: 0, to: count, by: BatchRequest.maximumOperations) {
                let operations = (start..<min(start + BatchRequest.maximumOperations, count)).map { index in
                    BatchOperation.create(fields: ["Name": .string("Record \(index)"), "Score": .number(Double(index))])
                }
                for result in try await client.records.batch(in: table.id, operations: operations) {
                    guard case .record(let record) = result else {
                        throw CommandFailure("a batch create answered \(result)")
                    }
                    ids.append(record.id)
                }
            }
            guard Set(ids).count == count else { throw CommandFailure("\(Set(ids).count) records made, not \(count)") }
            for id in ids { _ = try await client.records.get(id, policy: .networkOnly) }
            return try await withPyAirtableClient(configuration: configuration) { diskOnly in
                var samples: [Double] = []
                samples.reserveCapacity(count)
                for id in ids.shuffled() {
                    let start = ContinuousClock.now
                    let answer = try await diskOnly.records.getWithSource(id, policy: .cacheOnly)
                    samples.append(microseconds(ContinuousClock.now - start))
                    guard answer.fromCache, answer.value.id == id else {
                        throw CommandFailure("a disk-tier read of \(id) was not answered from the cache")
                    }
                }
                let statistics = await diskOnly.cache.statistics()
                guard (statistics?.memoryHits ?? 0) == 0 else { throw CommandFailure("the disk figure hit memory") }
                return samples
            }
        }

        /// Runs this command again in a fresh process to cache `records` records and report its RSS.
        private func residentMegabytes() throws -> Double {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            process.arguments = ["bench", "cache", "--resident-child", String(records)]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw CommandFailure("the memory child exited with status \(process.terminationStatus)")
            }
            let text = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let megabytes = Double(text), megabytes > 0 else {
                throw CommandFailure("the memory child answered \(text.debugDescription), not a size")
            }
            return megabytes
        }

        private func microseconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
        }

        private func percentile(_ values: [Double], _ p: Double) -> Double {
            let sorted = values.sorted()
            return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
        }

        private func report(_ figures: [(String, Double)]) {
            if json {
                let body = figures.map { "  \"\($0.0)\": \(($0.1 * 1000).rounded() / 1000)" }.joined(separator: ",\n")
                print("{\n\(body)\n}")
            } else {
                print("one record read through the SDK (\(reads) reads per figure), then the engine alone")
                for (name, value) in figures {
                    print(name.padding(toLength: 30, withPad: " ", startingAt: 0), String(format: "%.3f", value))
                }
            }
        }
    }
}
