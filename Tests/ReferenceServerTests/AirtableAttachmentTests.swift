import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import PyAirtableModels
import ReferenceServerTesting
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing

@testable import ReferenceServer

/// A plain HTTP server on an ephemeral loopback port that attachments are downloaded from.
final class FileOrigin: Sendable {
    let requests = Mutex<[String]>([])
    private let boundPort = Mutex(0)
    var port: Int { boundPort.withLock { $0 } }
    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }
    static let report = Data("hello attachment".utf8)

    static func withRunning<T: Sendable>(_ body: @Sendable (FileOrigin) async throws -> T) async throws -> T {
        let origin = FileOrigin()
        let router = Router()
        router.get("/{name}") { request, context -> Response in
            let name = context.parameters.get("name") ?? ""
            origin.requests.withLock { $0.append(name) }
            switch name {
            case "report.txt":
                return Response(
                    status: .ok,
                    headers: [.contentType: "text/plain"],
                    body: .init(byteBuffer: ByteBuffer(bytes: Self.report))
                )
            case "moved":
                return Response(status: .found, headers: [.location: "/report.txt"])
            case "to-private":
                return Response(status: .found, headers: [.location: "http://10.255.255.1/secret"])
            case "big":
                return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(repeating: 7, count: 2 << 20)))
            case "slow":
                // Answers only when the download gives up (or after a minute, so it always ends).
                try? await Task.sleep(for: .seconds(60))
                return Response(status: .ok)
            default:
                return Response(status: .notFound)
            }
        }
        return try await LoopbackServer.withRunning(router, label: "pyat.test.file-origin") { port in
            origin.boundPort.withLock { $0 = port }
            return try await body(origin)
        }
    }
}

@Suite("Airtable v0: attachments by URL and signed attachment URLs", .timeLimit(.minutes(5)))
struct AirtableAttachmentTests {
    typealias Meta = AirtableMetaTests

    static let fields: [CreateFieldRequest] = [
        .init(name: "Name", type: .singleLineText), .init(name: "Files", type: .multipleAttachments),
    ]

    static func files(_ record: [String: Any]) -> [[String: Any]] {
        ((record["fields"] as? [String: Any])?["Files"] as? [[String: Any]]) ?? []
    }

    /// GET of an attachment URL with no token.
    static func fetch(_ url: String, _ api: API) async throws -> APIResponse {
        let components = try #require(URLComponents(string: url))
        let path = components.percentEncodedPath + "?" + (components.percentEncodedQuery ?? "")
        return try await api.send(.get, path)
    }

    @Test("a URL is downloaded once, stored as a file, served at a signed URL that works without a token and expires")
    func downloadAndServe() async throws {
        let clock = ManualWallClock()
        try await FileOrigin.withRunning { origin in
            let configure: (inout ServerConfiguration) -> Void = { $0.airtable.allowLoopbackDownloads = true }
            try await Harness.withServer(clock: clock, via: .router, configure: configure) { api, services in
                let (client, _) = try await api.register()
                let workspace = try await client.createWorkspace()
                let base = try await client.createBase(in: workspace.id)
                let table = try await client.createTable(in: base.id, "Docs", fields: Self.fields)
                let path = "/v0/\(base.id)/\(table.id)"
                let report = origin.url("/report.txt")
                let created = try AirtableRecordsTests.object(
                    try await client.send(
                        .post,
                        path,
                        raw:
                            #"{"fields": {"Name": "a", "Files": [{"url": "\#(report)", "filename": "r.txt"}, {"url": "\#(report)"}]}}"#
                    )
                )
                let files = Self.files(created)
                // The same URL twice in one write is fetched once and names one file.
                #expect(files.count == 1)
                #expect(origin.requests.withLock { $0 } == ["report.txt"])
                let attachment = try #require(files.first)
                let id = try #require(attachment["id"] as? String)
                #expect(id.hasPrefix("fil"))
                #expect(attachment["filename"] as? String == "r.txt" && attachment["type"] as? String == "text/plain")
                #expect(attachment["size"] as? Int == FileOrigin.report.count)
                let url = try #require(attachment["url"] as? String)
                #expect(url.contains("/v0/attachments/\(id)/r.txt?expires=") && url.contains("&signature="))

                // The file is one the caller can see under /api/v1 too, in the base's workspace.
                let file = try await client.call(.get, "files/\(id)", as: FileMetadata.self)
                #expect(file.workspaceID == workspace.id && file.size == Int64(FileOrigin.report.count))

                // No token: the signature is the access.
                let served = try await Self.fetch(url, api)
                #expect(served.status == .ok)
                #expect(served.body == FileOrigin.report)
                let tampered = url.replacingOccurrences(of: "signature=", with: "signature=0")
                try Meta.expectAirtableError(
                    try await Self.fetch(tampered, api),
                    .forbidden,
                    "INVALID_PERMISSIONS"
                )
                // Another file's id under this signature is refused too.
                let other = url.replacingOccurrences(of: id, with: FileID.generate().rawValue)
                #expect(try await Self.fetch(other, api).status == .forbidden)

                // A redirect is followed; the same bytes are stored once.
                let moved = try AirtableRecordsTests.object(
                    try await client.send(
                        .post,
                        path,
                        raw: #"{"fields": {"Files": [{"url": "\#(origin.url("/moved"))"}]}}"#
                    )
                )
                let movedID = try #require(Self.files(moved).first?["id"] as? String)
                #expect(movedID != id)
                let movedFile = try await client.call(.get, "files/\(movedID)", as: FileMetadata.self)
                #expect(movedFile.sha256 == file.sha256 && movedFile.name == "report.txt")
                #expect(FileManager.default.fileExists(atPath: services.blobs.path(of: file.sha256)))

                // Past its hour and lifetime the URL answers 410; a fresh read (with a personal access
                // token, which outlives the session's access token) gives a working one.
                let token = try await client.call(
                    .post,
                    "auth/tokens",
                    json: CreateAccessTokenRequest(name: "later"),
                    expect: .created,
                    as: AccessToken.self
                )
                let pat = api.authorized(try #require(token.token))
                clock.advance(by: 4 * 3600)
                try Meta.expectAirtableError(
                    try await Self.fetch(url, api),
                    .gone,
                    "ATTACHMENT_URL_EXPIRED"
                )
                let again = try AirtableRecordsTests.object(
                    try await pat.send(.get, "\(path)/\(try #require(created["id"] as? String))")
                )
                let fresh = try #require(Self.files(again).first?["url"] as? String)
                #expect(fresh != url)
                #expect(try await Self.fetch(fresh, api).status == .ok)
            }
        }
    }

    @Test(
        "refused downloads (loopback by default, a redirect inward, 404, too large, too slow, a viewer) write nothing"
    )
    func refusals() async throws {
        try await FileOrigin.withRunning { origin in
            let configure: (inout ServerConfiguration) -> Void = {
                $0.airtable.allowLoopbackDownloads = true
                // Ample for a local download on a loaded machine (2 s was not), far below the slow
                // origin's 60 s.
                $0.airtable.attachmentDownloadTimeout = .seconds(8)
                $0.maximumFileSize = 1 << 20
            }
            try await Harness.withServer(via: .router, configure: configure) { api, _ in
                let (client, _) = try await api.register()
                let (viewer, viewerUser) = try await api.register("Viewer")
                let workspace = try await client.createWorkspace()
                try await client.addMember(workspace.id, user: viewerUser.id, role: .viewer)
                let base = try await client.createBase(in: workspace.id)
                let table = try await client.createTable(in: base.id, "Docs", fields: Self.fields)
                let path = "/v0/\(base.id)/\(table.id)"
                func create(_ url: String, as caller: API) async throws -> APIResponse {
                    try await caller.send(
                        .post,
                        path,
                        raw: #"{"fields": {"Name": "x", "Files": [{"url": "\#(url)"}]}}"#
                    )
                }
                for name in ["/to-private", "/missing", "/big", "/slow"] {
                    let started = ContinuousClock.now
                    try Meta.expectAirtableError(
                        try await create(origin.url(name), as: client),
                        .unprocessableContent,
                        "INVALID_ATTACHMENT_OBJECT"
                    )
                    // The slow one is given up at the bound, not when the origin answers (60 s).
                    #expect(ContinuousClock.now - started < .seconds(30))
                }
                try Meta.expectAirtableError(
                    try await create("ftp://example.com/x", as: client),
                    .unprocessableContent,
                    "INVALID_ATTACHMENT_OBJECT"
                )
                try Meta.expectAirtableError(
                    try await create(origin.url("/report.txt"), as: viewer),
                    .forbidden,
                    "INVALID_PERMISSIONS"
                )
                #expect(!origin.requests.withLock { $0 }.contains("report.txt"))
                // A write refused after its download keeps no file: an unknown field fails the write.
                let failed = try await client.send(
                    .post,
                    path,
                    raw: #"{"fields": {"Nope": 1, "Files": [{"url": "\#(origin.url("/report.txt"))"}]}}"#
                )
                try Meta.expectAirtableError(failed, .unprocessableContent, "UNKNOWN_FIELD_NAME")
                #expect(!origin.requests.withLock { $0 }.contains("report.txt"))
                // A bad item beside a URL in the same cell is refused after the download: the file goes too.
                let mixed = try await client.send(
                    .post,
                    path,
                    raw: #"{"fields": {"Files": [{"url": "\#(origin.url("/report.txt"))"}, {"id": "bogus"}]}}"#
                )
                try Meta.expectAirtableError(mixed, .unprocessableContent, "INVALID_ATTACHMENT_OBJECT")
                #expect(try await client.call(.get, "files", as: Page<FileMetadata>.self).data.isEmpty)
                // One the transaction refuses (the record is not there) removes what it downloaded.
                let missing = try await client.send(
                    .patch,
                    "\(path)/\(RecordID.generate())",
                    raw: #"{"fields": {"Files": [{"url": "\#(origin.url("/report.txt"))"}]}}"#
                )
                try Meta.expectAirtableError(missing, .notFound, "MODEL_ID_NOT_FOUND")
                #expect(origin.requests.withLock { $0 }.contains("report.txt"))
                #expect(try await client.call(.get, "files", as: Page<FileMetadata>.self).data.isEmpty)
                #expect(try AirtableRecordsTests.records(try await client.send(.get, path)).isEmpty)
            }
        }
        // Without an explicit setting, loopback is refused, and the refusal names no address.
        try await FileOrigin.withRunning { origin in
            try await Harness.withServer(via: .router) { api, _ in
                let (client, _) = try await api.register()
                let workspace = try await client.createWorkspace()
                let base = try await client.createBase(in: workspace.id)
                let table = try await client.createTable(in: base.id, "Docs", fields: Self.fields)
                let response = try await client.send(
                    .post,
                    "/v0/\(base.id)/\(table.id)",
                    raw: #"{"fields": {"Files": [{"url": "\#(origin.url("/report.txt"))"}]}}"#
                )
                try Meta.expectAirtableError(response, .unprocessableContent, "INVALID_ATTACHMENT_OBJECT")
                #expect(origin.requests.withLock { $0 }.isEmpty)
            }
        }
    }
}
