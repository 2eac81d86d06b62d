import ArgumentParser
import Foundation
import Logging
import OfflineQueue
import PyAirtableClient
import ReferenceServer
import ReferenceServerTesting

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Pyat.Bench {
    /// `pyat bench replay`: N record writes made through the SDK while the server is down, queued
    /// by its offline path, then replayed once the server is back, timed and counted on the server.
    struct ReplayBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "replay",
            abstract: "Writes made while the server is down, queued by the SDK, replayed when it is back; counted.",
            discussion: """
                Starts an embedded server (durable commits on, as `pyat serve` runs, unless
                --no-durable-commits), makes --tables tables, and stops it: its port now refuses
                connections (checked). A client with a persistent offline queue (SDK defaults
                otherwise: retries, circuit breaker) then makes --mutations `client.records.create`
                calls spread over the tables; each must come back `.queued`, and the queue must
                hold exactly that many writes. The server is started again on the same port and data,
                and `client.offline.replay()` is timed until the queue is empty. A second client then
                reads every record back: a write found twice is a duplicate, one not found is
                missing. Any duplicate, missing, failed or remaining write fails the run.
                """
        )

        @Option(help: "Record writes to queue.")
        var mutations: Int = 10_000

        @Option(help: "Tables the writes are spread over.")
        var tables: Int = 4

        @Flag(inversion: .prefixedNo, help: "Commit each server transaction to disk before answering.")
        var durableCommits = true

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            guard mutations > 0, tables > 0 else { throw ValidationError("--mutations and --tables must be positive") }
        }

        func run() async throws {
            let server = RestartableServer()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-bench-replay-\(UUID())")
            let outcome: Result<[(String, String)], any Error>
            do {
                outcome = .success(try await measure(server: server, directory: directory))
            } catch {
                outcome = .failure(error)
            }
            await server.remove()
            try? FileManager.default.removeItem(at: directory)
            let figures = try outcome.get()
            if json {
                let body = figures.map { "  \"\($0.0)\": \($0.1)" }.joined(separator: ",\n")
                print("{\n\(body)\n}")
            } else {
                print(
                    "\(mutations) record creates made while the server was down, queued by the SDK, replayed "
                        + "(durable commits \(durableCommits ? "on" : "off"))"
                )
                for (name, value) in figures {
                    print("  \(name.padding(toLength: 26, withPad: " ", startingAt: 0)) \(value)")
                }
            }
            let count = { (name: String) in Int(figures.first { $0.0 == name }?.1 ?? "") ?? -1 }
            let problems = ["duplicates", "missing", "failed", "remaining"].filter { count($0) != 0 }
            if !problems.isEmpty {
                throw CommandFailure(
                    "replay did not land every write exactly once: "
                        + problems.map { "\($0) \(count($0))" }.joined(separator: ", ")
                )
            }
        }

        private func measure(server: RestartableServer, directory: URL) async throws -> [(String, String)] {
            let durable = durableCommits
            let configure: @Sendable (inout ServerConfiguration) -> Void = { $0.durableCommits = durable }
            let services = try await server.start(configure: configure)
            let demo = try await DemoData.seed(services: services)
            guard let url = URL(string: server.url), let workspace = demo.workspaceID else {
                throw CommandFailure("the embedded server did not seed a workspace")
            }
            var online = PyAirtableClient.Configuration(serverURL: url, credentials: .personalAccessToken(demo.token))
            online.logger.logLevel = .warning
            let tableIDs = try await withPyAirtableClient(configuration: online) { client in
                let base = try await client.bases.create(in: workspace, name: "Replay bench")
                var tableIDs: [TableID] = []
                for index in 0..<tables {
                    let table = try await client.tables.create(
                        in: base.id,
                        name: "Replay \(index + 1)",
                        fields: [
                            CreateFieldRequest(name: "Name", type: .singleLineText),
                            CreateFieldRequest(name: "Score", type: .number),
                        ]
                    )
                    tableIDs.append(table.id)
                }
                return tableIDs
            }

            // Down for real: the port refuses connections, as a stopped server's does.
            await server.stop()
            guard Self.connectionRefused(port: server.port) else {
                throw CommandFailure("port \(server.port) did not refuse a connection after the server stopped")
            }

            var configuration = online
            configuration.offline = .persistent(path: directory.appendingPathComponent("queue.sqlite").path)
            configuration.offline.maximumEntries = max(100_000, mutations)
            configuration.offline.maximumBytes = max(64 * 1024 * 1024, mutations * 1024)
            // The run calls `replay()` itself, so the time counts one replay from a full queue.
            configuration.offline.replaysAutomatically = false
            let total = mutations
            return try await withPyAirtableClient(configuration: configuration) { client in
                // The writes, through the SDK's normal API: each must come back queued.
                var causes: [String: Int] = [:]
                let queueStart = ContinuousClock.now
                for index in 0..<total {
                    let table = tableIDs[index % tableIDs.count]
                    let result = try await client.records.create(
                        in: table,
                        fields: ["Name": .string("bench-\(index)"), "Score": .number(Double(index))]
                    )
                    switch result {
                    case .saved(let record):
                        throw CommandFailure("write \(index) reached a server that is down (record \(record.id))")
                    case .queued(let write):
                        causes[write.reason.shortDescription, default: 0] += 1
                    }
                }
                let queueSeconds = Self.seconds(ContinuousClock.now - queueStart)
                let queuedCounts = try await client.offline.counts()
                guard queuedCounts.pending == total, queuedCounts.failed == 0 else {
                    throw CommandFailure(
                        "\(total) writes made offline, but the queue holds \(queuedCounts.pending) pending "
                            + "and \(queuedCounts.failed) failed"
                    )
                }
                // Refused connections (then the open circuit they cause) queue writes; a timeout would
                // mean something listened.
                guard causes["timeout", default: 0] == 0, causes["transport", default: 0] > 0 else {
                    throw CommandFailure("writes were queued for other reasons than a refused connection: \(causes)")
                }

                try await server.start(configure: configure)
                let replayStart = ContinuousClock.now
                let report = try await client.offline.replay()
                let afterReplay = try await client.offline.counts()
                let replaySeconds = Self.seconds(ContinuousClock.now - replayStart)
                if let stopped = report.stoppedBy {
                    throw CommandFailure("replay stopped with the server up: \(stopped)")
                }

                let (onServer, distinct) = try await Self.countOnServer(configuration: online, tables: tableIDs)
                let duplicates = onServer - distinct
                let missing = total - distinct
                return [
                    ("writes", "\(total)"),
                    ("queued", "\(queuedCounts.pending)"),
                    ("queued_after_refused", "\(causes["transport", default: 0])"),
                    ("queued_with_circuit_open", "\(causes["circuit_open", default: 0])"),
                    ("queue_seconds", "\((queueSeconds * 1000).rounded() / 1000)"),
                    ("replayed", "\(report.replayed)"),
                    ("already_applied", "\(report.alreadyApplied)"),
                    ("failed", "\(report.failed + afterReplay.failed)"),
                    ("remaining", "\(afterReplay.pending + afterReplay.inflight)"),
                    ("duplicates", "\(duplicates)"),
                    ("missing", "\(missing)"),
                    ("seconds", "\((replaySeconds * 1000).rounded() / 1000)"),
                    (
                        "mutations_per_second",
                        "\(replaySeconds > 0 ? (Double(report.replayed) / replaySeconds).rounded() : 0)"
                    ),
                    ("durable_commits", "\(durable)"),
                ]
            }
        }

        /// Reads every record of `tables` with a client of its own (no queue, no cache): answers how
        /// many records there are and how many distinct `bench-N` names they carry.
        private static func countOnServer(
            configuration: PyAirtableClient.Configuration,
            tables: [TableID]
        ) async throws -> (records: Int, distinctNames: Int) {
            try await withPyAirtableClient(configuration: configuration) { client in
                var records = 0
                var names = Set<String>()
                for table in tables {
                    for try await record in client.records.all(
                        in: table,
                        query: RecordQuery(pageSize: RecordQuery.maximumPageSize),
                        policy: .networkOnly
                    ) {
                        records += 1
                        if case .string(let name) = record.fields["Name"] { names.insert(name) }
                    }
                }
                return (records, names.count)
            }
        }

        /// Whether a TCP connection to `port` on loopback is refused (nothing listens there).
        static func connectionRefused(port: Int) -> Bool {
            #if canImport(Glibc)
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            #else
            let descriptor = socket(AF_INET, SOCK_STREAM, 0)
            #endif
            guard descriptor >= 0 else { return false }
            defer { close(descriptor) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(clamping: port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let result = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            return result == -1 && errno == ECONNREFUSED
        }

        private static func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }
    }
}
