import Foundation
import Testing

/// Ids on the command line are read by their type before a command runs: a word that is not an id
/// of the kind the argument takes is a usage error (exit status 2) that says which argument refused
/// it and what an id of that kind looks like. No server is needed: the server URL given to these
/// runs is one nothing listens on, so a command that let a bad id through would fail with status 1.
@Suite("pyat id arguments", .timeLimit(.minutes(10)))
struct IdentifierArgumentTests {
    /// A command line with one bad id, the argument that refuses it and the prefix it expects.
    struct BadID: Sendable, CustomTestStringConvertible {
        var arguments: [String]
        var value: String
        var argument: String
        var prefix: String

        var testDescription: String { "pyat " + arguments.joined(separator: " ") }
    }

    static let badIDs: [BadID] = [
        BadID(arguments: ["workspaces", "get", "wspNOPE"], value: "wspNOPE", argument: "<workspace>", prefix: "wsp"),
        BadID(
            arguments: ["workspaces", "delete", "wsp0123456789abc!"],
            value: "wsp0123456789abc!",
            argument: "<workspace>",
            prefix: "wsp"
        ),
        BadID(
            arguments: ["bases", "list", "app0123456789abcd"],
            value: "app0123456789abcd",
            argument: "<workspace>",
            prefix: "wsp"
        ),
        BadID(arguments: ["bases", "update", "nope", "--name", "X"], value: "nope", argument: "<base>", prefix: "app"),
        BadID(
            arguments: ["tables", "get", "wsp0123456789abcd"],
            value: "wsp0123456789abcd",
            argument: "<table>",
            prefix: "tbl"
        ),
        BadID(
            arguments: ["tables", "create", "tbl0123456789abcd", "--name", "T", "--field-def", "Name:singleLineText"],
            value: "tbl0123456789abcd",
            argument: "<base>",
            prefix: "app"
        ),
        BadID(arguments: ["fields", "list", "tblSHORT"], value: "tblSHORT", argument: "<table>", prefix: "tbl"),
        BadID(
            arguments: ["fields", "update", "tbl0123456789abcd", "--name", "X"],
            value: "tbl0123456789abcd",
            argument: "<field>",
            prefix: "fld"
        ),
        BadID(
            arguments: [
                "fields", "create", "tbl0123456789abcd", "--name", "Link", "--type", "multipleRecordLinks",
                "--linked-table", "nope",
            ],
            value: "nope",
            argument: "--linked-table <tbl>",
            prefix: "tbl"
        ),
        BadID(arguments: ["views", "get", "viw"], value: "viw", argument: "<view>", prefix: "viw"),
        BadID(
            arguments: ["views", "create", "viw0123456789abcd", "--name", "V"],
            value: "viw0123456789abcd",
            argument: "<table>",
            prefix: "tbl"
        ),
        BadID(arguments: ["records", "get", "recNOPE"], value: "recNOPE", argument: "<record>", prefix: "rec"),
        BadID(
            arguments: ["records", "delete", "tmp_short"],
            value: "tmp_short",
            argument: "<record>",
            prefix: "rec"
        ),
        BadID(arguments: ["records", "list", "appNOPE"], value: "appNOPE", argument: "<table>", prefix: "tbl"),
        BadID(arguments: ["webhooks", "enable", "whk-1"], value: "whk-1", argument: "<webhook>", prefix: "whk"),
        BadID(arguments: ["webhooks", "deliveries", "x"], value: "x", argument: "<webhook>", prefix: "whk"),
        BadID(
            arguments: ["webhooks", "create", "app0123456789abcd", "--url", "http://127.0.0.1:9/", "--table", "nope"],
            value: "nope",
            argument: "--table <table>",
            prefix: "tbl"
        ),
        BadID(arguments: ["files", "get", "nope"], value: "nope", argument: "<file>", prefix: "fil"),
        BadID(
            arguments: ["files", "list", "--workspace", "nope"],
            value: "nope",
            argument: "--workspace",
            prefix: "wsp"
        ),
        BadID(arguments: ["watch", "tbl"], value: "tbl", argument: "<table>", prefix: "tbl"),
        BadID(
            arguments: ["serve", "--port", "0", "--operator", "usr0123456789abcd", "--operator", "wsp0123456789abcd"],
            value: "wsp0123456789abcd",
            argument: "--operator",
            prefix: "usr"
        ),
    ]

    @Test("a bad id exits 2, naming the argument and what an id of its kind looks like", arguments: badIDs)
    func badID(_ bad: BadID) async throws {
        let run = try await Self.pyat(bad.arguments)
        #expect(run.status == 2, "\(run.stderr)")
        #expect(run.stdout.isEmpty)
        #expect(
            run.stderr.contains(
                "'\(bad.value)' is not a valid id: expected '\(bad.prefix)' followed by 14 letters or digits"
            ),
            "\(run.stderr)"
        )
        #expect(run.stderr.contains("is invalid for '\(bad.argument)"), "\(run.stderr)")
    }

    @Test("a record argument takes a temporary id (tmp_…) as well as a record id")
    func temporaryRecordID() async throws {
        for id in ["tmp_0123456789abcd", "rec0123456789abcd"] {
            let run = try await Self.pyat(["records", "delete", id])
            // Read and accepted: the command went on to the server, which nothing answers.
            #expect(run.status != 2, "\(run.stderr)")
            #expect(!run.stderr.contains("is not a valid id"), "\(run.stderr)")
        }
    }

    /// Runs `pyat arguments` against a server URL nothing listens on, with config and cache in a
    /// fresh directory that is deleted afterwards.
    static func pyat(_ arguments: [String]) async throws -> PyatRun {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-ids-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: home) }
        var environment = ProcessInfo.processInfo.environment
        environment["PYAT_SERVER"] = "http://127.0.0.1:1"
        environment["PYAT_TOKEN"] = "pat_not-used"
        environment["XDG_CONFIG_HOME"] = home.path
        environment["XDG_CACHE_HOME"] = home.appendingPathComponent("cache").path
        return try await PyatProcess.run(arguments, environment: environment, timeout: .seconds(120))
    }
}
