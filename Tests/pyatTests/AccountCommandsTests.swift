import Foundation
import PyAirtableClient
import ReferenceServer
import ReferenceServerTesting
import Testing

@Suite("pyat health, whoami, login, logout", .timeLimit(.minutes(15)))
struct AccountCommandsTests {
    @Test("health reports the server and database as ok, as a table and as JSON")
    func health() async throws {
        try await CLIFixture.with { fixture in
            let json = try await fixture.pyat(["health", "--format", "json"], authenticated: false)
            #expect(json.status == 0, "\(json.stderr)")
            let object = try json.jsonObject()
            #expect(object["status"] as? String == "ok")
            #expect(object["database"] as? String == "ok")

            let table = try await fixture.pyat(["health"], authenticated: false)
            #expect(table.status == 0)
            #expect(table.stdoutLines.first { $0.hasPrefix("status") }?.hasSuffix("ok") == true, "\(table.stdout)")
        }
    }

    @Test("whoami with PYAT_TOKEN shows the demo user; with --token it overrides PYAT_TOKEN")
    func whoami() async throws {
        try await CLIFixture.with { fixture in
            let run = try await fixture.pyat(["whoami", "--format", "json"])
            #expect(run.status == 0, "\(run.stderr)")
            #expect(try run.jsonObject()["email"] as? String == "demo@pyat.dev")

            let bad = try await fixture.pyat(["whoami", "--token", "pat_not-a-real-token"])
            #expect(bad.status == 1)
            #expect(bad.stderr.hasPrefix("error: You are not signed in"), "\(bad.stderr)")
            #expect(bad.stderr.contains("(request req"), "\(bad.stderr)")
            #expect(bad.stdout.isEmpty)
        }
    }

    @Test("login --password-stdin saves credentials (0600) that whoami uses; logout forgets them")
    func loginWhoamiLogout() async throws {
        try await CLIFixture.with { fixture in
            let before = try await fixture.pyat(["whoami"], authenticated: false)
            #expect(before.status == 1)
            #expect(before.stderr.contains("pyat login"), "\(before.stderr)")

            let login = try await fixture.pyat(
                ["login", "--email", "demo@pyat.dev", "--password-stdin"],
                authenticated: false,
                stdin: "\(fixture.demo.password)\n"
            )
            #expect(login.status == 0, "\(login.stderr)")
            #expect(login.stdout.contains("demo@pyat.dev"))
            let attributes = try FileManager.default.attributesOfItem(atPath: fixture.credentialsFile.path)
            #expect(attributes[.posixPermissions] as? Int == 0o600)
            let saved = try String(contentsOf: fixture.credentialsFile, encoding: .utf8)
            #expect(saved.contains(fixture.server.url))
            #expect(saved.contains("refresh_token"))

            let whoami = try await fixture.pyat(["whoami", "--format", "json"], authenticated: false)
            #expect(whoami.status == 0, "\(whoami.stderr)")
            #expect(try whoami.jsonObject()["email"] as? String == "demo@pyat.dev")

            let logout = try await fixture.pyat(["logout"], authenticated: false)
            #expect(logout.status == 0, "\(logout.stderr)")
            let remaining = try String(contentsOf: fixture.credentialsFile, encoding: .utf8)
            #expect(!remaining.contains(fixture.server.url))

            let after = try await fixture.pyat(["whoami"], authenticated: false)
            #expect(after.status == 1)
            #expect(after.stderr.hasPrefix("error: "))
        }
    }

    @Test("login --token checks the token, then saves it for later commands")
    func loginWithToken() async throws {
        try await CLIFixture.with { fixture in
            let bad = try await fixture.pyat(["login", "--token", "pat_wrong"], authenticated: false)
            #expect(bad.status == 1)
            #expect(!FileManager.default.fileExists(atPath: fixture.credentialsFile.path))

            let login = try await fixture.pyat(["login", "--token", fixture.demo.token], authenticated: false)
            #expect(login.status == 0, "\(login.stderr)")
            let whoami = try await fixture.pyat(["whoami", "--format", "csv"], authenticated: false)
            #expect(whoami.status == 0, "\(whoami.stderr)")
            #expect(CSVReader.rows(whoami.stdout).last?.contains("demo@pyat.dev") == true, "\(whoami.stdout)")
        }
    }

    @Test("a wrong password exits 1 with a one-line error and saves nothing")
    func wrongPassword() async throws {
        try await CLIFixture.with { fixture in
            let run = try await fixture.pyat(
                ["login", "--email", "demo@pyat.dev", "--password-stdin"],
                authenticated: false,
                stdin: "not-the-password\n"
            )
            #expect(run.status == 1)
            #expect(run.stderr.hasPrefix("error: The email or password is wrong."), "\(run.stderr)")
            #expect(run.stderr.split(separator: "\n").count == 1)
            #expect(!FileManager.default.fileExists(atPath: fixture.credentialsFile.path))
        }
    }

    @Test("-v logs each request to stderr without the token")
    func verboseLogsWithoutSecrets() async throws {
        try await CLIFixture.with { fixture in
            let run = try await fixture.pyat(["workspaces", "list", "-v", "--format", "json"])
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stderr.contains("path=/api/v1/workspaces"), "\(run.stderr)")
            #expect(run.stderr.contains("status=200"))
            #expect(!run.stderr.contains(fixture.demo.token))
            #expect(try run.jsonArray().count == 1, "stdout carries only the output")
        }
    }

    @Test("an unreachable server exits 1 at once, naming the server")
    func unreachableServer() async throws {
        try await CLIFixture.with { fixture in
            let started = ContinuousClock.now
            let run = try await fixture.pyat(["workspaces", "list", "--server", "http://127.0.0.1:1"])
            #expect(run.status == 1)
            #expect(run.stderr.hasPrefix("error: The server cannot be reached."), "\(run.stderr)")
            #expect(run.stderr.contains("http://127.0.0.1:1"))
            #expect(ContinuousClock.now - started < .seconds(15))
        }
    }

    @Test("usage errors exit 2: a malformed id, a bad server URL, an unknown format")
    func usageErrors() async throws {
        try await CLIFixture.with { fixture in
            let badID = try await fixture.pyat(["records", "get", "recNOPE"])
            #expect(badID.status == 2)
            #expect(badID.stderr.contains("'recNOPE' is not a valid id: expected 'rec'"), "\(badID.stderr)")

            let wrongKind = try await fixture.pyat(["tables", "get", "wsp0123456789abcd"])
            #expect(wrongKind.status == 2)
            #expect(wrongKind.stderr.contains("expected 'tbl'"))

            let badServer = try await fixture.pyat(["workspaces", "list", "--server", "not a url"])
            #expect(badServer.status == 2)

            let badFormat = try await fixture.pyat(["workspaces", "list", "--format", "xml"])
            #expect(badFormat.status == 2)

            let noPassword = try await fixture.pyat(["login", "--email", "demo@pyat.dev"], authenticated: false)
            #expect(noPassword.status == 2, "no terminal and no --password-stdin")
        }
    }

    @Test("with HOME set and no XDG variables, credentials and cache go under $HOME, not the account's home")
    func homeDecidesDefaultPaths() async throws {
        try await CLIFixture.with { fixture in
            let home = fixture.configHome.appendingPathComponent("home")
            try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
            var environment = ProcessInfo.processInfo.environment
            environment["PYAT_SERVER"] = fixture.server.url
            environment["HOME"] = home.path
            environment["XDG_CONFIG_HOME"] = nil
            environment["XDG_CACHE_HOME"] = nil
            let login = try await PyatProcess.run(["login", "--token", fixture.demo.token], environment: environment)
            #expect(login.status == 0, "\(login.stderr)")
            let table = try await fixture.projectsTable()
            let list = try await PyatProcess.run(
                ["records", "list", table.id.rawValue, "--format", "json"],
                environment: environment
            )
            #expect(list.status == 0, "\(list.stderr)")
            let credentials = home.appendingPathComponent(".config/pyat/credentials.json").path
            #expect(FileManager.default.fileExists(atPath: credentials))
            #expect(
                FileManager.default.fileExists(atPath: home.appendingPathComponent(".cache/pyat/cache.sqlite").path)
            )
        }
    }
}
