import ArgumentParser
import Foundation
import PyAirtableClient

extension Pyat {
    /// `pyat cache …`: the local cache of answers in `$XDG_CACHE_HOME/pyat/cache.sqlite`.
    struct Cache: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Inspect and empty the local cache of answers (shared by the CLI and SDK programs).",
            discussion: """
                Reads ask the server first and keep what it answers here, so that they still answer
                (with a note on standard error) when the server cannot be reached; --offline reads
                only from here. Entries belong to one account on one server.
                """,
            subcommands: [Stats.self, Clear.self, Invalidate.self]
        )
    }
}

/// What `pyat cache stats` shows.
struct CacheReport: Tabular {
    var path: String
    var fileBytes: Int
    var entries: Int
    var bytes: Int
    var memoryLimitBytes: Int
    var diskLimitBytes: Int

    enum CodingKeys: String, CodingKey {
        case path
        case fileBytes = "file_bytes"
        case entries
        case bytes
        case memoryLimitBytes = "memory_limit_bytes"
        case diskLimitBytes = "disk_limit_bytes"
    }

    static let columns: [OutputColumn<CacheReport>] = [
        OutputColumn("path") { $0.path },
        OutputColumn("file_bytes") { String($0.fileBytes) },
        OutputColumn("entries") { String($0.entries) },
        OutputColumn("bytes") { String($0.bytes) },
        OutputColumn("memory_limit_bytes") { String($0.memoryLimitBytes) },
        OutputColumn("disk_limit_bytes") { String($0.diskLimitBytes) },
    ]
}

/// What `pyat cache clear` and `pyat cache invalidate` did.
struct CacheRemoval: Tabular {
    var removed: Int

    static let columns: [OutputColumn<CacheRemoval>] = [OutputColumn("removed") { String($0.removed) }]
}

extension Pyat.Cache {
    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show where the cache is, how much it holds (every account) and its bounds."
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        func run() async throws {
            let settings = options.connection.cacheSettings
            guard settings.isEnabled else { throw CommandFailure("the cache is off (--no-cache)") }
            let statistics = try await options.withClient { await $0.cache.statistics() }
            guard let statistics else { throw CommandFailure("the cache at \(settings.path) could not be opened") }
            var fileBytes = 0
            for suffix in ["", "-wal", "-shm"] {
                let attributes = try? FileManager.default.attributesOfItem(atPath: settings.path + suffix)
                fileBytes += (attributes?[.size] as? NSNumber)?.intValue ?? 0
            }
            try options.output.item(
                CacheReport(
                    path: settings.path,
                    fileBytes: fileBytes,
                    entries: statistics.diskEntries,
                    bytes: statistics.diskBytes,
                    memoryLimitBytes: settings.memoryMaximumBytes,
                    diskLimitBytes: settings.diskMaximumBytes
                )
            )
        }
    }

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drop every cached answer of the signed-in account on this server (--all: of every account)."
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Flag(help: "Every account and server, not only the signed-in one.")
        var all = false

        func run() async throws {
            let removed = try await options.withClient { client in
                guard let engine = await client.cache.engine() else {
                    throw CommandFailure("the cache is off or could not be opened")
                }
                return all ? try await engine.clear(allNamespaces: true) : try await client.cache.clear()
            }
            try options.output.item(CacheRemoval(removed: removed))
        }
    }

    struct Invalidate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drop the cached answers that provide a tag, or whose request path starts with a prefix.",
            discussion: """
                Tags: record:rec… (a record and every list showing it), records:tbl… (every record and
                list of a table), list:tbl… (a table's lists), table:tbl… (its schema), base:app…,
                workspace:wsp…, user:usr…. A bare type (record, table, …) drops every tag of that type.
                Examples:
                  pyat cache invalidate --tag record:rec0123456789abcdef
                  pyat cache invalidate --prefix /api/v1/tables/tbl0123456789abcdef/records
                """
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Option(name: .customLong("tag"), help: "A tag to invalidate (repeatable).")
        var tags: [String] = []

        @Option(help: "A request path prefix to invalidate.")
        var prefix: String?

        func validate() throws {
            guard !tags.isEmpty || prefix != nil else { throw ValidationError("give --tag TAG or --prefix PATH") }
            for tag in tags where tag.isEmpty || tag.contains("\n") || tag.hasSuffix(":") {
                throw ValidationError("'\(tag)' is not a tag; tags look like record:rec… or table")
            }
        }

        func run() async throws {
            let removed = try await options.withClient { client in
                guard client.cache.isEnabled else { throw CommandFailure("the cache is off (--no-cache)") }
                var removed = 0
                if !tags.isEmpty {
                    removed += try await client.cache.invalidate(tags: tags.map(CacheTag.init(rawValue:)))
                }
                if let prefix { removed += try await client.cache.invalidate(keyPrefix: prefix) }
                return removed
            }
            try options.output.item(CacheRemoval(removed: removed))
        }
    }
}
