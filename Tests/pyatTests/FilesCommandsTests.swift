import Foundation
import PyAirtableClient
import PyAirtableModels
import ReferenceServer
import ReferenceServerTesting
import TestSupport
import Testing

@Suite("pyat files", .timeLimit(.minutes(15)))
struct FilesCommandsTests {
    @Test("upload, list, get, download (-o, --force, --format json) and delete")
    func lifecycle() async throws {
        try await CLIFixture.with { fixture in
            let directory = try TemporaryDirectory()
            let source = directory.path + "/notes.txt"
            let bytes = Data((0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
            try bytes.write(to: URL(fileURLWithPath: source))
            let workspace = try #require(fixture.demo.workspaceID).rawValue

            let upload = try await fixture.pyat([
                "files", "upload", source, "--type", "text/plain", "--workspace", workspace, "--format", "json",
            ])
            #expect(upload.status == 0, "\(upload.stderr)")
            #expect(upload.stderr.isEmpty, "no progress bar when standard error is not a terminal")
            let metadata = try upload.jsonObject()
            let id = try #require(metadata["id"] as? String)
            #expect(metadata["name"] as? String == "notes.txt")
            #expect(metadata["size"] as? Int == bytes.count)
            #expect(metadata["content_type"] as? String == "text/plain")
            #expect(metadata["workspace_id"] as? String == workspace)
            #expect((metadata["sha256"] as? String)?.count == 64)

            let list = try await fixture.pyat(["files", "list", "--format", "json"])
            #expect(list.status == 0, "\(list.stderr)")
            #expect(try list.jsonArray().compactMap { $0["id"] as? String } == [id])
            let table = try await fixture.pyat(["files", "list"])
            #expect(table.stdoutLines.first?.hasPrefix("id") == true)
            #expect(table.stdoutLines.last?.hasPrefix(id) == true)

            let get = try await fixture.pyat(["files", "get", id, "--format", "json"])
            #expect(try get.jsonObject()["sha256"] as? String == metadata["sha256"] as? String)

            let copy = directory.path + "/copy.txt"
            let download = try await fixture.pyat(["files", "download", id, "-o", copy])
            #expect(download.status == 0, "\(download.stderr)")
            #expect(download.stdout.contains("Wrote \(bytes.count) bytes"))
            #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == bytes)

            let refused = try await fixture.pyat(["files", "download", id, "-o", copy])
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("--force"))

            try Data("old".utf8).write(to: URL(fileURLWithPath: copy))
            let forced = try await fixture.pyat(["files", "download", id, "-o", copy, "--force", "--format", "json"])
            #expect(forced.status == 0, "\(forced.stderr)")
            #expect(try forced.jsonObject()["id"] as? String == id, "--format json prints the metadata")
            #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == bytes)

            let delete = try await fixture.pyat(["files", "delete", id, "--format", "json"])
            #expect(delete.status == 0, "\(delete.stderr)")
            #expect(try delete.jsonObject()["deleted"] as? Bool == true)
            let gone = try await fixture.pyat(["files", "get", id])
            #expect(gone.status == 1)
            #expect(gone.stderr.contains("not found"))

            let badID = try await fixture.pyat(["files", "get", "nope"])
            #expect(badID.status == 2)
            let missing = try await fixture.pyat(["files", "upload", directory.path + "/absent"])
            #expect(missing.status == 2)
        }
    }

    @Test("download without -o writes the stored name, made safe, in the current directory")
    func defaultName() async throws {
        try await CLIFixture.with { fixture in
            let directory = try TemporaryDirectory()
            let source = directory.path + "/source.bin"
            try Data("payload".utf8).write(to: URL(fileURLWithPath: source))
            let upload = try await fixture.pyat([
                "files", "upload", source, "--name", "../../.evil\u{1}name.txt", "--format", "json",
            ])
            #expect(upload.status == 0, "\(upload.stderr)")
            let id = try #require(try upload.jsonObject()["id"] as? String)

            let working = directory.path + "/work"
            try FileManager.default.createDirectory(atPath: working, withIntermediateDirectories: true)
            let run = try await fixture.pyatIn(working, ["files", "download", id])
            #expect(run.status == 0, "\(run.stderr)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: working) == ["evil_name.txt"])
            #expect(try Data(contentsOf: URL(fileURLWithPath: working + "/evil_name.txt")) == Data("payload".utf8))
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == ["source.bin", "work"]
            )
        }
    }
}

@Suite("pyat bench files", .timeLimit(.minutes(15)))
struct FilesBenchTests {
    /// The memory check of streamed transfers, isolated from the other tests in a child process
    /// where the server and the SDK both run. 128 MiB keeps the load on the suite's neighbours
    /// moderate; `pyat bench files` defaults to the 1 GiB. Buffering the file whole would
    /// grow resident memory by at least the file's size; the bound is a third of it.
    @Test("bench files streams 128 MiB through the SDK and server byte-exact, memory growing far less than the file")
    func benchFiles() async throws {
        let run = try await PyatProcess.run(
            ["bench", "files", "--size-mib", "128", "--json"],
            environment: ProcessInfo.processInfo.environment
        )
        #expect(run.status == 0, "\(run.stderr)")
        let figures = try run.jsonObject()
        #expect(figures["size_mib"] as? Double == 128)
        for key in ["upload_seconds", "download_seconds", "disk_copy_seconds", "rss_peak_mib"] {
            #expect((figures[key] as? Double ?? 0) > 0, "\(key)")
        }
        let growth = try #require(figures["rss_growth_mib"] as? Double)
        #expect(growth < 128.0 / 3, "resident memory grew by \(growth) MiB moving a 128 MiB file")
    }
}

extension CLIFixture {
    /// Runs `pyat arguments` with `directory` as the working directory (through `/bin/sh`).
    func pyatIn(_ directory: String, _ arguments: [String]) async throws -> PyatRun {
        func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let command =
            "cd \(quoted(directory)) && exec \(quoted(PyatBinary.url.path)) "
            + arguments.map(quoted).joined(separator: " ")
        var environment = ProcessInfo.processInfo.environment
        environment["PYAT_SERVER"] = server.url
        environment["PYAT_TOKEN"] = demo.token
        environment["XDG_CONFIG_HOME"] = configHome.path
        environment["XDG_CACHE_HOME"] = cacheHome.path
        return try await PyatProcess.run(executable: "/bin/sh", ["-c", command], environment: environment)
    }
}
