import Foundation
import HTTPTypes
import PyAirtableModels
import TestSupport
import Testing

@testable import ReferenceServer

#if canImport(Glibc)
import Glibc
#endif

/// PostgreSQL going away under a running server, on a cluster of the test's own (the shared test
/// server keeps serving the other tests): requests answer 503 with `Retry-After` within a bounded
/// time instead of hanging, nothing acknowledged is lost, and once the database is back the server
/// serves again without a restart and its realtime wake-ups resume.
@Suite("PostgreSQL faults", .heavy, .timeLimit(.minutes(15)))
struct PostgresFaultTests {
    /// A private cluster, stopped and removed on every path.
    static func withPrivateCluster(
        _ body: (PostgresLocation, _ script: @escaping @Sendable (String) async throws -> Void) async throws -> Void
    )
        async throws
    {
        let script = PostgresCluster.repositoryRoot + "/scripts/postgres.sh"
        var environment = ProcessInfo.processInfo.environment
        var url: String?
        var directory: String?
        var failures: [String] = []
        let began = ContinuousClock.now
        // A port below Linux's ephemeral range (32768 and up), which the suite's many client
        // connections draw from: a port taken by one of them made a start fail. Three tries, each on
        // another port, against what else may listen there.
        for _ in 0..<3 where url == nil {
            environment["PYAT_POSTGRES_PORT"] = String(20_000 + Int.random(in: 0..<10_000))
            // Its output goes to a file, read once it ended: a blocking read of a pipe held one of the
            // few threads every test's tasks share for as long as a durable start took (minutes on a
            // loaded machine), and other tests' tasks stalled behind it past their time limits.
            let printed = NSTemporaryDirectory() + "pyat-postgres-fault-\(UUID().uuidString).out"
            defer { unlink(printed) }
            let starter = try ChildProcess(
                executable: "/bin/bash",
                // Durable: `down` is a crash, and acknowledged means on disk.
                arguments: [script, "start", "--durable"],
                environment: environment,
                stdoutPath: printed
            )
            let status = await starter.wait(timeout: .seconds(240))
            let output = (try? String(contentsOfFile: printed, encoding: .utf8)) ?? ""
            var started: (url: String?, directory: String?) = (nil, nil)
            for line in output.split(separator: "\n") {
                if line.hasPrefix("export PYAT_TEST_POSTGRES_URL=") {
                    started.url = String(line.split(separator: "=", maxSplits: 1)[1])
                }
                if line.hasPrefix("export PYAT_POSTGRES_DIRECTORY=") {
                    started.directory = String(line.split(separator: "=", maxSplits: 1)[1])
                }
            }
            if status == 0, started.url != nil, started.directory != nil {
                (url, directory) = started
            } else {
                failures.append(
                    "port \(environment["PYAT_POSTGRES_PORT"] ?? "?"): \(String(describing: status)) \(output)"
                )
            }
        }
        let shared = environment
        // Said in every failure below: which step was slow when a run ends at its time limit.
        let startTook = ContinuousClock.now - began
        guard let url, let directory else {
            Issue.record("scripts/postgres.sh start failed three times: \(failures.joined(separator: "; "))")
            return
        }
        let run: @Sendable (String) async throws -> Void = { command in
            let child = try ChildProcess(
                executable: "/bin/bash",
                arguments: [script, command, directory],
                environment: shared
            )
            let stepBegan = ContinuousClock.now
            let code = await child.wait(timeout: .seconds(90))
            #expect(
                code == 0,
                "postgres.sh \(command): \(ContinuousClock.now - stepBegan); the cluster's start took \(startTook)"
            )
            if command == "stop", code != 0 {
                // A stop that did not finish must not leave the cluster running after the test.
                if let pidLine = try? String(contentsOfFile: directory + "/data/postmaster.pid", encoding: .utf8)
                    .split(separator: "\n").first, let pid = pid_t(pidLine)
                {
                    _ = Glibc.kill(pid, SIGKILL)
                }
                try? FileManager.default.removeItem(atPath: directory)
            }
        }
        do {
            try await body(try PostgresLocation(url: url), run)
            try await run("stop")
        } catch {
            try? await run("stop")
            throw error
        }
    }

    @Test("PostgreSQL down: 503 with Retry-After in bounded time, not a hang; back up: served again, nothing lost")
    func databaseRestartedUnderTheServer() async throws {
        try await Self.withPrivateCluster { location, postgres in
            try await Harness.withServer(configure: { $0.database = .postgres(location, poolSize: 4) }) {
                api,
                services in
                let (owner, _) = try await api.register()
                let (_, _, table) = try await owner.scaffold()
                let kept = try await owner.createRecord(in: table.id, ["Name": .string("acknowledged")])

                try await postgres("down")
                let started = ContinuousClock.now
                let read = try await owner.send(.get, "records/\(kept.id)")
                let write = try await owner.send(
                    .post,
                    "tables/\(table.id)/records",
                    json: RecordFieldsRequest(fields: ["Name": .string("during the outage")])
                )
                let elapsed = ContinuousClock.now - started
                for response in [read, write] {
                    #expect(response.status == .serviceUnavailable, "\(response.status): \(response.text)")
                    #expect(response.headers[.retryAfter] != nil)
                    #expect(response.error?.error.message.contains("unavailable") == true)
                }
                // Each waited for a connection at most the acquire timeout (5 s), not forever.
                #expect(elapsed < .seconds(30))
                let health = try await api.send(.get, "/health")
                #expect(health.status == .serviceUnavailable)

                try await postgres("up")
                // Served again without a restart, within a bounded time.
                let deadline = ContinuousClock.now + .seconds(30)
                var back = false
                while ContinuousClock.now < deadline {
                    if try await owner.send(.get, "records/\(kept.id)").status == .ok {
                        back = true
                        break
                    }
                    try await Task.sleep(for: .milliseconds(200))
                }
                #expect(back)
                #expect(try await owner.record(kept.id).fields["Name"] == .string("acknowledged"))
                let after = try await owner.createRecord(in: table.id, ["Name": .string("after")])
                // The write that got a 503 was not applied; the acknowledged ones are all there.
                let names = try await owner.events(since: 0).compactMap { event -> String? in
                    guard event.type == .recordCreated, case .object(let fields)? = event.payload["fields"],
                        case .string(let name)? = fields["Name"]
                    else { return nil }
                    return name
                }
                #expect(names == ["acknowledged", "after"])
                #expect(after.id != kept.id)
                #expect(try await services.store.eventBounds().newest >= 2)
            }
        }
    }
}
