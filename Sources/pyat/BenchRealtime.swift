import ArgumentParser
import Foundation
import Logging
import PyAirtableClient
import ReferenceServer
import ReferenceServerTesting
import Synchronization

extension Pyat.Bench {
    /// `pyat bench realtime`: write → subscriber latency, and fan-out of one write to many subscribers.
    struct RealtimeBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "realtime",
            abstract: "Write-to-subscriber latency and fan-out to N subscribers, counting lost events.",
            discussion: """
                Runs an embedded server unless --server is given. Latency: sequential record updates,
                each timed from the write until one subscriber has its event. Fan-out: each update
                timed until the last of --subscribers connections (each its own WebSocket) has it
                (`fanout_last_subscriber_*`, percentiles over updates); `fanout_per_subscriber_*` is
                the distribution of every single delivery. Each event is matched to its write by the
                record version it carries: `lost` counts deliveries missing after
                --delivery-timeout-seconds, `duplicates` events a subscriber received twice (same
                seq), `subscriber_errors` subscriptions that ended with an error. Any of them above 0,
                or any failed write, fails the run.
                """
        )

        @Option(help: "A running server (with --token); by default an embedded one is started.")
        var server: String?

        @Option(help: "A token for --server.")
        var token: String?

        @Option(help: "Writes timed for the latency figure.")
        var writes: Int = 500

        @Option(help: "Subscribers (connections) for the fan-out figure.")
        var subscribers: Int = 100

        @Option(help: "Writes timed for the fan-out figure.")
        var fanoutWrites: Int = 50

        @Option(help: "Transport of the subscribers: ws, sse or poll.")
        var transport: WatchTransport = .ws

        @Option(help: "Also hold this many idle WebSocket connections to a `pyat serve` child and report its memory.")
        var idle: Int = 0

        @Flag(help: "Time against a `pyat serve` child process, so the server does not share the clients' process.")
        var childServer = false

        @Option(help: "Seconds an update may take to reach every subscriber before it counts as lost.")
        var deliveryTimeoutSeconds: Int = 10

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            guard writes > 0, subscribers > 0, fanoutWrites > 0, deliveryTimeoutSeconds > 0 else {
                throw ValidationError(
                    "--writes, --subscribers, --fanout-writes and --delivery-timeout-seconds must be positive"
                )
            }
            guard (server == nil) == (token == nil) else { throw ValidationError("give --server and --token together") }
            guard !(childServer && server != nil) else { throw ValidationError("give --server or --child-server") }
            guard transport != .auto else { throw ValidationError("pick one transport: ws, sse or poll") }
        }

        func run() async throws {
            var figures: [(String, Double)]
            if let server, let token {
                figures = try await measure(server: server, token: token)
            } else if childServer {
                figures = try await Self.withServeChild(connectionsPerUser: subscribers + 16) { url, token, _ in
                    try await measure(server: url, token: token)
                }
            } else {
                // Every subscriber connection is the demo user's: the per-user limit must let them in.
                let connectionsPerUser = subscribers + 16
                let fast: @Sendable (inout ServerConfiguration) -> Void = {
                    $0.durableCommits = false
                    $0.realtime.maximumConnectionsPerUser = connectionsPerUser
                }
                figures = try await TestServer.withRunning(configure: fast) { server in
                    let demo = try await server.seedDemo()
                    return try await measure(server: server.url, token: demo.token)
                }
            }
            if idle > 0 { figures += try await measureIdle() }
            if json {
                let body = figures.map { "  \"\($0.0)\": \(($0.1 * 1000).rounded() / 1000)" }.joined(separator: ",\n")
                print("{\n\(body)\n}")
            } else {
                print("record updates delivered over \(transport.rawValue), \(subscribers) subscribers for fan-out")
                for (name, value) in figures {
                    print(name.padding(toLength: 30, withPad: " ", startingAt: 0), String(format: "%.3f", value))
                }
            }
            let failures = ["lost", "duplicates", "subscriber_errors"].compactMap { name -> String? in
                guard let value = figures.first(where: { $0.0 == name })?.1, value != 0 else { return nil }
                return "\(name) \(Int(value))"
            }
            if !failures.isEmpty {
                throw CommandFailure("realtime delivery was not exact: " + failures.joined(separator: ", "))
            }
        }

        private func measure(server: String, token: String) async throws -> [(String, Double)] {
            guard let url = URL(string: server) else { throw ValidationError("--server is not a URL") }
            var configuration = PyAirtableClient.Configuration(serverURL: url, credentials: .personalAccessToken(token))
            configuration.logger.logLevel = .error
            configuration.realtime = RealtimeSettings(transports: transport.transports, pollInterval: .milliseconds(5))
            return try await withPyAirtableClient(configuration: configuration) { client in
                guard let workspace = try await client.workspaces.list().first,
                    let base = try await client.bases.list(in: workspace.id).first,
                    let table = try await client.tables.list(in: base.id).first,
                    let record = try await client.records.list(in: table.id, query: RecordQuery(pageSize: 1)).data.first
                else { throw ValidationError("the server has no record to write; run it with --demo") }
                let filter = EventFilter(recordID: record.id)
                let field = table.fields.first { $0.type == .number }?.name
                var counter = 0
                // Answers the version the update made: its event carries that version, which is how
                // each subscriber's arrival is matched to its write.
                let write: @Sendable (Int) async throws -> Int = { value in
                    let fields: [String: FieldValue] =
                        field.map { [$0: .number(Double(value))] } ?? [table.fields[0].name: .string("bench \(value)")]
                    return try await client.records.update(record.id, fields: fields).get().version
                }

                // Latency: one subscriber.
                let single = Probe(count: 1, deadline: deliveryDeadline)
                let listeners = try await single.start(
                    client: client,
                    configuration: configuration.realtime,
                    filter: filter
                )
                var latency: [Double] = []
                do {
                    counter += 1
                    try await single.warmUp { try await write(counter) }
                    for _ in 0..<writes {
                        counter += 1
                        latency.append(try await single.time { try await write(counter) }.last)
                    }
                } catch {
                    await single.stop(listeners)
                    throw error
                }
                await single.stop(listeners)

                // Fan-out: many subscribers, each its own connection.
                let many = Probe(count: subscribers, deadline: deliveryDeadline)
                let manyListeners = try await many.start(
                    client: client,
                    configuration: configuration.realtime,
                    filter: filter
                )
                var untilLast: [Double] = []
                var perSubscriber: [Double] = []
                do {
                    counter += 1
                    try await many.warmUp { try await write(counter) }
                    for _ in 0..<fanoutWrites {
                        counter += 1
                        let delivery = try await many.time { try await write(counter) }
                        untilLast.append(delivery.last)
                        perSubscriber += delivery.each
                    }
                } catch {
                    await many.stop(manyListeners)
                    throw error
                }
                await many.stop(manyListeners)
                let problems = [single.problems, many.problems]
                return [
                    ("latency_p50_us", percentile(latency, 0.5)), ("latency_p99_us", percentile(latency, 0.99)),
                    ("fanout_last_subscriber_p50_us", percentile(untilLast, 0.5)),
                    ("fanout_last_subscriber_p99_us", percentile(untilLast, 0.99)),
                    ("fanout_per_subscriber_p50_us", percentile(perSubscriber, 0.5)),
                    ("fanout_per_subscriber_p99_us", percentile(perSubscriber, 0.99)),
                    ("subscribers", Double(subscribers)),
                    ("lost", Double(problems.map(\.lost).reduce(0, +))),
                    ("duplicates", Double(problems.map(\.duplicates).reduce(0, +))),
                    ("subscriber_errors", Double(problems.map(\.streamErrors).reduce(0, +))),
                ]
            }
        }

        /// How long an update may take to reach every subscriber before the ones without it count as lost.
        private var deliveryDeadline: Duration { .seconds(deliveryTimeoutSeconds) }

        /// Starts `pyat serve --demo --no-fsync` as a child process and runs `body` with its URL,
        /// token and pid.
        /// - Parameter connectionsPerUser: The child's per-user realtime connection limit: every
        ///   connection the benchmark opens is the demo user's.
        private static func withServeChild<Result: Sendable>(
            connectionsPerUser: Int,
            _ body: (String, String, Int32) async throws -> Result
        ) async throws -> Result {
            try await ServeChild.with(
                arguments: ["--no-fsync", "--max-realtime-connections-per-user", String(connectionsPerUser)]
            ) { child in
                try await body(child.url, child.token, child.pid)
            }
        }

        /// Starts `pyat serve --demo` as a child, holds `idle` WebSocket connections (one subscription
        /// each) to it, and reads the child's resident memory before and with them.
        private func measureIdle() async throws -> [(String, Double)] {
            try await Self.withServeChild(connectionsPerUser: idle + 16) { url, token, pid in
                try await measureIdle(url: url, token: token, pid: pid)
            }
        }

        private func measureIdle(url: String, token: String, pid: Int32) async throws -> [(String, Double)] {
            guard let serverURL = URL(string: url) else { throw CommandFailure("no URL") }
            let before = Self.residentMegabytes(of: pid)
            var configuration = PyAirtableClient.Configuration(
                serverURL: serverURL,
                credentials: .personalAccessToken(token)
            )
            configuration.logger.logLevel = .critical
            configuration.realtime = RealtimeSettings(transports: [.webSocket], pingInterval: .seconds(60))
            return try await withPyAirtableClient(configuration: configuration) { client in
                var connections: [RealtimeClient] = []
                var streams: [AsyncThrowingStream<RealtimeUpdate, any Error>] = []
                connections.reserveCapacity(idle)
                for _ in 0..<idle {
                    let realtime = RealtimeClient(client: client, configuration: configuration.realtime)
                    streams.append(realtime.subscribe(EventFilter()))
                    connections.append(realtime)
                }
                var connected = 0
                for realtime in connections {
                    if await Probe.waitUntilConnected(realtime, timeout: .seconds(60)) { connected += 1 }
                }
                let with = Self.residentMegabytes(of: pid)
                for realtime in connections { await realtime.close() }
                _ = streams
                guard connected == idle else {
                    throw CommandFailure("only \(connected) of \(idle) idle connections connected within 60 s each")
                }
                return [
                    ("idle_connections", Double(connected)), ("server_rss_mb_before", before),
                    ("server_rss_mb_idle", with),
                ]
            }
        }

        /// VmRSS of `pid`, in MiB.
        static func residentMegabytes(of pid: Int32) -> Double {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
            else { return .nan }
            let kilobytes = line.split(separator: " ").compactMap { Double($0) }.first ?? .nan
            return kilobytes / 1024
        }

        private func percentile(_ values: [Double], _ p: Double) -> Double {
            guard !values.isEmpty else { return .nan }
            let sorted = values.sorted()
            return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
        }
    }
}

/// Subscribers that check off each write's event by the record version it carries: times a write
/// until the last of them has it, and counts what was lost, duplicated or failed.
final class Probe: Sendable {
    /// One write's deliveries, in microseconds from the start of the write.
    struct Delivery {
        /// Until the last subscriber had the event.
        var last: Double
        /// Until each subscriber that had it had it.
        var each: [Double]
    }

    /// What went wrong across every write of this probe.
    struct Problems {
        /// Deliveries that did not arrive within the deadline.
        var lost = 0
        /// Events a subscriber received again (the same seq).
        var duplicates = 0
        /// Subscriptions that ended with an error, or ended before they were stopped.
        var streamErrors = 0
    }

    private struct Waiter {
        var version: Int
        var token: Int
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        /// Per subscriber: record version → when its event arrived.
        var arrivals: [[Int: ContinuousClock.Instant]]
        /// Per subscriber: the seqs it received.
        var seen: [Set<Int64>]
        var waiter: Waiter?
        var nextToken = 0
        var problems = Problems()
        var stopping = false

        func allHave(_ version: Int) -> Bool { arrivals.allSatisfy { $0[version] != nil } }
    }

    let count: Int
    let deadline: Duration
    private let state: Mutex<State>

    init(count: Int, deadline: Duration) {
        self.count = count
        self.deadline = deadline
        self.state = Mutex(
            State(arrivals: Array(repeating: [:], count: count), seen: Array(repeating: [], count: count))
        )
    }

    var problems: Problems { state.withLock { $0.problems } }

    /// Opens `count` connections subscribed to `filter`, and waits until each is connected.
    func start(
        client: PyAirtableClient,
        configuration: RealtimeSettings,
        filter: EventFilter
    ) async throws -> [(RealtimeClient, Task<Void, Never>)] {
        try await start(clients: [client], configuration: configuration, filter: filter)
    }

    /// Opens `count` connections subscribed to `filter`, spread round-robin over `clients` (one per
    /// server, for subscribers on several instances), and waits until each is connected.
    func start(
        clients: [PyAirtableClient],
        configuration: RealtimeSettings,
        filter: EventFilter
    ) async throws -> [(RealtimeClient, Task<Void, Never>)] {
        precondition(!clients.isEmpty, "a probe needs a client to subscribe with")
        var listeners: [(RealtimeClient, Task<Void, Never>)] = []
        for index in 0..<count {
            let realtime = RealtimeClient(client: clients[index % clients.count], configuration: configuration)
            let updates = realtime.subscribe(filter)
            let task = Task {
                do {
                    for try await update in updates {
                        guard case .event(let event) = update else { continue }
                        self.arrived(index, event: event)
                    }
                } catch {}
                // Thrown or finished, a subscription that ends is judged by whether it was stopped.
                self.ended()
            }
            listeners.append((realtime, task))
        }
        var connected = 0
        for (realtime, _) in listeners {
            if await Self.waitUntilConnected(realtime, timeout: .seconds(60)) { connected += 1 }
        }
        guard connected == count else {
            await stop(listeners)
            throw CommandFailure("only \(connected) of \(count) subscribers connected within 60 s each")
        }
        return listeners
    }

    /// Whether `realtime` reports itself connected within `timeout`.
    static func waitUntilConnected(_ realtime: RealtimeClient, timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await state in realtime.connectionStates() {
                    if case .connected = state { return true }
                }
                return false
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let connected = await group.next() ?? false
            group.cancelAll()
            return connected
        }
    }

    private func arrived(_ index: Int, event: Event) {
        let now = ContinuousClock.now
        let waiter = state.withLock { state -> Waiter? in
            guard state.seen[index].insert(event.seq).inserted else {
                state.problems.duplicates += 1
                return nil
            }
            // A record event carries the record after the change, with its version.
            guard let version = event.payload["version"]?.numberValue.map({ Int($0) }) else { return nil }
            if state.arrivals[index][version] == nil { state.arrivals[index][version] = now }
            guard let waiter = state.waiter, waiter.version == version, state.allHave(version) else { return nil }
            state.waiter = nil
            return waiter
        }
        waiter?.continuation.resume()
    }

    /// A subscription ended: before ``stop(_:)`` it is an error, whether it threw or finished; after,
    /// it is the close (or the cancellation) this probe asked for.
    private func ended() {
        state.withLock { state in
            if !state.stopping { state.problems.streamErrors += 1 }
        }
    }

    /// Writes, untimed, until one write reaches every subscriber within a second: a connection
    /// reports itself connected before the server has its subscription, and an event written in
    /// between is (rightly) not delivered, so this proves the subscriptions are in place before
    /// anything is timed or counted as lost.
    func warmUp(_ write: () async throws -> Int) async throws {
        let giveUp = ContinuousClock.now + .seconds(60)
        while true {
            let version = try await write()
            if await waitForAll(version, timeout: .seconds(1)) { return }
            if ContinuousClock.now >= giveUp {
                let missing = state.withLock { state in state.arrivals.filter { $0[version] == nil }.count }
                throw CommandFailure("\(missing) of \(count) subscribers received no event within 60 s")
            }
        }
    }

    /// Runs `write` (which answers the version it made) and waits until every subscriber has its event,
    /// or the deadline passes; subscribers without it then count as lost.
    func time(_ write: () async throws -> Int) async throws -> Delivery {
        let start = ContinuousClock.now
        let version = try await write()
        let complete = await waitForAll(version, timeout: deadline)
        let end = ContinuousClock.now
        return state.withLock { state in
            let times = state.arrivals.compactMap { $0[version] }
            if !complete { state.problems.lost += count - times.count }
            let each = times.map { Self.microseconds($0 - start) }
            return Delivery(last: complete ? (each.max() ?? 0) : Self.microseconds(end - start), each: each)
        }
    }

    /// Waits until every subscriber has the event of `version`; false when `timeout` passed first.
    private func waitForAll(_ version: Int, timeout: Duration) async -> Bool {
        let token = state.withLock { state -> Int in
            state.nextToken += 1
            return state.nextToken
        }
        // The timer resumes the waiter only if it is still this write's: a late timer of an earlier
        // write must not release a later one.
        let timer = Task {
            try? await Task.sleep(for: timeout)
            let expired = state.withLock { state -> Waiter? in
                guard let waiter = state.waiter, waiter.token == token else { return nil }
                state.waiter = nil
                return waiter
            }
            expired?.continuation.resume()
        }
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Bool in
                if state.allHave(version) { return true }
                state.waiter = Waiter(version: version, token: token, continuation: continuation)
                return false
            }
            if ready { continuation.resume() }
        }
        timer.cancel()
        return state.withLock { $0.allHave(version) }
    }

    func stop(_ listeners: [(RealtimeClient, Task<Void, Never>)]) async {
        state.withLock { $0.stopping = true }
        for (realtime, task) in listeners {
            await realtime.close()
            task.cancel()
        }
    }

    private static func microseconds(_ duration: Duration) -> Double {
        Double(duration.components.attoseconds) / 1e12 + Double(duration.components.seconds) * 1e6
    }
}
