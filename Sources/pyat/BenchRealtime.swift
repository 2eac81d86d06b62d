import ArgumentParser
import Foundation
import Logging
import PyAirtableClient
import PyAirtableTesting
import ReferenceServer
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
                timed until every one of --subscribers connections (each its own WebSocket) has it.
                Every event is checked off by seq: `lost` counts those that never arrived.
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

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            guard writes > 0, subscribers > 0, fanoutWrites > 0 else {
                throw ValidationError("--writes, --subscribers and --fanout-writes must be positive")
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
                    print(name.padding(toLength: 20, withPad: " ", startingAt: 0), String(format: "%.3f", value))
                }
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
                    let record = try await client.records.list(in: table.id, RecordQuery(pageSize: 1)).data.first
                else { throw ValidationError("the server has no record to write; run it with --demo") }
                let filter = EventFilter(recordID: record.id)
                let field = table.fields.first { $0.type == .number }?.name
                var counter = 0
                let write: @Sendable (Int) async throws -> Void = { value in
                    let fields: [String: FieldValue] =
                        field.map { [$0: .number(Double(value))] } ?? [table.fields[0].name: .string("bench \(value)")]
                    _ = try await client.records.update(record.id, fields: fields)
                }

                // Latency: one subscriber.
                let single = Probe(count: 1)
                let listeners = try await single.start(
                    client: client,
                    configuration: configuration.realtime,
                    filter: filter
                )
                var latency: [Double] = []
                for _ in 0..<writes {
                    counter += 1
                    latency.append(try await single.time { try await write(counter) })
                }
                let lostSingle = single.lost
                await single.stop(listeners)

                // Fan-out: many subscribers, each its own connection.
                let many = Probe(count: subscribers)
                let manyListeners = try await many.start(
                    client: client,
                    configuration: configuration.realtime,
                    filter: filter
                )
                var fanout: [Double] = []
                for _ in 0..<fanoutWrites {
                    counter += 1
                    fanout.append(try await many.time { try await write(counter) })
                }
                let lostMany = many.lost
                let perSubscriber = many.deliveryLatencies
                await many.stop(manyListeners)
                return [
                    ("latency_p50_us", percentile(latency, 0.5)), ("latency_p99_us", percentile(latency, 0.99)),
                    ("fanout_p50_us", percentile(perSubscriber, 0.5)),
                    ("fanout_p99_us", percentile(perSubscriber, 0.99)),
                    ("fanout_all_p99_us", percentile(fanout, 0.99)), ("subscribers", Double(subscribers)),
                    ("lost", Double(lostSingle + lostMany)),
                ]
            }
        }

        /// Starts `pyat serve --demo` as a child process and runs `body` with its URL, token and pid.
        /// - Parameter connectionsPerUser: The child's per-user realtime connection limit: every
        ///   connection the benchmark opens is the demo user's.
        private static func withServeChild<Result: Sendable>(
            connectionsPerUser: Int,
            _ body: (String, String, Int32) async throws -> Result
        ) async throws -> Result {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-bench-serve-\(UUID())")
            defer { try? FileManager.default.removeItem(at: directory) }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            process.arguments = [
                "serve", "--demo", "--port", "0", "--no-fsync", "--log-level", "error", "--data-dir", directory.path,
                "--max-realtime-connections-per-user", String(connectionsPerUser),
            ]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            defer {
                process.terminate()
                process.waitUntilExit()
            }
            var url: String?
            var token: String?
            var text = ""
            while url == nil || token == nil {
                let chunk = output.fileHandleForReading.availableData
                guard !chunk.isEmpty else { throw CommandFailure("pyat serve ended before it listened") }
                text += String(decoding: chunk, as: UTF8.self)
                for line in text.split(separator: "\n") {
                    if line.hasPrefix("export PYAT_SERVER=") {
                        url = String(line.dropFirst("export PYAT_SERVER=".count))
                    }
                    if line.hasPrefix("export PYAT_TOKEN=") {
                        token = String(line.dropFirst("export PYAT_TOKEN=".count))
                    }
                }
            }
            guard let url, let token else { throw CommandFailure("no URL") }
            return try await body(url, token, process.processIdentifier)
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
                    for await state in realtime.connectionStates() {
                        if case .connected = state {
                            connected += 1
                            break
                        }
                    }
                }
                let with = Self.residentMegabytes(of: pid)
                for realtime in connections { await realtime.close() }
                _ = streams
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

/// Subscribers that check off each write's event: times a write until all of them have it.
final class Probe: Sendable {
    struct State {
        var expected = 0
        var received: [Int] = []
        var start = ContinuousClock.now
        var waiter: CheckedContinuation<Void, Never>?
        var latencies: [Double] = []
        var seenSeqs: [Set<Int64>] = []
        var lost = 0
    }

    let count: Int
    let state: Mutex<State>

    init(count: Int) {
        self.count = count
        self.state = Mutex(
            State(received: Array(repeating: 0, count: count), seenSeqs: Array(repeating: [], count: count))
        )
    }

    /// Opens `count` connections subscribed to `filter`, and waits until each is subscribed.
    func start(
        client: PyAirtableClient,
        configuration: RealtimeSettings,
        filter: EventFilter
    ) async throws -> [(RealtimeClient, Task<Void, Never>)] {
        var listeners: [(RealtimeClient, Task<Void, Never>)] = []
        for index in 0..<count {
            let realtime = RealtimeClient(client: client, configuration: configuration)
            let updates = realtime.subscribe(filter)
            let task = Task {
                do {
                    for try await update in updates {
                        guard case .event(let event) = update else { continue }
                        self.arrived(index, seq: event.seq)
                    }
                } catch {}
            }
            listeners.append((realtime, task))
        }
        for (realtime, _) in listeners {
            for await state in realtime.connectionStates() {
                if case .connected = state { break }
            }
        }
        // Subscribed: the server has the subscription once a frame round trip is done; a write now is seen.
        try await Task.sleep(for: .milliseconds(200))
        return listeners
    }

    private func arrived(_ index: Int, seq: Int64) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state.seenSeqs[index].insert(seq).inserted else { return nil }
            state.received[index] += 1
            let elapsed = ContinuousClock.now - state.start
            state.latencies.append(
                Double(elapsed.components.attoseconds) / 1e12 + Double(elapsed.components.seconds) * 1e6
            )
            guard state.received.allSatisfy({ $0 >= state.expected }) else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Runs `write` and waits until every subscriber has one more event; answers microseconds.
    func time(_ write: () async throws -> Void) async throws -> Double {
        state.withLock {
            $0.expected += 1
            $0.start = .now
        }
        let start = ContinuousClock.now
        try await write()
        let done = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let ready = self.state.withLock { state -> Bool in
                        if state.received.allSatisfy({ $0 >= state.expected }) { return true }
                        state.waiter = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
                return true
            }
            group.addTask {
                try await Task.sleep(for: .seconds(5))
                return false
            }
            let first = try await group.next() ?? false
            group.cancelAll()
            return first
        }
        if !done {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                state.lost += state.received.filter { $0 < state.expected }.count
                for index in state.received.indices { state.received[index] = state.expected }
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.attoseconds) / 1e12 + Double(elapsed.components.seconds) * 1e6
    }

    var lost: Int { state.withLock { $0.lost } }
    var deliveryLatencies: [Double] { state.withLock { $0.latencies } }

    func stop(_ listeners: [(RealtimeClient, Task<Void, Never>)]) async {
        for (realtime, task) in listeners {
            await realtime.close()
            task.cancel()
        }
    }
}
