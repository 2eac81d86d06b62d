import Foundation
import PyAirtableModels
import Synchronization

/// What mirror mode needs of a store, beside the repositories every route uses.
protocol MirrorStore: Sendable {
    /// What the store holds of a mirrored base (empty when it holds nothing of it yet).
    func mirrorState(base: BaseID) async throws -> MirrorCurrentState

    /// Applies a snapshot in one transaction: runs the operations, then checks every table's
    /// records against the digest the upstream's data gave, and records the snapshot. Throws
    /// ``MirrorSnapshotError`` (and changes nothing) when the check fails or another snapshot was
    /// applied since ``mirrorState(base:)`` read the generation the change set was computed from.
    func applyMirror(_ changes: MirrorChangeSet, context: WriteContext) async throws

    /// The snapshots the store serves, one per mirrored base.
    func mirroredBases() async throws -> [MirroredBase]
}

/// A mirrored base as the store records it.
struct MirroredBase: Sendable {
    var baseID: BaseID
    var workspaceID: WorkspaceID
    var upstream: String
    var generation: Int64
    var snapshot: MirrorSnapshotSummary
}

/// The message of a write refused because its base is a mirror (the stores' event-log guard raises
/// it; see the `mirror_bases` migrations).
enum MirrorReadOnly {
    static let marker = "pyat: read-only mirror"
    /// The SQLSTATE PostgreSQL's guard raises.
    static let sqlState = "PYM01"
    static let message =
        "this base is a read-only mirror of a base upstream: change it there, and the mirror follows"

    /// The event types a write to a mirrored base appends, which only the mirror itself may append.
    static let guardedTypes = [
        "base.updated", "base.deleted", "table.created", "table.updated", "table.deleted", "field.created",
        "field.updated", "field.deleted", "view.created", "view.updated", "view.deleted", "record.created",
        "record.updated", "record.deleted", "comment.created", "comment.updated", "comment.deleted",
    ]
}

/// The mirrored bases one PostgreSQL instance knows of, so a write to one is refused as its job runs
/// (alone), before its batch's commit: the event log's trigger refuses it too, but at the commit, which
/// would fail every job of the batch. Loaded at start, updated by this instance's applies, and read
/// again at most every ``refreshInterval`` as writes come (another instance may have mirrored a base).
final class MirrorGuard: Sendable {
    static let refreshInterval: Duration = .seconds(5)
    private struct State {
        var bases: Set<String> = []
        var readAt: ContinuousClock.Instant?
        var reading = false
    }

    private let state = Mutex(State())

    func contains(_ base: String) -> Bool { state.withLock { $0.bases.contains(base) } }

    func set(_ bases: Set<String>) {
        state.withLock {
            $0.bases = bases
            $0.readAt = .now
            $0.reading = false
        }
    }

    func insert(_ base: String) { state.withLock { _ = $0.bases.insert(base) } }

    /// Whether the set is due a read: claims it (one reader at a time) when so.
    func claimRefresh() -> Bool {
        state.withLock { state in
            guard !state.reading, state.readAt.map({ ContinuousClock.now - $0 >= Self.refreshInterval }) ?? true else {
                return false
            }
            state.reading = true
            return true
        }
    }

    func refreshFailed() { state.withLock { $0.reading = false } }

    /// Throws when `context`'s write appends a guarded event to a mirrored base.
    func check(type: String, base: String?, context: WriteContext) throws {
        guard let base, !context.mirrorWrite, MirrorReadOnly.guardedTypes.contains(type), contains(base) else { return }
        throw StorageError.forbidden(MirrorReadOnly.message)
    }
}
