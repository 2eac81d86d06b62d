import Crypto
import Foundation
import GRDB
import HTTPTypes
import Logging
import PyAirtableModels
import Synchronization
import TestSupport
import Testing

@testable import ReferenceServer

@Suite("Secrets at rest and private files", .timeLimit(.minutes(15)))
struct SecretsAtRestTests {
    @Test("no password, token or webhook secret in any file of the data directory or the logs; replays still answer")
    func noPlaintextSecrets() async throws {
        let directory = try TemporaryDirectory()
        let logs = CapturedLogs()
        var configuration = Harness.configuration(dataDirectory: directory.path, clock: ManualWallClock())
        configuration.webhooks.allowPrivateTargets = true
        let dataDirectory = directory.path
        let (secrets, email) = try await Harness.withServer(configuration: configuration, logger: logs.logger) {
            api,
            services in
            var secrets: [String: String] = [:]
            let password = "pw-\(UUID().uuidString)"
            let email = "sealed-\(UUID().uuidString.prefix(8).lowercased())@example.com"
            secrets["password"] = password

            // Register, with a key, and replay it.
            let register = RegisterRequest(email: email, password: password, name: "Sealed")
            let registered = try await api.send(.post, "auth/register", json: register, headers: Self.key("register"))
            #expect(registered.status == .created, "\(registered.text)")
            let first = try registered.decode(AuthResponse.self)
            secrets["register access"] = first.tokens.accessToken
            secrets["register refresh"] = first.tokens.refreshToken
            // The key is bound to a keyed hash of the request, not a plain SHA-256 of a body holding the password.
            let plainDigest = Array(
                Data(
                    SHA256.hash(
                        data: Data("POST /api/v1/auth/register\n".utf8)
                            + IdempotencyMiddleware.canonicalBody(
                                try JSONCoding.encoder.encode(register)
                            )
                    )
                )
            )
            let storedHash = try await (services.store as? SQLiteStore)?.database.pool.read { db in
                try String.fetchOne(db, sql: "SELECT request_hash FROM idempotency_keys WHERE key = 'register'")
            }
            #expect(storedHash == services.keys.requestHash(digest: plainDigest))
            #expect(storedHash != Hex.encode(plainDigest))
            let registerReplay = try await api.send(
                .post,
                "auth/register",
                json: register,
                headers: Self.key("register")
            )
            #expect(registerReplay.status == .created)
            #expect(registerReplay.headers[.idempotentReplayed] == "true")
            let replayedRegistration = try registerReplay.decode(AuthResponse.self)
            #expect(replayedRegistration.user.id == first.user.id)
            secrets["register replay access"] = replayedRegistration.tokens.accessToken
            secrets["register replay refresh"] = replayedRegistration.tokens.refreshToken

            // Sign in, with a key, and replay it: a new sign-in each time.
            let login = LoginRequest(email: email, password: password)
            let signedIn = try await api.send(.post, "auth/login", json: login, headers: Self.key("login"))
            #expect(signedIn.status == .ok)
            let session = try signedIn.decode(AuthResponse.self)
            let loginReplay = try await api.send(.post, "auth/login", json: login, headers: Self.key("login"))
            #expect(loginReplay.status == .ok)
            secrets["login access"] = session.tokens.accessToken
            secrets["login refresh"] = session.tokens.refreshToken
            secrets["login replay refresh"] = try loginReplay.decode(AuthResponse.self).tokens.refreshToken

            // Refresh, with a key, and replay it: the same tokens, and the family still signed in.
            let refresh = RefreshRequest(refreshToken: session.tokens.refreshToken)
            let refreshed = try await api.send(.post, "auth/refresh", json: refresh, headers: Self.key("refresh"))
            #expect(refreshed.status == .ok, "\(refreshed.text)")
            let rotated = try refreshed.decode(RefreshResponse.self).tokens
            let refreshReplay = try await api.send(.post, "auth/refresh", json: refresh, headers: Self.key("refresh"))
            #expect(refreshReplay.status == .ok, "\(refreshReplay.text)")
            #expect(refreshReplay.headers[.idempotentReplayed] == "true")
            #expect(try refreshReplay.decode(RefreshResponse.self).tokens == rotated)
            let again = try await api.call(
                .post,
                "auth/refresh",
                json: RefreshRequest(refreshToken: rotated.refreshToken),
                as: RefreshResponse.self
            )
            secrets["refresh access"] = rotated.accessToken
            secrets["refresh refresh"] = rotated.refreshToken
            secrets["second refresh refresh"] = again.tokens.refreshToken

            // A personal access token, with a key, and its replay: the same token, which works.
            let user = api.authorized(first.tokens.accessToken)
            let tokenRequest = CreateAccessTokenRequest(name: "ci")
            let created = try await user.send(.post, "auth/tokens", json: tokenRequest, headers: Self.key("pat"))
            #expect(created.status == .created)
            let pat = try #require(try created.decode(AccessToken.self).token)
            let patReplay = try await user.send(.post, "auth/tokens", json: tokenRequest, headers: Self.key("pat"))
            #expect(patReplay.status == .created)
            #expect(patReplay.headers[.idempotentReplayed] == "true")
            #expect(try patReplay.decode(AccessToken.self).token == pat)
            #expect(try await api.authorized(pat).send(.get, "users/me").status == .ok)
            secrets["personal access token"] = pat

            // A webhook, with a key, and its replay: the same secret, still the one deliveries sign with.
            let (_, base, table) = try await user.scaffold()
            let hookRequest = CreateWebhookRequest(url: "http://127.0.0.1:9/hook")
            let hook = try await user.send(
                .post,
                "bases/\(base.id)/webhooks",
                json: hookRequest,
                headers: Self.key("hook")
            )
            #expect(hook.status == .created, "\(hook.text)")
            let webhookSecret = try #require(try hook.decode(Webhook.self).secret)
            let hookReplay = try await user.send(
                .post,
                "bases/\(base.id)/webhooks",
                json: hookRequest,
                headers: Self.key("hook")
            )
            #expect(hookReplay.headers[.idempotentReplayed] == "true")
            #expect(try hookReplay.decode(Webhook.self).secret == webhookSecret)
            secrets["webhook secret"] = webhookSecret
            _ = try await user.createRecord(in: table.id, ["Name": "signed"])
            let now = services.configuration.now()
            while try await services.store.enqueueWebhookDeliveries(now: now, limit: 100) {}
            let due = try await services.store.webhookWork(now: now).due
            #expect(due.first?.secret == webhookSecret)

            _ = try await user.upload(Array("some bytes".utf8), name: "notes.txt")

            // While the server runs, the write-ahead log holds the recent writes.
            let files = try DataDirectoryScan.files(under: dataDirectory)
            #expect(files.contains { $0.path.hasSuffix("pyat.sqlite-wal") && !$0.bytes.isEmpty })
            #expect(files.contains { $0.path.contains("/blobs/") })
            Self.expectNoSecrets(secrets, in: files, email: email)
            return (secrets, email)
        }
        // And once it has stopped.
        Self.expectNoSecrets(secrets, in: try DataDirectoryScan.files(under: dataDirectory), email: email)

        let lines = logs.lines
        #expect(!lines.isEmpty)
        for (name, secret) in secrets {
            #expect(!lines.contains { $0.contains(secret) }, "the \(name) is in the logs")
        }
    }

    @Test("the data directory is 0700 and every file in it 0600: database, -wal, -shm, secrets, blobs")
    func privateModes() async throws {
        let directory = try TemporaryDirectory()
        let dataDirectory = directory.path + "/nested/data"
        try await Harness.withServer(dataDirectory: dataDirectory) { api, _ in
            let (client, _) = try await api.register()
            _ = try await client.upload(Array("private bytes".utf8), name: "a.txt")
            let entries = try DataDirectoryScan.modes(under: dataDirectory)
            let names = Set(entries.map { ($0.path as NSString).lastPathComponent })
            for expected in [
                "pyat.sqlite", "pyat.sqlite-wal", "pyat.sqlite-shm", "jwt-secret", "storage-secret", "tmp",
            ] {
                #expect(names.contains(expected), "\(expected) missing from \(names.sorted())")
            }
            #expect(entries.contains { $0.path.contains("/blobs/") && !$0.isDirectory })
            for entry in entries {
                #expect(
                    entry.mode == (entry.isDirectory ? 0o700 : 0o600),
                    "\(entry.path): \(String(entry.mode, radix: 8))"
                )
            }
        }
        #expect(try DataDirectoryScan.mode(of: directory.path + "/nested") == 0o700)
    }

    @Test("an existing data directory left open to others is tightened at start, files and blobs included")
    func tightensExistingDirectory() async throws {
        let directory = try TemporaryDirectory()
        let dataDirectory = directory.path + "/data"
        let manager = FileManager.default
        try manager.createDirectory(atPath: dataDirectory + "/blobs/ab/cd", withIntermediateDirectories: true)
        #expect(
            manager.createFile(
                atPath: dataDirectory + "/jwt-secret",
                contents: Data(repeating: 7, count: 64),
                attributes: [.posixPermissions: 0o644]
            )
        )
        #expect(
            manager.createFile(
                atPath: dataDirectory + "/pyat.sqlite",
                contents: Data(),
                attributes: [.posixPermissions: 0o644]
            )
        )
        for path in [
            dataDirectory, dataDirectory + "/blobs", dataDirectory + "/blobs/ab", dataDirectory + "/blobs/ab/cd",
        ] {
            try manager.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        }
        #expect(try DataDirectoryScan.mode(of: dataDirectory) == 0o755)

        try await Harness.withServer(dataDirectory: dataDirectory) { api, _ in
            _ = try await api.register()
            for entry in try DataDirectoryScan.modes(under: dataDirectory) {
                #expect(
                    entry.mode == (entry.isDirectory ? 0o700 : 0o600),
                    "\(entry.path): \(String(entry.mode, radix: 8))"
                )
            }
        }
    }

    @Test("secrets an earlier version stored in plaintext are sealed, and freed pages scrubbed, by the migration")
    func migratesLegacyPlaintext() async throws {
        let directory = try TemporaryDirectory()
        let dataDirectory = directory.path
        let databasePath = dataDirectory + "/pyat.sqlite"
        let legacyPAT = "pat_legacy" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
        let legacyWebhookSecret = Hex.encode(Array(UUID().uuidString.utf8).prefix(32))
        let purgedPAT = "pat_purged" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
        let password = "legacy password"
        let email = "legacy@example.com"
        let userID = UserID.generate()
        let tokenBody = try JSONCoding.encoder.encode(CreateAccessTokenRequest(name: "legacy"))
        let legacyHash = Hex.sha256(
            Data("POST /api/v1/auth/tokens\n".utf8) + IdempotencyMiddleware.canonicalBody(tokenBody)
        )
        let passwordHash = try await PasswordHasher(configuration: .init(), cost: 4).hash(password)
        let legacyAnswer = try JSONCoding.encoder.encode(
            AccessToken(id: .generate(), name: "legacy", token: legacyPAT, createdAt: Date())
        )
        let clock = ManualWallClock()
        let now = clock.now.millisecondsSince1970

        // A database as the previous version left it: schema up to v3, secrets in plaintext, and a
        // purged answer whose bytes still sit in a freed page.
        do {
            let pool = try DatabasePool(path: databasePath)
            let migrator = ServerDatabase.migrator(keys: StorageKeys(secret: Array(repeating: 1, count: 32)))
            try migrator.migrate(pool, upTo: "v3-files")
            try await pool.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO users (id, email, name, password_hash, created_at, updated_at)
                        VALUES (?, ?, 'Legacy', ?, ?, ?);
                        INSERT INTO workspaces (id, name, created_at, updated_at) VALUES ('wspLegacy00000001', 'W', ?, ?);
                        INSERT INTO members (workspace_id, user_id, role, added_at) VALUES ('wspLegacy00000001', ?, 'owner', ?);
                        INSERT INTO bases (id, workspace_id, name, created_at, updated_at)
                        VALUES ('appLegacy00000001', 'wspLegacy00000001', 'B', ?, ?);
                        INSERT INTO webhooks (id, base_id, workspace_id, url, events, secret, cursor, created_by,
                            created_at, updated_at)
                        VALUES ('whkLegacy00000001', 'appLegacy00000001', 'wspLegacy00000001', 'http://127.0.0.1:9/h',
                            '[]', ?, 0, ?, ?, ?);
                        INSERT INTO events (type, workspace_id, base_id, payload, ts)
                        VALUES ('base.updated', 'wspLegacy00000001', 'appLegacy00000001', '{}', ?);
                        """,
                    arguments: [
                        userID.rawValue, email, passwordHash, now, now, now, now, userID.rawValue, now, now, now,
                        legacyWebhookSecret, userID.rawValue, now, now, now,
                    ]
                )
                try db.execute(
                    sql: """
                        INSERT INTO idempotency_keys (principal, key, request_hash, status, body, created_at)
                        VALUES (?, 'legacy-key', ?, 201, ?, ?), (?, 'purged-key', 'x', 201, ?, ?)
                        """,
                    arguments: [
                        userID.rawValue, legacyHash, legacyAnswer, now, userID.rawValue, Data(purgedPAT.utf8), now,
                    ]
                )
            }
            try await pool.write { db in
                try db.execute(sql: "DELETE FROM idempotency_keys WHERE key = 'purged-key'")
            }
            try await pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
        }
        let before = try DataDirectoryScan.files(under: dataDirectory)
        let markers = ["legacy PAT": legacyPAT, "legacy webhook secret": legacyWebhookSecret, "purged PAT": purgedPAT]
        #expect(!DataDirectoryScan.findings(of: markers, in: before).isEmpty, "the legacy database holds plaintext")

        try await Harness.withServer(dataDirectory: dataDirectory, clock: clock) { api, services in
            let findings = DataDirectoryScan.findings(
                of: markers,
                in: try DataDirectoryScan.files(under: dataDirectory)
            )
            #expect(findings.isEmpty, "plaintext left after the migration:\n\(findings.joined(separator: "\n"))")

            // The answer stored before the upgrade still replays: its request hash was keyed as it was sealed.
            let login = try await api.call(
                .post,
                "auth/login",
                json: LoginRequest(email: email, password: password),
                as: AuthResponse.self
            )
            let replay = try await api.authorized(login.tokens.accessToken).send(
                .post,
                "auth/tokens",
                raw: String(decoding: tokenBody, as: UTF8.self),
                headers: Self.key("legacy-key")
            )
            #expect(replay.status == .created, "\(replay.text)")
            #expect(replay.headers[.idempotentReplayed] == "true")
            #expect(try replay.decode(AccessToken.self).token == legacyPAT)

            // The webhook still signs with its secret.
            let at = clock.now
            while try await services.store.enqueueWebhookDeliveries(now: at, limit: 100) {}
            let due = try await services.store.webhookWork(now: at).due
            #expect(due.count == 1)
            #expect(due.first?.secret == legacyWebhookSecret)
        }
    }

    @Test("a database sealed with another storage secret is refused at start, with the reason")
    func otherStorageSecretRefused() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path
        try await Harness.withServer(dataDirectory: path) { api, _ in _ = try await api.register() }
        try FileManager.default.removeItem(atPath: path + "/storage-secret")
        try PrivateFiles.createFile(atPath: path + "/storage-secret", contents: Array(repeating: 9, count: 64))
        let configuration = Harness.configuration(dataDirectory: path, clock: ManualWallClock())
        let error = await #expect(throws: ServerConfigurationError.self) {
            _ = try await ServerServices.open(configuration: configuration, logger: Harness.logger)
        }
        #expect(error?.message.contains("storage-secret") == true)
    }

    @Test("a stored answer that does not open (altered, or another row's) is a 409, not a second write")
    func alteredAnswerRefused() async throws {
        try await Harness.withServer { api, services in
            let (user, _) = try await api.register()
            let request = CreateAccessTokenRequest(name: "once")
            let created = try await user.send(.post, "auth/tokens", json: request, headers: Self.key("a"))
            #expect(created.status == .created)
            _ = try await user.send(.post, "auth/tokens", json: request, headers: Self.key("b"))
            let database = try #require((services.store as? SQLiteStore)?.database)
            // Key a's row gets key b's sealed answer: sealed for another place, so it does not open.
            try await database.pool.write { db in
                try db.execute(
                    sql: """
                        UPDATE idempotency_keys SET body = (SELECT body FROM idempotency_keys WHERE key = 'b')
                        WHERE key = 'a'
                        """
                )
            }
            let replay = try await user.send(.post, "auth/tokens", json: request, headers: Self.key("a"))
            #expect(replay.status == .conflict, "\(replay.text)")
            #expect(replay.error?.error.type == .conflict)
            let tokens = try await user.call(.get, "auth/tokens", as: Page<AccessToken>.self)
            #expect(tokens.data.count == 2)
        }
    }

    @Test("a JWT secret shorter than 32 bytes is refused with a clear message; 32 bytes start")
    func shortJWTSecretRefused() async throws {
        let directory = try TemporaryDirectory()
        var configuration = Harness.configuration(dataDirectory: directory.path, clock: ManualWallClock())
        configuration.jwtSecret = String(repeating: "s", count: 31)
        let error = await #expect(throws: ServerConfigurationError.self) {
            _ = try await ServerServices.open(configuration: configuration, logger: Harness.logger)
        }
        #expect(error?.message.contains("at least 32") == true)
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/pyat.sqlite"))

        configuration.jwtSecret = String(repeating: "s", count: 32)
        try await Harness.withServer(configuration: configuration) { api, _ in
            _ = try await api.register()
        }
    }

    @Test("sealed values open only with the same keys and the same context")
    func sealing() throws {
        let keys = StorageKeys(secret: Array(repeating: 3, count: 32))
        let other = StorageKeys(secret: Array(repeating: 4, count: 32))
        let sealed = try keys.seal(Data("hello".utf8), context: "here")
        #expect(try keys.open(sealed, context: "here") == Data("hello".utf8))
        #expect(sealed.range(of: Data("hello".utf8)) == nil)
        #expect(throws: StorageKeysError.self) { try keys.open(sealed, context: "there") }
        #expect(throws: StorageKeysError.self) { try other.open(sealed, context: "here") }
        var altered = sealed
        altered[altered.count - 1] ^= 1
        #expect(throws: StorageKeysError.self) { try keys.open(altered, context: "here") }
        #expect(keys.requestHash(digest: [1, 2]) != other.requestHash(digest: [1, 2]))
        #expect(keys.fingerprint != other.fingerprint)
    }

    static func expectNoSecrets(
        _ secrets: [String: String],
        in files: [DataDirectoryScan.StoredFile],
        email: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        // The scan sees what is stored: the email is kept as it is.
        #expect(files.contains { $0.bytes.range(of: Data(email.utf8)) != nil }, sourceLocation: sourceLocation)
        let findings = DataDirectoryScan.findings(of: secrets, in: files)
        #expect(
            findings.isEmpty,
            "secrets found at rest:\n\(findings.joined(separator: "\n"))",
            sourceLocation: sourceLocation
        )
    }

    static func key(_ value: String) -> HTTPFields {
        [.idempotencyKey: value]
    }
}

/// What is stored under a data directory, and where a secret shows up in it.
enum DataDirectoryScan {
    struct StoredFile {
        var path: String
        var bytes: Data
    }

    struct Entry {
        var path: String
        var mode: Int
        var isDirectory: Bool
    }

    /// Every regular file under `root`, with its bytes.
    static func files(under root: String) throws -> [StoredFile] {
        try modes(under: root).filter { !$0.isDirectory }.map {
            StoredFile(path: $0.path, bytes: try Data(contentsOf: URL(fileURLWithPath: $0.path)))
        }
    }

    /// `root` and everything under it, with permission bits.
    static func modes(under root: String) throws -> [Entry] {
        var entries = [Entry(path: root, mode: try mode(of: root), isDirectory: true)]
        let manager = FileManager.default
        guard let enumerator = manager.enumerator(atPath: root) else { return entries }
        while let relative = enumerator.nextObject() as? String {
            let path = root + "/" + relative
            let attributes = try manager.attributesOfItem(atPath: path)
            let type = attributes[.type] as? FileAttributeType
            entries.append(Entry(path: path, mode: try mode(of: path), isDirectory: type == .typeDirectory))
        }
        return entries
    }

    static func mode(of path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as? Int ?? -1) & 0o7777
    }

    /// "name: form in path" for every form of every secret found in `files`.
    static func findings(of secrets: [String: String], in files: [StoredFile]) -> [String] {
        var findings: [String] = []
        for (name, secret) in secrets.sorted(by: { $0.key < $1.key }) {
            for (form, bytes) in forms(of: secret) {
                for file in files where file.bytes.range(of: bytes) != nil {
                    findings.append("\(name): \(form) in \(file.path)")
                }
            }
        }
        return findings
    }

    /// The ways a secret could be written down: as text, its text in hex or base64, and, for a
    /// token that is an encoding of random bytes, those bytes (and their hex and base64).
    static func forms(of secret: String) -> [(String, Data)] {
        let text = Data(secret.utf8)
        var forms: [(String, Data)] = [
            ("text", text),
            ("hex of the text", Data(Hex.encode(text).utf8)),
            ("upper-case hex of the text", Data(Hex.encode(text).uppercased().utf8)),
            ("base64 of the text", Data(text.base64EncodedString().utf8)),
        ]
        var decoded: [UInt8]?
        if let bytes = Hex.decode(secret), bytes.count >= 16 { decoded = bytes }
        for prefix in ["pat_", "rt_"] where secret.hasPrefix(prefix) {
            decoded = base64URLDecode(String(secret.dropFirst(prefix.count)))
        }
        if secret.split(separator: ".").count == 3, let signature = secret.split(separator: ".").last {
            forms.append(("JWT signature", Data(signature.utf8)))
            decoded = base64URLDecode(String(signature))
        }
        if let decoded, decoded.count >= 16 {
            let raw = Data(decoded)
            forms.append(("raw bytes", raw))
            forms.append(("hex of the raw bytes", Data(Hex.encode(raw).utf8)))
            forms.append(("base64 of the raw bytes", Data(raw.base64EncodedString().utf8)))
        }
        return forms
    }

    static func base64URLDecode(_ text: String) -> [UInt8]? {
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while standard.count % 4 != 0 { standard += "=" }
        return Data(base64Encoded: standard).map(Array.init)
    }
}

/// Every log line a server writes, at every level, with its metadata.
final class CapturedLogs: Sendable {
    private let storage = Mutex<[String]>([])

    var lines: [String] { storage.withLock { $0 } }

    var logger: Logger {
        var logger = Logger(label: "pyat.tests.captured") { _ in CapturingLogHandler(sink: self) }
        logger.logLevel = .trace
        return logger
    }

    func append(_ line: String) {
        storage.withLock { $0.append(line) }
    }
}

struct CapturingLogHandler: LogHandler {
    let sink: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        if let error = event.error { merged["error"] = "\(error)" }
        sink.append("\(event.level) \(event.message) \(merged)")
    }
}
