import Foundation
import HTTPTypes
import PyAirtableModels
import Synchronization

/// What a signed-in client keeps: an access token with its refresh token, or a personal access token.
public struct StoredCredentials: Codable, Sendable, Hashable {
    public var accessToken: String?
    public var refreshToken: String?
    /// When the access token expires.
    public var expiresAt: Date?
    /// A personal access token (`pat_…`), used instead of the pair above when set.
    public var personalAccessToken: String?
    public var userID: UserID?
    public var email: String?

    public init(
        accessToken: String? = nil,
        refreshToken: String? = nil,
        expiresAt: Date? = nil,
        personalAccessToken: String? = nil,
        userID: UserID? = nil,
        email: String? = nil
    ) {
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.expiresAt = expiresAt
        self.personalAccessToken = personalAccessToken
        self.userID = userID
        self.email = email
    }

    /// Credentials from a login or refresh answer.
    public init(tokens: Tokens, user: User?, issuedAt: Date = Date()) {
        self.init(
            accessToken: tokens.accessToken,
            refreshToken: tokens.refreshToken,
            expiresAt: issuedAt.addingTimeInterval(TimeInterval(tokens.expiresIn)),
            userID: user?.id,
            email: user?.email
        )
    }

    enum CodingKeys: String, CodingKey {
        case accessToken = "access_token"
        case refreshToken = "refresh_token"
        case expiresAt = "expires_at"
        case personalAccessToken = "personal_access_token"
        case userID = "user_id"
        case email
    }
}

/// Where a client keeps its credentials between calls (and, for a file store, between runs).
public protocol TokenStore: Sendable {
    /// The credentials for `server`, if any.
    func load(server: String) async throws -> StoredCredentials?
    /// Replaces the credentials for `server`.
    func save(_ credentials: StoredCredentials, server: String) async throws
    /// Forgets the credentials for `server`.
    func remove(server: String) async throws
}

/// Credentials in memory, for the life of the process.
public final class InMemoryTokenStore: TokenStore {
    private let entries = Mutex<[String: StoredCredentials]>([:])

    public init(_ initial: [String: StoredCredentials] = [:]) {
        entries.withLock { $0 = initial }
    }

    public func load(server: String) async throws -> StoredCredentials? {
        entries.withLock { $0[server] }
    }

    public func save(_ credentials: StoredCredentials, server: String) async throws {
        entries.withLock { $0[server] = credentials }
    }

    public func remove(server: String) async throws {
        _ = entries.withLock { $0.removeValue(forKey: server) }
    }
}

/// Credentials in a JSON file readable only by its owner (mode 0600), keyed by server URL:
/// by default `$XDG_CONFIG_HOME/pyat/credentials.json` (`$HOME/.config/pyat/credentials.json`).
public final class FileTokenStore: TokenStore {
    public let path: String
    private let lock = Mutex(())

    public init(path: String = FileTokenStore.defaultPath) {
        self.path = path
    }

    /// `$XDG_CONFIG_HOME/pyat/credentials.json`, or `$HOME/.config/pyat/credentials.json`.
    public static var defaultPath: String {
        let base = UserDirectories.configHome()
        return ((base as NSString).appendingPathComponent("pyat") as NSString).appendingPathComponent(
            "credentials.json"
        )
    }

    public func load(server: String) async throws -> StoredCredentials? {
        try lock.withLock { _ in try readAll()[server] }
    }

    public func save(_ credentials: StoredCredentials, server: String) async throws {
        try update { $0[server] = credentials }
    }

    public func remove(server: String) async throws {
        try update { $0.removeValue(forKey: server) }
    }

    /// Read, change, write — under a lock within this process and an `flock` on `<path>.lock`
    /// across processes, so two programs saving at once do not lose each other's entries.
    private func update(_ change: (inout [String: StoredCredentials]) -> Void) throws {
        try lock.withLock { _ in
            try prepareDirectory()
            let descriptor = open(path + ".lock", O_CREAT | O_RDWR, 0o600)
            guard descriptor >= 0 else {
                throw PyAirtableError.invalidArgument("cannot open the lock file \(path).lock")
            }
            defer { close(descriptor) }
            guard flock(descriptor, LOCK_EX) == 0 else {
                throw PyAirtableError.invalidArgument("cannot lock \(path).lock")
            }
            defer { flock(descriptor, LOCK_UN) }
            var all = try readAll()
            change(&all)
            try writeAll(all)
        }
    }

    /// Creates the folder owner-only when it is missing. An existing folder keeps its mode: the
    /// path may be anywhere, and the file itself is always 0600.
    private func prepareDirectory() throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(
            atPath: directory,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
    }

    private func readAll() throws -> [String: StoredCredentials] {
        guard let data = FileManager.default.contents(atPath: path), !data.isEmpty else { return [:] }
        return try JSONCoding.decoder.decode([String: StoredCredentials].self, from: data)
    }

    /// Writes a temporary file with mode 0600 and renames it over the old one, so a crash never
    /// leaves a half-written file and the secret is never readable by others, even for a moment.
    private func writeAll(_ all: [String: StoredCredentials]) throws {
        let data = try JSONCoding.encoder.encode(all)
        let temporary = path + ".tmp-\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600])
        else {
            throw PyAirtableError.invalidArgument("cannot write the credentials file at \(path)")
        }
        guard rename(temporary, path) == 0 else {
            try? FileManager.default.removeItem(atPath: temporary)
            throw PyAirtableError.invalidArgument("cannot replace the credentials file at \(path)")
        }
    }
}
