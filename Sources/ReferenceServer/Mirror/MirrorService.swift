import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import PyAirtableModels
import ServiceLifecycle
import Synchronization

/// Keeps the mirrored bases in step with their upstream (mirror mode).
///
/// A **full sync** reads the base's schema, then every page of every table into the staging file
/// (``MirrorStaging``), reads the schema again (a schema changed meanwhile starts the sync over), and
/// only then computes the changes from what the store holds and applies them in one transaction that
/// checks each table's records against what the upstream sent (``MirrorStore/applyMirror(_:context:)``).
/// Until that commit, the previous snapshot serves, whole; a sync that fails part-way leaves it so,
/// says why in ``status(visibleTo:)`` and `/health`, and goes on from its last kept page next time.
/// Changes land as ordinary events, so realtime subscribers, webhooks and caches see them as any write.
///
/// Syncs run at start, on ``refresh(base:)`` (`POST /api/v1/mirror/refresh`), and again
/// ``MirrorConfiguration/retryInterval`` after a failed one.
public final class MirrorService: Sendable {
    let configuration: MirrorConfiguration
    private let store: any MirrorStore
    private let staging: MirrorStaging
    private let logger: Logger
    private let clock: any Clock<Duration>
    private let now: @Sendable () -> Date
    private let wakeup: WebhookWakeup
    private let state: Mutex<[BaseID: BaseState]>
    private let userByEmail: @Sendable (String) async throws -> UserID?
    /// The owner's id, once known.
    private let ownerID = Mutex<UserID?>(nil)

    private struct BaseState {
        var snapshot: MirroredBase?
        var requested = false
        var running = false
        var report: MirrorSyncReport?
        var skipped: [MirrorSkippedField] = []
        var retryAt: ContinuousClock.Instant?
    }

    init(
        configuration: MirrorConfiguration,
        store: any MirrorStore,
        dataDirectory: String,
        clock: any Clock<Duration>,
        now: @escaping @Sendable () -> Date,
        logger: Logger,
        userByEmail: @escaping @Sendable (String) async throws -> UserID?
    ) async throws {
        self.configuration = configuration
        self.userByEmail = userByEmail
        if case .user(let id) = configuration.owner { ownerID.withLock { $0 = id } }
        self.store = store
        self.staging = try MirrorStaging(directory: dataDirectory)
        self.logger = logger
        self.clock = clock
        self.now = now
        self.wakeup = WebhookWakeup(clock: clock)
        let known = Dictionary(
            try await store.mirroredBases().map { ($0.baseID, $0) },
            uniquingKeysWith: { first, _ in first }
        )
        self.state = Mutex(
            Dictionary(
                uniqueKeysWithValues: configuration.bases.map { base in
                    (base, BaseState(snapshot: known[base], requested: configuration.syncOnStart))
                }
            )
        )
    }

    // MARK: What routes ask

    /// Whether `user` owns the mirrored bases (as far as a sync has resolved the owner).
    func isOwner(_ user: UserID) -> Bool {
        ownerID.withLock { $0 == user }
    }

    /// The owner's id: looked up by email when given so (and remembered).
    private func owner() async throws -> UserID {
        if let known = ownerID.withLock({ $0 }) { return known }
        guard case .email(let email) = configuration.owner else { throw MirrorSnapshotError(description: "no owner") }
        guard let id = try await userByEmail(email) else {
            throw MirrorSnapshotError(
                description: "the mirror's owner \(email) has no account here: register it, then refresh"
            )
        }
        ownerID.withLock { $0 = id }
        return id
    }

    /// The sync the served snapshot of `base` came from, when `base` is mirrored and served.
    func servedSync(of base: BaseID) -> String? {
        state.withLock { $0[base]?.snapshot?.snapshot.syncID }
    }

    /// The bases whose workspace `visible` says the caller may see (every base when `nil`).
    func status(visible: (WorkspaceID) -> Bool) -> MirrorStatus {
        let bases = state.withLock { state in
            configuration.bases.compactMap { base -> MirrorBaseStatus? in
                guard let entry = state[base] else { return nil }
                if let workspace = entry.snapshot?.workspaceID {
                    guard visible(workspace) else { return nil }
                } else {
                    // Not served yet: only the server's operators (and the mirror's owner) learn of it.
                    guard visible(WorkspaceID(unchecked: "")) else { return nil }
                }
                return MirrorBaseStatus(
                    baseID: base,
                    workspaceID: entry.snapshot?.workspaceID,
                    state: Self.stateName(entry),
                    snapshot: entry.snapshot?.snapshot,
                    lastSync: entry.report,
                    skippedFields: entry.skipped
                )
            }
        }
        return MirrorStatus(upstream: configuration.upstreamDescription, bases: bases)
    }

    /// For `/health`: bases mirrored, how many serve a snapshot, how many last failed and why.
    var health: MirrorHealth {
        state.withLock { state in
            let failed = state.values.compactMap(\.report).filter { $0.outcome == "failed" }
            return MirrorHealth(
                bases: state.count,
                served: state.values.filter { $0.snapshot != nil }.count,
                failing: failed.count,
                syncing: state.values.filter(\.running).count,
                lastError: failed.max { ($0.finishedAt ?? $0.startedAt) < ($1.finishedAt ?? $1.startedAt) }?.error
            )
        }
    }

    private static func stateName(_ entry: BaseState) -> String {
        if entry.running { return "syncing" }
        if entry.report?.outcome == "failed" { return "failed" }
        return entry.snapshot == nil ? "pending" : "ok"
    }

    /// Asks for a sync of `base` (or of every mirrored base) as soon as the running one ends.
    /// - Returns: The bases asked for (none when `base` is not mirrored).
    @discardableResult
    func refresh(base: BaseID? = nil) -> [BaseID] {
        let asked = state.withLock { state -> [BaseID] in
            let bases = base.map { state[$0] == nil ? [] : [$0] } ?? configuration.bases
            for base in bases { state[base]?.requested = true }
            return bases
        }
        if !asked.isEmpty { wakeup.signal() }
        return asked
    }

    // MARK: Running

    /// Syncs as asked until cancelled.
    func run() async {
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.redirectConfiguration = .disallow
        httpConfiguration.timeout = .init(
            connect: .seconds(10),
            read: .nanoseconds(configuration.requestTimeout.nanosecondsValue)
        )
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration)
        let upstream = AirtableUpstream(configuration: configuration, client: client, clock: clock, logger: logger)
        while !Task.isCancelled {
            let due = state.withLock { state -> [BaseID] in
                let now = ContinuousClock.now
                return configuration.bases.filter { base in
                    guard let entry = state[base] else { return false }
                    return entry.requested || (entry.retryAt.map { $0 <= now } ?? false)
                }
            }
            for base in due where !Task.isCancelled {
                await sync(base, upstream: upstream)
            }
            if Task.isCancelled { break }
            let wait = state.withLock { state -> Duration in
                let now = ContinuousClock.now
                let next = state.values.compactMap(\.retryAt).min()
                return next.map { max(.zero, $0 - now) } ?? .seconds(3600)
            }
            let pending = state.withLock { $0.values.contains(where: \.requested) }
            if !pending { await wakeup.wait(upTo: wait) }
        }
        try? await client.shutdown()
    }

    private func sync(_ base: BaseID, upstream: AirtableUpstream) async {
        let syncStart = now()
        state.withLock { state in
            state[base]?.requested = false
            state[base]?.running = true
            state[base]?.retryAt = nil
        }
        let counters = AirtableUpstream.Counters()
        var report = MirrorSyncReport(syncID: "", kind: "full", startedAt: syncStart, outcome: "running")
        do {
            try await fullSync(base, upstream: upstream, counters: counters, report: &report)
            report.outcome = "ok"
            logger.info(
                "mirrored a base",
                metadata: [
                    "base": "\(base)", "sync": "\(report.syncID)", "records": "\(report.recordsFetched)",
                    "created": "\(report.created)", "updated": "\(report.updated)", "deleted": "\(report.deleted)",
                    "requests": "\(counters.requests)",
                ]
            )
        } catch {
            report.outcome = "failed"
            report.error = Task.isCancelled ? "the server stopped during the sync" : String(describing: error)
            if !Task.isCancelled {
                logger.warning(
                    "a sync of a mirrored base failed; the previous snapshot still serves",
                    metadata: ["base": "\(base)", "error": "\(report.error ?? "")"]
                )
            }
        }
        report.requests = counters.requests
        report.rateLimited = counters.rateLimited
        report.finishedAt = now()
        let finished = report
        let retry = configuration.retryInterval
        state.withLock { state in
            state[base]?.running = false
            state[base]?.report = finished
            if finished.outcome == "failed" { state[base]?.retryAt = .now + retry }
        }
    }

    private func updateReport(_ base: BaseID, _ report: MirrorSyncReport) {
        state.withLock { $0[base]?.report = report }
    }

    /// One full sync of `base`, resumed from the staging file when an interrupted one left pages
    /// there and the upstream's schema is still the one it started from.
    private func fullSync(
        _ base: BaseID,
        upstream: AirtableUpstream,
        counters: AirtableUpstream.Counters,
        report: inout MirrorSyncReport
    ) async throws {
        let owner = try await owner()
        var attempt = 0
        while true {
            attempt += 1
            let schema = try await upstream.tables(base, counters: counters)
            let schemaBytes = try Array(JSONCoding.encoder.encode(schema))
            var sync: MirrorStaging.Sync
            if let unfinished = try staging.unfinished(base: base),
                JSONValue.parse(unfinished.schema, maximumDepth: configuration.maximumAnswerDepth) == schema
            {
                sync = unfinished
                report.resumed = true
            } else {
                sync = MirrorStaging.Sync(id: UUID().uuidString.lowercased(), startedAt: now(), schema: schemaBytes)
                try staging.begin(base: base, sync: sync)
                report.resumed = false
            }
            report.syncID = sync.id
            updateReport(base, report)
            let planner = MirrorPlanner(
                baseID: base,
                baseName: base.rawValue,
                upstream: configuration.upstreamDescription,
                syncID: sync.id,
                owner: owner,
                now: now(),
                maximumRecords: configuration.maximumRecords,
                maximumAnswerDepth: configuration.maximumAnswerDepth
            )
            let tables = try planner.tables(fromSchema: schemaBytes)
            state.withLock { $0[base]?.skipped = tables.flatMap(\.skipped) }
            var total = 0
            for table in tables {
                total += try await fetch(
                    base,
                    table: table.table.id,
                    upstream: upstream,
                    counters: counters,
                    fetchedBefore: total,
                    report: &report
                )
            }
            // The records were read over a while: the schema they were read under must still hold.
            let after = try await upstream.tables(base, counters: counters)
            guard after == schema else {
                guard attempt < configuration.maximumSchemaRetries else {
                    throw MirrorSnapshotError(
                        description:
                            "the upstream's schema changed during each of \(attempt) syncs; will try again later"
                    )
                }
                logger.info(
                    "the upstream's schema changed during a sync; starting it over",
                    metadata: ["base": "\(base)"]
                )
                try staging.finish(base: base)
                continue
            }
            let name = try await upstream.baseName(base, counters: counters) ?? base.rawValue
            var named = planner
            named.baseName = name
            named.now = now()
            var records: [TableID: [String: MirrorPlanner.TargetRecord]] = [:]
            for table in tables {
                records[table.table.id] = try named.records(
                    of: table.table,
                    pages: try staging.pages(base: base, table: table.table.id)
                )
            }
            let current = try await store.mirrorState(base: base)
            let (changes, counts) = try named.changeSet(current: current, tables: tables, records: records)
            var context = WriteContext(actor: owner, now: named.now)
            context.mirrorWrite = true
            try await store.applyMirror(changes, context: context)
            try staging.finish(base: base)
            report.created = counts.created
            report.updated = counts.updated
            report.deleted = counts.deleted
            let served = MirroredBase(
                baseID: base,
                workspaceID: changes.workspaceID,
                upstream: changes.upstream,
                generation: changes.expectedGeneration + 1,
                snapshot: changes.summary
            )
            state.withLock { $0[base]?.snapshot = served }
            return
        }
    }

    /// Fetches the pages of one table the staging file lacks; answers how many records it holds.
    private func fetch(
        _ base: BaseID,
        table: TableID,
        upstream: AirtableUpstream,
        counters: AirtableUpstream.Counters,
        fetchedBefore: Int,
        report: inout MirrorSyncReport
    ) async throws -> Int {
        var restarts = 0
        while true {
            var progress = try staging.progress(base: base, table: table)
            if progress.complete { return progress.records }
            do {
                while !progress.complete {
                    try Task.checkCancellation()
                    let page = try await upstream.records(
                        base,
                        table: table,
                        offset: progress.pages == 0 ? nil : progress.nextOffset,
                        counters: counters
                    )
                    let bytes = try Array(JSONCoding.encoder.encode(page.records))
                    try staging.store(
                        base: base,
                        table: table,
                        page: progress.pages,
                        records: bytes,
                        count: page.records.count,
                        nextOffset: page.offset
                    )
                    progress.pages += 1
                    progress.records += page.records.count
                    progress.nextOffset = page.offset
                    progress.complete = page.offset == nil
                    guard fetchedBefore + progress.records <= configuration.maximumRecords else {
                        throw MirrorSnapshotError(
                            description: "the base has more than \(configuration.maximumRecords) records upstream"
                        )
                    }
                    report.recordsFetched = fetchedBefore + progress.records
                    updateReport(base, report)
                }
                return progress.records
            } catch MirrorUpstreamError.offsetExpired {
                restarts += 1
                guard restarts <= 3 else { throw MirrorUpstreamError.offsetExpired }
                logger.info(
                    "an upstream page offset expired; reading the table again",
                    metadata: ["base": "\(base)", "table": "\(table)"]
                )
                try staging.dropTable(base: base, table: table)
            }
        }
    }
}

/// Runs the mirror's syncs beside the server, until it shuts down.
struct MirrorSyncService: Service {
    let mirror: MirrorService

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await mirror.run()
        }
    }
}
