import ClientCache
import Foundation

/// A read's answer with where it came from: the server, or the local cache (fresh, stale, or standing
/// in for a server that could not be reached).
///
/// ```swift
/// let answer = try await client.records.getWithSource(recordID)
/// if answer.isOffline { print("offline: showing the copy from \(answer.storedAt!)") }
/// print(answer.value.fields)
/// ```
public struct CachedResponse<Value: Sendable>: Sendable {
    /// The answer.
    public var value: Value
    /// Whether the cache answered (rather than the server, in this call).
    public var fromCache: Bool
    /// Whether the answer is past its freshness lifetime.
    public var isStale: Bool
    /// When the answer was received from the server.
    public var storedAt: Date?
    /// Why the server was not used, when the cache stood in for it (the server could not be
    /// reached, timed out, was unavailable, or its circuit was open).
    public var networkError: PyAirtableError?
    /// Whether writes not yet confirmed by the server (in flight, or waiting in the offline queue) are
    /// applied to the answer: it shows what the data will be once they land.
    public var hasPendingWrites: Bool
    /// For a list's last page: the records this client's pending creates make that match the query,
    /// in its sort order. They have no server id yet (see ``PendingRecord``); show them after the
    /// page's records.
    public var pendingCreates: [PendingRecord] = []

    public init(
        value: Value,
        fromCache: Bool,
        isStale: Bool = false,
        storedAt: Date? = nil,
        networkError: PyAirtableError? = nil,
        hasPendingWrites: Bool = false,
        pendingCreates: [PendingRecord] = []
    ) {
        self.value = value
        self.fromCache = fromCache
        self.isStale = isStale
        self.storedAt = storedAt
        self.networkError = networkError
        self.hasPendingWrites = hasPendingWrites
        self.pendingCreates = pendingCreates
    }

    /// Whether the cache answered because the server could not be reached.
    public var isOffline: Bool { networkError != nil }

    /// The same response with its value transformed.
    public func map<T: Sendable>(_ transform: (Value) throws -> T) rethrows -> CachedResponse<T> {
        CachedResponse<T>(
            value: try transform(value),
            fromCache: fromCache,
            isStale: isStale,
            storedAt: storedAt,
            networkError: networkError,
            hasPendingWrites: hasPendingWrites,
            pendingCreates: pendingCreates
        )
    }
}
