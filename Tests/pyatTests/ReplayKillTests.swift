import Foundation
import PyAirtableClient
import ReferenceServer
import ReferenceServerTesting
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("pyat queue replay killed with SIGKILL, against the real server", .heavy, .timeLimit(.minutes(15)))
struct ReplayKillTests {
    @Test("replays killed mid-way again and again, then a final one: the server holds each write exactly once")
    func killedReplays() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let home = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-kill-\(UUID())")
            defer { try? FileManager.default.removeItem(at: home) }
            let cacheHome = home.appendingPathComponent("cache")
            let queuePath = cacheHome.appendingPathComponent("pyat/queue.sqlite").path
            let online = PyAirtableClient.Configuration(
                serverURL: try #require(URL(string: server.url)),
                credentials: .personalAccessToken(demo.token)
            )
            let count = 150
            // `count` records exist; one update of each and `count` creates are queued, interleaved, in
            // the queue file the CLI uses.
            let (table, existing) = try await withPyAirtableClient(configuration: online) { client in
                let workspace = try await client.workspaces.create(name: "Kill")
                let base = try await client.bases.create(in: workspace.id, name: "Kill")
                let table = try await client.tables.create(
                    in: base.id,
                    name: "Writes",
                    fields: [
                        CreateFieldRequest(name: "Name", type: .singleLineText),
                        CreateFieldRequest(name: "Score", type: .number),
                    ]
                )
                var existing: [RecordID] = []
                for start in stride(from: 0, to: count, by: 100) {
                    let operations = (start..<min(start + 100, count)).map { index in
                        BatchOperation.create(fields: ["Name": .string("existing \(index)")])
                    }
                    for result in try await client.records.batch(in: table.id, operations: operations) {
                        if case .record(let record) = result { existing.append(record.id) }
                    }
                }
                return (table, existing)
            }
            var offline = online
            offline.offline = .persistent(path: queuePath)
            offline.offline.queueWithoutTrying = true
            try await withPyAirtableClient(configuration: offline) { client in
                for (index, id) in existing.enumerated() {
                    #expect(try await client.records.update(id, fields: ["Score": .number(Double(index))]).isQueued)
                    #expect(
                        try await client.records.create(in: table.id, fields: ["Name": .string("queued \(index)")])
                            .isQueued
                    )
                }
                let counts = try await client.offline.queue()?.counts()
                #expect(counts?.pending == 2 * count)
            }

            var environment = ProcessInfo.processInfo.environment
            environment["PYAT_SERVER"] = server.url
            environment["PYAT_TOKEN"] = demo.token
            environment["XDG_CONFIG_HOME"] = home.path
            environment["XDG_CACHE_HOME"] = cacheHome.path
            let fixedEnvironment = environment

            // Each round starts a replay and kills it with SIGKILL once the server has applied a few
            // more of its writes (seen on the realtime stream, so the kill lands mid-replay).
            try await withPyAirtableClient(configuration: online) { watcher in
                let since = try await watcher.realtime.latestSeq()
                let updates = watcher.realtime.subscribe(EventFilter(tableID: table.id), since: since)
                let seen = Mutex(0)
                let counting = Task {
                    for try await update in updates {
                        if case .event = update { seen.withLock { $0 += 1 } }
                    }
                }
                defer { counting.cancel() }
                var kills = 0
                for round in 1...4 {
                    let child = try ChildProcess(
                        executable: PyatBinary.url.path,
                        arguments: ["queue", "replay", "--format", "json"],
                        environment: fixedEnvironment,
                        stdoutPath: "/dev/null"
                    )
                    let target = seen.withLock { $0 } + 7 * round
                    // Until the server applied a few more of its writes, or it finished on its own; a
                    // throw or cancellation here leaves the child to be killed when it is dropped.
                    while seen.withLock({ $0 }) < target, child.status == nil {
                        try await Task.sleep(for: .milliseconds(1))
                    }
                    child.kill()
                    if await child.wait() == 128 + SIGKILL { kills += 1 }
                }
                #expect(kills >= 2, "the replays should mostly be killed mid-way")
            }

            let final = try await PyatProcess.run(
                ["queue", "replay", "--format", "json"],
                environment: fixedEnvironment
            )
            #expect(final.status == 0, "\(final.stderr)")
            let left = try await PyatProcess.run(["queue", "list", "--format", "json"], environment: fixedEnvironment)
            #expect(try left.jsonArray().isEmpty, "\(left.stdout)")

            let records = try await withPyAirtableClient(configuration: online) { client in
                var records: [Record] = []
                for try await record in client.records.all(in: table.id, query: RecordQuery(pageSize: 1000)) {
                    records.append(record)
                }
                return records
            }
            #expect(records.count == 2 * count)
            var names: [String: Int] = [:]
            for record in records {
                if case .string(let name)? = record.fields["Name"] { names[name, default: 0] += 1 }
            }
            for index in 0..<count {
                #expect(
                    names["queued \(index)"] == 1,
                    "queued \(index) is on the server \(names["queued \(index)"] ?? 0) times"
                )
            }
            // Each update applied once: version 2 (a second application would make it 3).
            let byID = Dictionary(uniqueKeysWithValues: records.map { ($0.id, $0) })
            for (index, id) in existing.enumerated() {
                #expect(byID[id]?.version == 2, "record \(index) is at version \(byID[id]?.version ?? 0)")
                #expect(byID[id]?.fields["Score"] == .number(Double(index)))
            }
        }
    }
}
