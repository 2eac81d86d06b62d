/// An error thrown by ``OfflineQueue``.
///
/// ```swift
/// do {
///     try await queue.enqueue(request)
/// } catch let error as OfflineQueueError where error.shortDescription == "queueFull" {
///     // Nothing was written; tell the user the write could not be kept.
/// }
/// ```
public struct OfflineQueueError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Code: String, Sendable, Hashable {
        case queueFull
        case mutationNotFound
        case invalidState
        case unknownTemporaryID
        case duplicateTemporaryID
        case conflictingResolution
        case unresolvedTemporaryID
    }

    private let code: Code
    /// What the error is about: a mutation id, a temporary id, or the bound that was reached.
    public let detail: String

    private init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    /// The queue holds as many entries or bytes as it may; the mutation was not enqueued.
    /// - Parameters:
    ///   - entries: The entries held, and the bound.
    ///   - bytes: The bytes held plus the new mutation's, and the bound.
    public static func queueFull(entries: (held: Int, maximum: Int), bytes: (needed: Int, maximum: Int)) -> Self {
        Self(
            .queueFull,
            "\(entries.held)/\(entries.maximum) entries, \(bytes.needed)/\(bytes.maximum) bytes with the new one"
        )
    }

    /// No mutation with this id is in the queue (it completed, or was dropped).
    public static func mutationNotFound(_ id: Int64) -> Self { Self(.mutationNotFound, "\(id)") }

    /// The mutation is not in a state that allows the operation (say, retrying one that has not failed).
    public static func invalidState(_ id: Int64, _ state: QueuedMutation.State) -> Self {
        Self(.invalidState, "\(id) is \(state.rawValue)")
    }

    /// A request names a temporary id that no queued mutation creates.
    public static func unknownTemporaryID(_ id: TemporaryID) -> Self { Self(.unknownTemporaryID, id.rawValue) }

    /// A mutation says it creates a temporary id that another one already created.
    public static func duplicateTemporaryID(_ id: TemporaryID) -> Self { Self(.duplicateTemporaryID, id.rawValue) }

    /// A temporary id was already resolved to a different server id.
    public static func conflictingResolution(_ id: TemporaryID, existing: String, new: String) -> Self {
        Self(.conflictingResolution, "\(id.rawValue) is \(existing), not \(new)")
    }

    /// A completed mutation created a temporary id but no server id was given for it, which would leave
    /// the mutations that name it unable to replay.
    public static func unresolvedTemporaryID(_ id: TemporaryID) -> Self {
        Self(.unresolvedTemporaryID, id.rawValue)
    }

    /// A short description, safe as a metric label.
    public var shortDescription: String { code.rawValue }

    public var description: String { "OfflineQueueError.\(code.rawValue)(\(detail))" }

    /// Matches any error of the same kind, whatever its detail.
    public static func ~= (pattern: Self, error: any Error) -> Bool {
        (error as? Self)?.code == pattern.code
    }
}
