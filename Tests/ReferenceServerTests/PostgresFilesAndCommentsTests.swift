import Crypto
import Foundation
import PostgresNIO
import PyAirtableModels
import Testing

@testable import ReferenceServer

/// The PostgreSQL store's files and comments: what the SQLite tests check of them (access, blobs
/// counted and swept, the upload quota, newest-first comment pages, who edits and deletes), called
/// on the store directly, and what only several instances sharing one database can get wrong —
/// the same bytes uploaded at once, the quota raced, sweeps racing uploads, one comment deleted
/// twice, a record deleted under a new comment.
@Suite("PostgreSQL files and comments", .timeLimit(.minutes(5)))
struct PostgresFilesAndCommentsTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    /// A write of `actor` at `start` plus `second` seconds.
    static func context(
        _ actor: UserID?,
        at second: Int = 0,
        key: String? = nil,
        hash: String = "request"
    ) -> WriteContext {
        WriteContext(
            actor: actor,
            now: start.addingTimeInterval(TimeInterval(second)),
            idempotency: key.map {
                IdempotencyClaim(principal: actor?.rawValue ?? "anonymous", key: $0, requestHash: hash)
            }
        )
    }

    static func user(_ store: PostgresStore, _ name: String) async throws -> UserID {
        let created = try await store.createUser(
            email: "\(name.lowercased())@example.com",
            name: name,
            passwordHash: "x",
            context: context(nil)
        )
        return try #require(created.value).id
    }

    static func digest(_ content: String) -> String {
        Hex.encode(SHA256.hash(data: Data(content.utf8)))
    }

    static func newFile(_ content: String, name: String = "f.txt", workspace: WorkspaceID? = nil) -> NewFile {
        NewFile(
            name: name,
            contentType: "text/plain",
            size: Int64(content.utf8.count),
            sha256: digest(content),
            workspaceID: workspace
        )
    }

    @discardableResult
    static func upload(
        _ store: PostgresStore,
        _ content: String,
        by user: UserID,
        at second: Int = 0,
        name: String = "f.txt",
        workspace: WorkspaceID? = nil
    ) async throws -> FileMetadata {
        try #require(
            try await store.createFile(
                newFile(content, name: name, workspace: workspace),
                context: context(user, at: second)
            ).value
        )
    }

    /// The storage error `body` fails with (`nil` when it succeeds; another error is an issue).
    static func failure(_ body: () async throws -> some Any) async -> StorageError? {
        do {
            _ = try await body()
            return nil
        } catch let error as StorageError {
            return error
        } catch {
            Issue.record("expected a StorageError, got \(String(reflecting: error))")
            return nil
        }
    }

    static func isForbidden(_ error: StorageError?) -> Bool {
        if case .forbidden? = error { return true }
        return false
    }

    static func isInvalid(_ error: StorageError?) -> Bool {
        if case .invalid? = error { return true }
        return false
    }

    /// Each blob row's digest and count.
    static func blobCounts(_ store: PostgresStore) async throws -> [String: Int64] {
        try await store.database.read { transaction in
            var counts: [String: Int64] = [:]
            for row in try await transaction.rows("SELECT sha256, ref_count FROM blobs") {
                counts[try row.get("sha256", as: String.self)] = try row.get("ref_count", as: Int64.self)
            }
            return counts
        }
    }

    /// Blob rows whose count is not the number of files naming them, and files naming no blob row:
    /// both must be none whatever raced.
    static func countMismatches(_ store: PostgresStore) async throws -> Int64 {
        try await store.database.read { transaction in
            let wrong =
                try await transaction.scalar(
                    """
                    SELECT count(*) FROM blobs b
                    WHERE b.ref_count <> (SELECT count(*) FROM files f WHERE f.sha256 = b.sha256)
                    """,
                    as: Int64.self
                ) ?? 0
            let orphans =
                try await transaction.scalar(
                    "SELECT count(*) FROM files f WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.sha256 = f.sha256)",
                    as: Int64.self
                ) ?? 0
            return wrong + orphans
        }
    }

    /// The types of the events of the log with this prefix, in seq order.
    static func eventTypes(_ store: PostgresStore, prefix: String) async throws -> [String] {
        try await store.database.read { transaction in
            try await transaction.rows("SELECT type FROM events WHERE type LIKE \(prefix + "%") ORDER BY seq")
                .map { try $0.get("type", as: String.self) }
        }
    }

    /// A store of the same instance with an upload quota.
    static func withQuota(_ store: PostgresStore, _ quota: Int64) -> PostgresStore {
        PostgresStore(database: store.database, logger: Harness.logger, uploadQuotaBytes: quota)
    }

    // MARK: Files

    @Test("RBAC: members read a workspace's files, viewers cannot upload, non-members see nothing")
    func fileAccess() async throws {
        try await PostgresCluster.withStores { stores in
            let store = stores[0]
            let owner = try await Self.user(store, "Owner")
            let viewer = try await Self.user(store, "Viewer")
            let editor = try await Self.user(store, "Editor")
            let outsider = try await Self.user(store, "Outsider")
            let workspace = try #require(
                try await store.createWorkspace(CreateWorkspaceRequest(name: "W"), context: Self.context(owner)).value
            ).id
            for (user, role) in [(viewer, Role.viewer), (editor, .editor)] {
                _ = try await store.addMember(
                    workspace: workspace,
                    AddMemberRequest(userID: user, role: role),
                    context: Self.context(owner)
                )
            }
            let shared = try await Self.upload(store, "shared", by: owner, at: 1, name: "s.txt", workspace: workspace)
            #expect(shared.workspaceID == workspace && shared.createdBy == owner && shared.size == 6)
            #expect(shared.sha256 == Self.digest("shared") && shared.contentType == "text/plain")
            #expect(shared.createdAt == Self.start.addingTimeInterval(1))
            let secret = try await Self.upload(store, "private", by: owner, at: 2, name: "p.txt")
            #expect(secret.workspaceID == nil)

            // Reading.
            #expect(try await store.file(id: shared.id, user: viewer) == shared)
            #expect(await Self.failure { try await store.file(id: secret.id, user: viewer) } == .notFound("file"))
            #expect(await Self.failure { try await store.file(id: shared.id, user: outsider) } == .notFound("file"))
            #expect(try await store.file(id: secret.id, user: owner) == secret)
            #expect(try await store.files(user: outsider, workspace: nil, limit: 100, after: nil).isEmpty)
            #expect(
                await Self.failure {
                    try await store.files(user: outsider, workspace: workspace, limit: 100, after: nil)
                }
                    == .notFound("workspace")
            )
            #expect(
                try await store.files(user: viewer, workspace: nil, limit: 100, after: nil).map(\.id) == [shared.id]
            )
            #expect(
                try await store.files(user: owner, workspace: nil, limit: 100, after: nil).map(\.id)
                    == [shared.id, secret.id]
            )
            #expect(
                try await store.files(user: owner, workspace: workspace, limit: 100, after: nil).map(\.id) == [
                    shared.id
                ]
            )
            // A signed URL's signature is the access: no user, no check.
            #expect(try await store.fileForSignedURL(id: secret.id) == secret)
            #expect(
                await Self.failure { try await store.fileForSignedURL(id: FileID.generate()) } == .notFound("file")
            )

            // Uploading.
            let viewerUpload = await Self.failure {
                try await store.createFile(Self.newFile("v", workspace: workspace), context: Self.context(viewer))
            }
            #expect(Self.isForbidden(viewerUpload))
            #expect(
                await Self.failure {
                    try await store.createFile(Self.newFile("o", workspace: workspace), context: Self.context(outsider))
                } == .notFound("workspace")
            )
            #expect(
                await Self.failure { try await store.createFile(Self.newFile("a"), context: Self.context(nil)) }
                    == .unauthenticated
            )
            let editorFile = try await Self.upload(store, "e", by: editor, at: 3, workspace: workspace)

            // Deleting: the uploader, or creator and above.
            #expect(
                Self.isForbidden(
                    await Self.failure { try await store.deleteFile(id: shared.id, context: Self.context(viewer)) }
                )
            )
            #expect(
                await Self.failure { try await store.deleteFile(id: shared.id, context: Self.context(outsider)) }
                    == .notFound("file")
            )
            #expect(
                Self.isForbidden(
                    await Self.failure { try await store.deleteFile(id: shared.id, context: Self.context(editor)) }
                )
            )
            #expect(
                await Self.failure { try await store.deleteFile(id: secret.id, context: Self.context(viewer)) }
                    == .notFound("file")
            )
            let deleted = try await store.deleteFile(id: editorFile.id, context: Self.context(editor))
            #expect(deleted.response.status == 204)
            _ = try await store.deleteFile(id: shared.id, context: Self.context(owner))
            #expect(await Self.failure { try await store.file(id: shared.id, user: owner) } == .notFound("file"))
            #expect(
                await Self.failure { try await store.deleteFile(id: shared.id, context: Self.context(owner)) }
                    == .notFound("file")
            )

            let types = try await Self.eventTypes(store, prefix: "file.")
            #expect(types == ["file.created", "file.created", "file.created", "file.deleted", "file.deleted"])
        }
    }

    @Test("file pages follow upload order and an `after` cursor; an unknown `after` starts over")
    func filePages() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let owner = try await Self.user(stores[0], "Owner")
            var uploaded: [FileID] = []
            for index in 0..<7 {
                // Uploads alternate between the instances; the two last share a millisecond.
                let file = try await Self.upload(stores[index % 2], "content \(index)", by: owner, at: min(index, 5))
                uploaded.append(file.id)
            }
            var listed: [FileID] = []
            var after: FileID?
            while true {
                let page = try await stores[listed.count % 2].files(user: owner, workspace: nil, limit: 2, after: after)
                if page.isEmpty { break }
                #expect(page.count <= 2)
                listed += page.map(\.id)
                after = page.last?.id
            }
            #expect(listed.count == uploaded.count && Set(listed) == Set(uploaded))
            #expect(Array(listed.prefix(5)) == Array(uploaded.prefix(5)))
            #expect(
                try await stores[1].files(user: owner, workspace: nil, limit: 3, after: FileID.generate()).map(\.id)
                    == Array(uploaded.prefix(3))
            )
        }
    }

    @Test("the same bytes are one blob, counted per file and swept once no file names them")
    func blobsAreCountedAndSwept() async throws {
        try await PostgresCluster.withStores { stores in
            let store = stores[0]
            let owner = try await Self.user(store, "Owner")
            let first = try await Self.upload(store, "same bytes", by: owner, name: "a")
            let second = try await Self.upload(store, "same bytes", by: owner, name: "b")
            #expect(first.id != second.id && first.sha256 == second.sha256)
            #expect(try await Self.blobCounts(store) == [first.sha256: 2])
            #expect(try await store.blobDigests() == [first.sha256])

            _ = try await store.deleteFile(id: first.id, context: Self.context(owner))
            #expect(try await Self.blobCounts(store) == [first.sha256: 1])
            #expect(try await store.sweepUnreferencedBlobs().isEmpty)
            _ = try await store.deleteFile(id: second.id, context: Self.context(owner))
            #expect(try await Self.blobCounts(store) == [first.sha256: 0])
            #expect(try await store.sweepUnreferencedBlobs() == [first.sha256])
            #expect(try await store.sweepUnreferencedBlobs().isEmpty)
            #expect(try await store.blobDigests().isEmpty)

            // Uploaded again after the sweep: a new row at 1.
            let again = try await Self.upload(store, "same bytes", by: owner)
            #expect(try await Self.blobCounts(store) == [again.sha256: 1])

            // A workspace's files go with it (by cascade, through the trigger); its blobs are then swept.
            let workspace = try #require(
                try await store.createWorkspace(CreateWorkspaceRequest(name: "W"), context: Self.context(owner)).value
            ).id
            let inWorkspace = try await Self.upload(store, "in a workspace", by: owner, workspace: workspace)
            _ = try await Self.upload(store, "same bytes", by: owner, workspace: workspace)
            #expect(try await Self.blobCounts(store) == [again.sha256: 2, inWorkspace.sha256: 1])
            _ = try await store.deleteWorkspace(id: workspace, ifVersion: nil, context: Self.context(owner))
            #expect(try await Self.blobCounts(store) == [again.sha256: 1, inWorkspace.sha256: 0])
            #expect(try await store.sweepUnreferencedBlobs() == [inWorkspace.sha256])
            #expect(try await store.blobDigests() == [again.sha256])
            #expect(try await Self.countMismatches(store) == 0)
        }
    }

    @Test("the upload quota: 413 with what is used, each user's own, freed by deletion, 0 is none")
    func uploadQuota() async throws {
        try await PostgresCluster.withStores { stores in
            let store = Self.withQuota(stores[0], 1000)
            let owner = try await Self.user(store, "Owner")
            let other = try await Self.user(store, "Other")
            let big = String(repeating: "x", count: 600)
            let kept = try await Self.upload(store, big, by: owner)
            #expect(try await store.uploadedBytes(user: owner) == 600)
            #expect(
                await Self.failure {
                    try await store.createFile(
                        Self.newFile(String(repeating: "y", count: 401)),
                        context: Self.context(owner)
                    )
                } == .uploadQuotaExceeded(used: 600, quota: 1000)
            )
            // Exactly up to the quota is allowed; the same bytes count again for another file.
            _ = try await Self.upload(store, String(repeating: "z", count: 400), by: owner)
            #expect(try await store.uploadedBytes(user: owner) == 1000)
            #expect(
                await Self.failure { try await store.createFile(Self.newFile(big), context: Self.context(owner)) }
                    == .uploadQuotaExceeded(used: 1000, quota: 1000)
            )
            // Another user's quota is their own.
            _ = try await Self.upload(store, big, by: other)
            #expect(try await store.uploadedBytes(user: other) == 600)
            // Deleting frees it.
            _ = try await store.deleteFile(id: kept.id, context: Self.context(owner))
            #expect(try await store.uploadedBytes(user: owner) == 400)
            _ = try await Self.upload(store, big, by: owner)
            #expect(try await store.uploadedBytes(user: owner) == 1000)
            // A refused upload changed nothing.
            #expect(try await Self.countMismatches(store) == 0)
            #expect(try await Self.eventTypes(store, prefix: "file.created").count == 4)

            // No quota.
            let unlimited = Self.withQuota(stores[0], 0)
            _ = try await Self.upload(unlimited, String(repeating: "w", count: 5000), by: owner)
            #expect(try await unlimited.uploadedBytes(user: owner) == 6000)
        }
    }

    @Test("an upload with an idempotency key is recorded once, on whichever instance replays it")
    func idempotentUpload() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let owner = try await Self.user(stores[0], "Owner")
            let new = Self.newFile("once")
            let first = try await stores[0].createFile(new, context: Self.context(owner, key: "upload-1"))
            let again = try await stores[1].createFile(new, context: Self.context(owner, key: "upload-1"))
            #expect(first.value != nil && !first.response.replayed && first.response.status == 201)
            #expect(again.value == nil && again.response.replayed && again.response.body == first.response.body)
            #expect(
                await Self.failure {
                    try await stores[1].createFile(
                        Self.newFile("other"),
                        context: Self.context(owner, key: "upload-1", hash: "another request")
                    )
                } == .idempotencyKeyReused(key: "upload-1")
            )
            #expect(try await stores[1].files(user: owner, workspace: nil, limit: 10, after: nil).count == 1)
            #expect(try await Self.blobCounts(stores[0]) == [new.sha256: 1])
        }
    }

    // MARK: Files across instances

    @Test("the same bytes uploaded on two instances at once: one blob row, counted once per file")
    func sameBytesOnTwoInstancesAtOnce() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            // Users of their own, so the quota's per-user lock does not make the uploads take turns.
            var users: [UserID] = []
            for index in 0..<16 { users.append(try await Self.user(stores[index % 2], "User\(index)")) }
            for round in 0..<3 {
                let content = "shared content \(round)"
                // First two uploads only, then fourteen more, each on both instances at once.
                for batch in [users.prefix(2), users.dropFirst(2)] {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for (index, user) in zip(batch.indices, batch) {
                            group.addTask { try await Self.upload(stores[index % 2], content, by: user) }
                        }
                        try await group.waitForAll()
                    }
                    let counts = try await Self.blobCounts(stores[round % 2])
                    #expect(counts[Self.digest(content)] == (batch.count == 2 ? 2 : 16), "round \(round)")
                }
            }
            #expect(try await Self.blobCounts(stores[0]).count == 3)
            #expect(try await Self.countMismatches(stores[1]) == 0)
        }
    }

    @Test("the upload quota holds when two instances upload for one user at once")
    func quotaAcrossInstances() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let quotaStores = stores.map { Self.withQuota($0, 1000) }
            let owner = try await Self.user(stores[0], "Owner")
            for round in 0..<3 {
                let outcomes = try await withThrowingTaskGroup(of: StorageError?.self) { group in
                    for index in 0..<12 {
                        group.addTask {
                            await Self.failure {
                                try await quotaStores[index % 2].createFile(
                                    Self.newFile(
                                        String(String(repeating: "\(round)-\(index)-", count: 100).prefix(300))
                                    ),
                                    context: Self.context(owner)
                                )
                            }
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                // 300 bytes each: three fit in 1000, the others see the three.
                #expect(outcomes.filter { $0 == nil }.count == 3, "round \(round): \(outcomes)")
                #expect(
                    outcomes.compactMap { $0 }.allSatisfy { $0 == .uploadQuotaExceeded(used: 900, quota: 1000) },
                    "round \(round): \(outcomes)"
                )
                #expect(try await quotaStores[1].uploadedBytes(user: owner) == 900)
                for file in try await stores[round % 2].files(user: owner, workspace: nil, limit: 100, after: nil) {
                    _ = try await stores[1].deleteFile(id: file.id, context: Self.context(owner))
                }
                #expect(try await quotaStores[0].uploadedBytes(user: owner) == 0)
            }
        }
    }

    @Test("deletions, uploads and sweeps of the same bytes on two instances never leave a file without its blob")
    func deleteAndSweepAcrossInstances() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let first = try await Self.user(stores[0], "First")
            let second = try await Self.user(stores[1], "Second")
            let content = "racing bytes"
            let sha = Self.digest(content)
            var current = try await Self.upload(stores[0], content, by: first)
            for round in 0..<20 {
                // The only file naming the bytes is deleted (and swept) on one instance while the
                // same bytes are uploaded (and swept) on the other.
                let previous = current
                let deleter = stores[round % 2]
                let uploader = stores[(round + 1) % 2]
                let owner = round % 2 == 0 ? first : second
                let nextOwner = round % 2 == 0 ? second : first
                async let deletion: Void = Self.deleteAndSweep(deleter, previous.id, by: owner)
                async let upload = Self.uploadAndSweep(uploader, content, by: nextOwner)
                current = try await upload
                try await deletion
                #expect(try await Self.countMismatches(stores[round % 2]) == 0, "round \(round)")
                #expect(try await Self.blobCounts(stores[0]) == [sha: 1], "round \(round)")
            }
            _ = try await stores[1].deleteFile(id: current.id, context: Self.context(current.createdBy))
            // Both instances sweep at once: the row is answered by one of them only.
            async let left = stores[0].sweepUnreferencedBlobs()
            async let right = stores[1].sweepUnreferencedBlobs()
            let swept = try await left + right
            #expect(swept == [sha])
            #expect(try await stores[0].blobDigests().isEmpty)
        }
    }

    static func deleteAndSweep(_ store: PostgresStore, _ id: FileID, by user: UserID) async throws {
        _ = try await store.deleteFile(id: id, context: context(user))
        _ = try await store.sweepUnreferencedBlobs()
    }

    static func uploadAndSweep(_ store: PostgresStore, _ content: String, by user: UserID) async throws -> FileMetadata
    {
        let file = try await upload(store, content, by: user)
        _ = try await store.sweepUnreferencedBlobs()
        return file
    }

    @Test("an upload waiting on another instance's sweep of its blob row inserts the row again")
    func uploadRacingASweepRecreatesTheBlob() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let owner = try await Self.user(stores[0], "Owner")
            let gone = try await Self.upload(stores[0], "swept", by: owner)
            _ = try await stores[0].deleteFile(id: gone.id, context: Self.context(owner))
            #expect(try await Self.blobCounts(stores[0]) == [gone.sha256: 0])

            // Instance 0 sweeps in a transaction held open; instance 1 uploads the same bytes meanwhile.
            let (deleting, deleted) = AsyncStream<Void>.makeStream()
            async let sweep: [String] = stores[0].database.read { transaction in
                try await transaction.execute("BEGIN")
                let digests = try await transaction.rows("DELETE FROM blobs WHERE ref_count <= 0 RETURNING sha256")
                    .map { try $0.get("sha256", as: String.self) }
                deleted.yield()
                try await Task.sleep(for: .milliseconds(500))
                try await transaction.execute("COMMIT")
                return digests
            }
            for await _ in deleting { break }
            let file = try await Self.upload(stores[1], "swept", by: owner)
            #expect(try await sweep == [gone.sha256])
            #expect(try await Self.blobCounts(stores[1]) == [file.sha256: 1])
            #expect(try await Self.countMismatches(stores[0]) == 0)
        }
    }

    @Test("a sweep waiting on another instance's upload of an unreferenced blob keeps the row")
    func sweepRacingAnUploadKeepsTheBlob() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let owner = try await Self.user(stores[0], "Owner")
            let gone = try await Self.upload(stores[0], "kept", by: owner)
            _ = try await stores[0].deleteFile(id: gone.id, context: Self.context(owner))

            // Instance 0 records an upload of the bytes in a transaction held open (as createFile
            // does); instance 1 sweeps meanwhile.
            let (counting, counted) = AsyncStream<Void>.makeStream()
            let id = FileID.generate()
            async let upload: Void = stores[0].database.read { transaction in
                try await transaction.execute("BEGIN")
                try await transaction.execute(
                    """
                    INSERT INTO blobs (sha256, size, ref_count, created_at) VALUES (\(gone.sha256), \(gone.size), 1, 0)
                    ON CONFLICT (sha256) DO UPDATE SET ref_count = blobs.ref_count + 1
                    """
                )
                try await transaction.execute(
                    """
                    INSERT INTO files (id, name, content_type, size, sha256, workspace_id, created_by, created_at)
                    VALUES (\(id.rawValue), 'k', 'text/plain', \(gone.size), \(gone.sha256), NULL, \(owner.rawValue), 0)
                    """
                )
                counted.yield()
                try await Task.sleep(for: .milliseconds(500))
                try await transaction.execute("COMMIT")
            }
            for await _ in counting { break }
            #expect(try await stores[1].sweepUnreferencedBlobs().isEmpty)
            try await upload
            #expect(try await Self.blobCounts(stores[1]) == [gone.sha256: 1])
            #expect(try await stores[1].file(id: id, user: owner).sha256 == gone.sha256)
        }
    }

    // MARK: Comments

    /// A workspace (of `owner`) with a base and a table, and a record of it inserted directly.
    static func scaffold(_ store: PostgresStore, owner: UserID) async throws -> (WorkspaceID, TableID, RecordID) {
        let workspace = try #require(
            try await store.createWorkspace(CreateWorkspaceRequest(name: "Team"), context: context(owner)).value
        ).id
        let base = try #require(
            try await store.createBase(workspace: workspace, CreateBaseRequest(name: "Base"), context: context(owner))
                .value
        ).id
        let table = try #require(
            try await store.createTable(
                base: base,
                CreateTableRequest(name: "Things", fields: [CreateFieldRequest(name: "Name", type: .singleLineText)]),
                context: context(owner)
            ).value
        ).id
        return (workspace, table, try await record(store, in: table))
    }

    /// A record row inserted directly (records are not this suite's subject).
    static func record(_ store: PostgresStore, in table: TableID) async throws -> RecordID {
        let id = RecordID.generate()
        try await store.database.write { transaction in
            try await transaction.execute(
                """
                INSERT INTO records (id, table_id, fields, version, created_at, updated_at)
                VALUES (\(id.rawValue), \(table.rawValue), '{}', 1, 0, 0)
                """
            )
        }
        return id
    }

    static func deleteRecord(_ store: PostgresStore, _ id: RecordID) async throws {
        try await store.database.write { transaction in
            try await transaction.execute("DELETE FROM records WHERE id = \(id.rawValue)")
        }
    }

    @Test("commenters write, authors edit, owners delete; mentions of members only; newest first; events")
    func comments() async throws {
        try await PostgresCluster.withStores { stores in
            let store = stores[0]
            let owner = try await Self.user(store, "Owner")
            let commenter = try await Self.user(store, "Commenter")
            let viewer = try await Self.user(store, "Viewer")
            let stranger = try await Self.user(store, "Stranger")
            let (workspace, table, record) = try await Self.scaffold(store, owner: owner)
            for (user, role) in [(commenter, Role.commenter), (viewer, .viewer)] {
                _ = try await store.addMember(
                    workspace: workspace,
                    AddMemberRequest(userID: user, role: role),
                    context: Self.context(owner)
                )
            }

            let created = try await store.createComment(
                record: record,
                text: "Look, @[\(owner)]! And again @[\(owner)].",
                context: Self.context(commenter, at: 1)
            )
            #expect(created.response.status == 201)
            let first = try #require(created.value)
            #expect(first.id.rawValue.hasPrefix("com") && first.recordID == record && first.tableID == table)
            #expect(first.author == CommentAuthor(id: commenter, email: "commenter@example.com", name: "Commenter"))
            #expect(first.mentions == [CommentAuthor(id: owner, email: "owner@example.com", name: "Owner")])
            #expect(first.createdAt == Self.start.addingTimeInterval(1) && first.updatedAt == nil)
            #expect(try await store.comment(id: first.id, user: viewer) == first)

            // Refusals.
            let unknown = await Self.failure {
                try await store.createComment(
                    record: record,
                    text: "hi @[\(stranger)]",
                    context: Self.context(commenter)
                )
            }
            #expect(
                unknown == .invalid("text mentions \(stranger), who is not a member of this workspace", field: "text")
            )
            #expect(
                await Self.failure {
                    try await store.createComment(record: record, text: " \n ", context: Self.context(commenter))
                } == .invalid("text must not be empty", field: "text")
            )
            let long = String(repeating: "a", count: store.limits.maximumCommentLength + 1)
            #expect(
                Self.isInvalid(
                    await Self.failure {
                        try await store.createComment(record: record, text: long, context: Self.context(commenter))
                    }
                )
            )
            #expect(
                Self.isForbidden(
                    await Self.failure {
                        try await store.createComment(record: record, text: "no", context: Self.context(viewer))
                    }
                )
            )
            #expect(
                await Self.failure {
                    try await store.createComment(record: record, text: "no", context: Self.context(stranger))
                } == .notFound("record")
            )
            #expect(
                await Self.failure {
                    try await store.createComment(record: RecordID.generate(), text: "no", context: Self.context(owner))
                } == .notFound("record")
            )
            #expect(
                await Self.failure {
                    try await store.createComment(record: record, text: "x", context: Self.context(nil))
                }
                    == .unauthenticated
            )
            #expect(await Self.failure { try await store.comment(id: first.id, user: stranger) } == .notFound("record"))
            #expect(
                await Self.failure { try await store.comment(id: CommentID.generate(), user: owner) }
                    == .notFound("comment")
            )

            for index in 0..<3 {
                _ = try await store.createComment(
                    record: record,
                    text: "n\(index)",
                    context: Self.context(owner, at: 2 + index)
                )
            }
            // Newest first, two a page.
            let page = try await store.comments(record: record, user: viewer, limit: 2, after: nil)
            #expect(page.data.map(\.text) == ["n2", "n1"])
            let cursor = try #require(page.nextCursor)
            let rest = try await store.comments(record: record, user: viewer, limit: 2, after: cursor)
            #expect(rest.data.map(\.text) == ["n0", first.text] && rest.nextCursor == nil)
            #expect(try await store.comments(record: record, user: viewer, limit: 4, after: nil).nextCursor == nil)
            // Cursors are positions (`ord`), as SQLite's are `rowid`s; anything else is refused.
            for bad in ["abc", "-1", "0", "1.5", "1.\(first.id)", ""] {
                #expect(
                    await Self.failure { try await store.comments(record: record, user: viewer, limit: 2, after: bad) }
                        == .invalid("cursor is not one this list gave", field: "cursor"),
                    "\(bad)"
                )
            }
            #expect(
                await Self.failure { try await store.comments(record: record, user: stranger, limit: 2, after: nil) }
                    == .notFound("record")
            )

            // Editing: the author only, while a commenter.
            #expect(
                Self.isForbidden(
                    await Self.failure {
                        try await store.updateComment(id: first.id, text: "mine?", context: Self.context(owner))
                    }
                )
            )
            let edited = try #require(
                try await store.updateComment(id: first.id, text: "edited", context: Self.context(commenter, at: 10))
                    .value
            )
            #expect(edited.text == "edited" && edited.mentions.isEmpty && edited.createdAt == first.createdAt)
            #expect(edited.updatedAt == Self.start.addingTimeInterval(10))
            #expect(
                Self.isInvalid(
                    await Self.failure {
                        try await store.updateComment(
                            id: first.id,
                            text: "@[\(stranger)]",
                            context: Self.context(commenter)
                        )
                    }
                )
            )
            #expect(
                Self.isForbidden(
                    await Self.failure { try await store.deleteComment(id: first.id, context: Self.context(viewer)) }
                )
            )
            #expect(
                await Self.failure { try await store.deleteComment(id: first.id, context: Self.context(stranger)) }
                    == .notFound("record")
            )
            // An author demoted to viewer no longer edits.
            _ = try await store.updateMember(
                workspace: workspace,
                user: commenter,
                role: .viewer,
                context: Self.context(owner)
            )
            #expect(
                Self.isForbidden(
                    await Self.failure {
                        try await store.updateComment(id: first.id, text: "again", context: Self.context(commenter))
                    }
                )
            )
            // Owners delete any comment; authors their own.
            let removed = try await store.deleteComment(id: first.id, context: Self.context(owner))
            #expect(removed.value?.id == first.id && removed.value?.text == "edited" && removed.response.status == 200)
            #expect(await Self.failure { try await store.comment(id: first.id, user: owner) } == .notFound("comment"))
            #expect(
                await Self.failure { try await store.deleteComment(id: first.id, context: Self.context(owner)) }
                    == .notFound("comment")
            )
            let own = try #require(rest.data.first)
            _ = try await store.deleteComment(id: own.id, context: Self.context(owner))

            #expect(
                try await Self.eventTypes(store, prefix: "comment.") == [
                    "comment.created", "comment.created", "comment.created", "comment.created", "comment.updated",
                    "comment.deleted", "comment.deleted",
                ]
            )
            let events = try await store.database.read { transaction in
                try await transaction.rows(
                    "SELECT workspace_id, table_id, record_id FROM events WHERE type LIKE 'comment.%'"
                ).map {
                    [
                        try $0.get("workspace_id", as: String.self), try $0.get("table_id", as: String.self),
                        try $0.get("record_id", as: String.self),
                    ]
                }
            }
            #expect(events.allSatisfy { $0 == [workspace.rawValue, table.rawValue, record.rawValue] })
        }
    }

    @Test("comment counts per record; comments go with their record")
    func countsAndCascade() async throws {
        try await PostgresCluster.withStores { stores in
            let store = stores[0]
            let owner = try await Self.user(store, "Owner")
            let (_, table, record) = try await Self.scaffold(store, owner: owner)
            let quiet = try await Self.record(store, in: table)
            let other = try await Self.record(store, in: table)
            for index in 0..<3 {
                _ = try await store.createComment(record: record, text: "r\(index)", context: Self.context(owner))
            }
            let survivor = try #require(
                try await store.createComment(record: other, text: "o", context: Self.context(owner)).value
            )
            #expect(
                try await store.commentCounts(records: [record, quiet, other, record], user: owner)
                    == [record: 3, other: 1]
            )
            #expect(try await store.commentCounts(records: [], user: owner).isEmpty)

            try await Self.deleteRecord(store, other)
            #expect(
                await Self.failure { try await store.comment(id: survivor.id, user: owner) } == .notFound("comment")
            )
            #expect(try await store.commentCounts(records: [record, other], user: owner) == [record: 3])
            #expect(
                await Self.failure { try await store.comments(record: other, user: owner, limit: 10, after: nil) }
                    == .notFound("record")
            )
        }
    }

    @Test("comments made in one millisecond page without a gap or a repeat")
    func sameMillisecondPages() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let owner = try await Self.user(stores[0], "Owner")
            let (_, _, record) = try await Self.scaffold(stores[0], owner: owner)
            var made: Set<CommentID> = []
            for index in 0..<9 {
                let comment = try #require(
                    try await stores[index % 2].createComment(
                        record: record,
                        text: "c\(index)",
                        context: Self.context(owner)
                    )
                    .value
                )
                made.insert(comment.id)
            }
            var seen: [CommentID] = []
            var cursor: String?
            repeat {
                let page = try await stores[seen.count % 2].comments(
                    record: record,
                    user: owner,
                    limit: 2,
                    after: cursor
                )
                seen += page.data.map(\.id)
                cursor = page.nextCursor
            } while cursor != nil
            #expect(seen.count == 9 && Set(seen) == made)
        }
    }

    @Test("one comment deleted on two instances at once: one answer, one 404, one event")
    func deleteCommentOnTwoInstances() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let owner = try await Self.user(stores[0], "Owner")
            let (_, _, record) = try await Self.scaffold(stores[0], owner: owner)
            for round in 0..<5 {
                let comment = try #require(
                    try await stores[round % 2].createComment(
                        record: record,
                        text: "r\(round)",
                        context: Self.context(owner)
                    )
                    .value
                )
                // A deletion and an edit on each instance.
                let outcomes = try await withThrowingTaskGroup(of: (Bool, StorageError?).self) { group in
                    for index in 0..<4 {
                        let store = stores[index % 2]
                        let deletes = index < 2
                        group.addTask {
                            let error = await Self.failure {
                                deletes
                                    ? try await store.deleteComment(id: comment.id, context: Self.context(owner))
                                        .response
                                    : try await store.updateComment(
                                        id: comment.id,
                                        text: "edit \(index)",
                                        context: Self.context(owner)
                                    ).response
                            }
                            return (deletes, error)
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(outcomes.allSatisfy { $0.1 == nil || $0.1 == .notFound("comment") }, "\(outcomes)")
                #expect(outcomes.filter { $0.0 && $0.1 == nil }.count == 1, "\(outcomes)")
            }
            let types = try await Self.eventTypes(stores[1], prefix: "comment.")
            // Each round: one creation, one deletion (of the two tried), edits only before it.
            #expect(types.filter { $0 == "comment.created" }.count == 5)
            #expect(types.filter { $0 == "comment.deleted" }.count == 5)
            #expect(try await stores[0].commentCounts(records: [record], user: owner).isEmpty)
        }
    }

    @Test("a comment made while another instance deletes its record: 404, and no comment is left")
    func commentRacingRecordDeletion() async throws {
        try await PostgresCluster.withStores(instances: 2) { stores in
            let owner = try await Self.user(stores[0], "Owner")
            let (_, _, record) = try await Self.scaffold(stores[0], owner: owner)
            let (deleting, deleted) = AsyncStream<Void>.makeStream()
            async let deletion: Void = stores[0].database.read { transaction in
                try await transaction.execute("BEGIN")
                try await transaction.execute("DELETE FROM records WHERE id = \(record.rawValue)")
                deleted.yield()
                try await Task.sleep(for: .milliseconds(500))
                try await transaction.execute("COMMIT")
            }
            for await _ in deleting { break }
            let refused = await Self.failure {
                try await stores[1].createComment(record: record, text: "too late", context: Self.context(owner))
            }
            try await deletion
            #expect(refused == .notFound("record"))
            let left = try await stores[1].database.read { transaction in
                try await transaction.scalar("SELECT count(*) FROM comments", as: Int64.self)
            }
            #expect(left == 0)
        }
    }
}
