import Foundation
import OfflineQueue
import PyAirtableModels

extension PyAirtableClient {
    /// Pending record writes — in flight, or waiting in the offline queue — and the conflicts met.
    ///
    /// ```swift
    /// if try await client.mutations.hasPendingWrites(for: recordID) { showSpinner() }
    /// for await report in client.mutations.conflicts() { log(report) }
    /// try await client.mutations.waitForPendingWrites()
    /// ```
    public var mutations: MutationsControl { MutationsControl(client: self) }

    /// Every pending layer: those the offline queue holds (read back from the queue file at most once
    /// a second, so other processes' queued writes and replays show) and those in flight.
    func pendingLayers() async -> [OptimisticLayer] {
        guard configuration.optimisticUpdates else { return [] }
        if let offlineQueues {
            let now = ContinuousClock.now
            if optimistic.queuedNeedsLoading(now: now) {
                let generation = optimistic.generation
                if let queue = try? offlineQueues.queue(for: await cacheIdentity()),
                    let mutations = try? await queue.mutations(in: [.pending, .inflight])
                {
                    optimistic.loadQueued(mutations, now: now, since: generation)
                }
            }
        }
        return optimistic.all
    }

    /// `confirmed` with the pending writes of `table` applied.
    func withPendingWrites(
        _ confirmed: CachedResponse<Page<Record>>,
        table: TableID,
        query: RecordQuery
    ) async -> CachedResponse<Page<Record>> {
        let layers = await pendingLayers()
        guard !layers.isEmpty else { return confirmed }
        var answer = confirmed
        answer.value = OptimisticLayers.apply(layers, to: confirmed.value, table: table, query: query)
        if confirmed.value.nextCursor == nil {
            answer.pendingCreates = OptimisticLayers.pendingCreates(
                layers,
                excluding: Set(answer.value.data.map(\.id)),
                table: table,
                query: query
            )
        }
        answer.hasPendingWrites = answer.value.data != confirmed.value.data || !answer.pendingCreates.isEmpty
        return answer
    }

    /// The server's id of a record created offline, once its create landed.
    func serverID(forTemporary id: RecordID) async -> RecordID? {
        guard let offlineQueues, let temporary = TemporaryID(id.rawValue),
            let queue = try? offlineQueues.queue(for: await cacheIdentity()),
            let serverID = try? await queue.serverID(for: temporary)
        else { return nil }
        return RecordID(serverID)
    }
}

/// Pending record writes and conflicts; see ``PyAirtableClient/mutations``.
public struct MutationsControl: Sendable {
    let client: PyAirtableClient

    /// Counts of optimistic writes since the client started: confirmed, rolled back, queued, in flight,
    /// and the success rate (also exported as `<prefix>_optimistic_writes_total{outcome}`).
    public var statistics: OptimisticStatistics { client.optimistic.statistics }

    /// The pending layers, in the order reads apply them.
    public func pendingLayers() async -> [OptimisticLayer] {
        await client.pendingLayers()
    }

    /// How many record writes are pending: in flight from this client, plus waiting or in flight in
    /// the offline queue (failed ones aside).
    public func pendingCount() async throws -> Int {
        var count = client.optimistic.statistics.inFlight
        if let queue = try await client.offline.queue() {
            let counts = try await queue.counts()
            count += counts.pending + counts.inflight
        }
        return count
    }

    /// Whether writes to `record` are pending: in flight from this client, or in the offline queue.
    public func hasPendingWrites(for record: RecordID) async throws -> Bool {
        if client.optimistic.hasInFlight(record) { return true }
        return try await client.offline.hasPendingWrites(for: record)
    }

    /// Whether writes to a record created offline are pending (its create included).
    public func hasPendingWrites(for record: TemporaryRecordID) async throws -> Bool {
        if client.optimistic.hasInFlight(RecordReference.temporary(record).internalID) { return true }
        return try await client.offline.hasPendingWrites(for: record)
    }

    /// Returns when no write is in flight and the offline queue is drained (failed writes aside).
    public func waitForPendingWrites() async throws {
        while true {
            let changes = client.optimistic.changes.subscribe()
            if client.optimistic.statistics.inFlight > 0 {
                for await _ in changes {
                    try Task.checkCancellation()
                    if client.optimistic.statistics.inFlight == 0 { break }
                }
            }
            try Task.checkCancellation()
            try await client.offline.waitForPendingWrites()
            // A write queued meanwhile (its server went away) is waited for too.
            if client.optimistic.statistics.inFlight == 0 { return }
        }
    }

    /// Every layer applied, queued, confirmed or rolled back from now on.
    public func changes() -> AsyncStream<OptimisticChange> {
        client.optimistic.changes.subscribe()
    }

    /// Every conflict settled from now on, with how (also given to ``ConflictSettings/onConflict``).
    public func conflicts() -> AsyncStream<ConflictReport> {
        client.conflictReports.subscribe()
    }
}
