import Foundation
import HTTPTypes
import PyAirtableModels

/// Mirror mode on the server (`pyat serve --mirror URL --mirror-base app…`): which bases it mirrors
/// from their upstream Airtable API, the snapshot each serves, and how the latest sync went.
///
/// ```swift
/// let status = try await client.mirror.status()
/// for base in status.bases { print(base.baseID, base.state, base.snapshot?.records ?? 0) }
/// try await client.mirror.refresh(base: base)   // a full sync now
/// ```
///
/// A mirrored base is read like any other (records, schema, realtime, the cache) and refuses writes:
/// change it upstream, and the mirror follows.
public struct MirrorClient: Sendable {
    let client: PyAirtableClient
    private static func operation(_ name: String) -> ClientOperation { .init(service: "mirror", name: name) }

    /// The mirrored bases the caller may see. Throws ``PyAirtableError/notFound`` when the server
    /// mirrors nothing.
    public func status() async throws -> MirrorStatus {
        try await client.send(
            PyAirtableClient.request(.get, "/api/v1/mirror", operation: Self.operation("status")),
            as: MirrorStatus.self
        )
    }

    /// Asks for a full sync of `base` (or of every mirrored base the caller may refresh: the creator
    /// role or higher in its workspace). Answers at once with the bases' status; ``status()`` shows
    /// how the sync went.
    @discardableResult
    public func refresh(base: BaseID? = nil) async throws -> MirrorStatus {
        try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/mirror/refresh",
                body: MirrorRefreshRequest(baseID: base),
                operation: Self.operation("refresh")
            ),
            as: MirrorStatus.self
        )
    }
}
