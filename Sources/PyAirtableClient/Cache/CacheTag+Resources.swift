import ClientCache
import PyAirtableModels

/// The tags the SDK's cached reads provide, so that a write — this client's, or one the server
/// reports — drops exactly the entries it changes.
///
/// ```swift
/// try await client.cache.invalidate(tags: [.record(recordID)])        // the record and every list showing it
/// try await client.cache.invalidate(tags: [.recordLists(of: tableID)]) // every page of the table's records
/// try await client.cache.invalidate(tags: [.every(.table)])           // every table's schema
/// ```
extension CacheTag {
    /// The kinds of tag the SDK provides; ``every(_:)`` names all tags of one kind.
    public enum Kind: String, Sendable, CaseIterable {
        /// A record, provided by the record and by every list page showing it.
        case record
        /// The list pages of a table's records.
        case recordLists = "list"
        /// Everything built from a table's records: single records and list pages.
        case records
        /// A table's schema: the table, its fields and views, and its list pages.
        case table
        /// The table list of a base.
        case tables
        /// A base.
        case base
        /// The base list of a workspace.
        case bases
        /// A workspace.
        case workspace
        /// The list of the user's workspaces.
        case workspaces
        /// The members of a workspace.
        case members
        /// A user.
        case user
    }

    private init(_ kind: Kind, _ id: some CustomStringConvertible) {
        self.init(kind.rawValue, id: id.description)
    }

    /// Every tag of `kind`: invalidating it drops every entry that provides a tag of that kind.
    public static func every(_ kind: Kind) -> CacheTag { CacheTag(kind.rawValue) }

    /// A record: provided by the record and by every list page that shows it.
    public static func record(_ id: RecordID) -> CacheTag { CacheTag(.record, id) }

    /// The list pages of a table's records (any query).
    public static func recordLists(of table: TableID) -> CacheTag { CacheTag(.recordLists, table) }

    /// Everything built from a table's records: single records and list pages.
    public static func records(of table: TableID) -> CacheTag { CacheTag(.records, table) }

    /// A table's schema, provided by the table, its fields and views, and its list pages.
    public static func table(_ id: TableID) -> CacheTag { CacheTag(.table, id) }

    /// The table list of a base.
    public static func tables(of base: BaseID) -> CacheTag { CacheTag(.tables, base) }

    /// A base.
    public static func base(_ id: BaseID) -> CacheTag { CacheTag(.base, id) }

    /// The base list of a workspace.
    public static func bases(of workspace: WorkspaceID) -> CacheTag { CacheTag(.bases, workspace) }

    /// A workspace.
    public static func workspace(_ id: WorkspaceID) -> CacheTag { CacheTag(.workspace, id) }

    /// The list of the user's workspaces.
    public static var workspaces: CacheTag { every(.workspaces) }

    /// The members of a workspace.
    public static func members(of workspace: WorkspaceID) -> CacheTag { CacheTag(.members, workspace) }

    /// A user.
    public static func user(_ id: UserID) -> CacheTag { CacheTag(.user, id) }
}
