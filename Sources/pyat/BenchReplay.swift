import ArgumentParser
import Foundation
import Logging
import OfflineQueue
import PyAirtableClient
import PyAirtableTesting
import ReferenceServer

extension Pyat.Bench {
    /// `pyat bench replay`: N record writes queued offline, replayed against an embedded server, counted.
    struct ReplayBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "replay",
            abstract: "Replay N record writes queued offline; time it and count duplicates on the server.",
            discussion: """
                Starts an embedded server (durable commits on, as `pyat serve` runs, unless
                --no-durable-commits), makes --tables tables, then queues --mutations record creates
                spread over them in a fresh queue file, as the SDK queues them when the server cannot be
                reached (same requests, temporary ids, idempotency keys). It then times
                `client.offline.replay()` and counts the records on the server: `duplicates` is how
                many more there are than writes queued, or how many names appear twice.
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
            let durable = durableCommits
            let configure: @Sendable (inout ServerConfiguration) -> Void = { $0.durableCommits = durable }
            let figures = try await TestServer.withRunning(configure: configure) { server in
                try await measure(server: server)
            }
            if json {
                let body = figures.map { "  \"\($0.0)\": \($0.1)" }.joined(separator: ",\n")
                print("{\n\(body)\n}")
            } else {
                print(
                    "\(mutations) record creates queued offline, replayed (durable commits \(durable ? "on" : "off"))"
                )
                for (name, value) in figures {
                    print("  \(name.padding(toLength: 22, withPad: " ", startingAt: 0)) \(value)")
                }
            }
        }

        private func measure(server: TestServer) async throws -> [(String, String)] {
            let demo = try await server.seedDemo()
            guard let url = URL(string: server.url), let workspace = demo.workspaceID else {
                throw ValidationError("the embedded server did not seed a workspace")
            }
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-bench-replay-\(UUID())")
            defer { try? FileManager.default.removeItem(at: directory) }
            var configuration = PyAirtableClient.Configuration(
                serverURL: url,
                credentials: .personalAccessToken(demo.token)
            )
            configuration.logger.logLevel = .warning
            configuration.offline = .persistent(path: directory.appendingPathComponent("queue.sqlite").path)
            configuration.offline.maximumEntries = max(100_000, mutations)
            configuration.offline.maximumBytes = max(64 * 1024 * 1024, mutations * 1024)
            configuration.offline.replaysAutomatically = false
            let (total, tables) = (mutations, tables)
            return try await withPyAirtableClient(configuration: configuration) { client in
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
                guard let queue = try await client.offline.queue() else {
                    throw ValidationError("the offline queue is off")
                }
                // What `client.records.create` queues when the server cannot be reached.
                var items: [QueueItem] = []
                items.reserveCapacity(total)
                for index in 0..<total {
                    let table = tableIDs[index % tableIDs.count]
                    let temporaryID = TemporaryID.generate()
                    let body = try JSONCoding.encoder.encode(
                        RecordFieldsRequest(fields: [
                            "Name": .string("bench-\(index)"), "Score": .number(Double(index)),
                        ])
                    )
                    items.append(
                        QueueItem(
                            request: QueuedRequest(method: "POST", path: "/api/v1/tables/\(table)/records", body: body),
                            scope: temporaryID.rawValue,
                            batchKey: table.rawValue,
                            creates: [temporaryID],
                            idempotencyKey: UUID().uuidString.lowercased()
                        )
                    )
                }
                let queued = try await queue.enqueue(contentsOf: items).count

                let start = ContinuousClock.now
                let report = try await client.offline.replay()
                let elapsed = ContinuousClock.now - start
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18

                var onServer = 0
                var names = Set<String>()
                var repeatedNames = 0
                for table in tableIDs {
                    for try await record in client.records.all(
                        in: table,
                        RecordQuery(pageSize: RecordQuery.maximumPageSize),
                        policy: .networkOnly
                    ) {
                        onServer += 1
                        if case .string(let name) = record.fields["Name"], !names.insert(name).inserted {
                            repeatedNames += 1
                        }
                    }
                }
                let duplicates = max(onServer - queued, repeatedNames)
                let missing = queued - names.count
                return [
                    ("queued", "\(queued)"),
                    ("replayed", "\(report.replayed)"),
                    ("duplicates", "\(duplicates)"),
                    ("missing", "\(missing)"),
                    ("failed", "\(report.failed)"),
                    ("remaining", "\(report.remaining)"),
                    ("seconds", "\((seconds * 1000).rounded() / 1000)"),
                    ("mutations_per_second", "\(seconds > 0 ? (Double(report.replayed) / seconds).rounded() : 0)"),
                    ("durable_commits", "\(durableCommits)"),
                ]
            }
        }
    }
}
