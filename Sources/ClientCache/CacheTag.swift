/// Tag helpers and RTK Query's invalidation rules.
///
/// A tag is `type:id` (specific) or a bare `type` (general). Invalidating a specific tag removes the
/// entries that provide exactly that tag; invalidating a general tag removes every entry that provides
/// the type, with or without an id. So a list of table `tbl1` provides `table:tbl1` and
/// `record:rec…` for each record it shows: changing one record (`record:rec7`) invalidates the lists
/// that show it, a schema change (`table:tbl1`) every entry of the table, and `record` every record
/// and list of records.
///
/// ```swift
/// try await cache.set("tbl1/list", value: body, tags: [CacheTag.table("tbl1"), CacheTag.record("rec7")])
/// try await cache.invalidate(tags: [CacheTag.record("rec7")])   // the list is gone
/// ```
public enum CacheTag {
    /// The tag of a table, provided by every entry built from the table.
    public static func table(_ id: String) -> String { "table:\(id)" }

    /// The tag of a record, provided by the record and by every list containing it.
    public static func record(_ id: String) -> String { "record:\(id)" }

    /// Whether invalidating `invalidated` removes an entry that provides `provided`.
    public static func matches(provided: String, invalidated: String) -> Bool {
        if isGeneral(invalidated) {
            return provided == invalidated || provided.hasPrefix(invalidated + ":")
        }
        return provided == invalidated
    }

    /// Whether `tag` is general (a bare type with no id).
    public static func isGeneral(_ tag: String) -> Bool {
        !tag.contains(":")
    }
}

/// A set of invalidated tags, compiled for matching many provided tags against it.
struct CacheTagMatcher: Sendable {
    /// Tags that match a provided tag equal to them (every invalidated tag, specific or general).
    private let exact: [String]
    /// `type:` for each general tag: a provided tag starting with it matches.
    private let prefixes: [String]

    init(invalidated: [String]) {
        exact = invalidated
        prefixes = invalidated.filter(CacheTag.isGeneral).map { $0 + ":" }
    }

    /// Whether invalidating these tags removes an entry that provides `provided`.
    func matches(_ provided: String) -> Bool {
        exact.contains(provided) || prefixes.contains { provided.utf8.starts(with: $0.utf8) }
    }

    /// Whether invalidating these tags removes an entry that provides `provided`.
    func matchesAny(of provided: [String]) -> Bool {
        provided.contains(where: matches)
    }
}
