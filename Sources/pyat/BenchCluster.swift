import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PyAirtableClient
import Synchronization

extension Pyat.Bench {
    /// `pyat bench cluster`: several instances on one PostgreSQL behind nginx, against one SQLite
    /// instance, in one run.
    struct ClusterBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cluster",
            abstract: "Instances on one PostgreSQL behind nginx against one SQLite instance: writes, realtime, faults.",
            discussion: """
                Starts scripts/cluster (PostgreSQL with fsync on, --instances `pyat serve` of this
                binary, nginx on --port) and measures, for the cluster and then for one `pyat serve`
                on SQLite (durable commits) as the baseline:
                - writes: --writers keep-alive connections of wrk sending single-record PATCHes for
                  --seconds (through nginx), cycling over eight records a connection; writes/s and
                  wrk's latency percentiles. wrk keeps each answer's record and version. One WebSocket
                  subscriber on every instance checks that it got every acknowledged write's event
                  exactly once, in seq order, and that the seqs it got have no gap (`missed`,
                  `duplicated`, `reordered`, `seq_gaps`).
                - latency: a write on instance 1 timed until a WebSocket subscriber on instance 2
                  has its event (--latency-writes, sequential).
                - fan-out: one write on instance 1 timed until the last of --subscribers WebSocket
                  connections, spread over the instances, has it (--fanout-writes).
                - resume: a subscriber on instance 2 closes, writes land on instance 1, and a
                  subscriber on instance 3 resumes from the last seq the first one had: timed until it
                  has every missed event (--resumes).
                - LISTEN killed: the instances' LISTEN connections terminated in PostgreSQL, then a
                  write on instance 1 timed until a subscriber on instance 2 has it (--listen-kills).
                Any non-2xx answer, socket error, timeout, lost, duplicated or reordered event fails
                the run. Needs scripts/cluster (run from the repository, or --cluster-script), nginx,
                wrk and PostgreSQL 15 (all from Debian); the release build is the one to measure.
                """
        )

        @Option(help: "Instances behind nginx.")
        var instances: Int = 3

        @Option(help: "nginx's port; the instances take the next ones.")
        var port: Int = 18080

        @Option(help: "Concurrent writers (wrk's connections).")
        var writers: Int = 32

        @Option(help: "Seconds the writers write.")
        var seconds: Int = 60

        @Option(help: "Sequential writes timed for the cross-instance latency.")
        var latencyWrites: Int = 500

        @Option(help: "Subscribers (connections) for the fan-out figure, spread over the instances.")
        var subscribers: Int = 1000

        @Option(help: "Writes timed for the fan-out figure.")
        var fanoutWrites: Int = 20

        @Option(help: "Resumes on another instance timed.")
        var resumes: Int = 5

        @Option(help: "Times the LISTEN connections are killed.")
        var listenKills: Int = 5

        @Option(help: "Seconds an event may take to reach every subscriber before it counts as lost.")
        var deliveryTimeoutSeconds: Int = 15

        @Option(help: "scripts/cluster (found in the working directory or the repository of this binary).")
        var clusterScript: String?

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            guard instances >= 3 else { throw ValidationError("--instances must be at least 3") }
            guard
                writers > 0, seconds > 0, latencyWrites > 0, subscribers > 0, fanoutWrites > 0, resumes > 0,
                listenKills > 0, deliveryTimeoutSeconds > 0
            else { throw ValidationError("every count and duration must be positive") }
            guard port > 0, port + instances <= 65535 else { throw ValidationError("--port leaves no room") }
        }

        func run() async throws {
            let script = try ClusterChild.locateScript(clusterScript)
            // Found before anything starts: a missing wrk ends the run at once.
            _ = try WrkLoad.locate()
            let connectionsPerUser = subscribers + instances * 8 + 64
            var figures: [(String, Double)] = []
            let started = ContinuousClock.now
            log("starting the cluster: PostgreSQL (fsync on), \(instances) instances, nginx on \(port)…")
            figures += try await ClusterChild.with(
                script: script,
                instances: instances,
                port: port,
                serveOptions: [
                    "--log-level", "error", "--max-realtime-connections-per-user", String(connectionsPerUser),
                ]
            ) { cluster in
                let topology = Topology(
                    name: "cluster",
                    writeURL: cluster.balancer,
                    instances: cluster.instances,
                    token: cluster.token
                )
                return try await measure(topology) { figures in
                    try await measureListenKills(topology, cluster: cluster, figures: &figures)
                }
            }
            log("starting one pyat serve on SQLite (durable commits)…")
            figures += try await ServeChild.with(
                arguments: ["--max-realtime-connections-per-user", String(connectionsPerUser)]
            ) { child in
                let topology = Topology(
                    name: "sqlite",
                    writeURL: child.url,
                    instances: [child.url],
                    token: child.token
                )
                return try await measure(topology) { _ in }
            }
            if let cluster = figures.first(where: { $0.0 == "cluster_writes_per_s" })?.1,
                let sqlite = figures.first(where: { $0.0 == "sqlite_writes_per_s" })?.1, sqlite > 0
            {
                figures.append(("cluster_vs_sqlite_writes", cluster / sqlite))
            }
            figures.append(("seconds_total", (ContinuousClock.now - started).seconds))
            report(figures)
            let failures = figures.filter { name, value in
                ["_missed", "_duplicated", "_reordered", "_seq_gaps", "_write_errors", "_lost", "_subscriber_errors"]
                    .contains { name.hasSuffix($0) } && value != 0
            }
            if !failures.isEmpty {
                throw CommandFailure(
                    "the run was not exact: " + failures.map { "\($0.0) \(Int($0.1))" }.joined(separator: ", ")
                )
            }
        }

        /// Where a topology takes writes and where its subscribers connect.
        struct Topology: Sendable {
            /// `cluster` or `sqlite`: the prefix of its figures.
            var name: String
            /// nginx for the cluster, the one server for SQLite.
            var writeURL: String
            /// Each instance directly (one for SQLite).
            var instances: [String]
            var token: String

            /// The instance of a role: the first writes, the second subscribes, the third resumes
            /// (all the same server for SQLite).
            func instance(_ index: Int) -> String { instances[index % instances.count] }
        }

        /// Every measurement of one topology, with its figures named `<topology>_…`; `extra` adds
        /// measurements only the cluster has.
        private func measure(
            _ topology: Topology,
            extra: (inout [(String, Double)]) async throws -> Void
        ) async throws -> [(String, Double)] {
            try await withClients(topology) { clients in
                // Eight records a connection, written in turn: two writes of one record are almost
                // never in flight at once (as with a record per writer), and many rows are written.
                let setup = try await Setup.make(client: clients.write, records: writers * 8)
                var figures: [(String, Double)] = []
                log("\(topology.name): \(writers) writers for \(seconds) s…")
                figures += try await measureWrites(topology, clients: clients, setup: setup)
                log("\(topology.name): latency, \(latencyWrites) writes…")
                figures += try await measureLatency(clients: clients, setup: setup)
                log("\(topology.name): resume, \(resumes) times…")
                figures += try await measureResumes(clients: clients, setup: setup)
                log("\(topology.name): fan-out to \(subscribers) subscribers…")
                figures += try await measureFanout(clients: clients, setup: setup)
                var more: [(String, Double)] = []
                try await extra(&more)
                figures += more
                return figures.map { ("\(topology.name)_\($0.0)", $0.1) }
            }
        }

        /// The SDK clients of a topology: one for writes (nginx for the cluster), one per instance.
        struct Clients: Sendable {
            var write: PyAirtableClient
            var instances: [PyAirtableClient]
            var realtime: RealtimeSettings

            func instance(_ index: Int) -> PyAirtableClient { instances[index % instances.count] }
        }

        private func withClients<Result: Sendable>(
            _ topology: Topology,
            _ body: (Clients) async throws -> Result
        ) async throws -> Result {
            func configuration(_ url: String) throws -> PyAirtableClient.Configuration {
                guard let serverURL = URL(string: url) else { throw CommandFailure("\(url) is not a URL") }
                var configuration = PyAirtableClient.Configuration(
                    serverURL: serverURL,
                    credentials: .personalAccessToken(topology.token)
                )
                configuration.logger.logLevel = .critical
                return configuration
            }
            let write = PyAirtableClient(configuration: try configuration(topology.writeURL))
            var instances: [PyAirtableClient] = []
            for url in topology.instances { instances.append(PyAirtableClient(configuration: try configuration(url))) }
            let realtime = RealtimeSettings(
                transports: [.webSocket],
                initialBackoff: .milliseconds(50),
                maximumBackoff: .seconds(1),
                updatesCache: false
            )
            let clients = Clients(write: write, instances: instances, realtime: realtime)
            do {
                let result = try await body(clients)
                for client in [write] + instances { try? await client.shutdown() }
                return result
            } catch {
                for client in [write] + instances { try? await client.shutdown() }
                throw error
            }
        }

        /// The benchmark's table and its records.
        struct Setup: Sendable {
            var table: TableID
            var field: String
            var records: [RecordID]

            static func make(client: PyAirtableClient, records count: Int) async throws -> Setup {
                let workspace = try await client.workspaces.create(name: "bench cluster \(UUID().uuidString.prefix(8))")
                let base = try await client.bases.create(in: workspace.id, name: "Bench")
                let table = try await client.tables.create(
                    in: base.id,
                    name: "Writes",
                    fields: [
                        CreateFieldRequest(name: "Name", type: .singleLineText),
                        CreateFieldRequest(name: "Count", type: .number),
                    ]
                )
                var records: [RecordID] = []
                let total = max(count, 1)
                while records.count < total {
                    let operations = (records.count..<min(total, records.count + 100)).map { index in
                        BatchOperation.create(fields: ["Name": .string("record \(index)"), "Count": .number(0)])
                    }
                    for result in try await client.records.batch(in: table.id, operations: operations) {
                        guard case .record(let record) = result else {
                            throw CommandFailure("a record of the benchmark's table was not created")
                        }
                        records.append(record.id)
                    }
                }
                return Setup(table: table.id, field: "Count", records: records)
            }
        }

        // MARK: Writes

        private func measureWrites(
            _ topology: Topology,
            clients: Clients,
            setup: Setup
        ) async throws -> [(String, Double)] {
            // One subscriber on every instance, each its own connection, checking the whole run.
            let ledgers = (0..<topology.instances.count).map { _ in Ledger() }
            var listeners: [(RealtimeClient, Task<Void, Never>)] = []
            for (index, ledger) in ledgers.enumerated() {
                let realtime = RealtimeClient(client: clients.instance(index), configuration: clients.realtime)
                let updates = realtime.subscribe(EventFilter(tableID: setup.table))
                listeners.append((realtime, Task { await ledger.consume(updates) }))
            }
            func stopListeners() async {
                for ledger in ledgers { ledger.stopping() }
                for (realtime, task) in listeners {
                    await realtime.close()
                    task.cancel()
                }
            }
            let http = HTTPClient(
                eventLoopGroup: HTTPClient.defaultEventLoopGroup,
                configuration: HTTPClient.Configuration(
                    timeout: .init(connect: .seconds(10), read: .seconds(30)),
                    connectionPool: .init(
                        idleTimeout: .seconds(120),
                        concurrentHTTP1ConnectionsPerHostSoftLimit: writers
                    )
                )
            )
            let writer = Writer(http: http, server: topology.writeURL, token: topology.token, field: setup.field)
            do {
                // Every subscriber has a write made after it subscribed: nothing later can be missed
                // for being too early.
                let giveUp = ContinuousClock.now + .seconds(60)
                var counter = 0
                while true {
                    counter += 1
                    let written = try await writer.write(setup.records[0], value: -counter)
                    if await Ledger.waitAll(ledgers, have: [written], within: .seconds(1)) { break }
                    if ContinuousClock.now >= giveUp {
                        throw CommandFailure("a subscriber received no event within 60 s of subscribing")
                    }
                }
                let firstSeq = ledgers.map { $0.lastSeq }.max() ?? 0
                let results = try await WrkLoad.run(
                    wrk: try WrkLoad.locate(),
                    server: topology.writeURL,
                    token: topology.token,
                    field: setup.field,
                    records: setup.records,
                    connections: writers,
                    seconds: seconds
                )
                let elapsed = results.seconds
                let acknowledged = Set(results.written)
                let complete = await Ledger.waitAll(
                    ledgers,
                    have: acknowledged,
                    within: .seconds(deliveryTimeoutSeconds)
                )
                if !complete { log("\(topology.name): some events did not arrive within the delivery timeout") }
                var missed = 0
                var duplicated = 0
                var reordered = 0
                var gaps = 0
                for ledger in ledgers {
                    let check = ledger.check(acknowledged: acknowledged, after: firstSeq)
                    missed += check.missed
                    duplicated += check.duplicated
                    reordered += check.reordered
                    gaps += check.gaps
                }
                let errors = Double(results.errors + ledgers.map(\.streamErrors).reduce(0, +))
                if let first = results.firstError { log("\(topology.name): first write error: \(first)") }
                await stopListeners()
                try await http.shutdown()
                return [
                    ("writers", Double(writers)), ("writes", Double(results.written.count)),
                    ("writes_per_s", Double(results.written.count) / elapsed),
                    ("write_p50_ms", results.p50Milliseconds), ("write_p99_ms", results.p99Milliseconds),
                    ("write_max_ms", results.maxMilliseconds), ("write_errors", errors),
                    ("subscribers_checking", Double(ledgers.count)), ("missed", Double(missed)),
                    ("duplicated", Double(duplicated)), ("reordered", Double(reordered)), ("seq_gaps", Double(gaps)),
                ]
            } catch {
                await stopListeners()
                try? await http.shutdown()
                throw error
            }
        }

        // MARK: Latency, fan-out, resume

        private func measureLatency(clients: Clients, setup: Setup) async throws -> [(String, Double)] {
            let probe = Probe(count: 1, deadline: .seconds(deliveryTimeoutSeconds))
            let listeners = try await probe.start(
                clients: [clients.instance(1)],
                configuration: clients.realtime,
                filter: EventFilter(recordID: setup.records[0])
            )
            var latency: [Double] = []
            do {
                var counter = 0
                let write: () async throws -> Int = {
                    counter += 1
                    return try await clients.instance(0).records.update(
                        setup.records[0],
                        fields: [setup.field: .number(Double(counter))]
                    ).get().version
                }
                try await probe.warmUp(write)
                for _ in 0..<latencyWrites { latency.append(try await probe.time(write).last / 1000) }
            } catch {
                await probe.stop(listeners)
                throw error
            }
            await probe.stop(listeners)
            let problems = probe.problems
            return [
                ("latency_p50_ms", percentile(latency, 0.5)), ("latency_p99_ms", percentile(latency, 0.99)),
                ("latency_lost", Double(problems.lost)), ("latency_duplicated", Double(problems.duplicates)),
                ("latency_subscriber_errors", Double(problems.streamErrors)),
            ]
        }

        private func measureFanout(clients: Clients, setup: Setup) async throws -> [(String, Double)] {
            let probe = Probe(count: subscribers, deadline: .seconds(deliveryTimeoutSeconds))
            let listeners = try await probe.start(
                clients: clients.instances,
                configuration: clients.realtime,
                filter: EventFilter(recordID: setup.records[0])
            )
            var untilLast: [Double] = []
            var each: [Double] = []
            do {
                var counter = 1_000_000
                let write: () async throws -> Int = {
                    counter += 1
                    return try await clients.instance(0).records.update(
                        setup.records[0],
                        fields: [setup.field: .number(Double(counter))]
                    ).get().version
                }
                try await probe.warmUp(write)
                for _ in 0..<fanoutWrites {
                    let delivery = try await probe.time(write)
                    untilLast.append(delivery.last / 1000)
                    each += delivery.each.map { $0 / 1000 }
                }
            } catch {
                await probe.stop(listeners)
                throw error
            }
            await probe.stop(listeners)
            let problems = probe.problems
            return [
                ("fanout_subscribers", Double(subscribers)),
                ("fanout_last_subscriber_p50_ms", percentile(untilLast, 0.5)),
                ("fanout_last_subscriber_p99_ms", percentile(untilLast, 0.99)),
                ("fanout_per_subscriber_p50_ms", percentile(each, 0.5)),
                ("fanout_per_subscriber_p99_ms", percentile(each, 0.99)), ("fanout_lost", Double(problems.lost)),
                ("fanout_duplicated", Double(problems.duplicates)),
                ("fanout_subscriber_errors", Double(problems.streamErrors)),
            ]
        }

        /// A subscriber on instance 2 closes; writes land on instance 1; a new subscriber on
        /// instance 3 resumes from the first one's last seq, timed from its subscribe call until it
        /// has every write it missed.
        private func measureResumes(clients: Clients, setup: Setup) async throws -> [(String, Double)] {
            let missedWrites = 20
            let filter = EventFilter(recordID: setup.records[0])
            var times: [Double] = []
            var problems = 0
            var counter = 2_000_000
            for _ in 0..<resumes {
                let first = Ledger()
                let firstClient = RealtimeClient(client: clients.instance(1), configuration: clients.realtime)
                let firstTask = Task { [updates = firstClient.subscribe(filter)] in await first.consume(updates) }
                var version = 0
                let giveUp = ContinuousClock.now + .seconds(60)
                repeat {
                    counter += 1
                    version = try await update(clients.instance(0), setup, counter)
                    if ContinuousClock.now >= giveUp {
                        first.stopping()
                        await firstClient.close()
                        firstTask.cancel()
                        throw CommandFailure("a subscriber received no event within 60 s of subscribing")
                    }
                } while !(await Ledger.waitAll(
                    [first],
                    have: [Written(record: setup.records[0], version: version)],
                    within: .seconds(1)
                ))
                first.stopping()
                await firstClient.close()
                firstTask.cancel()
                let since = first.lastSeq

                var missed: Set<Written> = []
                for _ in 0..<missedWrites {
                    counter += 1
                    missed.insert(
                        Written(
                            record: setup.records[0],
                            version: try await update(clients.instance(0), setup, counter)
                        )
                    )
                }
                let second = Ledger()
                let start = ContinuousClock.now
                let secondClient = RealtimeClient(client: clients.instance(2), configuration: clients.realtime)
                let secondTask = Task { [updates = secondClient.subscribe(filter, since: since)] in
                    await second.consume(updates)
                }
                let complete = await Ledger.waitAll([second], have: missed, within: .seconds(deliveryTimeoutSeconds))
                times.append((ContinuousClock.now - start).seconds * 1000)
                let check = second.check(acknowledged: missed, after: since)
                problems += check.missed + check.duplicated + check.reordered + (complete ? 0 : 1)
                second.stopping()
                await secondClient.close()
                secondTask.cancel()
            }
            return [
                ("resume_p50_ms", percentile(times, 0.5)), ("resume_max_ms", times.max() ?? .nan),
                ("resume_lost", Double(problems)),
            ]
        }

        private func update(_ client: PyAirtableClient, _ setup: Setup, _ value: Int) async throws -> Int {
            try await client.records.update(setup.records[0], fields: [setup.field: .number(Double(value))]).get()
                .version
        }

        /// Terminates every instance's LISTEN connection in PostgreSQL, then times a write on
        /// instance 1 until a subscriber on instance 2 has it.
        private func measureListenKills(
            _ topology: Topology,
            cluster: ClusterChild.Running,
            figures: inout [(String, Double)]
        ) async throws {
            log("cluster: LISTEN connections killed, \(listenKills) times…")
            let clients = try await withClients(topology) { clients in
                let setup = try await Setup.make(client: clients.write, records: 1)
                let probe = Probe(count: 1, deadline: .seconds(deliveryTimeoutSeconds))
                let listeners = try await probe.start(
                    clients: [clients.instance(1)],
                    configuration: clients.realtime,
                    filter: EventFilter(recordID: setup.records[0])
                )
                var times: [Double] = []
                var killed = 0
                do {
                    var counter = 3_000_000
                    let write: () async throws -> Int = {
                        counter += 1
                        return try await update(clients.instance(0), setup, counter)
                    }
                    try await probe.warmUp(write)
                    for _ in 0..<listenKills {
                        let answer = try ClusterChild.psql(
                            cluster,
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                + "WHERE application_name = 'pyat-listen'"
                        )
                        killed += Int(answer.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
                        times.append(try await probe.time(write).last / 1000)
                    }
                } catch {
                    await probe.stop(listeners)
                    throw error
                }
                await probe.stop(listeners)
                guard killed >= listenKills else {
                    throw CommandFailure("only \(killed) LISTEN connections were found to kill in \(listenKills) tries")
                }
                let problems = probe.problems
                return [
                    ("listen_killed_connections", Double(killed)),
                    ("listen_killed_catch_up_p50_ms", percentile(times, 0.5)),
                    ("listen_killed_catch_up_max_ms", times.max() ?? .nan),
                    ("listen_killed_lost", Double(problems.lost)),
                    ("listen_killed_duplicated", Double(problems.duplicates)),
                ]
            }
            figures += clients
        }

        // MARK: Output

        private func log(_ message: String) {
            FileHandle.standardError.write(Data("\(message)\n".utf8))
        }

        private func report(_ figures: [(String, Double)]) {
            if json {
                let body = figures.map { name, value in
                    "  \"\(name)\": \(value.isFinite ? String((value * 1000).rounded() / 1000) : "null")"
                }
                print("{\n\(body.joined(separator: ",\n"))\n}")
            } else {
                print("\(instances) instances on PostgreSQL behind nginx, against one SQLite instance")
                for (name, value) in figures {
                    print(name.padding(toLength: 40, withPad: " ", startingAt: 0), String(format: "%.3f", value))
                }
            }
        }

        private func percentile(_ values: [Double], _ p: Double) -> Double {
            guard !values.isEmpty else { return .nan }
            let sorted = values.sorted()
            return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
        }
    }
}

/// A write the server acknowledged: the record and the version the write made.
struct Written: Hashable, Sendable {
    var record: RecordID
    var version: Int
}

/// A raw single-record PATCH with AsyncHTTPClient: the writes that make sure every subscriber is
/// live before the load (``WrkLoad``) starts.
struct Writer: Sendable {
    private struct Answer: Decodable {
        var version: Int
    }

    let http: HTTPClient
    let server: String
    let token: String
    let field: String

    /// PATCHes `record`'s field to `value`; answers what the server acknowledged, and throws for
    /// anything but 200 with a version.
    func write(_ record: RecordID, value: Int) async throws -> Written {
        var request = HTTPClientRequest(url: "\(server)/api/v1/records/\(record)")
        request.method = .PATCH
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: "{\"fields\":{\"\(field)\":\(value)}}"))
        let response = try await http.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1024 * 1024)
        guard response.status == .ok else {
            throw CommandFailure("PATCH answered \(response.status.code): \(String(buffer: body).prefix(300))")
        }
        let answer = try JSONDecoder().decode(Answer.self, from: Data(body.readableBytesView))
        return Written(record: record, version: answer.version)
    }
}

/// What one subscriber received: every event's seq and the write it carries, in arrival order.
final class Ledger: Sendable {
    private struct State {
        var seqs: [Int64] = []
        var written: [Written?] = []
        var have: Set<Written> = []
        var streamErrors = 0
        var stopping = false
    }

    /// What ``check(acknowledged:after:)`` found.
    struct Check {
        /// Acknowledged writes whose event never arrived.
        var missed = 0
        /// Events that arrived again (the same seq).
        var duplicated = 0
        /// Events that arrived after one with a higher seq.
        var reordered = 0
        /// Seqs missing between the lowest and highest this subscriber received after the start.
        var gaps = 0
    }

    private let state = Mutex(State())

    var lastSeq: Int64 { state.withLock { $0.seqs.last ?? 0 } }
    var streamErrors: Int { state.withLock { $0.streamErrors } }

    /// Reads `updates` to their end; an end before ``stopping()`` counts as an error.
    func consume(_ updates: AsyncThrowingStream<RealtimeUpdate, any Error>) async {
        do {
            for try await update in updates {
                guard case .event(let event) = update else { continue }
                let written = event.recordID.flatMap { record in
                    event.payload["version"]?.numberValue.map { Written(record: record, version: Int($0)) }
                }
                state.withLock { state in
                    state.seqs.append(event.seq)
                    state.written.append(written)
                    if let written { state.have.insert(written) }
                }
            }
        } catch {}
        state.withLock { state in if !state.stopping { state.streamErrors += 1 } }
    }

    func stopping() { state.withLock { $0.stopping = true } }

    func has(_ written: Set<Written>) -> Bool { state.withLock { written.isSubset(of: $0.have) } }

    /// Whether every ledger has every write in `written` within `timeout` (checked every 2 ms).
    static func waitAll(_ ledgers: [Ledger], have written: Set<Written>, within timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            if ledgers.allSatisfy({ $0.has(written) }) { return true }
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Judges the events after seq `after` against the writes acknowledged meanwhile.
    func check(acknowledged: Set<Written>, after: Int64) -> Check {
        state.withLock { state in
            var check = Check()
            check.missed = acknowledged.subtracting(state.have).count
            var seen: Set<Int64> = []
            var highest: Int64 = after
            for seq in state.seqs where seq > after {
                if !seen.insert(seq).inserted {
                    check.duplicated += 1
                } else if seq < highest {
                    check.reordered += 1
                }
                highest = max(highest, seq)
            }
            if let low = seen.min(), let high = seen.max() {
                check.gaps = Int(high - low + 1) - seen.count
            }
            return check
        }
    }
}

extension Duration {
    /// This duration in seconds, as a Double.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
