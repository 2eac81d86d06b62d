import ArgumentParser
import Foundation
import PyAirtableClient

extension Pyat {
    /// `pyat queue …`: writes kept offline, waiting to be sent.
    struct Queue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, replay, retry and drop the writes queued while the server could not be reached.",
            discussion: """
                A write that cannot reach the server is kept in $XDG_CACHE_HOME/pyat/queue.sqlite with its
                idempotency key (exit status 3), and `pyat queue replay` sends it later: the server applies
                each write once, even if an earlier attempt got through and only its answer was lost.
                A write the server refuses moves to the failed list (--failed) with its error.
                """,
            subcommands: [List.self, Replay.self, Retry.self, Drop.self]
        )
    }
}

extension QueuedMutation: Tabular {
    static let columns: [OutputColumn<QueuedMutation>] = [
        OutputColumn("id") { String($0.id) },
        OutputColumn("state") { $0.state.rawValue },
        OutputColumn("method") { $0.request.method },
        OutputColumn("path") { $0.request.path },
        OutputColumn("attempts") { String($0.attempts) },
        OutputColumn("error") { $0.lastFailure?.message ?? "" },
        OutputColumn("queued_at") { ISO8601DateFormatter().string(from: $0.createdAt) },
    ]
}

/// What `pyat queue replay` did.
struct ReplaySummary: Tabular {
    var replayed: Int
    var alreadyApplied: Int
    var failed: Int
    var remaining: Int

    enum CodingKeys: String, CodingKey {
        case replayed
        case alreadyApplied = "already_applied"
        case failed, remaining
    }

    static let columns: [OutputColumn<ReplaySummary>] = [
        OutputColumn("replayed") { String($0.replayed) },
        OutputColumn("already_applied") { String($0.alreadyApplied) },
        OutputColumn("failed") { String($0.failed) },
        OutputColumn("remaining") { String($0.remaining) },
    ]
}

extension Pyat.Queue {
    /// The queue of the signed-in account.
    static func queue(_ client: PyAirtableClient) async throws -> OfflineQueue {
        guard let queue = try await client.offline.queue() else { throw CommandFailure("the offline queue is off") }
        return queue
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the queued writes (--failed: the refused ones)."
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Flag(help: "Only the writes the server refused.")
        var failed = false

        func run() async throws {
            let mutations = try await options.withClient { client in
                try await Pyat.Queue.queue(client).mutations(in: failed ? [.failed] : [.pending, .inflight])
            }
            try options.output.list(mutations)
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send the queued writes in order (exit status 3 when some are still queued)."
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        func run() async throws {
            let interactive = isatty(STDERR_FILENO) == 1
            let report = try await options.withClient { client in
                let total = try await client.offline.counts().pending
                return try await client.offline.replay { report in
                    guard interactive, total > 0 else { return }
                    let done = report.replayed + report.failed
                    let width = 30
                    let filled = min(width, done * width / max(1, total))
                    let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
                    FileHandle.standardError.write(Data("\r[\(bar)] \(done)/\(total)".utf8))
                }
            }
            if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
            try options.output.item(
                ReplaySummary(
                    replayed: report.replayed,
                    alreadyApplied: report.alreadyApplied,
                    failed: report.failed,
                    remaining: report.remaining
                )
            )
            if let stoppedBy = report.stoppedBy {
                throw CommandFailure(
                    "replay stopped: \(stoppedBy.userMessage) \(report.remaining) writes stay queued.",
                    status: .queued
                )
            }
            if report.failed > 0 {
                throw CommandFailure("\(report.failed) writes were refused; see `pyat queue list --failed`")
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put a failed write back in the queue.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The queued write's id (see `pyat queue list --failed`).")
        var id: Int64

        func run() async throws {
            try await options.withClient { client in try await Pyat.Queue.queue(client).retry(id) }
            options.output.message("write #\(id) is queued again; run `pyat queue replay`")
        }
    }

    struct Drop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a queued or failed write for good.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The queued write's id.")
        var id: Int64

        func run() async throws {
            let dropped = try await options.withClient { client in try await Pyat.Queue.queue(client).drop(id) }
            try options.output.item(dropped)
        }
    }
}
