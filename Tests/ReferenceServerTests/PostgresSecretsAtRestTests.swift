import Foundation
import HTTPTypes
import PyAirtableModels
import TestSupport
import Testing

@testable import ReferenceServer

/// No secret in the clear in a PostgreSQL store either: a dump of the whole database (every row,
/// bytea as hex) holds no password, access or refresh token, personal access token or webhook
/// secret, in text or as hex, while replays of keyed requests still answer with them.
@Suite("PostgreSQL secrets at rest", .timeLimit(.minutes(5)))
struct PostgresSecretsAtRestTests {
    static func key(_ value: String) -> HTTPFields { [.idempotencyKey: value] }

    @Test("a dump of the database holds no password, token or webhook secret; replays still answer")
    func noPlaintextSecretsInTheDatabase() async throws {
        try await PostgresCluster.withDatabase { location in
            let email = "sealed-\(UUID().uuidString.prefix(8).lowercased())@example.com"
            let secrets = try await Harness.withServer(configure: {
                $0.database = .postgres(location, poolSize: 4)
                $0.webhooks.allowPrivateTargets = true
            }) { api, _ in
                var secrets: [String: String] = [:]
                let password = "pw-\(UUID().uuidString)"
                secrets["password"] = password
                let register = RegisterRequest(email: email, password: password, name: "Sealed")
                let registered = try await api.send(.post, "auth/register", json: register, headers: Self.key("r"))
                #expect(registered.status == .created)
                let first = try registered.decode(AuthResponse.self)
                secrets["access"] = first.tokens.accessToken
                secrets["refresh"] = first.tokens.refreshToken
                let replay = try await api.send(.post, "auth/register", json: register, headers: Self.key("r"))
                #expect(replay.headers[.idempotentReplayed] == "true")
                // The same account; a replayed registration signs in anew (new tokens), as on SQLite.
                let replayed = try replay.decode(AuthResponse.self)
                #expect(replayed.user.id == first.user.id)
                secrets["replay refresh"] = replayed.tokens.refreshToken

                let user = api.authorized(first.tokens.accessToken)
                let tokenRequest = CreateAccessTokenRequest(name: "ci")
                let created = try await user.send(.post, "auth/tokens", json: tokenRequest, headers: Self.key("p"))
                let pat = try #require(try created.decode(AccessToken.self).token)
                let patReplay = try await user.send(.post, "auth/tokens", json: tokenRequest, headers: Self.key("p"))
                #expect(try patReplay.decode(AccessToken.self).token == pat)
                #expect(try await api.authorized(pat).send(.get, "users/me").status == .ok)
                secrets["personal access token"] = pat

                let (_, base, _) = try await user.scaffold()
                let hook = try await user.send(
                    .post,
                    "bases/\(base.id)/webhooks",
                    json: CreateWebhookRequest(url: "http://127.0.0.1:9/hook"),
                    headers: Self.key("h")
                )
                #expect(hook.status == .created, "\(hook.text)")
                let webhookSecret: String = try #require(try hook.decode(Webhook.self).secret)
                secrets["webhook secret"] = webhookSecret
                return secrets
            }

            let dump = try await Self.dump(location)
            #expect(dump.contains(email), "the dump holds the rows (the email is there)")
            for (name, secret) in secrets {
                #expect(!dump.contains(secret), "the \(name) is in the database in the clear")
                let hex = Hex.encode(Array(secret.utf8))
                #expect(!dump.lowercased().contains(hex), "the \(name) is in the database as hex")
            }
        }
    }

    /// `pg_dump` of the database as SQL text.
    static func dump(_ location: PostgresLocation) async throws -> String {
        let binaries = try FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql").sorted()
        let pgDump = try #require(binaries.last.map { "/usr/lib/postgresql/\($0)/bin/pg_dump" })
        var environment = ProcessInfo.processInfo.environment
        environment["PGPASSWORD"] = location.password ?? ""
        let output = try TemporaryDirectory()
        let path = output.path + "/dump.sql"
        let child = try ChildProcess(
            executable: pgDump,
            arguments: [
                "-h", location.host, "-p", String(location.port), "-U", location.user, "-d", location.database,
                "--no-owner", "-f", path,
            ],
            environment: environment
        )
        let status = await child.wait(timeout: .seconds(60))
        #expect(status == 0, "pg_dump exited with \(String(describing: status))")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        withExtendedLifetime(output) {}
        return text
    }
}
