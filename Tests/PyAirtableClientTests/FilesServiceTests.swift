import Crypto
import Foundation
import PyAirtableClient
import PyAirtableModels
import PyAirtableTesting
import ReferenceServer
import ReferenceServerTesting
import Synchronization
import TestSupport
import Testing

/// `client.files` against the real reference server.
@Suite("Files service", .timeLimit(.minutes(15)))
struct FilesServiceTests {
    @Test("upload from disk, metadata, list, byte-exact download, a range, delete")
    func roundTrip() async throws {
        let scratch = try TemporaryDirectory()
        let source = scratch.url("source.bin")
        let size: Int64 = 3 * 1024 * 1024 + 17
        let digest = try TemporaryDirectory.writePattern(to: source, size: size)
        try await Fixtures.withDemoClient { client, _ in
            let uploaded = ProgressLog()
            let file = try await client.files.upload(
                fileAt: source,
                contentType: "application/x-test",
                progress: uploaded.record
            )
            #expect(file.name == "source.bin")
            #expect(file.size == size)
            #expect(file.sha256 == digest)
            #expect(file.contentType == "application/x-test")
            #expect(uploaded.last == TransferProgress(completed: size, total: size))
            #expect(uploaded.count > 1, "progress is reported per chunk")

            #expect(try await client.files.get(file.id) == file)
            #expect(try await client.files.list().data.map(\.id).contains(file.id))
            #expect(try await client.files.all().contains(file))

            let destination = scratch.url("copy.bin")
            let downloaded = ProgressLog()
            let result = try await client.files.download(file.id, to: destination, progress: downloaded.record)
            #expect(result.size == size)
            #expect(result.eTag == "\"\(digest)\"")
            #expect(downloaded.last == TransferProgress(completed: size, total: size))
            #expect(try TemporaryDirectory.sha256(of: destination) == digest)
            let original = try Data(contentsOf: source)
            #expect(try Data(contentsOf: destination) == original)

            let range = try await client.files.content(file.id, range: 10...19)
            #expect(range == original[10...19])

            try await client.files.delete(file.id)
            await #expect(throws: PyAirtableError.notFound) { try await client.files.get(file.id) }
            // Nothing but the finished copy is left beside the destination.
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: scratch.path).sorted() == [
                    "copy.bin", "source.bin",
                ]
            )
        }
    }

    @Test("small uploads from memory go through the usual request path, into a workspace")
    func uploadData() async throws {
        try await Fixtures.withDemoClient { client, server in
            let workspace = try #require(try await client.workspaces.list().first)
            let file = try await client.files.upload(
                data: Data("hello".utf8),
                name: "hello.txt",
                contentType: "text/plain",
                workspace: workspace.id
            )
            #expect(file.workspaceID == workspace.id)
            #expect(try await client.files.content(file.id) == Data("hello".utf8))
            #expect(try await client.files.list(in: workspace.id).data == [file])
            _ = server
        }
    }

    @Test("the server's refusals arrive as PyAirtableError with the wire error")
    func errors() async throws {
        let scratch = try TemporaryDirectory()
        let source = scratch.url("big.bin")
        _ = try TemporaryDirectory.writePattern(to: source, size: 4096)
        let smallLimit: @Sendable (inout ServerConfiguration) -> Void = { $0.maximumFileSize = 1000 }
        try await TestServer.withRunning(configure: smallLimit) { server in
            let demo = try await server.seedDemo()
            try await Fixtures.withClient(server, token: demo.token) { client in
                let error = await #expect(throws: PyAirtableError.payloadTooLarge) {
                    try await client.files.upload(fileAt: source)
                }
                #expect(error?.status == 413)
                #expect(error?.errorType == .payloadTooLarge)
                #expect(error?.requestID != nil)
                await #expect(throws: PyAirtableError.notFound) {
                    try await client.files.download(FileID.generate(), to: scratch.url("missing"))
                }
                #expect(!FileManager.default.fileExists(atPath: scratch.url("missing").path))
                await #expect(throws: PyAirtableError.invalidArgument) {
                    try await client.files.upload(fileAt: scratch.url("no-such-file"))
                }
            }
        }
    }

    @Test("a streamed transfer whose access token the server finds expired refreshes once and goes through")
    func streamingRefreshesOn401() async throws {
        let scratch = try TemporaryDirectory()
        let source = scratch.url("after-refresh.bin")
        let digest = try TemporaryDirectory.writePattern(to: source, size: 600_000)
        let time = ServerTime()
        try await TestServer.withRunning(configure: time.install) { server in
            let demo = try await server.seedDemo()
            try await Fixtures.withClient(
                server,
                token: nil,
                configure: { $0.credentials = .store(InMemoryTokenStore()) }
            ) { client in
                try await client.auth.login(email: demo.email, password: demo.password)
                time.advance(by: 20 * 60)
                let file = try await client.files.upload(fileAt: source)
                #expect(file.sha256 == digest)
                #expect(await client.refreshCount == 1)
                time.advance(by: 20 * 60)
                let copy = scratch.url("copy.bin")
                try await client.files.download(file.id, to: copy)
                #expect(try TemporaryDirectory.sha256(of: copy) == digest)
                #expect(await client.refreshCount == 2)
            }
        }
    }

    @Test("a custom transport sees file transfers, streamed through it")
    func nonStreamingTransport() async throws {
        let scratch = try TemporaryDirectory()
        let source = scratch.url("whole.bin")
        let digest = try TemporaryDirectory.writePattern(to: source, size: 100_000)
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let mock = MockTransport(forwardingTo: AsyncHTTPClientTransport())
            try await Fixtures.withClient(server, token: demo.token, transport: mock) { client in
                let file = try await client.files.upload(fileAt: source, name: "whole.bin")
                #expect(file.sha256 == digest)
                let uploads = mock.requests(path: "/api/v1/files")
                #expect(uploads.count == 1)
                // The recorded body reads the file again from disk (it can be sent again).
                #expect(try await uploads.first?.body?.collect(upTo: 1 << 20) == (try Data(contentsOf: source)))
                let copy = scratch.url("copy.bin")
                try await client.files.download(file.id, to: copy)
                #expect(try TemporaryDirectory.sha256(of: copy) == digest)
                #expect(mock.requests(path: "/api/v1/files/\(file.id)/content").count == 1)
            }
        }
    }
}

/// Progress reports, recorded.
final class ProgressLog: Sendable {
    private let reports = Mutex<[TransferProgress]>([])

    var record: @Sendable (TransferProgress) -> Void {
        { [self] progress in reports.withLock { $0.append(progress) } }
    }

    var last: TransferProgress? { reports.withLock { $0.last } }
    var count: Int { reports.withLock { $0.count } }
}

extension TemporaryDirectory {

    /// Writes `size` generated bytes (never all in memory) and returns their SHA-256.
    static func writePattern(to url: URL, size: Int64) throws -> String {
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown)
        }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        var hasher = SHA256()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var written: Int64 = 0
        while written < size {
            let count = Int(min(Int64(chunk.count), size - written))
            chunk.withUnsafeMutableBytes { raw in
                for offset in stride(from: 0, to: raw.count, by: 8) {
                    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    raw.storeBytes(of: state.littleEndian, toByteOffset: offset, as: UInt64.self)
                }
            }
            let slice = chunk[0..<count]
            hasher.update(data: slice)
            try handle.write(contentsOf: slice)
            written += Int64(count)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    static func sha256(of url: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var hasher = SHA256()
        while let data = try handle.read(upToCount: 1 << 20), !data.isEmpty {
            hasher.update(data: data)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
