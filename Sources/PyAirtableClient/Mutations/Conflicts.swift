import Foundation
import PyAirtableModels
import Synchronization

/// How a record write settles a 412: the record changed on the server since the version the write
/// started from (the version its `If-Match` names).
///
/// ```swift
/// configuration.conflicts.strategy = .merge(MergeHandler { conflict in
///     conflict.field == "Notes" ? .local : .server
/// })
/// ```
public enum ConflictStrategy: Sendable {
    /// Throw ``PyAirtableError/preconditionFailed`` carrying the current record.
    case fail
    /// The server's record stands and the write is dropped; the call answers the current record
    /// (a delete answers `DeletedRecord.deleted` `false`).
    case serverWins
    /// The write is sent again over the current version: its fields replace the server's.
    case clientWins
    /// A field-level three-way merge against the version the write started from: a field changed on
    /// one side only takes that side's value; a field changed on both sides to different values goes
    /// to the handler (by default the server's value stands). A delete goes ahead.
    case merge(MergeHandler = .keepServer)

    /// The strategy's name in reports and logs: `fail`, `serverWins`, `clientWins`, `merge`.
    public var name: String {
        switch self {
        case .fail: "fail"
        case .serverWins: "serverWins"
        case .clientWins: "clientWins"
        case .merge: "merge"
        }
    }
}

/// Decides a field changed on both sides of a merge.
public struct MergeHandler: Sendable {
    let choose: @Sendable (FieldConflict) async -> FieldConflict.Choice

    /// A handler calling `choose` for each field changed on both sides.
    public init(_ choose: @escaping @Sendable (FieldConflict) async -> FieldConflict.Choice) {
        self.choose = choose
    }

    /// The server's value stands (the default).
    public static let keepServer = MergeHandler { _ in .server }
    /// The write's value is sent.
    public static let keepLocal = MergeHandler { _ in .local }
}

/// A field whose value differs between the write and the server, with the value it had at the version
/// the write started from.
public struct FieldConflict: Sendable, Hashable {
    /// Which value a field changed on both sides takes.
    public enum Choice: Sendable, Hashable {
        /// The server's value.
        case server
        /// The write's value.
        case local
        /// Another value; `nil` clears the cell.
        case value(FieldValue?)
    }

    /// The field's name.
    public var field: String
    /// The value at the version the write started from; `nil` when blank or when ``baseKnown`` is false.
    public var base: FieldValue?
    /// Whether the base version's value is known (the client held that version when the write began).
    public var baseKnown: Bool
    /// The write's value; `nil` clears the cell.
    public var local: FieldValue?
    /// The server's value now; `nil` when blank.
    public var server: FieldValue?
    /// What the merge chose; set in reports.
    public var choice: Choice?

    public init(
        field: String,
        base: FieldValue?,
        baseKnown: Bool = true,
        local: FieldValue?,
        server: FieldValue?,
        choice: Choice? = nil
    ) {
        self.field = field
        self.base = base
        self.baseKnown = baseKnown
        self.local = local
        self.server = server
        self.choice = choice
    }
}

/// A 412 met by a record write, and how it was settled. Every conflict is reported — to
/// ``ConflictSettings/onConflict``, to the stream of ``MutationsControl/conflicts()``, to the log, and
/// counted in `<prefix>_conflicts_total` — whatever the strategy.
public struct ConflictReport: Sendable, Hashable {
    /// The kind of write that met the conflict.
    public enum Write: String, Sendable, Hashable {
        case update, replace, delete
    }

    /// How the conflict was settled.
    public enum Outcome: String, Sendable, Hashable {
        /// The 412 was thrown (``ConflictStrategy/fail``).
        case thrown
        /// Nothing was sent: the server's record stands (server wins, or the merge kept every server value).
        case keptServer
        /// The write's own fields were sent over the current version (client wins).
        case sentLocal
        /// The merged fields were sent over the current version.
        case sentMerged
        /// The record was deleted over the current version.
        case deleted
        /// The settling write failed too (see the error the call threw).
        case failed
    }

    /// The record written.
    public var recordID: RecordID
    /// The kind of write.
    public var write: Write
    /// The strategy that settled it (``ConflictStrategy/name``).
    public var strategy: String
    /// The version the write started from.
    public var baseVersion: Int?
    /// The record as the server held it when it answered 412.
    public var server: Record
    /// The fields the write carried.
    public var local: [String: FieldValue]
    /// Fields changed on both sides to different values, with what was chosen (merge), or every field
    /// where the write and the server differ (the other strategies).
    public var fields: [FieldConflict]
    /// How it was settled.
    public var outcome: Outcome
    /// The fields sent to settle it, if any.
    public var sent: [String: FieldValue]?
    /// The record after settling, when it still exists and is known.
    public var result: Record?
    /// Whether this happened while replaying the offline queue.
    public var duringReplay: Bool
    /// When it was settled.
    public var occurredAt: Date
}

/// How record writes detect and settle conflicts; see ``PyAirtableClient/Configuration/conflicts``.
public struct ConflictSettings: Sendable {
    /// How a 412 is settled when the call does not say; ``ConflictStrategy/merge(_:)`` by default.
    public var strategy: ConflictStrategy
    /// Whether an update, replace or delete called without `ifVersion` sends `If-Match` with the version
    /// of the record the cache holds (the version the edit started from), so a change made meanwhile
    /// by someone else is detected and merged instead of silently overwritten.
    public var sendsBaseVersion: Bool
    /// How many times a settling write is retried when the record changes again meanwhile.
    public var maximumAttempts: Int
    /// Called with every conflict, after it is settled.
    public var onConflict: (@Sendable (ConflictReport) -> Void)?

    public init(
        strategy: ConflictStrategy = .merge(),
        sendsBaseVersion: Bool = true,
        maximumAttempts: Int = 3,
        onConflict: (@Sendable (ConflictReport) -> Void)? = nil
    ) {
        self.strategy = strategy
        self.sendsBaseVersion = sendsBaseVersion
        self.maximumAttempts = maximumAttempts
        self.onConflict = onConflict
    }
}

/// The field-level three-way merge.
enum ThreeWayMerge {
    /// A blank value (null, empty text or list, unchecked) is no value: the server leaves such cells out.
    static func normalized(_ value: FieldValue?) -> FieldValue? {
        guard let value, !value.isBlank else { return nil }
        return value
    }

    /// Merges a partial update: `local` holds only the fields the write sets.
    /// - Returns: The fields to send over the server's version (empty: nothing to send), and the fields
    ///   changed on both sides with the handler's choice.
    static func mergeUpdate(
        base: [String: FieldValue]?,
        local: [String: FieldValue],
        server: [String: FieldValue],
        handler: MergeHandler
    ) async -> (send: [String: FieldValue], conflicts: [FieldConflict]) {
        var send: [String: FieldValue] = [:]
        var conflicts: [FieldConflict] = []
        for name in local.keys.sorted() {
            let mine = normalized(local[name])
            let theirs = normalized(server[name])
            if mine == theirs { continue }
            if let base {
                let original = normalized(base[name])
                if theirs == original {
                    // Only the write changed it.
                    send[name] = local[name]
                    continue
                }
                if mine == original {
                    // Only the server changed it.
                    continue
                }
            }
            var conflict = FieldConflict(
                field: name,
                base: base.flatMap { normalized($0[name]) },
                baseKnown: base != nil,
                local: mine,
                server: theirs
            )
            let choice = await handler.choose(conflict)
            conflict.choice = choice
            conflicts.append(conflict)
            switch choice {
            case .server: break
            case .local: send[name] = local[name] ?? .null
            case .value(let value):
                if normalized(value) != theirs { send[name] = value ?? .null }
            }
        }
        return (send, conflicts)
    }

    /// Merges a replacement: `local` holds every field the record should keep; those left out are
    /// cleared.
    /// - Returns: The whole merged field set, whether it differs from the server's, and the conflicts.
    static func mergeReplace(
        base: [String: FieldValue]?,
        local: [String: FieldValue],
        server: [String: FieldValue],
        handler: MergeHandler
    ) async -> (fields: [String: FieldValue], changes: Bool, conflicts: [FieldConflict]) {
        var merged: [String: FieldValue] = [:]
        var conflicts: [FieldConflict] = []
        let names = Set(local.keys).union(server.keys).union(base?.keys ?? [:].keys)
        for name in names.sorted() {
            let mine = normalized(local[name])
            let theirs = normalized(server[name])
            var chosen: FieldValue? = theirs
            if mine != theirs {
                let original = base.map { normalized($0[name]) }
                if let original, theirs == original {
                    chosen = mine
                } else if let original, mine == original {
                    chosen = theirs
                } else {
                    var conflict = FieldConflict(
                        field: name,
                        base: original ?? nil,
                        baseKnown: base != nil,
                        local: mine,
                        server: theirs
                    )
                    let choice = await handler.choose(conflict)
                    conflict.choice = choice
                    conflicts.append(conflict)
                    switch choice {
                    case .server: chosen = theirs
                    case .local: chosen = mine
                    case .value(let value): chosen = normalized(value)
                    }
                }
            }
            if let chosen { merged[name] = chosen }
        }
        let serverSet = server.compactMapValues { normalized($0) }
        return (merged, merged != serverSet, conflicts)
    }

    /// The fields where the write and the server differ, for reports of the non-merging strategies.
    static func differences(
        base: [String: FieldValue]?,
        local: [String: FieldValue],
        server: [String: FieldValue],
        replacing: Bool
    ) -> [FieldConflict] {
        let names = replacing ? Set(local.keys).union(server.keys) : Set(local.keys)
        return names.sorted().compactMap { name in
            let mine = normalized(local[name])
            let theirs = normalized(server[name])
            guard mine != theirs else { return nil }
            return FieldConflict(
                field: name,
                base: base.flatMap { normalized($0[name]) },
                baseKnown: base != nil,
                local: mine,
                server: theirs
            )
        }
    }
}

/// Fans values out to every current subscriber; a subscriber that falls behind loses the oldest.
final class Broadcast<Value: Sendable>: Sendable {
    private struct State {
        var next = 0
        var continuations: [Int: AsyncStream<Value>.Continuation] = [:]
        var finished = false
    }

    private let state = Mutex(State())
    private let buffer: Int

    init(buffer: Int = 1024) {
        self.buffer = buffer
    }

    /// A stream of the values yielded from now on; it ends when the broadcast is finished (at once if
    /// it already is).
    func subscribe() -> AsyncStream<Value> {
        let (stream, continuation) = AsyncStream<Value>.makeStream(bufferingPolicy: .bufferingNewest(buffer))
        let id = state.withLock { state -> Int? in
            guard !state.finished else { return nil }
            let id = state.next
            state.next += 1
            state.continuations[id] = continuation
            return id
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.continuations.removeValue(forKey: id) }
        }
        return stream
    }

    func yield(_ value: Value) {
        let continuations = state.withLock { Array($0.continuations.values) }
        for continuation in continuations { continuation.yield(value) }
    }

    /// Ends every subscriber's stream, and the streams of later subscribers at once.
    func finish() {
        let continuations = state.withLock { state -> [AsyncStream<Value>.Continuation] in
            state.finished = true
            defer { state.continuations = [:] }
            return Array(state.continuations.values)
        }
        for continuation in continuations { continuation.finish() }
    }
}
