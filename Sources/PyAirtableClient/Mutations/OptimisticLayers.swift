import Foundation
import OfflineQueue
import PyAirtableModels
import Synchronization

/// One pending record write's effect, laid over the confirmed data while the write is on its way
/// (or waiting in the offline queue).
///
/// Reads see the confirmed record (cache or server) with every pending layer of that record applied in
/// the order the writes were made. When the server confirms a write, its answer goes into the cache and
/// the layer is removed; when the server refuses it, only that layer is removed — layers of other
/// writes stay.
public struct OptimisticLayer: Sendable, Hashable, Identifiable {
    /// What the write does to its record.
    public enum Change: Sendable, Hashable {
        /// A new record in a table, with these fields.
        case create(table: TableID, fields: [String: FieldValue])
        /// These fields change; the others stay.
        case update([String: FieldValue])
        /// The record takes exactly these fields.
        case replace([String: FieldValue])
        /// The record goes.
        case delete
    }

    /// The layer's id.
    public let id: UUID
    /// The record written (internally, a temporary id travels as a record id).
    let recordID: RecordID
    /// The record written: the server's id, or the temporary id of a create.
    public var record: RecordReference { RecordReference(internal: recordID) }
    /// What the write does.
    public let change: Change
    /// When the write was made.
    public let createdAt: Date
    /// The offline queue's id of the write, once it waits there.
    public internal(set) var queuedMutationID: Int64?

    init(id: UUID = UUID(), recordID: RecordID, change: Change, createdAt: Date, queuedMutationID: Int64? = nil) {
        self.id = id
        self.recordID = recordID
        self.change = change
        self.createdAt = createdAt
        self.queuedMutationID = queuedMutationID
    }
}

/// What happened to a layer.
public struct OptimisticChange: Sendable {
    public enum Kind: String, Sendable, Hashable {
        /// A write began: its layer is visible to reads.
        case applied
        /// The write could not reach the server and waits in the offline queue; its layer stays.
        case queued
        /// The server accepted the write: its answer replaced the layer.
        case confirmed
        /// The server refused the write: its layer was removed.
        case rolledBack
        /// A queued write left the queue through another process (replayed, or dropped from it):
        /// its layer was removed.
        case settledElsewhere
    }

    public var kind: Kind
    public var layer: OptimisticLayer
    /// Why a write was rolled back.
    public var error: PyAirtableError?
}

/// Counts of optimistic writes since the client started.
public struct OptimisticStatistics: Sendable, Hashable {
    /// Writes the server accepted (directly or on replay).
    public var confirmed = 0
    /// Writes the server refused, whose layers were removed.
    public var rolledBack = 0
    /// Writes that went to the offline queue.
    public var queued = 0
    /// Writes on their way now.
    public var inFlight = 0

    /// Confirmed writes out of settled ones (confirmed and rolled back); 1 when none settled yet.
    public var successRate: Double {
        let settled = confirmed + rolledBack
        return settled == 0 ? 1 : Double(confirmed) / Double(settled)
    }
}

/// The client's optimistic layers: those of writes in flight, and those of writes waiting in the
/// offline queue (read back from the queue file, so they survive a restart).
final class OptimisticLayers: Sendable {
    private struct State {
        /// Layers of writes in flight from this client, in the order they were made.
        var inFlight: [OptimisticLayer] = []
        /// Layers of writes waiting in the offline queue, by queue id (the queue's order).
        var queued: [Int64: OptimisticLayer] = [:]
        /// Counts layers queued by this client; with each layer's count in `queuedGeneration`, a load
        /// from the queue file keeps the layers queued while it read.
        var generation = 0
        var queuedGeneration: [Int64: Int] = [:]
        /// When the queued layers were last read from the queue; `nil` to read them on the next use.
        var queuedLoadedAt: ContinuousClock.Instant?
        var statistics = OptimisticStatistics()
    }

    private let state = Mutex(State())
    let changes = Broadcast<OptimisticChange>()
    /// How long layers read from the queue are trusted before it is read again (other processes may
    /// have replayed or queued writes meanwhile).
    static let queuedRefreshInterval = Duration.seconds(1)

    var statistics: OptimisticStatistics {
        state.withLock { state in
            var statistics = state.statistics
            statistics.inFlight = state.inFlight.count
            return statistics
        }
    }

    var generation: Int { state.withLock { $0.generation } }

    func hasInFlight(_ record: RecordID) -> Bool {
        state.withLock { $0.inFlight.contains { $0.recordID == record } }
    }

    func add(_ layer: OptimisticLayer) {
        state.withLock { $0.inFlight.append(layer) }
        changes.yield(OptimisticChange(kind: .applied, layer: layer))
    }

    /// The write went to the offline queue: its layer moves to the queued ones.
    func queue(_ layer: OptimisticLayer, as mutationID: Int64?) {
        var queuedLayer = layer
        queuedLayer.queuedMutationID = mutationID
        state.withLock { state in
            state.inFlight.removeAll { $0.id == layer.id }
            state.generation += 1
            if let mutationID {
                state.queued[mutationID] = queuedLayer
                state.queuedGeneration[mutationID] = state.generation
            }
            state.statistics.queued += 1
        }
        changes.yield(OptimisticChange(kind: .queued, layer: queuedLayer))
    }

    func confirm(_ layer: OptimisticLayer) {
        state.withLock { state in
            state.inFlight.removeAll { $0.id == layer.id }
            state.statistics.confirmed += 1
        }
        changes.yield(OptimisticChange(kind: .confirmed, layer: layer))
    }

    func rollBack(_ layer: OptimisticLayer, error: PyAirtableError?) {
        state.withLock { state in
            state.inFlight.removeAll { $0.id == layer.id }
            state.statistics.rolledBack += 1
        }
        changes.yield(OptimisticChange(kind: .rolledBack, layer: layer, error: error))
    }

    /// Queued writes were replayed (`confirmed`) or refused: their layers go.
    func settleQueued(_ ids: [Int64], confirmed: Bool, error: PyAirtableError? = nil) {
        let removed: [OptimisticLayer] = state.withLock { state in
            let removed = ids.compactMap { state.queued.removeValue(forKey: $0) }
            for id in ids { state.queuedGeneration.removeValue(forKey: id) }
            if confirmed {
                state.statistics.confirmed += ids.count
            } else {
                state.statistics.rolledBack += ids.count
            }
            return removed
        }
        for layer in removed {
            changes.yield(OptimisticChange(kind: confirmed ? .confirmed : .rolledBack, layer: layer, error: error))
        }
    }

    /// Whether the queued layers should be read from the queue again.
    func queuedNeedsLoading(now: ContinuousClock.Instant) -> Bool {
        state.withLock { state in
            guard let loadedAt = state.queuedLoadedAt else { return true }
            return loadedAt.duration(to: now) >= Self.queuedRefreshInterval
        }
    }

    /// Replaces the queued layers with those of `mutations` (the queue's pending and in-flight writes,
    /// read after ``generation`` was `since`); layers this client queued while the queue was read stay.
    func loadQueued(_ mutations: [QueuedMutation], now: ContinuousClock.Instant, since: Int) {
        var layers: [Int64: OptimisticLayer] = [:]
        for mutation in mutations {
            if let layer = Self.layer(of: mutation) { layers[mutation.id] = layer }
        }
        let (added, removed) = state.withLock { state in
            state.queuedLoadedAt = now
            for (id, generation) in state.queuedGeneration where generation > since {
                if let layer = state.queued[id], layers[id] == nil { layers[id] = layer }
            }
            state.queuedGeneration = state.queuedGeneration.filter { layers[$0.key] != nil }
            // A layer already known keeps its identity.
            for (id, layer) in state.queued where layers[id] != nil { layers[id] = layer }
            let added = layers.filter { state.queued[$0.key] == nil }.sorted { $0.key < $1.key }.map(\.value)
            let removed = state.queued.filter { layers[$0.key] == nil }.sorted { $0.key < $1.key }.map(\.value)
            state.queued = layers
            return (added, removed)
        }
        // What other processes queued, replayed or dropped since the last look.
        for layer in added { changes.yield(OptimisticChange(kind: .queued, layer: layer)) }
        for layer in removed { changes.yield(OptimisticChange(kind: .settledElsewhere, layer: layer)) }
    }

    /// Every layer, queued ones first (they were made earlier), each group in order.
    var all: [OptimisticLayer] {
        state.withLock { state in
            state.queued.keys.sorted().compactMap { state.queued[$0] } + state.inFlight
        }
    }

    /// The layer a queued mutation stands for, when it is a record write.
    static func layer(of mutation: QueuedMutation) -> OptimisticLayer? {
        let request = mutation.request
        let parts = request.path.split(separator: "/")
        func fields() -> [String: FieldValue]? {
            request.body.flatMap { try? JSONCoding.decoder.decode(RecordFieldsRequest.self, from: $0).fields }
        }
        let id = UUID()
        if request.method == "POST", parts.count == 5, parts[2] == "tables", parts[4] == "records",
            let table = TableID(String(parts[3])), let temporary = mutation.createsTemporaryIDs.first,
            let fields = fields()
        {
            let record = RecordID(unchecked: temporary.rawValue)
            return OptimisticLayer(
                id: id,
                recordID: record,
                change: .create(table: table, fields: fields),
                createdAt: mutation.createdAt,
                queuedMutationID: mutation.id
            )
        }
        guard parts.count == 4, parts[2] == "records" else { return nil }
        let named = String(parts[3])
        guard let record = RecordID(named) ?? (TemporaryID(named).map { RecordID(unchecked: $0.rawValue) }) else {
            return nil
        }
        let change: OptimisticLayer.Change
        switch request.method {
        case "PATCH":
            guard let fields = fields() else { return nil }
            change = .update(fields)
        case "PUT":
            guard let fields = fields() else { return nil }
            change = .replace(fields)
        case "DELETE":
            change = .delete
        default:
            return nil
        }
        return OptimisticLayer(
            id: id,
            recordID: record,
            change: change,
            createdAt: mutation.createdAt,
            queuedMutationID: mutation.id
        )
    }
}

// MARK: - Applying layers

extension OptimisticLayers {
    /// `record` as reads should see it with `layers` applied; `nil` when a layer deletes it.
    static func apply(_ layers: [OptimisticLayer], to record: Record) -> Record? {
        let id = record.id
        var record: Record? = record
        for layer in layers where layer.recordID == id {
            switch layer.change {
            case .create(let table, let fields):
                // A create of an id already confirmed (its answer arrived first): keep the server's.
                if record == nil {
                    record = Record(
                        id: layer.recordID,
                        tableID: table,
                        fields: fields,
                        version: 0,
                        createdAt: layer.createdAt,
                        updatedAt: layer.createdAt
                    )
                }
            case .update(let fields):
                for (name, value) in fields {
                    if value.isBlank { record?.fields.removeValue(forKey: name) } else { record?.fields[name] = value }
                }
                let updatedAt = max(record?.updatedAt ?? layer.createdAt, layer.createdAt)
                record?.updatedAt = updatedAt
            case .replace(let fields):
                record?.fields = fields.filter { !$0.value.isBlank }
                let updatedAt = max(record?.updatedAt ?? layer.createdAt, layer.createdAt)
                record?.updatedAt = updatedAt
            case .delete:
                record = nil
            }
        }
        return record
    }

    /// The record a create layer (and the layers after it) make, for a temporary id.
    static func created(_ id: RecordID, from layers: [OptimisticLayer]) -> Record? {
        let mine = layers.filter { $0.recordID == id }
        guard let first = mine.first, case .create(let table, let fields) = first.change else { return nil }
        let record = Record(
            id: id,
            tableID: table,
            fields: fields.filter { !$0.value.isBlank },
            version: 0,
            createdAt: first.createdAt,
            updatedAt: first.createdAt
        )
        return apply(Array(mine.dropFirst()), to: record)
    }

    /// A page of `table` as reads should see it: pending changes applied to its records, and records a
    /// pending delete removes left out. (Records created by pending writes have no server id yet:
    /// see ``pendingCreates(_:excluding:table:query:)``.)
    ///
    /// A record a pending update makes match a filter it did not match before appears once the server
    /// confirms the write and the page is read again.
    static func apply(
        _ layers: [OptimisticLayer],
        to page: Page<Record>,
        table: TableID,
        query: RecordQuery
    )
        -> Page<Record>
    {
        guard !layers.isEmpty else { return page }
        let filter = query.view == nil ? query.filter.flatMap { try? Formula.parse($0) } : nil
        var byRecord: [RecordID: [OptimisticLayer]] = [:]
        for layer in layers { byRecord[layer.recordID, default: []].append(layer) }
        var result = page
        var changed = false
        result.data = page.data.compactMap { record -> Record? in
            guard let mine = byRecord[record.id] else { return record }
            changed = true
            guard let updated = apply(mine, to: record) else { return nil }
            if let filter, !filter.matches(FormulaRecordValues(recordID: updated.id.rawValue, values: updated.fields)) {
                return nil
            }
            return project(updated, fields: query.fields)
        }
        return changed ? result : page
    }

    /// The records pending creates of `table` make, for the last page of `query`: those matching its
    /// filter, in its sort order (else in the order they were made), projected to its fields.
    static func pendingCreates(
        _ layers: [OptimisticLayer],
        excluding present: Set<RecordID>,
        table: TableID,
        query: RecordQuery
    ) -> [PendingRecord] {
        let filter = query.view == nil ? query.filter.flatMap { try? Formula.parse($0) } : nil
        var created: [(record: Record, createdAt: Date)] = []
        for layer in layers {
            guard case .create(let createdTable, _) = layer.change, createdTable == table,
                !present.contains(layer.recordID), let record = Self.created(layer.recordID, from: layers)
            else { continue }
            if let filter, !filter.matches(FormulaRecordValues(recordID: record.id.rawValue, values: record.fields)) {
                continue
            }
            created.append((project(record, fields: query.fields), layer.createdAt))
        }
        var records = created.map(\.record)
        if let sort = query.sort, !sort.isEmpty { records = stableSorted(records, by: sort) }
        return records.map { record in
            PendingRecord(
                id: RecordReference(internal: record.id),
                tableID: record.tableID,
                fields: record.fields,
                createdAt: record.createdAt
            )
        }
    }

    private static func project(_ record: Record, fields: [String]?) -> Record {
        guard let fields else { return record }
        var record = record
        let wanted = Set(fields)
        record.fields = record.fields.filter { wanted.contains($0.key) }
        return record
    }

    /// Sorts as the server does for the common cases: blanks first ascending, numbers by value, text
    /// case-insensitively; ties keep their order.
    static func stableSorted(_ records: [Record], by sort: [SortSpec]) -> [Record] {
        records.enumerated().sorted { lhs, rhs in
            for spec in sort {
                let order = compare(lhs.element.fields[spec.field], rhs.element.fields[spec.field])
                if order == .orderedSame { continue }
                let ascending = order == .orderedAscending
                return spec.direction == .desc ? !ascending : ascending
            }
            return lhs.offset < rhs.offset
        }.map(\.element)
    }

    private static func compare(_ lhs: FieldValue?, _ rhs: FieldValue?) -> ComparisonResult {
        let left = ThreeWayMerge.normalized(lhs)
        let right = ThreeWayMerge.normalized(rhs)
        switch (left, right) {
        case (nil, nil): return .orderedSame
        case (nil, _): return .orderedAscending
        case (_, nil): return .orderedDescending
        case (.number(let a)?, .number(let b)?):
            return a == b ? .orderedSame : (a < b ? .orderedAscending : .orderedDescending)
        case (.bool(let a)?, .bool(let b)?):
            return a == b ? .orderedSame : (!a ? .orderedAscending : .orderedDescending)
        default:
            return (left?.displayText ?? "").localizedCaseInsensitiveCompare(right?.displayText ?? "")
        }
    }
}

/// The records the client read last (the last pages and single reads), so a write can start from the
/// version the app was shown even when the cache is off or a list read stored no per-record entry.
final class RecentReads: Sendable {
    /// How many reads (pages or single records) are kept.
    static let capacity = 64
    private let state = Mutex<(reads: [[Record]], next: Int)>(([], 0))

    func remember(_ records: [Record]) {
        guard !records.isEmpty else { return }
        state.withLock { state in
            if state.reads.count < Self.capacity {
                state.reads.append(records)
            } else {
                state.reads[state.next] = records
            }
            state.next = (state.next + 1) % Self.capacity
        }
    }

    /// The highest version of `id` among the kept reads.
    func find(_ id: RecordID) -> Record? {
        let reads = state.withLock { $0.reads }
        var found: Record?
        for read in reads {
            for record in read where record.id == id {
                if record.version > found?.version ?? Int.min { found = record }
            }
        }
        return found
    }
}
