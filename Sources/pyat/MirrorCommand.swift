import ArgumentParser
import Foundation
import PyAirtableClient
import PyAirtableModels

extension Pyat {
    /// `pyat mirror status|refresh`: mirror mode on the server (`pyat serve --mirror …`).
    struct MirrorCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mirror",
            abstract: "See and refresh the bases a server mirrors from an upstream Airtable API.",
            subcommands: [Status.self, Refresh.self]
        )

        /// The columns of a mirrored base's row.
        static let columns: [OutputColumn<MirrorBaseStatus>] = [
            OutputColumn("base") { $0.baseID.rawValue },
            OutputColumn("state") { $0.state },
            OutputColumn("sync") { $0.snapshot?.syncID ?? "" },
            OutputColumn("records") { $0.snapshot.map { String($0.records) } ?? "" },
            OutputColumn("synced_at") { $0.snapshot.map { CellText.of($0.completedAt) } ?? "" },
            OutputColumn("last_sync") { $0.lastSync?.outcome ?? "" },
            OutputColumn("requests") { $0.lastSync.map { String($0.requests) } ?? "" },
            OutputColumn("rate_limited") { $0.lastSync.map { String($0.rateLimited) } ?? "" },
            OutputColumn("error") { $0.lastSync?.error ?? "" },
        ]

        static func write(_ status: MirrorStatus, to output: OutputWriter) throws {
            if output.format == .json {
                try output.item(status, columns: [])
            } else {
                try output.list(status.bases, columns: columns)
            }
        }

        struct Status: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Each mirrored base: the snapshot it serves and how its latest sync went."
            )

            @OptionGroup(title: "Global options") var options: GlobalOptions

            func run() async throws {
                let status = try await options.withClient { try await $0.mirror.status() }
                try MirrorCommand.write(status, to: options.output)
                if status.bases.contains(where: { $0.state == "failed" }) {
                    throw CommandFailure("a sync failed; the previous snapshot still serves")
                }
            }
        }

        struct Refresh: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Sync now: a base (--base), or every mirrored base you may refresh.",
                discussion: "With --wait, waits for the syncs to end and fails (exit status 1) when one failed."
            )

            @OptionGroup(title: "Global options") var options: GlobalOptions

            @Option(help: "The base to sync (app…).")
            var base: String?

            @Flag(help: "Wait until the syncs end.")
            var wait = false

            @Option(help: "With --wait, the most seconds to wait.")
            var timeout: Int = 3600

            func validate() throws {
                if let base, BaseID(base) == nil {
                    throw ValidationError("--base takes a base id (app…), not '\(base)'")
                }
                guard timeout >= 1 else { throw ValidationError("--timeout must be at least 1") }
            }

            func run() async throws {
                let base = self.base.flatMap { BaseID($0) }
                let wait = self.wait
                let timeout = self.timeout
                let status = try await options.withClient { client -> MirrorStatus in
                    let before = try await client.mirror.status()
                    let asked = try await client.mirror.refresh(base: base)
                    guard wait else { return asked }
                    let bases = Set(asked.bases.map(\.baseID))
                    let previous = Dictionary(
                        before.bases.map { ($0.baseID, $0.lastSync) },
                        uniquingKeysWith: { first, _ in first }
                    )
                    let deadline = ContinuousClock.now + .seconds(timeout)
                    while true {
                        let now = try await client.mirror.status()
                        let mine = now.bases.filter { bases.contains($0.baseID) }
                        let done = mine.allSatisfy { entry in
                            entry.state != "syncing" && entry.lastSync?.finishedAt != nil
                                && entry.lastSync != previous[entry.baseID] ?? nil
                        }
                        if done { return MirrorStatus(upstream: now.upstream, bases: mine) }
                        guard ContinuousClock.now < deadline else {
                            throw CommandFailure("the syncs did not end within \(timeout) s")
                        }
                        try await Task.sleep(for: .milliseconds(500))
                    }
                }
                try MirrorCommand.write(status, to: options.output)
                if wait, status.bases.contains(where: { $0.lastSync?.outcome == "failed" }) {
                    throw CommandFailure("a sync failed; the previous snapshot still serves")
                }
            }
        }
    }
}
