import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOPosix
import PyAirtableModels

/// Files: streamed upload into content-addressed storage, metadata, download with ETag and Range.
///
/// The upload's body is the file itself (no multipart): the name comes from `?name=` or a
/// `Content-Disposition` filename, the type from `Content-Type`, and `?workspace_id=` puts the file
/// in a workspace (else it is private to the uploader).
struct FilesController {
    let services: ServerServices
    let store: any FileRepository & WorkspaceRepository
    var now: Date { services.configuration.now() }

    /// The most files one list page holds.
    static let maximumPageSize = 1000

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("files", use: list)
        group.post("files", use: upload)
        group.get("files/{id}", use: get)
        group.delete("files/{id}", use: delete)
        group.get("files/{id}/content", use: content)
    }

    /// Whether the request is an upload, whose body streams to disk instead of being collected
    /// under the JSON body limit.
    static func streamsBody(_ request: Request) -> Bool {
        guard request.method == .post else { return false }
        let path = request.uri.path
        return path == "/api/v1/files" || path == "/api/v1/files/"
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let query = request.uri.queryParameters
        let workspace = try query.get("workspace_id").map { raw -> WorkspaceID in
            guard let id = WorkspaceID(raw) else { throw ServerError.notFound("workspace") }
            return id
        }
        var limit = 100
        if let raw = query.get("page_size") {
            guard let size = Int(raw), (1...Self.maximumPageSize).contains(size) else {
                throw ServerError.validation("page_size must be 1 to \(Self.maximumPageSize)", field: "page_size")
            }
            limit = size
        }
        let after = try query.get("cursor").map { raw -> FileID in
            guard let id = FileID(raw) else { throw ServerError.validation("bad cursor", field: "cursor") }
            return id
        }
        let files = try await store.files(user: user, workspace: workspace, limit: limit, after: after)
        let next = files.count == limit ? files.last?.id.rawValue : nil
        return try .listJSON(Page(data: files, nextCursor: next), request: request)
    }

    @Sendable func upload(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let query = request.uri.queryParameters
        // Everything that can refuse the upload is checked before a byte is read.
        var workspace: WorkspaceID?
        // As on the list route: an empty or malformed id names no workspace the caller can see.
        if let raw = query.get("workspace_id") {
            guard let id = WorkspaceID(raw) else { throw ServerError.notFound("workspace") }
            let found = try await store.workspace(id: id, user: user)
            guard found.role >= .editor else {
                throw ServerError.forbidden(
                    "uploading into a workspace needs the editor role or higher; you are \(found.role.rawValue)"
                )
            }
            workspace = id
        }
        let name = try FileNames.stored(
            query.get("name") ?? request.headers[.contentDisposition].flatMap(FileNames.dispositionFilename)
        )
        let contentType = try FileNames.contentType(request.headers[.contentType])
        let limit = services.configuration.maximumFileSize
        if let length = request.headers[.contentLength].flatMap(Int64.init), length > limit {
            throw ServerError.fileTooLarge(limit: limit)
        }
        let key = try request.headers[.idempotencyKey].map { key -> String in
            guard !key.isEmpty, key.count <= 255, key.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                throw ServerError.badRequest("Idempotency-Key must be 1 to 255 visible ASCII characters")
            }
            return key
        }

        // The quota is checked before a byte is read and bounds the stream; with an Idempotency-Key
        // only the transaction checks it, after the replay lookup, so a retry of an upload that
        // was stored still gets its stored answer.
        var streamLimit = limit
        var quotaUsed: Int64?
        let quota = services.configuration.uploadQuotaBytes
        if quota > 0, key == nil {
            let used = try await store.uploadedBytes(user: user)
            let left = max(0, quota - used)
            if let length = request.headers[.contentLength].flatMap(Int64.init), length > left {
                throw ServerError.uploadQuotaExceeded(used: used, quota: quota)
            }
            if left < streamLimit {
                streamLimit = left
                quotaUsed = used
            }
        }
        let received: BlobStore.Received
        do {
            received = try await services.blobs.receive(request.body, limit: streamLimit)
        } catch let error as ServerError where error.status == .contentTooLarge {
            throw quotaUsed.map { ServerError.uploadQuotaExceeded(used: $0, quota: quota) } ?? error
        }
        let new = NewFile(
            name: name,
            contentType: contentType,
            size: received.size,
            sha256: received.sha256,
            workspaceID: workspace
        )
        // A retry carries the same key, metadata and bytes: the digest stands for the body.
        let claim = key.map { key in
            var hasher = SHA256()
            let canonical =
                "POST /api/v1/files\n\(name)\n\(contentType)\n\(workspace?.rawValue ?? "")\n\(received.sha256)"
            hasher.update(data: Data(canonical.utf8))
            return IdempotencyClaim(
                principal: user.rawValue,
                key: key,
                requestHash: services.keys.requestHash(digest: Array(hasher.finalize()))
            )
        }
        let write = WriteContext(actor: user, now: now, idempotency: claim)
        let store = self.store
        let result = try await services.blobs.store(received) {
            let result = try await store.createFile(new, context: write)
            return (result, result.value != nil)
        }
        return .stored(result)
    }

    @Sendable func get(_ request: Request, context: AppRequestContext) async throws -> Response {
        let file = try await store.file(id: try context.id("id", "file"), user: try context.requireUser())
        return try .json(file)
    }

    @Sendable func delete(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        let id: FileID = try context.id("id", "file")
        let write = context.write(now: now)
        let store = self.store
        let result = try await services.blobs.release {
            try await store.deleteFile(id: id, context: write)
        } sweep: {
            try await store.sweepUnreferencedBlobs()
        }
        return .stored(result)
    }

    /// The bytes, streamed from disk: `ETag` is the digest (`If-None-Match` answers 304), and one
    /// `Range: bytes=…` answers 206 with `Content-Range` (416 when it lies past the end).
    @Sendable func content(_ request: Request, context: AppRequestContext) async throws -> Response {
        let file = try await store.file(id: try context.id("id", "file"), user: try context.requireUser())
        return try await Self.content(of: file, request: request, context: context, blobs: services.blobs)
    }

    /// Streams `file`'s bytes as ``content(_:context:)`` describes.
    static func content(
        of file: FileMetadata,
        request: Request,
        context: AppRequestContext,
        blobs: BlobStore,
        cacheControl: String = "private, no-cache"
    ) async throws -> Response {
        let eTag = "\"\(file.sha256)\""
        if let condition = request.headers[.ifNoneMatch], ByteRanges.matches(condition, eTag: eTag) {
            return Response(status: .notModified, headers: [.eTag: eTag])
        }
        let path = blobs.path(of: file.sha256)
        guard FileManager.default.fileExists(atPath: path) else {
            throw ServerError(.internalServerError, .server, "the file's content is missing on the server")
        }
        var headers: HTTPFields = [
            .eTag: eTag,
            .acceptRanges: "bytes",
            .contentType: file.contentType,
            .contentDisposition: FileNames.contentDisposition(file.name),
            .contentTypeOptions: "nosniff",
            .cacheControl: cacheControl,
        ]
        var range: ClosedRange<Int64>?
        let rangeApplies = request.headers[.ifRange].map { $0.trimmingCharacters(in: .whitespaces) == eTag } ?? true
        if let header = request.headers[.range], rangeApplies {
            switch ByteRanges.parse(header, size: file.size) {
            case .ignored:
                break
            case .unsatisfiable:
                throw ServerError(
                    .rangeNotSatisfiable,
                    .validation,
                    "the range lies outside the file's \(file.size) bytes",
                    headers: [.contentRange: "bytes */\(file.size)"]
                )
            case .satisfiable(let bytes):
                range = bytes
            }
        }
        let fileIO = FileIO(threadPool: .singleton)
        guard let range else {
            headers[.contentLength] = String(file.size)
            let body = file.size == 0 ? ResponseBody() : try await fileIO.loadFile(path: path, context: context)
            return Response(status: .ok, headers: headers, body: body)
        }
        headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(file.size)"
        headers[.contentLength] = String(range.count)
        let body = try await fileIO.loadFile(
            path: path,
            range: Int(range.lowerBound)...Int(range.upperBound),
            context: context
        )
        return Response(status: .partialContent, headers: headers, body: body)
    }
}
