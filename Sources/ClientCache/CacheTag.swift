/// What a cached entry contains, for invalidation: `type:id` (specific) or a bare `type` (general),
/// by RTK Query's rules.
///
/// Invalidating a specific tag removes the entries that provide exactly that tag; invalidating a
/// general tag removes every entry that provides the type, with or without an id. So a list of table
/// `tbl1` provides `table:tbl1` and `record:rec…` for each record it shows: changing one record
/// (`record:rec7`) invalidates the lists that show it, a schema change (`table:tbl1`) every entry of
/// the table, and `record` every record and list of records.
///
/// ```swift
/// try await cache.set("tbl1/list", value: body, tags: [CacheTag("table", id: "tbl1"), CacheTag("record", id: "rec7")])
/// try await cache.invalidate(tags: [CacheTag("record", id: "rec7")])   // the list is gone
/// ```
///
/// Layers above the cache give their tags names (`PyAirtableClient` has `.record(id)`, `.table(id)`
/// and others) in extensions of this type.
public struct CacheTag: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible,
    ExpressibleByStringInterpolation
{
    /// The tag as stored: `type:id`, or `type`.
    public let rawValue: String

    /// A tag from its stored form.
    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    /// A specific tag, `type:id`; with `id` `nil`, the general tag of `type`.
    ///
    /// Neither part may contain a newline; `type` may not contain `:`.
    public init(_ type: String, id: String? = nil) {
        self.rawValue = id.map { "\(type):\($0)" } ?? type
    }

    public init(stringLiteral value: String) {
        self.rawValue = value
    }

    /// The general tag of `type`: invalidating it removes every entry that provides `type`, with any id.
    public static func general(_ type: String) -> CacheTag { CacheTag(type) }

    /// The type: the part before the first `:`, or the whole tag.
    public var type: Substring { rawValue.split(separator: ":", maxSplits: 1).first ?? Substring(rawValue) }

    /// The id, or `nil` for a general tag.
    public var id: Substring? {
        guard let colon = rawValue.firstIndex(of: ":") else { return nil }
        return rawValue[rawValue.index(after: colon)...]
    }

    /// Whether the tag is general (a bare type with no id).
    public var isGeneral: Bool { Self.isGeneral(rawValue) }

    /// Whether invalidating this tag removes an entry that provides `provided`.
    public func invalidates(_ provided: CacheTag) -> Bool {
        Self.matches(provided: provided.rawValue, invalidated: rawValue)
    }

    public var description: String { rawValue }

    public static func < (lhs: CacheTag, rhs: CacheTag) -> Bool { lhs.rawValue < rhs.rawValue }

    static func matches(provided: String, invalidated: String) -> Bool {
        if isGeneral(invalidated) {
            return provided == invalidated || provided.hasPrefix(invalidated + ":")
        }
        return provided == invalidated
    }

    static func isGeneral(_ tag: String) -> Bool {
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

    /// Whether invalidating these tags removes an entry that provides `provided`.
    func matchesAny(of provided: [CacheTag]) -> Bool {
        provided.contains { matches($0.rawValue) }
    }
}
