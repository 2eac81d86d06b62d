import Foundation
import NIOHTTP1
import PostgresNIO
import PyAirtableClient
import PyAirtableModels
import TestSupport
import Testing

@testable import ReferenceServer

#if canImport(Glibc)
import Glibc
#endif

/// The fault drills of issue 16, under load, with real parts only: server instances on ephemeral
/// ports sharing one PostgreSQL database, nginx in front configured as `scripts/cluster` configures
/// it, and the SDK writing (retries, idempotency keys) and subscribing (WebSocket, resumed by seq).
///
/// Each drill runs writers through the fault, then checks what the clients were told against the
/// database: every acknowledged write is there at its acknowledged version, nothing was applied twice,
/// writes went on after the fault, and every realtime subscriber got every event of the run once, in
/// order. Bounds are generous (a loaded 2-core machine runs these): they catch a hang or a stall, not
/// slowness — latency figures belong to `pyat bench`.
@Suite("Cluster fault drills under load", .serialized, .heavy, .timeLimit(.minutes(10)))
struct ClusterFaultDrillTests {
    /// Concurrent SDK writers, each with a client (and so connections) of its own.
    static let writers = 8

    /// Acknowledged writes (creates and updates) before the fault: the writers are in full flow.
    static let warmUp = 40

    // MARK: kill -9

    @Test("kill -9 of one instance under load: acknowledged writes kept, none applied twice, subscribers resume")
    func instanceKilledUnderLoad() async throws {
        try await PostgresCluster.withDatabase { location in
            let settings = ClusterSettings(location: location)
            // Two instances in this process survive; the third runs in a child process to be killed.
            try await LocalInstance.withInstances(2, settings: settings) { survivors in
                let directory = try TemporaryDirectory(prefix: "pyat-drill-child")
                defer { withExtendedLifetime(directory) {} }
                let doomed = ChildInstance(directory: directory.path)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        await #expect(processExitsWith: .signal(SIGKILL)) {
                            [
                                settings = settings as ClusterSettings, path = directory.path as String,
                                parent = getpid() as Int32
                            ] in
                            try await ChildInstance.serveUntilKilled(
                                settings: settings,
                                directory: path,
                                parent: parent
                            )
                        }
                        doomed.noteExited()
                    }
                    // On every path the child ends, so the exit test above returns.
                    defer { doomed.stop() }
                    let (_, doomedPort) = try await doomed.started()
                    try await NginxBalancer.withBalancer(over: [doomedPort] + survivors.map(\.port)) { nginx in
                        try await Self.killDrill(
                            nginx: nginx,
                            doomed: doomed,
                            doomedPort: doomedPort,
                            survivors: survivors
                        )
                    }
                    doomed.stop()
                    try await group.waitForAll()
                }
            }
        }
    }

    static func killDrill(
        nginx: NginxBalancer,
        doomed: ChildInstance,
        doomedPort: Int,
        survivors: [LocalInstance]
    ) async throws {
        let (token, table) = try await Drill.scaffold(through: nginx.url)
        try await DrillClients.with(token: token) { clients in
            let since = try await clients.client(nginx.url).realtime.latestSeq()
            // Six through nginx (round robin puts two on each instance), one on each survivor directly.
            var subscribers = (0..<6).map {
                clients.subscribe("nginx-\($0)", through: nginx.url, table: table, since: since)
            }
            for (index, survivor) in survivors.enumerated() {
                subscribers.append(
                    clients.subscribe("instance-\(index + 1)", through: survivor.url, table: table, since: since)
                )
            }
            try await Drill.expectConnected(subscribers)
            // The drill is about subscribers losing their instance: some are on the doomed one.
            let onDoomed = try await Drill.eventually(within: .seconds(30)) {
                try await Drill.realtimeConnections(port: doomedPort) >= 1
            }
            try #require(onDoomed, "no subscriber reached the instance to be killed through nginx")

            let ledger = WriteLedger()
            try await Drill.withWriters(Self.writers, through: nginx.url, token: token, table: table, ledger: ledger) {
                let flowing = try await Drill.eventually(within: .seconds(60)) {
                    ledger.acknowledgements >= Self.warmUp
                }
                try #require(flowing, "the writers did not get going: \(ledger.snapshot.failures.suffix(5))")
                doomed.kill()
                let killedAt = ContinuousClock.now
                // Writing goes on, through nginx, for every writer.
                let resumed = try await Drill.eventually(within: .seconds(90)) {
                    ContinuousClock.now - killedAt >= .seconds(4)
                        && ledger.writersAcknowledged(after: killedAt).count == Self.writers
                }
                #expect(
                    resumed,
                    "writers acknowledged after the kill: \(ledger.writersAcknowledged(after: killedAt).sorted())"
                )
            }

            // Read back through a survivor: the database, as every instance serves it.
            let survivor = survivors[0].url
            let records = try await Drill.records(of: table, through: survivor, token: token)
            let events = try await Drill.eventLog(of: table, since: since, through: survivor, token: token)
            Drill.expectConsistent(records: records, events: events, ledger: ledger)
            try await Drill.expectDelivered(events, to: subscribers)
            // Those on the killed instance came back (through nginx, to a survivor) and resumed.
            #expect(subscribers.contains { $0.reconnects > 0 }, "no subscriber had to reconnect")
            Drill.report("kill -9", ledger: ledger, subscribers: subscribers)
        }
    }

    // MARK: PostgreSQL restarted

    @Test("PostgreSQL restarted under load: 503 with Retry-After meanwhile, then every write and event accounted for")
    func postgresRestartedUnderLoad() async throws {
        // A private, durable cluster (the drill stops it as a crash would; acknowledged means on disk).
        try await PostgresFaultTests.withPrivateCluster { location, postgres in
            let settings = ClusterSettings(location: location)
            try await LocalInstance.withInstances(2, settings: settings) { instances in
                try await NginxBalancer.withBalancer(over: instances.map(\.port)) { nginx in
                    try await Self.restartDrill(nginx: nginx, instances: instances, postgres: postgres)
                }
            }
        }
    }

    static func restartDrill(
        nginx: NginxBalancer,
        instances: [LocalInstance],
        postgres: @escaping @Sendable (String) async throws -> Void
    ) async throws {
        let (token, table) = try await Drill.scaffold(through: nginx.url)
        try await DrillClients.with(token: token) { clients in
            let since = try await clients.client(nginx.url).realtime.latestSeq()
            var subscribers = (0..<2).map {
                clients.subscribe("nginx-\($0)", through: nginx.url, table: table, since: since)
            }
            for (index, instance) in instances.enumerated() {
                subscribers.append(
                    clients.subscribe("instance-\(index + 1)", through: instance.url, table: table, since: since)
                )
            }
            try await Drill.expectConnected(subscribers)

            let ledger = WriteLedger()
            try await Drill.withWriters(Self.writers, through: nginx.url, token: token, table: table, ledger: ledger) {
                let flowing = try await Drill.eventually(within: .seconds(60)) {
                    ledger.acknowledgements >= Self.warmUp
                }
                try #require(flowing, "the writers did not get going: \(ledger.snapshot.failures.suffix(5))")
                let known = try #require(ledger.snapshot.acknowledged.values.first)

                // Down at once, as a crash; up again after a few seconds of writers meeting the
                // outage, whatever the probes meanwhile found.
                try await postgres("down")
                let downAt = ContinuousClock.now
                await Self.expectUnavailable(instances, record: known.id, table: table, token: token)
                let outage = Duration.seconds(4) - (ContinuousClock.now - downAt)
                if outage > .zero { try? await Task.sleep(for: outage) }
                try await postgres("up")
                let upAt = ContinuousClock.now

                let resumed = try await Drill.eventually(within: .seconds(90)) {
                    ContinuousClock.now - upAt >= .seconds(3)
                        && ledger.writersAcknowledged(after: upAt).count == Self.writers
                }
                #expect(
                    resumed,
                    """
                    writers acknowledged after the restart: \(ledger.writersAcknowledged(after: upAt).sorted()); \
                    last failures: \(ledger.snapshot.failures.suffix(5))
                    """
                )
            }
            // Every call ended (answered, or given up by the SDK) in bounded time.
            let longest = ledger.snapshot.longestCall
            #expect(longest < .seconds(120), "the longest SDK call took \(longest)")

            let through = instances[1].url
            let records = try await Drill.records(of: table, through: through, token: token)
            let probes = records.filter { $0.fields["Name"] == .string("probe") }
            #expect(probes.isEmpty, "a write answered 503 was applied")
            let events = try await Drill.eventLog(of: table, since: since, through: through, token: token)
            let written = records.filter { !probes.contains($0) }
            let logged = events.filter { event in !probes.contains { $0.id == event.recordID } }
            Drill.expectConsistent(records: written, events: logged, ledger: ledger)
            try await Drill.expectDelivered(events, to: subscribers)
            Drill.report("PostgreSQL restart", ledger: ledger, subscribers: subscribers)
        }
    }

    /// Each instance answers one attempt (no retries) of a read and of a write with 503 and
    /// `Retry-After` within the 5 s it waits for a database connection: unavailable, not hung.
    static func expectUnavailable(
        _ instances: [LocalInstance],
        record: RecordID,
        table: TableID,
        token: String
    ) async {
        await withTaskGroup(of: Void.self) { group in
            for instance in instances {
                let base = instance.url.absoluteString
                let probes: [(String, HTTPMethod, String, String?)] = [
                    ("read", .GET, base + "/api/v1/records/\(record)", nil),
                    ("write", .POST, base + "/api/v1/tables/\(table)/records", #"{"fields":{"Name":"probe"}}"#),
                ]
                for (name, method, url, json) in probes {
                    group.addTask {
                        let what = "a \(name) on port \(instance.port) while PostgreSQL is down"
                        do {
                            let response = try await Drill.request(
                                method,
                                url,
                                token: token,
                                json: json,
                                timeout: .seconds(30)
                            )
                            #expect(response.status == 503, "\(what): \(response.status) \(response.text)")
                            #expect(response.headers.first(name: "Retry-After") != nil, "\(what)")
                            #expect(response.elapsed < .seconds(20), "\(what) was answered after \(response.elapsed)")
                        } catch {
                            Issue.record("\(what) was not answered within 30 s: \(error)")
                        }
                    }
                }
            }
        }
    }

    // MARK: The listen connection

    @Test("the LISTEN connection killed alone under load: the other instance's subscribers miss nothing")
    func listenConnectionKilledUnderLoad() async throws {
        try await PostgresCluster.withDatabase { location in
            let settings = ClusterSettings(location: location)
            try await LocalInstance.withInstances(2, settings: settings) { instances in
                try await Self.listenDrill(writingTo: instances[0], watching: instances[1])
            }
        }
    }

    /// Writers write to `writing` only, so `watching` learns of their commits through its listen
    /// connection (or its one-second safety poll) — which is terminated again and again.
    static func listenDrill(writingTo writing: LocalInstance, watching: LocalInstance) async throws {
        let (token, table) = try await Drill.scaffold(through: writing.url)
        try await DrillClients.with(token: token) { clients in
            let since = try await clients.client(writing.url).realtime.latestSeq()
            let watchers = (0..<3).map {
                clients.subscribe("watching-\($0)", through: watching.url, table: table, since: since)
            }
            let subscribers =
                watchers + [clients.subscribe("writing", through: writing.url, table: table, since: since)]
            try await Drill.expectConnected(subscribers)
            let instances = [writing, watching]
            let admin = try writing.store

            let ledger = WriteLedger()
            try await Drill.withWriters(Self.writers, through: writing.url, token: token, table: table, ledger: ledger)
            {
                let flowing = try await Drill.eventually(within: .seconds(60)) {
                    ledger.acknowledgements >= Self.warmUp
                }
                try #require(flowing, "the writers did not get going: \(ledger.snapshot.failures.suffix(5))")
                for round in 1...4 {
                    try await Self.terminateListeners(of: instances, admin: admin, round: round, watchers: watchers)
                    try await Task.sleep(for: .milliseconds(500))
                }
            }

            let records = try await Drill.records(of: table, through: watching.url, token: token)
            let events = try await Drill.eventLog(of: table, since: since, through: watching.url, token: token)
            Drill.expectConsistent(records: records, events: events, ledger: ledger)
            try await Drill.expectDelivered(events, to: subscribers, within: .seconds(30))
            Drill.report("LISTEN terminated", ledger: ledger, subscribers: subscribers)
        }
    }

    /// One round: finds every instance's listening backend in `pg_stat_activity`, terminates them,
    /// and checks that the watchers catch up and each instance listens again on a new connection.
    static func terminateListeners(
        of instances: [LocalInstance],
        admin: PostgresStore,
        round: Int,
        watchers: [DrillSubscriber]
    ) async throws {
        let listeners = try instances.map { try $0.store.database.eventListener }
        let listening = try await Drill.eventually(within: .seconds(10)) {
            listeners.allSatisfy { $0.backendPID != nil }
        }
        try #require(listening, "round \(round): an instance is not listening")
        let pids = listeners.compactMap(\.backendPID)
        let sessions = listeners.map(\.sessionCount)
        let found = try await admin.database.read { transaction in
            try await transaction.rows(
                """
                SELECT pid FROM pg_stat_activity
                WHERE datname = current_database() AND pid = ANY(\(pids))
                """
            ).map { try $0.get("pid", as: Int32.self) }
        }
        #expect(Set(found) == Set(pids), "round \(round): listening backends \(pids), in pg_stat_activity \(found)")
        for pid in found {
            let terminated = try await admin.database.read { transaction in
                try await transaction.scalar("SELECT pg_terminate_backend(\(pid))", as: Bool.self)
            }
            #expect(terminated == true, "round \(round): pg_terminate_backend(\(pid))")
        }
        // Committed on the writers' instance while the listeners were gone: the watchers on the
        // other instance have it soon after (the writers keep committing meanwhile).
        let head = try await admin.eventBounds().newest
        for watcher in watchers {
            let caughtUp = try await watcher.waitUntil(seq: head, within: .seconds(10))
            #expect(caughtUp, "round \(round): \(watcher.name) did not reach seq \(head) within 10 s")
        }
        for (index, listener) in listeners.enumerated() {
            let replaced = try await Drill.eventually(within: .seconds(10)) {
                listener.sessionCount > sessions[index] && listener.backendPID.map { $0 != pids[index] } == true
            }
            #expect(replaced, "round \(round): instance \(index + 1) did not listen again on a new connection")
        }
    }
}
