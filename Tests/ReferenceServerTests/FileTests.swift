import AsyncHTTPClient
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import PyAirtableModels
import TestSupport
import Testing

@testable import ReferenceServer

@Suite("Files", .timeLimit(.minutes(15)))
struct FileTests {
    // MARK: Content addressing

    @Test("the same bytes uploaded twice are one blob, kept until the last file naming it goes")
    func sameBytesOneBlob() async throws {
        let directory = try TemporaryDirectory()
        let dataDirectory = directory.path
        try await FileHarness.withServer(dataDirectory: dataDirectory) { api, _ in
            let (client, _) = try await api.register()
            let bytes = Array("the same bytes, twice\n".utf8)
            let first = try await client.upload(bytes, name: "a.txt", contentType: "text/plain")
            let second = try await client.upload(bytes, name: "b.txt")
            #expect(first.id != second.id)
            #expect(first.sha256 == second.sha256)
            #expect(first.sha256 == Hex.encode(SHA256.hash(data: bytes)))
            #expect(first.size == Int64(bytes.count))
            #expect(first.contentType == "text/plain")
            #expect(second.contentType == "application/octet-stream")
            #expect(try FileHarness.blobFiles(in: dataDirectory) == [first.sha256])

            try await client.deleteFile(first.id)
            #expect(try FileHarness.blobFiles(in: dataDirectory) == [first.sha256])
            #expect(try await client.content(second.id).body == Data(bytes))

            try await client.deleteFile(second.id)
            #expect(try FileHarness.blobFiles(in: dataDirectory).isEmpty)
            #expect(try await client.send(.get, "files/\(second.id)").status == .notFound)
            #expect(try await client.send(.get, "files/\(second.id)/content").status == .notFound)

            let types = try await client.events().map(\.type)
            #expect(types.filter { $0 == .fileCreated }.count == 2)
            #expect(types.filter { $0 == .fileDeleted }.count == 2)
        }
    }

    @Test("uploads and deletions of the same bytes racing each other never lose the bytes a file names")
    func racingUploadsAndDeletions() async throws {
        let directory = try TemporaryDirectory()
        let dataDirectory = directory.path
        try await FileHarness.withServer(dataDirectory: dataDirectory) { api, _ in
            let (client, _) = try await api.register()
            let bytes = Array(repeating: UInt8(42), count: 100_000)
            // Each round, the only file naming the bytes is deleted while the same bytes are uploaded
            // again. (The window this guards, between a sweep's commit and its unlink, is narrow: the
            // test is a regression check, not proof that BlobStore's gate is needed.)
            var current = try await client.upload(bytes, name: "first").id
            for round in 0..<15 {
                let previous = current
                async let deletion: Void = client.deleteFile(previous)
                async let upload = client.upload(bytes, name: "round \(round)")
                try await deletion
                current = try await upload.id
                #expect(try await client.content(current).body == Data(bytes), "round \(round)")
                #expect(try FileHarness.blobFiles(in: dataDirectory).count == 1, "round \(round)")
            }
            try await client.deleteFile(current)
            #expect(try FileHarness.blobFiles(in: dataDirectory).isEmpty)
        }
    }

    @Test("an upload with an Idempotency-Key applies once; a replay answers the same file")
    func idempotentUpload() async throws {
        let directory = try TemporaryDirectory()
        let dataDirectory = directory.path
        try await FileHarness.withServer(dataDirectory: dataDirectory) { api, _ in
            let (client, _) = try await api.register()
            let bytes = Array(repeating: UInt8(7), count: 5000)
            let first = try await client.uploadResponse(bytes, name: "x.bin", headers: [.idempotencyKey: "upload-1"])
            let again = try await client.uploadResponse(bytes, name: "x.bin", headers: [.idempotencyKey: "upload-1"])
            #expect(first.status == .created)
            #expect(again.status == .created)
            #expect(again.headers[.idempotentReplayed] == "true")
            #expect(try again.decode(FileMetadata.self).id == first.decode(FileMetadata.self).id)
            let other = try await client.uploadResponse(
                Array(repeating: UInt8(8), count: 10),
                name: "x.bin",
                headers: [.idempotencyKey: "upload-1"]
            )
            #expect(other.status == .unprocessableContent)
            #expect(try await client.call(.get, "files", as: Page<FileMetadata>.self).data.count == 1)
            #expect(try FileHarness.blobFiles(in: dataDirectory).count == 1)
        }
    }

    // MARK: Download

    @Test("a download is byte-exact, carries the digest as ETag and answers If-None-Match with 304")
    func downloadAndETag() async throws {
        try await FileHarness.withServer { api, _ in
            let (client, _) = try await api.register()
            let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
            let file = try await client.upload(bytes, name: "report final.pdf", contentType: "application/pdf")
            let response = try await client.content(file.id)
            #expect(response.status == .ok)
            #expect(response.body == Data(bytes))
            #expect(response.headers[.eTag] == "\"\(file.sha256)\"")
            #expect(response.headers[.contentType] == "application/pdf")
            #expect(response.headers[.acceptRanges] == "bytes")
            #expect(response.headers[.contentLength] == String(bytes.count))
            #expect(
                response.headers[.contentDisposition]
                    == "attachment; filename=\"report final.pdf\"; filename*=UTF-8''report%20final.pdf"
            )

            let cached = try await client.content(file.id, headers: [.ifNoneMatch: "\"\(file.sha256)\""])
            #expect(cached.status == .notModified)
            #expect(cached.body.isEmpty)
            #expect(cached.headers[.eTag] == "\"\(file.sha256)\"")
            let stale = try await client.content(file.id, headers: [.ifNoneMatch: "\"0000\""])
            #expect(stale.status == .ok)
            #expect(stale.body.count == bytes.count)
        }
    }

    @Test("Range: first bytes, a suffix, an open end, past the end (416), and a stale If-Range")
    func ranges() async throws {
        try await FileHarness.withServer { api, _ in
            let (client, _) = try await api.register()
            let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0) }
            let file = try await client.upload(bytes, name: "r.bin")

            let head = try await client.content(file.id, headers: [.range: "bytes=0-9"])
            #expect(head.status == .partialContent)
            #expect(head.body == Data(bytes[0...9]))
            #expect(head.headers[.contentRange] == "bytes 0-9/1000")
            #expect(head.headers[.contentLength] == "10")

            let suffix = try await client.content(file.id, headers: [.range: "bytes=-5"])
            #expect(suffix.status == .partialContent)
            #expect(suffix.body == Data(bytes[995...]))
            #expect(suffix.headers[.contentRange] == "bytes 995-999/1000")

            let open = try await client.content(file.id, headers: [.range: "bytes=990-"])
            #expect(open.body == Data(bytes[990...]))
            #expect(open.headers[.contentRange] == "bytes 990-999/1000")

            let clamped = try await client.content(file.id, headers: [.range: "bytes=500-5000"])
            #expect(clamped.body == Data(bytes[500...]))

            let past = try await client.content(file.id, headers: [.range: "bytes=1000-"])
            #expect(past.status == .rangeNotSatisfiable)
            #expect(past.headers[.contentRange] == "bytes */1000")
            #expect(past.error?.error.type == .validation)

            let several = try await client.content(file.id, headers: [.range: "bytes=0-1,5-6"])
            #expect(several.status == .ok)
            #expect(several.body.count == 1000)

            let staleIfRange = try await client.content(
                file.id,
                headers: [.range: "bytes=0-9", .ifRange: "\"other\""]
            )
            #expect(staleIfRange.status == .ok)
            #expect(staleIfRange.body.count == 1000)
        }
    }

    @Test("the range parser")
    func rangeParser() {
        #expect(ByteRanges.parse("bytes=0-0", size: 10) == .satisfiable(0...0))
        #expect(ByteRanges.parse("bytes=-20", size: 10) == .satisfiable(0...9))
        #expect(ByteRanges.parse("bytes=-0", size: 10) == .unsatisfiable)
        #expect(ByteRanges.parse("bytes=0-", size: 0) == .unsatisfiable)
        #expect(ByteRanges.parse("bytes=5-2", size: 10) == .ignored)
        #expect(ByteRanges.parse("items=0-2", size: 10) == .ignored)
        #expect(ByteRanges.parse("bytes=a-b", size: 10) == .ignored)
        #expect(ByteRanges.parse("bytes=+1-2", size: 10) == .ignored)
    }

    @Test("names and types: Content-Disposition both ways, media types checked")
    func namesAndTypes() throws {
        #expect(
            FileNames.contentDisposition("résumé \"v2\"/x.pdf")
                == "attachment; filename=\"r_sum_ _v2__x.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22v2%22%2Fx.pdf"
        )
        #expect(FileNames.dispositionFilename("attachment; filename=\"a b.txt\"") == "a b.txt")
        #expect(FileNames.dispositionFilename("attachment; filename=plain.txt") == "plain.txt")
        #expect(
            FileNames.dispositionFilename("attachment; filename=\"fallback.txt\"; filename*=UTF-8''%C3%A9t%C3%A9.txt")
                == "été.txt"
        )
        #expect(FileNames.dispositionFilename("inline") == nil)
        #expect(try FileNames.stored(nil) == "file")
        #expect(try FileNames.stored("  \t ") == "file")
        #expect(try FileNames.stored("a\u{7F}b") == "a_b")
        #expect(try FileNames.contentType(nil) == "application/octet-stream")
        #expect(try FileNames.contentType("text/plain; charset=utf-8") == "text/plain; charset=utf-8")
        #expect(throws: ServerError.self) { try FileNames.contentType("text") }
        #expect(throws: ServerError.self) { try FileNames.contentType("text/plain\r\nX-Evil: 1") }
    }

    // MARK: Limits

    @Test("past the size limit an upload is a 413, announced or streamed, and leaves no partial file")
    func tooLarge() async throws {
        let directory = try TemporaryDirectory()
        let dataDirectory = directory.path
        try await FileHarness.withServer(dataDirectory: dataDirectory, maximumFileSize: 64 * 1024) { api, services in
            let (client, _) = try await api.register()
            let exact = try await client.uploadResponse(Array(repeating: 1, count: 64 * 1024), name: "limit.bin")
            #expect(exact.status == .created)

            let announced = try await client.uploadResponse(Array(repeating: 2, count: 64 * 1024 + 1), name: "big")
            #expect(announced.status == .contentTooLarge)
            #expect(announced.error?.error.type == .payloadTooLarge)

            // Chunked: no Content-Length, so the limit is found while streaming.
            let token = try #require(client.token)
            let port = try #require(api.client.port)
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/v1/files?name=chunked")
            request.method = .POST
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            let chunks = AsyncStream<ByteBuffer> { continuation in
                for _ in 0..<8 { continuation.yield(ByteBuffer(repeating: 3, count: 16 * 1024)) }
                continuation.finish()
            }
            request.body = .stream(chunks, length: .unknown)
            let streamed = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            let body = try await streamed.body.collect(upTo: 1 << 20)
            #expect(streamed.status.code == 413)
            let error = try JSONCoding.decoder.decode(ErrorResponse.self, from: Data(body.readableBytesView))
            #expect(error.error.type == .payloadTooLarge)

            #expect(try FileManager.default.contentsOfDirectory(atPath: services.blobs.temporaryDirectory).isEmpty)
            #expect(try FileHarness.blobFiles(in: dataDirectory).count == 1)
            #expect(try await client.call(.get, "files", as: Page<FileMetadata>.self).data.count == 1)
        }
    }

    @Test("the JSON body limit does not apply to uploads, which stream")
    func uploadsIgnoreJSONBodyLimit() async throws {
        try await FileHarness.withServer(maximumBodySize: 4096) { api, _ in
            let (client, _) = try await api.register()
            let bytes = Array(repeating: UInt8(9), count: 200_000)
            let file = try await client.upload(bytes, name: "over-json-limit.bin")
            #expect(file.size == 200_000)
        }
    }

    // MARK: Names

    @Test("traversal-looking names are metadata only: nothing is written outside blobs/")
    func traversalNames() async throws {
        let directory = try TemporaryDirectory()
        let dataDirectory = directory.path
        try await FileHarness.withServer(dataDirectory: dataDirectory) { api, _ in
            let (client, _) = try await api.register()
            let names = ["../../etc/passwd", "a/b/../../c", "/absolute/path", "nul\u{0}byte\n.txt", "..", "."]
            var stored: [String] = []
            for (index, name) in names.enumerated() {
                let file = try await client.upload(Array("content \(index)".utf8), name: name)
                stored.append(file.name)
                let download = try await client.content(file.id)
                let disposition = try #require(download.headers[.contentDisposition])
                #expect(!disposition.contains("/"), "\(disposition)")
            }
            #expect(stored == ["../../etc/passwd", "a/b/../../c", "/absolute/path", "nul_byte_.txt", "..", "."])

            // By Content-Disposition too.
            let byHeader = try await client.uploadResponse(
                Array("header".utf8),
                name: nil,
                headers: [.contentDisposition: "attachment; filename=\"../../../escape.sh\""]
            )
            #expect(try byHeader.decode(FileMetadata.self).name == "../../../escape.sh")

            let long = try await client.uploadResponse(Array("x".utf8), name: String(repeating: "n", count: 256))
            #expect(long.status == .unprocessableContent)
            #expect(long.error?.error.field == "name")

            let badType = try await client.uploadResponse(Array("x".utf8), name: "t", contentType: "not a type")
            #expect(badType.status == .unprocessableContent)

            // Every file in the data directory is the database, a secret, or a blob named by its digest.
            let root = URL(fileURLWithPath: dataDirectory).resolvingSymlinksInPath().path
            let enumerator = try #require(FileManager.default.enumerator(atPath: root))
            var blobs = 0
            while let relative = enumerator.nextObject() as? String {
                var isDirectory: ObjCBool = false
                _ = FileManager.default.fileExists(atPath: root + "/" + relative, isDirectory: &isDirectory)
                if isDirectory.boolValue { continue }
                if relative.hasPrefix("pyat.sqlite") || relative == "jwt-secret" || relative == "storage-secret" {
                    continue
                }
                let parts = relative.split(separator: "/")
                #expect(parts.count == 4 && parts[0] == "blobs", "unexpected file \(relative)")
                #expect(BlobStore.isDigest(String(parts.last ?? "")), "unexpected file \(relative)")
                blobs += 1
            }
            #expect(blobs == names.count + 1)
            #expect(!FileManager.default.fileExists(atPath: root + "/../escape.sh"))
        }
    }

    // MARK: Access

    @Test("RBAC: members read a workspace's files, viewers cannot upload, non-members see nothing")
    func access() async throws {
        try await FileHarness.withServer { api, _ in
            let (owner, _) = try await api.register("Owner")
            let (viewer, viewerUser) = try await api.register("Viewer")
            let (editor, editorUser) = try await api.register("Editor")
            let (outsider, _) = try await api.register("Outsider")
            let workspace = try await owner.createWorkspace()
            for (user, role) in [(viewerUser, Role.viewer), (editorUser, .editor)] {
                _ = try await owner.call(
                    .post,
                    "workspaces/\(workspace.id)/members",
                    json: AddMemberRequest(userID: user.id, role: role),
                    expect: .created,
                    as: Member.self
                )
            }
            let shared = try await owner.upload(Array("shared".utf8), name: "s.txt", workspace: workspace.id)
            #expect(shared.workspaceID == workspace.id)
            let secret = try await owner.upload(Array("private".utf8), name: "p.txt")
            #expect(secret.workspaceID == nil)

            // Reading.
            #expect(try await viewer.call(.get, "files/\(shared.id)", as: FileMetadata.self) == shared)
            #expect(try await viewer.content(shared.id).body == Data("shared".utf8))
            #expect(try await viewer.send(.get, "files/\(secret.id)").status == .notFound)
            #expect(try await outsider.send(.get, "files/\(shared.id)").status == .notFound)
            #expect(try await outsider.send(.get, "files/\(shared.id)/content").status == .notFound)
            #expect(try await outsider.call(.get, "files", as: Page<FileMetadata>.self).data.isEmpty)
            #expect(try await outsider.send(.get, "files?workspace_id=\(workspace.id)").status == .notFound)
            let viewerList = try await viewer.call(.get, "files", as: Page<FileMetadata>.self).data.map(\.id)
            #expect(viewerList == [shared.id])
            let ownerList = try await owner.call(.get, "files", as: Page<FileMetadata>.self).data.map(\.id)
            #expect(Set(ownerList) == [shared.id, secret.id])
            #expect(try await api.send(.get, "files/\(shared.id)").status == .unauthorized)

            // Uploading.
            let viewerUpload = try await viewer.uploadResponse(Array("v".utf8), name: "v", workspace: workspace.id)
            #expect(viewerUpload.status == .forbidden)
            let outsiderUpload = try await outsider.uploadResponse(Array("o".utf8), name: "o", workspace: workspace.id)
            #expect(outsiderUpload.status == .notFound)
            let anonymous = try await api.uploadResponse(Array("a".utf8), name: "a")
            #expect(anonymous.status == .unauthorized)
            let editorFile = try await editor.upload(Array("e".utf8), name: "e", workspace: workspace.id)

            // Deleting: the uploader, or creator and above.
            #expect(try await viewer.send(.delete, "files/\(shared.id)").status == .forbidden)
            #expect(try await outsider.send(.delete, "files/\(shared.id)").status == .notFound)
            #expect(try await editor.send(.delete, "files/\(shared.id)").status == .forbidden)
            #expect(try await editor.send(.delete, "files/\(editorFile.id)").status == .noContent)
            #expect(try await owner.send(.delete, "files/\(shared.id)").status == .noContent)
        }
    }

    @Test("deleting a workspace removes its files and, once unreferenced, their bytes")
    func workspaceDeletion() async throws {
        let directory = try TemporaryDirectory()
        let dataDirectory = directory.path
        try await FileHarness.withServer(dataDirectory: dataDirectory) { api, services in
            let (owner, _) = try await api.register()
            let workspace = try await owner.createWorkspace()
            let file = try await owner.upload(Array("in a workspace".utf8), name: "w", workspace: workspace.id)
            let kept = try await owner.upload(Array("private".utf8), name: "p")
            #expect(try await owner.send(.delete, "workspaces/\(workspace.id)").status == .noContent)
            #expect(try await owner.send(.get, "files/\(file.id)").status == .notFound)
            await MaintenanceService(services: services).runOnce()
            #expect(try FileHarness.blobFiles(in: dataDirectory) == [kept.sha256])
        }
    }

    @Test("a start removes partial uploads and bytes no blob row names")
    func recoveryAtStart() async throws {
        let directory = try TemporaryDirectory()
        let dataDirectory = directory.path
        let kept = try await FileHarness.withServer(dataDirectory: dataDirectory) { api, services in
            let (owner, _) = try await api.register()
            let file = try await owner.upload(Array("kept".utf8), name: "k")
            let partial = services.blobs.temporaryDirectory + "/crashed.part"
            #expect(FileManager.default.createFile(atPath: partial, contents: Data("half".utf8)))
            let stray = services.blobs.path(of: String(repeating: "ab", count: 32))
            try FileManager.default.createDirectory(
                atPath: (stray as NSString).deletingLastPathComponent,
                withIntermediateDirectories: true
            )
            #expect(FileManager.default.createFile(atPath: stray, contents: Data("stray".utf8)))
            return file.sha256
        }
        try await FileHarness.withServer(dataDirectory: dataDirectory) { _, services async throws in
            #expect(try FileManager.default.contentsOfDirectory(atPath: services.blobs.temporaryDirectory).isEmpty)
            #expect(try FileHarness.blobFiles(in: dataDirectory) == [kept])
        }
    }

    // MARK: Attachments

    @Test("an attachment names a file the writer can read; the server fills in its metadata")
    func attachments() async throws {
        try await FileHarness.withServer { api, _ in
            let (owner, _) = try await api.register("Owner")
            let (other, _) = try await api.register("Other")
            let workspace = try await owner.createWorkspace()
            let base = try await owner.createBase(in: workspace.id)
            let table = try await owner.createTable(
                in: base.id,
                fields: [.init(name: "Name", type: .singleLineText), .init(name: "Files", type: .multipleAttachments)]
            )
            let file = try await owner.upload(
                Array("%PDF".utf8),
                name: "a.pdf",
                contentType: "application/pdf",
                workspace: workspace.id
            )
            let expected = FieldValue.attachments([
                Attachment(
                    id: file.id,
                    filename: "a.pdf",
                    contentType: "application/pdf",
                    size: 4,
                    url: "/api/v1/files/\(file.id)/content"
                )
            ])
            let byID = try await owner.createRecord(
                in: table.id,
                ["Name": "one", "Files": .strings([file.id.rawValue])]
            )
            #expect(byID.fields["Files"] == expected)
            let byObject = try await owner.createRecord(
                in: table.id,
                ["Name": "two", "Files": .attachments([Attachment(id: file.id, filename: "lie.exe", size: 1)])]
            )
            #expect(byObject.fields["Files"] == expected)

            let missing = try await owner.send(
                .post,
                "tables/\(table.id)/records",
                json: RecordFieldsRequest(fields: ["Files": .strings(["fil0123456789ABCD"])])
            )
            #expect(missing.status == .unprocessableContent)
            #expect(missing.error?.error.message.contains("does not exist or you cannot read it") == true)

            let foreign = try await other.upload(Array("mine".utf8), name: "m")
            let notVisible = try await owner.send(
                .post,
                "tables/\(table.id)/records",
                json: RecordFieldsRequest(fields: ["Files": .strings([foreign.id.rawValue])])
            )
            #expect(notVisible.status == .unprocessableContent)
            #expect(notVisible.error?.error.field == "Files")
        }
    }
}

// MARK: - Support

enum FileHarness {
    /// A live server whose configuration may set the file and body limits.
    static func withServer<T: Sendable>(
        dataDirectory: String? = nil,
        maximumFileSize: Int64 = 1 << 30,
        maximumBodySize: Int = 256 * 1024,
        _ body: @escaping @Sendable (API, ServerServices) async throws -> T
    ) async throws -> T {
        let temporary = try TemporaryDirectory()
        var configuration = Harness.configuration(
            dataDirectory: dataDirectory ?? temporary.path,
            clock: ManualWallClock(),
            maximumBodySize: maximumBodySize
        )
        configuration.maximumFileSize = maximumFileSize
        let services = try await ServerServices.open(configuration: configuration, logger: Harness.logger)
        let application = Application(
            router: buildRouter(services: services),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            logger: Harness.logger
        )
        return try await application.test(.live) { client in
            try await body(API(client: client), services)
        }
    }

    /// The digests of the blob files on disk (partial uploads aside).
    static func blobFiles(in dataDirectory: String) throws -> Set<String> {
        let root = dataDirectory + "/blobs"
        var found = Set<String>()
        guard let enumerator = FileManager.default.enumerator(atPath: root) else { return found }
        while let relative = enumerator.nextObject() as? String {
            let parts = relative.split(separator: "/")
            if parts.count == 3 { found.insert(String(parts[2])) }
        }
        return found
    }
}

extension API {
    func uploadResponse(
        _ bytes: [UInt8],
        name: String?,
        contentType: String? = nil,
        workspace: WorkspaceID? = nil,
        headers extra: HTTPFields = [:]
    ) async throws -> APIResponse {
        var query: [String] = []
        let allowed = CharacterSet.alphanumerics
        if let name { query.append("name=" + (name.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")) }
        if let workspace { query.append("workspace_id=\(workspace)") }
        var headers = extra
        if let token { headers[.authorization] = "Bearer \(token)" }
        if let contentType { headers[.contentType] = contentType }
        let response = try await client.executeRequest(
            uri: "/api/v1/files" + (query.isEmpty ? "" : "?" + query.joined(separator: "&")),
            method: .post,
            headers: headers,
            body: ByteBuffer(bytes: bytes)
        )
        return APIResponse(
            status: response.status,
            headers: response.headers,
            body: Data(response.body.readableBytesView)
        )
    }

    func upload(
        _ bytes: [UInt8],
        name: String,
        contentType: String? = nil,
        workspace: WorkspaceID? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> FileMetadata {
        let response = try await uploadResponse(bytes, name: name, contentType: contentType, workspace: workspace)
        #expect(response.status == .created, "upload: \(response.text)", sourceLocation: sourceLocation)
        return try response.decode(FileMetadata.self, sourceLocation: sourceLocation)
    }

    func content(_ id: FileID, headers: HTTPFields = [:]) async throws -> APIResponse {
        try await send(.get, "files/\(id)/content", headers: headers)
    }

    func deleteFile(_ id: FileID, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let response = try await send(.delete, "files/\(id)")
        #expect(response.status == .noContent, "delete: \(response.text)", sourceLocation: sourceLocation)
    }
}
