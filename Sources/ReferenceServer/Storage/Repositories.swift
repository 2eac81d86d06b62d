import Foundation
import PyAirtableModels

// The storage seams of the server. Each mutation method is one atomic unit: it checks the caller's
// role, applies the change, appends its event and stores its idempotent answer in one transaction.
// `SQLiteStore` implements them on SQLite; a PostgreSQL store implements the same protocols.

/// Users, refresh tokens and personal access tokens.
public protocol AccountRepository: Sendable {
    func createUser(
        email: String,
        name: String,
        passwordHash: String,
        context: WriteContext
    ) async throws
        -> WriteResult<User>
    func credentials(email: String) async throws -> UserCredentials?
    func user(id: UserID) async throws -> User?
    func userByEmail(_ email: String) async throws -> User?
    func updateUser(
        _ request: UpdateUserRequest,
        ifVersion: Int?,
        context: WriteContext
    ) async throws
        -> WriteResult<User>
    func storeRefreshToken(hash: String, family: String, user: UserID, expiresAt: Date, now: Date) async throws
    func consumeRefreshToken(hash: String, now: Date) async throws -> RefreshOutcome
    /// The user a refresh token was issued to, spent or not, without spending it.
    func refreshTokenOwner(hash: String) async throws -> UserID?
    func revokeRefreshFamily(ofTokenHash hash: String, user: UserID, now: Date) async throws -> Bool
    func createAccessToken(
        name: String,
        secret: String,
        hash: String,
        expiresAt: Date?,
        context: WriteContext
    )
        async throws -> WriteResult<AccessToken>
    func accessTokens(user: UserID) async throws -> [AccessToken]
    func deleteAccessToken(id: AccessTokenID, context: WriteContext) async throws -> (WriteResult<EmptyBody>, String?)
    func principal(forAccessTokenHash hash: String, now: Date) async throws -> (UserID, AccessTokenID)?
    func touchAccessToken(id: AccessTokenID, now: Date) async throws
}

/// Workspaces and their members.
public protocol WorkspaceRepository: Sendable {
    func workspaces(user: UserID) async throws -> [Workspace]
    func workspace(id: WorkspaceID, user: UserID) async throws -> Workspace
    func createWorkspace(
        _ request: CreateWorkspaceRequest,
        context: WriteContext
    ) async throws -> WriteResult<Workspace>
    func updateWorkspace(
        id: WorkspaceID,
        _ request: UpdateWorkspaceRequest,
        ifVersion: Int?,
        context: WriteContext
    )
        async throws -> WriteResult<Workspace>
    func deleteWorkspace(id: WorkspaceID, ifVersion: Int?, context: WriteContext) async throws -> WriteResult<EmptyBody>
    func members(workspace: WorkspaceID, user: UserID) async throws -> [Member]
    func addMember(
        workspace: WorkspaceID,
        _ request: AddMemberRequest,
        context: WriteContext
    ) async throws
        -> WriteResult<Member>
    func updateMember(
        workspace: WorkspaceID,
        user: UserID,
        role: Role,
        context: WriteContext
    ) async throws
        -> WriteResult<Member>
    func removeMember(
        workspace: WorkspaceID,
        user: UserID,
        context: WriteContext
    ) async throws
        -> WriteResult<EmptyBody>
}

/// Bases, tables, fields and views.
public protocol SchemaRepository: Sendable {
    func bases(workspace: WorkspaceID, user: UserID) async throws -> [Base]
    func base(id: BaseID, user: UserID) async throws -> Base
    func createBase(
        workspace: WorkspaceID,
        _ request: CreateBaseRequest,
        context: WriteContext
    ) async throws
        -> WriteResult<Base>
    func updateBase(
        id: BaseID,
        _ request: UpdateBaseRequest,
        ifVersion: Int?,
        context: WriteContext
    ) async throws
        -> WriteResult<Base>
    func deleteBase(id: BaseID, ifVersion: Int?, context: WriteContext) async throws -> WriteResult<EmptyBody>
    func tables(base: BaseID, user: UserID) async throws -> [PyAirtableModels.Table]
    func table(id: TableID, user: UserID) async throws -> PyAirtableModels.Table
    func tableSchema(id: TableID, user: UserID) async throws -> TableSchema
    func createTable(
        base: BaseID,
        _ request: CreateTableRequest,
        context: WriteContext
    ) async throws
        -> WriteResult<PyAirtableModels.Table>
    func updateTable(
        id: TableID,
        _ request: UpdateTableRequest,
        ifVersion: Int?,
        context: WriteContext
    ) async throws
        -> WriteResult<PyAirtableModels.Table>
    func deleteTable(id: TableID, ifVersion: Int?, context: WriteContext) async throws -> WriteResult<EmptyBody>
    func fields(table: TableID, user: UserID) async throws -> [Field]
    func createField(
        table: TableID,
        _ request: CreateFieldRequest,
        context: WriteContext
    ) async throws
        -> WriteResult<Field>
    func updateField(
        id: FieldID,
        _ request: UpdateFieldRequest,
        ifVersion: Int?,
        context: WriteContext
    ) async throws
        -> WriteResult<Field>
    func deleteField(id: FieldID, ifVersion: Int?, context: WriteContext) async throws -> WriteResult<EmptyBody>
    func views(table: TableID, user: UserID) async throws -> [View]
    func view(id: ViewID, user: UserID) async throws -> View
    func createView(
        table: TableID,
        _ request: CreateViewRequest,
        context: WriteContext
    ) async throws
        -> WriteResult<View>
    func updateView(
        id: ViewID,
        _ request: UpdateViewRequest,
        ifVersion: Int?,
        context: WriteContext
    ) async throws
        -> WriteResult<View>
    func deleteView(id: ViewID, ifVersion: Int?, context: WriteContext) async throws -> WriteResult<EmptyBody>
}

/// Records.
public protocol RecordRepository: Sendable {
    /// One record as wire JSON.
    func encodedRecord(id: RecordID, user: UserID) async throws -> EncodedRecord
    /// A page of records as the wire's `{"data": [...], "next_cursor": …}` JSON.
    func listRecords(schema: TableSchema, plan: RecordListPlan, user: UserID) async throws -> [UInt8]
    func listRecordParts(schema: TableSchema, plan: RecordListPlan, user: UserID) async throws -> RecordListParts
    func createRecord(
        table: TableID,
        fields: [String: FieldValue],
        context: WriteContext
    ) async throws
        -> WriteResult<EncodedRecord>
    func updateRecord(
        id: RecordID,
        fields: [String: FieldValue],
        replace: Bool,
        ifVersion: Int?,
        context: WriteContext
    )
        async throws -> WriteResult<EncodedRecord>
    func deleteRecord(id: RecordID, ifVersion: Int?, context: WriteContext) async throws -> WriteResult<DeletedRecord>
    func batch(
        table: TableID,
        operations: [BatchOperation],
        context: WriteContext
    ) async throws
        -> WriteResult<EncodedJSON>
    /// A write of Airtable's Web API v0 (create, update, replace, upsert or delete of up to 10
    /// records, with the select choices its `typecast` adds) in one transaction.
    func airtableWrite(
        table: TableID,
        _ write: AirtableRecordWrite,
        context: WriteContext
    ) async throws
        -> WriteResult<EncodedJSON>
}

/// Uploaded files' metadata and the reference counts of their content-addressed blobs.
public protocol FileRepository: Sendable {
    /// The files the user may read: those of `workspace` (a member's), else their own private ones
    /// and those of every workspace they belong to.
    func files(user: UserID, workspace: WorkspaceID?, limit: Int, after: FileID?) async throws -> [FileMetadata]
    func file(id: FileID, user: UserID) async throws -> FileMetadata
    /// A file by id with no access check: for a signed attachment URL, whose signature is the access.
    func fileForSignedURL(id: FileID) async throws -> FileMetadata
    /// The bytes of the files `user` uploaded that still exist (what the upload quota counts).
    func uploadedBytes(user: UserID) async throws -> Int64
    /// Records a received upload: the file row, +1 on its blob (created at 1), the event. Refused
    /// (413) when it would take the uploader past the store's upload quota.
    func createFile(_ file: NewFile, context: WriteContext) async throws -> WriteResult<FileMetadata>
    /// Removes a file row; its blob's count drops by one (see ``sweepUnreferencedBlobs()``).
    func deleteFile(id: FileID, context: WriteContext) async throws -> WriteResult<EmptyBody>
    /// Deletes the rows of blobs no file references any more and answers their digests.
    func sweepUnreferencedBlobs() async throws -> [String]
    /// The digests of every blob row.
    func blobDigests() async throws -> Set<String>
}

/// A file about to be recorded: its metadata as given, and its received bytes' digest and size.
public struct NewFile: Sendable {
    public var name: String
    public var contentType: String
    public var size: Int64
    public var sha256: String
    public var workspaceID: WorkspaceID?
}

/// The event log, idempotency bookkeeping and counts.
public protocol EventLogRepository: Sendable {
    func eventBounds() async throws -> (oldest: Int64, newest: Int64)
    func events(since: Int64, filter: EventFilter, limit: Int, user: UserID) async throws -> EventLogPage
    func trimEvents(olderThan cutoff: Date) async throws -> Int
    func purgeIdempotencyKeys(now: Date) async throws -> Int
    /// The stored answer of an earlier request with the context's idempotency key (routes whose
    /// work is not one mutation of the store).
    func replayedAnswer(context: WriteContext) async throws -> StoredResponse?
    /// Stores the answer of a request with the context's idempotency key, sealed.
    func storeAnswer(_ response: StoredResponse, context: WriteContext) async throws
    /// Counts of what `user` can see (their workspaces and what those hold, the events they may
    /// read), or of the whole store when `user` is `nil`.
    func stats(visibleTo user: UserID?) async throws -> StoreStats
}

/// Figures of the storage itself, for `/metrics`.
public protocol StorageStatistics: Sendable {
    /// The record read cache's entries, bytes, hits and misses; `nil` for a store that keeps no
    /// such cache.
    var recordCacheStatistics: (entries: Int, bytes: Int, hits: Int, misses: Int)? { get }
}

/// Work that one server instance at a time may do when several share a store.
public protocol InstanceCoordination: Sendable {
    /// Runs `body` while no other instance sharing the store holds `lock`; with `wait` false,
    /// answers `nil` at once (without running `body`) when another instance holds it. A store that
    /// only one instance can open (SQLite) just runs `body`.
    func exclusively<T: Sendable>(
        _ lock: InstanceLock,
        wait: Bool,
        _ body: @Sendable () async throws -> T
    ) async throws -> T?
}

/// The locks instances sharing a store take.
public enum InstanceLock: Int64, Sendable {
    /// A maintenance pass (trimming the log, purging idempotency keys, sweeping blobs): one instance's.
    case maintenance = 1
    /// Placing or removing the bytes of uploaded files in the shared files directory, with the row
    /// that references them: a sweep never removes bytes an upload on another instance just relied on.
    case blobs = 2
}

/// Everything the server stores.
public typealias DataStore = AccountRepository & WorkspaceRepository & SchemaRepository & RecordRepository
    & EventLogRepository & WebhookRepository & FileRepository & StorageStatistics & AirtableWebhookRepository
    & CommentRepository & InstanceCoordination

/// Row counts for `/api/v1/stats`; `lastSeq` is the log's head whoever asks.
public struct StoreStats: Sendable, Hashable {
    public var users: Int
    public var workspaces: Int
    public var bases: Int
    public var tables: Int
    public var records: Int
    public var events: Int
    public var lastSeq: Int64
}

extension SQLiteStore: AccountRepository, WorkspaceRepository, SchemaRepository, RecordRepository,
    EventLogRepository, WebhookRepository, FileRepository, StorageStatistics, InstanceCoordination
{
    /// One instance opens a SQLite store: nothing to coordinate.
    public func exclusively<T: Sendable>(
        _ lock: InstanceLock,
        wait: Bool,
        _ body: @Sendable () async throws -> T
    ) async throws -> T? {
        try await body()
    }

    public var recordCacheStatistics: (entries: Int, bytes: Int, hits: Int, misses: Int)? {
        database.recordCache.statistics
    }
}
