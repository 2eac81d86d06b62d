import ArgumentParser
import Foundation
import PyAirtableClient

/// How `pyat watch` picks its transport.
enum WatchTransport: String, CaseIterable, ExpressibleByArgument, Sendable {
    case auto, ws, sse, poll

    var transports: [RealtimeTransport] {
        switch self {
        case .auto: RealtimeTransport.allCases
        case .ws: [.webSocket]
        case .sse: [.serverSentEvents]
        case .poll: [.polling]
        }
    }
}

extension Pyat {
    /// `pyat watch TABLE`: a table's events as they happen, one a line.
    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a table's events as they happen, one a line, each once, in order.",
            discussion: """
                Keeps running across network failures and server restarts: it reconnects with
                backoff and resumes after the last event printed, so none is lost or repeated.
                --transport auto tries WebSocket, then Server-Sent Events, then polling.
                Examples:
                  pyat watch tbl… --format ndjson | jq .type
                  pyat watch tbl… --since 1200 --transport sse
                """
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The table id (tbl…).")
        var table: TableID

        @Option(help: "auto, ws, sse or poll.")
        var transport: WatchTransport = .auto

        @Option(help: "Start after this event seq (replaying what followed it); by default, from now.")
        var since: Int64?

        @Option(help: .hidden)
        var count: Int?

        func validate() throws {
            if let since, since < 0 { throw ValidationError("--since is a non-negative seq") }
            if [.json, .csv].contains(options.format) {
                throw ValidationError("watch prints --format table or ndjson (one event a line)")
            }
        }

        func run() async throws {
            let id = table
            let format = options.format
            let verbose = options.connection.verbose
            var printed = 0
            try await options.withClient(realtime: RealtimeSettings(transports: transport.transports)) { client in
                let states = Task {
                    var announced = false
                    for await state in client.realtime.connectionStates() {
                        switch state {
                        case .connected(let transport):
                            if verbose || !announced {
                                Self.note("watching \(id) over \(transport.rawValue)")
                            }
                            announced = true
                        case .waiting(let delay, let attempt):
                            if verbose || attempt == 1 { Self.note("connection lost; retrying in \(delay)") }
                        default:
                            break
                        }
                    }
                }
                defer { states.cancel() }
                for try await update in client.realtime.subscribe(EventFilter(tableID: id), since: since) {
                    switch update {
                    case .event(let event):
                        try Self.print(event, format: format)
                        printed += 1
                        if let count, printed >= count { return }
                    case .reset(let seq):
                        Self.note("events before \(seq) are no longer kept by the server; continuing after \(seq)")
                    }
                }
            }
        }

        private static func note(_ text: String) {
            FileHandle.standardError.write(Data("note: \(text)\n".utf8))
        }

        private static func print(_ event: Event, format: OutputFormat) throws {
            var line: String
            if format == .ndjson {
                line = String(decoding: try JSONCoding.encoder.encode(event), as: UTF8.self)
            } else {
                let formatter = ISO8601DateFormatter()
                formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                line = [
                    String(event.seq), formatter.string(from: event.ts), event.type.rawValue,
                    event.recordID?.rawValue ?? event.tableID?.rawValue ?? "-", summary(event.payload),
                ]
                .joined(separator: "  ")
            }
            line += "\n"
            FileHandle.standardOutput.write(Data(line.utf8))
        }

        /// A record's cells as `Name=value` pairs, for the table format.
        private static func summary(_ payload: JSONValue) -> String {
            guard case .object(let fields)? = payload["fields"] else { return "" }
            return fields.keys.sorted().map { key in
                let value = fields[key].flatMap { value -> String? in
                    switch value {
                    case .string(let text): text
                    case .number(let number): CellText.of(number)
                    case .bool(let flag): flag ? "true" : "false"
                    case .null: ""
                    default: String(decoding: (try? JSONCoding.encoder.encode(value)) ?? Data(), as: UTF8.self)
                    }
                }
                return "\(key)=\(value ?? "")"
            }
            .joined(separator: " ")
        }
    }
}
