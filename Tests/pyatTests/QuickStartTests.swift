import Foundation
import ReferenceServer
import ReferenceServerTesting
import Testing

/// The README's "Use the SDK" program is `Examples/QuickStart/main.swift`, byte for byte, and it
/// runs to completion against a demo server.
@Suite("README quick start", .timeLimit(.minutes(15)))
struct QuickStartTests {
    static var root: URL {
        var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) {
            directory = directory.deletingLastPathComponent()
        }
        return directory
    }

    /// The first ```swift block of README.md that imports the SDK.
    static func readmeProgram() throws -> String {
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let blocks = readme.components(separatedBy: "```swift\n").dropFirst().map {
            $0.components(separatedBy: "\n```").first ?? ""
        }
        return try #require(blocks.first { $0.contains("import PyAirtableClient") }) + "\n"
    }

    @Test("the README program is the example target's source")
    func readmeMatchesExample() throws {
        let example = try String(
            contentsOf: Self.root.appendingPathComponent("Examples/QuickStart/main.swift"),
            encoding: .utf8
        )
        #expect(
            try Self.readmeProgram() == example,
            "README.md's Use the SDK block and Examples/QuickStart/main.swift differ"
        )
    }

    @Test("the program runs against `pyat serve --demo` data and exits 0")
    func runs() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            var environment = ProcessInfo.processInfo.environment
            environment["PYAT_SERVER"] = server.url
            environment["PYAT_TOKEN"] = demo.token
            let run = try await PyatProcess.run(
                executable: PyatBinary.url.deletingLastPathComponent().appendingPathComponent("pyat-quickstart").path,
                [],
                environment: environment
            )
            let text = run.stdout
            #expect(run.status == 0, "\(text)\n\(run.stderr)")
            #expect(text.contains("signed in as demo@pyat.dev"))
            #expect(text.contains("101 records in Tasks"))
            #expect(text.contains("conflict: the record is at version 2"))
            #expect(text.contains("merged: version 3, score 4"))
        }
    }
}
