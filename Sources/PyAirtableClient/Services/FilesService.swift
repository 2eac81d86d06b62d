import Foundation
import HTTPTypes
import NIOCore
import PyAirtableModels
import Synchronization

/// How far a transfer is: bytes done, and the total when it is known.
public struct TransferProgress: Sendable, Hashable {
    public var completed: Int64
    public var total: Int64?

    public init(completed: Int64, total: Int64?) {
        self.completed = completed
        self.total = total
    }
}

/// What a download wrote.
public struct DownloadResult: Sendable, Hashable {
    /// Where the bytes are.
    public var path: String
    /// How many bytes were written.
    public var size: Int64
    /// The server's `ETag`: the quoted SHA-256 of the bytes.
    public var eTag: String?
}

/// Files: streamed upload and download, metadata, deletion.
///
/// Uploads read the file from disk a chunk at a time and downloads write each chunk as it
/// arrives, so memory use does not grow with the file.
///
/// ```swift
/// let file = try await client.files.upload(fileAt: URL(fileURLWithPath: "report.pdf"), workspace: workspaceID)
/// try await client.files.download(file.id, to: URL(fileURLWithPath: "copy.pdf"))
/// ```
public struct FilesService: Sendable {
    let client: PyAirtableClient
    private static func operation(_ name: String) -> ClientOperation { .init(service: "files", name: name) }
    /// The size of the pieces a file is read in.
    static let chunkSize = 256 * 1024
    /// How long one transfer may take in all; large files take longer than ordinary calls.
    public static let transferTimeout: Duration = .seconds(6 * 3600)

    /// Uploads the file at `url`, streaming it from disk.
    /// - Parameters:
    ///   - url: A local file.
    ///   - name: The file's name on the server (default: the file's last path component).
    ///   - contentType: Its media type (default: `application/octet-stream`).
    ///   - workspace: The workspace it belongs to; without one it is private to you.
    ///   - progress: Called as bytes are sent.
    /// - Returns: The stored file's metadata.
    /// - Throws: ``PyAirtableError/payloadTooLarge`` past the server's limit, or any call error.
    public func upload(
        fileAt url: URL,
        name: String? = nil,
        contentType: String? = nil,
        workspace: WorkspaceID? = nil,
        progress: (@Sendable (TransferProgress) -> Void)? = nil
    ) async throws -> FileMetadata {
        let path = url.path
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: path)
        } catch {
            throw PyAirtableError.invalidArgument("cannot read '\(path)': \(error.localizedDescription)")
        }
        guard (attributes[.type] as? FileAttributeType) == .typeRegular else {
            throw PyAirtableError.invalidArgument("'\(path)' is not a regular file")
        }
        let length = (attributes[.size] as? NSNumber)?.int64Value ?? 0
        var request = Self.uploadRequest(
            name: name ?? url.lastPathComponent,
            contentType: contentType,
            workspace: workspace
        )
        // Read from disk as it is sent, and again from the start if the request is sent again.
        request.body = HTTPBody.file(atPath: path, length: length, chunkSize: Self.chunkSize, progress: progress)
        request.timeout = Self.transferTimeout
        return try await client.send(request, as: FileMetadata.self)
    }

    /// Uploads bytes held in memory (small content) through the client's usual request path.
    public func upload(
        data: Data,
        name: String,
        contentType: String? = nil,
        workspace: WorkspaceID? = nil
    ) async throws -> FileMetadata {
        var request = Self.uploadRequest(name: name, contentType: contentType, workspace: workspace)
        request.body = HTTPBody(data)
        return try await client.send(request, as: FileMetadata.self)
    }

    /// A file's metadata.
    public func get(_ id: FileID) async throws -> FileMetadata {
        try await client.send(
            PyAirtableClient.request(.get, "/api/v1/files/\(id)", operation: Self.operation("get")),
            as: FileMetadata.self
        )
    }

    /// One page of the files you may read: your private ones and your workspaces' (or one
    /// workspace's).
    public func list(
        in workspace: WorkspaceID? = nil,
        pageSize: Int? = nil,
        cursor: String? = nil
    ) async throws -> Page<FileMetadata> {
        var query: [QueryItem] = []
        if let workspace { query.append(QueryItem("workspace_id", workspace.rawValue)) }
        if let pageSize { query.append(QueryItem("page_size", String(pageSize))) }
        if let cursor { query.append(QueryItem("cursor", cursor)) }
        return try await client.send(
            PyAirtableClient.request(.get, "/api/v1/files", query: query, operation: Self.operation("list")),
            as: Page<FileMetadata>.self
        )
    }

    /// Every file you may read (or one workspace's), fetched a page at a time as the loop asks.
    public func all(in workspace: WorkspaceID? = nil, pageSize: Int? = 1000) -> PageSequence<FileMetadata> {
        PageSequence { cursor in try await list(in: workspace, pageSize: pageSize, cursor: cursor) }
    }

    /// Deletes a file (its uploader, or a creator or higher of its workspace). The bytes go when
    /// no other file has the same content.
    public func delete(_ id: FileID) async throws {
        try await client.execute(
            PyAirtableClient.request(.delete, "/api/v1/files/\(id)", operation: Self.operation("delete"))
        )
    }

    /// Downloads a file's bytes to `url`, writing each piece as it arrives. The bytes go to a
    /// temporary file beside `url` that replaces it only once complete.
    /// - Parameters:
    ///   - id: The file.
    ///   - url: Where to write; an existing file there is replaced.
    ///   - progress: Called as bytes arrive.
    @discardableResult
    public func download(
        _ id: FileID,
        to url: URL,
        progress: (@Sendable (TransferProgress) -> Void)? = nil
    ) async throws -> DownloadResult {
        let request = try PyAirtableClient.request(
            .get,
            "/api/v1/files/\(id)/content",
            operation: Self.operation("download")
        )
        var accepting = request
        accepting.headerFields[.accept] = "*/*"
        accepting.timeout = Self.transferTimeout
        let destination = url.path
        let temporary =
            (destination as NSString).deletingLastPathComponent + "/.\(url.lastPathComponent).\(UUID().uuidString).part"
        let head = try await client.exchange(accepting)
        let chunks = head.body ?? HTTPBody()
        let total = head.headerFields[.contentLength].flatMap(Int64.init)
        guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
            throw PyAirtableError.invalidArgument("cannot write '\(temporary)'")
        }
        do {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
            defer { try? handle.close() }
            var written: Int64 = 0
            for try await chunk in chunks {
                try handle.write(contentsOf: chunk)
                written += Int64(chunk.count)
                progress?(TransferProgress(completed: written, total: total))
            }
            try handle.synchronize()
            if let total, total != written {
                throw PyAirtableError.invalidArgument("the download ended after \(written) of \(total) bytes")
            }
            // rename(2) replaces an existing file atomically; readers never see a partial one.
            guard rename(temporary, destination) == 0 else {
                throw PyAirtableError.invalidArgument(
                    "cannot move the download to '\(destination)': \(String(cString: strerror(errno)))"
                )
            }
            return DownloadResult(path: destination, size: written, eTag: head.headerFields[.eTag])
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }

    /// A file's bytes in memory: the whole file, or one `range` of it (both ends inclusive).
    /// Meant for small files and small ranges; use ``download(_:to:progress:)`` for the rest.
    public func content(_ id: FileID, range: ClosedRange<Int64>? = nil) async throws -> Data {
        var request = try PyAirtableClient.request(
            .get,
            "/api/v1/files/\(id)/content",
            operation: Self.operation("content")
        )
        request.headerFields[.accept] = "*/*"
        if let range { request.headerFields[.range] = "bytes=\(range.lowerBound)-\(range.upperBound)" }
        return try await client.execute(request).data
    }

    // MARK: Helpers

    static func uploadRequest(name: String, contentType: String?, workspace: WorkspaceID?) -> ClientRequest {
        var query = [QueryItem("name", name)]
        if let workspace { query.append(QueryItem("workspace_id", workspace.rawValue)) }
        let fields: HTTPFields = [
            .accept: "application/json",
            .contentType: contentType ?? "application/octet-stream",
            .idempotencyKey: UUID().uuidString.lowercased(),
        ]
        return ClientRequest(
            method: .post,
            path: "/api/v1/files",
            query: query,
            headerFields: fields,
            operation: operation("upload")
        )
    }
}
