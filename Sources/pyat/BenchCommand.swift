import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PyAirtableClient
import ReferenceServer
import ReferenceServerTesting

extension Pyat {
    /// `pyat bench …`: measurements of this machine, side by side in one run.
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure this machine: each benchmark compares with its baseline in the same run.",
            subcommands: [
                SDKOverhead.self, CacheBench.self, RealtimeBench.self, ReplayBench.self, FilesBench.self, V0Bench.self,
                ClusterBench.self,
            ]
        )
    }
}

extension Pyat.Bench {
    /// `pyat bench sdk`: the SDK's cost over raw AsyncHTTPClient on an uncached GET of one record.
    struct SDKOverhead: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sdk",
            abstract: "The SDK's overhead on an uncached GET, against raw AsyncHTTPClient doing the same request.",
            discussion: """
                Runs an embedded server unless --server is given, then alternates rounds of
                `client.records.get(id)` and the same GET with AsyncHTTPClient (decoding the record
                with the same decoder), sequentially, and prints the latencies and their ratio.
                """
        )

        @Option(help: "A running server (with --token); by default an embedded one is started.")
        var server: String?

        @Option(help: "A token for --server.")
        var token: String?

        @Option(help: "Requests per round per side.")
        var requests: Int = 500

        @Option(help: "Rounds (alternating SDK and raw).")
        var rounds: Int = 10

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            guard requests > 0, rounds > 0 else { throw ValidationError("--requests and --rounds must be positive") }
            guard (server == nil) == (token == nil) else { throw ValidationError("give --server and --token together") }
        }

        func run() async throws {
            if let server, let token {
                try await measure(server: server, token: token)
            } else {
                let fast: @Sendable (inout ServerConfiguration) -> Void = { $0.durableCommits = false }
                try await TestServer.withRunning(configure: fast) { server in
                    let demo = try await server.seedDemo()
                    try await measure(server: server.url, token: demo.token)
                }
            }
        }

        private func measure(server: String, token: String) async throws {
            guard let url = URL(string: server) else { throw ValidationError("--server is not a URL") }
            var configuration = PyAirtableClient.Configuration(serverURL: url, credentials: .personalAccessToken(token))
            configuration.logger.logLevel = .warning
            let recordID: RecordID = try await withPyAirtableClient(configuration: configuration) { client in
                guard let workspace = try await client.workspaces.list().first,
                    let base = try await client.bases.list(in: workspace.id).first,
                    let table = try await client.tables.list(in: base.id).first,
                    let record = try await client.records.list(in: table.id, query: RecordQuery(pageSize: 1)).data.first
                else { throw ValidationError("the server has no record to read; run it with --demo") }
                return record.id
            }
            let raw = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
            let client = PyAirtableClient(configuration: configuration)
            var sdkSamples: [Double] = []
            var rawSamples: [Double] = []
            do {
                var request = HTTPClientRequest(url: server + "/api/v1/records/\(recordID)")
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
                request.headers.add(name: "Accept", value: "application/json")
                // Warm both connection pools and code paths.
                for _ in 0..<50 {
                    _ = try await client.records.get(recordID)
                    _ = try await rawGet(raw, request)
                }
                for _ in 0..<rounds {
                    for _ in 0..<requests {
                        let start = ContinuousClock.now
                        _ = try await client.records.get(recordID)
                        sdkSamples.append(microseconds(ContinuousClock.now - start))
                    }
                    for _ in 0..<requests {
                        let start = ContinuousClock.now
                        _ = try await rawGet(raw, request)
                        rawSamples.append(microseconds(ContinuousClock.now - start))
                    }
                }
            } catch {
                try? await client.shutdown()
                try? await raw.shutdown()
                throw error
            }
            try await client.shutdown()
            try await raw.shutdown()
            report(sdk: sdkSamples, raw: rawSamples)
        }

        private func rawGet(_ client: HTTPClient, _ request: HTTPClientRequest) async throws -> Record {
            let response = try await client.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 64 * 1024 * 1024)
            guard response.status == .ok else { throw ValidationError("raw GET answered \(response.status)") }
            return try JSONCoding.decoder.decode(Record.self, from: Data(body.readableBytesView))
        }

        private func microseconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
        }

        private func report(sdk: [Double], raw: [Double]) {
            func percentile(_ values: [Double], _ p: Double) -> Double {
                let sorted = values.sorted()
                return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
            }
            let sdkP50 = percentile(sdk, 0.5)
            let rawP50 = percentile(raw, 0.5)
            let figures: [(String, Double)] = [
                ("sdk_p50_us", sdkP50), ("sdk_p99_us", percentile(sdk, 0.99)),
                ("sdk_mean_us", sdk.reduce(0, +) / Double(sdk.count)), ("raw_p50_us", rawP50),
                ("raw_p99_us", percentile(raw, 0.99)), ("raw_mean_us", raw.reduce(0, +) / Double(raw.count)),
                ("overhead_ratio_p50", sdkP50 / rawP50),
            ]
            if json {
                let body = figures.map { "  \"\($0.0)\": \(($0.1 * 1000).rounded() / 1000)" }.joined(separator: ",\n")
                print("{\n\(body)\n}")
            } else {
                print("uncached GET of one record, \(sdk.count) requests per side, sequential")
                for (name, value) in figures {
                    print(name.padding(toLength: 22, withPad: " ", startingAt: 0), String(format: "%.3f", value))
                }
            }
        }
    }
}
