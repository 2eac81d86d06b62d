import Foundation
import PyAirtableClient
import PyAirtableModels
import Testing

@Suite("Token stores", .timeLimit(.minutes(15)))
struct TokenStoreTests {
    static let server = "http://127.0.0.1:8080"

    static func credentials(_ index: Int) -> StoredCredentials {
        StoredCredentials(
            accessToken: "access-\(index)",
            refreshToken: "rt_\(index)",
            expiresAt: Date(timeIntervalSince1970: 1_800_000_000 + Double(index)),
            userID: UserID("usr" + String(repeating: "0", count: 12) + String(format: "%02d", index)),
            email: "user\(index)@example.com"
        )
    }

    /// Runs `body` with a path inside a fresh temporary directory, removed afterwards.
    static func withTemporaryPath<T>(_ body: (String) async throws -> T) async throws -> T {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("pyat-tokenstore-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try await body((directory as NSString).appendingPathComponent("pyat/credentials.json"))
    }

    static func permissions(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return try #require(attributes[.posixPermissions] as? NSNumber).intValue
    }

    @Test("FileTokenStore writes its file with mode 0600, round-trips and removes")
    func fileStoreRoundTrip() async throws {
        try await Self.withTemporaryPath { path in
            let store = FileTokenStore(path: path)
            #expect(try await store.load(server: Self.server) == nil)

            let saved = Self.credentials(1)
            try await store.save(saved, server: Self.server)
            #expect(try Self.permissions(path) == 0o600)
            #expect(try Self.permissions((path as NSString).deletingLastPathComponent) == 0o700)
            #expect(try await store.load(server: Self.server) == saved)
            #expect(try await FileTokenStore(path: path).load(server: Self.server) == saved, "survives the process")

            let other = StoredCredentials(personalAccessToken: "pat_other")
            try await store.save(other, server: "https://example.com")
            #expect(try await store.load(server: Self.server) == saved, "keyed by server")
            #expect(try await store.load(server: "https://example.com") == other)
            #expect(try Self.permissions(path) == 0o600, "still 0600 after a rewrite")

            try await store.remove(server: Self.server)
            #expect(try await store.load(server: Self.server) == nil)
            #expect(try await store.load(server: "https://example.com") == other)
            try await store.remove(server: Self.server)

            let leftovers = try FileManager.default.contentsOfDirectory(
                atPath: (path as NSString).deletingLastPathComponent
            )
            // The lock file stays (other processes lock it); no temporary file is left behind.
            #expect(Set(leftovers) == ["credentials.json", "credentials.json.lock"], "no temporary files left behind")
        }
    }

    @Test("concurrent saves to one FileTokenStore neither corrupt the file nor lose entries")
    func fileStoreConcurrentSaves() async throws {
        try await Self.withTemporaryPath { path in
            let store = FileTokenStore(path: path)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<50 {
                    group.addTask { try await store.save(Self.credentials(index), server: "https://s\(index).example") }
                }
                try await group.waitForAll()
            }
            let data = try #require(FileManager.default.contents(atPath: path))
            let decoded = try JSONCoding.decoder.decode([String: StoredCredentials].self, from: data)
            #expect(decoded.count == 50)
            for index in 0..<50 {
                #expect(try await store.load(server: "https://s\(index).example") == Self.credentials(index))
            }
            #expect(try Self.permissions(path) == 0o600)
        }
    }

    @Test("concurrent saves from two FileTokenStores on one path always leave a valid file")
    func fileStoresSharingAPath() async throws {
        try await Self.withTemporaryPath { path in
            let first = FileTokenStore(path: path)
            let second = FileTokenStore(path: path)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<40 {
                    let store = index.isMultiple(of: 2) ? first : second
                    group.addTask { try await store.save(Self.credentials(index), server: Self.server) }
                }
                try await group.waitForAll()
            }
            let loaded = try #require(try await first.load(server: Self.server))
            #expect((0..<40).map(Self.credentials).contains(loaded), "one whole save won")
        }
    }

    @Test("InMemoryTokenStore round-trips, keys by server and removes")
    func inMemoryStore() async throws {
        let store = InMemoryTokenStore([Self.server: Self.credentials(0)])
        #expect(try await store.load(server: Self.server) == Self.credentials(0))
        try await store.save(Self.credentials(1), server: Self.server)
        #expect(try await store.load(server: Self.server) == Self.credentials(1))
        #expect(try await store.load(server: "https://elsewhere.example") == nil)
        try await store.remove(server: Self.server)
        #expect(try await store.load(server: Self.server) == nil)
    }
}
