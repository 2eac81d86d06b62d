import GRDB
import PyAirtableModels
import Synchronization

/// Records read recently, as the wire JSON of their `GET` answer, and the workspace roles of the
/// users who read them, so a read of a hot record needs neither a reader connection nor encoding.
///
/// It never answers with data older than the last acknowledged write:
/// - The writer connection reports every change through ``RecordReadCacheInvalidator``, after the
///   commit and before the write is acknowledged: a changed record's entry goes; a change to what
///   decides access or encoding (users, workspaces, members, bases, tables, fields) empties the cache.
/// - A reader takes the cache's ``generation`` before its read transaction begins and stores what
///   it read only when no commit invalidated anything since, so an answer read before a commit is
///   never stored after it.
///
/// Memory is bounded by ``maximumBytes`` (the JSON plus a fixed overhead per entry); past it,
/// arbitrary entries are dropped. Zero turns the cache off.
///
/// The cache belongs to one server process: it is correct because this process's writer sees
/// every write. A store shared by several servers needs its invalidations from the event log.
public final class RecordReadCache: Sendable {
    /// What a lookup found.
    enum Hit {
        /// The record, and the reader may read it.
        case record(EncodedRecord)
        /// The record exists, and the reader is not a member of its workspace.
        case notMember
    }

    private struct Entry {
        var rowID: Int64
        var workspaceID: String
        var record: EncodedRecord
        var cost: Int
    }

    private struct RoleKey: Hashable {
        var user: String
        var workspace: String
    }

    private struct State {
        var generation: UInt64 = 0
        var entries: [String: Entry] = [:]
        var idsByRow: [Int64: String] = [:]
        /// `nil` when the user is not a member.
        var roles: [RoleKey: Role?] = [:]
        var bytes = 0
        var hits = 0
        var misses = 0
    }

    /// The most memory the entries may hold, in bytes.
    public let maximumBytes: Int
    /// The most (user, workspace) roles remembered.
    let maximumRoles: Int
    private static let entryOverhead = 160
    private let state = Mutex(State())

    public init(maximumBytes: Int, maximumRoles: Int = 10_000) {
        self.maximumBytes = max(0, maximumBytes)
        self.maximumRoles = maximumRoles
    }

    var isEnabled: Bool { maximumBytes > 0 }

    /// Taken before a read transaction begins; ``store(_:rowID:id:workspaceID:role:user:readAt:)``
    /// refuses what was read when a commit invalidated anything since.
    var generation: UInt64 { state.withLock { $0.generation } }

    /// The cached answer for `id` as `user` may see it, or `nil` when the cache cannot tell.
    func lookup(id: String, user: String) -> Hit? {
        guard isEnabled else { return nil }
        return state.withLock { state -> Hit? in
            guard let entry = state.entries[id],
                let role = state.roles[RoleKey(user: user, workspace: entry.workspaceID)]
            else {
                state.misses += 1
                return nil
            }
            state.hits += 1
            return role == nil ? .notMember : .record(entry.record)
        }
    }

    /// Remembers the reader's role in a workspace, and a record of it (when the reader may see
    /// it), both read at `generation`.
    func store(
        _ record: EncodedRecord?,
        rowID: Int64,
        id: String,
        workspaceID: String,
        role: Role?,
        user: String,
        readAt generation: UInt64
    ) {
        guard isEnabled else { return }
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.roles.count >= maximumRoles { state.roles.removeAll(keepingCapacity: true) }
            state.roles[RoleKey(user: user, workspace: workspaceID)] = .some(role)
            guard let record else { return }
            let cost = record.json.count + id.utf8.count + workspaceID.utf8.count + Self.entryOverhead
            guard cost <= maximumBytes / 4 else { return }
            if let old = state.entries[id] { Self.remove(old, id: id, from: &state) }
            state.entries[id] = Entry(rowID: rowID, workspaceID: workspaceID, record: record, cost: cost)
            state.idsByRow[rowID] = id
            state.bytes += cost
            if state.bytes > maximumBytes { evict(&state) }
        }
    }

    /// Drops the entries of changed `records` rows.
    func invalidate(rows: [Int64]) {
        state.withLock { state in
            state.generation &+= 1
            for row in rows {
                guard let id = state.idsByRow[row], let entry = state.entries[id] else { continue }
                Self.remove(entry, id: id, from: &state)
            }
        }
    }

    /// Drops everything: access or encoding may have changed.
    func invalidateAll() {
        state.withLock { state in
            state.generation &+= 1
            state.entries.removeAll(keepingCapacity: true)
            state.idsByRow.removeAll(keepingCapacity: true)
            state.roles.removeAll(keepingCapacity: true)
            state.bytes = 0
        }
    }

    /// Entries, bytes held, hits and misses since start.
    public var statistics: (entries: Int, bytes: Int, hits: Int, misses: Int) {
        state.withLock { ($0.entries.count, $0.bytes, $0.hits, $0.misses) }
    }

    private static func remove(_ entry: Entry, id: String, from state: inout State) {
        state.entries.removeValue(forKey: id)
        state.idsByRow.removeValue(forKey: entry.rowID)
        state.bytes -= entry.cost
    }

    /// Drops arbitrary entries (the dictionary's order) until a tenth of the budget is free.
    private func evict(_ state: inout State) {
        let target = maximumBytes - maximumBytes / 10
        var victims: [(String, Entry)] = []
        var freed = 0
        for (id, entry) in state.entries {
            if state.bytes - freed <= target { break }
            victims.append((id, entry))
            freed += entry.cost
        }
        for (id, entry) in victims { Self.remove(entry, id: id, from: &state) }
    }
}

/// Tells the ``RecordReadCache`` what each committed transaction changed. Runs on the writer
/// connection only.
final class RecordReadCacheInvalidator: TransactionObserver {
    /// Tables whose changes can alter who may read a record or how it is encoded.
    private static let accessTables: Set<String> = ["users", "workspaces", "members", "bases", "tables", "fields"]

    private let cache: RecordReadCache
    private var rows: [Int64] = []
    private var everything = false

    init(cache: RecordReadCache) {
        self.cache = cache
    }

    func observes(eventsOfKind eventKind: DatabaseEventKind) -> Bool {
        switch eventKind {
        case .insert(let table):
            // A new record was in no answer; a new member changes a cached "not a member".
            return table == "members"
        case .update(let table, _), .delete(let table):
            return table == "records" || Self.accessTables.contains(table)
        }
    }

    /// `members` is a WITHOUT ROWID table: SQLite reports no row events for it, so its writers call
    /// `Database.notifyChanges(in:)`, which lands here.
    func databaseDidChange() {
        everything = true
        stopObservingDatabaseChangesUntilNextTransaction()
    }

    func databaseDidChange(with event: DatabaseEvent) {
        if event.tableName == "records" {
            rows.append(event.rowID)
        } else {
            everything = true
            stopObservingDatabaseChangesUntilNextTransaction()
        }
    }

    func databaseDidCommit(_ db: Database) {
        if everything {
            cache.invalidateAll()
        } else if !rows.isEmpty {
            cache.invalidate(rows: rows)
        }
        reset()
    }

    func databaseDidRollback(_ db: Database) {
        reset()
    }

    private func reset() {
        rows.removeAll(keepingCapacity: true)
        everything = false
    }
}
