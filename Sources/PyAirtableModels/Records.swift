import Foundation

/// A row of a table. `fields` is keyed by field name, as Airtable does; absent fields are blank.
public struct Record: Codable, Sendable, Hashable, Identifiable {
    public var id: RecordID
    public var tableID: TableID
    public var fields: [String: FieldValue]
    public var version: Int
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: RecordID,
        tableID: TableID,
        fields: [String: FieldValue],
        version: Int = 1,
        createdAt: Date,
        updatedAt: Date
    ) {
        self.id = id
        self.tableID = tableID
        self.fields = fields
        self.version = version
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case id
        case tableID = "table_id"
        case fields, version
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
}

/// `POST /tables/{id}/records`, `PATCH /records/{id}` (merges the given fields) and
/// `PUT /records/{id}` (replaces all fields).
public struct RecordFieldsRequest: Codable, Sendable, Hashable {
    public var fields: [String: FieldValue]

    public init(fields: [String: FieldValue]) {
        self.fields = fields
    }
}

/// One operation of `POST /tables/{id}/records/batch`.
public enum BatchOperation: Codable, Sendable, Hashable {
    case create(fields: [String: FieldValue])
    case update(id: RecordID, fields: [String: FieldValue], ifVersion: Int?)
    case replace(id: RecordID, fields: [String: FieldValue], ifVersion: Int?)
    case delete(id: RecordID, ifVersion: Int?)

    enum CodingKeys: String, CodingKey {
        case op, id, fields
        case ifVersion = "if_version"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let op = try container.decode(String.self, forKey: .op)
        switch op {
        case "create":
            self = .create(fields: try container.decode([String: FieldValue].self, forKey: .fields))
        case "update":
            self = .update(
                id: try container.decode(RecordID.self, forKey: .id),
                fields: try container.decode([String: FieldValue].self, forKey: .fields),
                ifVersion: try container.decodeIfPresent(Int.self, forKey: .ifVersion)
            )
        case "replace":
            self = .replace(
                id: try container.decode(RecordID.self, forKey: .id),
                fields: try container.decode([String: FieldValue].self, forKey: .fields),
                ifVersion: try container.decodeIfPresent(Int.self, forKey: .ifVersion)
            )
        case "delete":
            self = .delete(
                id: try container.decode(RecordID.self, forKey: .id),
                ifVersion: try container.decodeIfPresent(Int.self, forKey: .ifVersion)
            )
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .op,
                in: container,
                debugDescription: "op must be one of create, update, replace, delete; got '\(op)'"
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .create(let fields):
            try container.encode("create", forKey: .op)
            try container.encode(fields, forKey: .fields)
        case .update(let id, let fields, let ifVersion):
            try container.encode("update", forKey: .op)
            try container.encode(id, forKey: .id)
            try container.encode(fields, forKey: .fields)
            try container.encodeIfPresent(ifVersion, forKey: .ifVersion)
        case .replace(let id, let fields, let ifVersion):
            try container.encode("replace", forKey: .op)
            try container.encode(id, forKey: .id)
            try container.encode(fields, forKey: .fields)
            try container.encodeIfPresent(ifVersion, forKey: .ifVersion)
        case .delete(let id, let ifVersion):
            try container.encode("delete", forKey: .op)
            try container.encode(id, forKey: .id)
            try container.encodeIfPresent(ifVersion, forKey: .ifVersion)
        }
    }
}

/// `POST /tables/{id}/records/batch`: up to 100 operations, applied all or nothing.
public struct BatchRequest: Codable, Sendable, Hashable {
    /// The most operations one batch may carry.
    public static let maximumOperations = 100

    public var operations: [BatchOperation]

    public init(operations: [BatchOperation]) {
        self.operations = operations
    }
}

/// The outcome of one batch operation: the record as it now is, or the id of a deleted one.
public enum BatchResult: Codable, Sendable, Hashable {
    case record(Record)
    case deleted(RecordID)

    enum CodingKeys: String, CodingKey {
        case id, deleted
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if try container.decodeIfPresent(Bool.self, forKey: .deleted) == true {
            self = .deleted(try container.decode(RecordID.self, forKey: .id))
        } else {
            self = .record(try Record(from: decoder))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .record(let record):
            try record.encode(to: encoder)
        case .deleted(let id):
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(true, forKey: .deleted)
        }
    }
}

/// The answer of a batch: one result per operation, in order.
public struct BatchResponse: Codable, Sendable, Hashable {
    public var results: [BatchResult]
    public init(results: [BatchResult]) { self.results = results }
}

/// The answer of `DELETE /records/{id}`.
public struct DeletedRecord: Codable, Sendable, Hashable {
    public var id: RecordID
    public var deleted: Bool
    public init(id: RecordID, deleted: Bool = true) {
        self.id = id
        self.deleted = deleted
    }
}

/// One page of a list: `{"data": [...], "next_cursor": "…" | null}`.
public struct Page<Element: Codable & Sendable>: Codable, Sendable {
    public var data: [Element]
    public var nextCursor: String?

    public init(data: [Element], nextCursor: String? = nil) {
        self.data = data
        self.nextCursor = nextCursor
    }

    enum CodingKeys: String, CodingKey {
        case data
        case nextCursor = "next_cursor"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(data, forKey: .data)
        // `next_cursor` is always present, null on the last page.
        try container.encode(nextCursor, forKey: .nextCursor)
    }
}

extension Page: Equatable where Element: Equatable {}
extension Page: Hashable where Element: Hashable {}

/// The query of `GET /tables/{id}/records`.
public struct RecordQuery: Sendable, Hashable {
    /// The largest `page_size` the server accepts.
    public static let maximumPageSize = 1000
    /// The page size when none is given.
    public static let defaultPageSize = 100

    public var view: String?
    public var fields: [String]?
    public var sort: [SortSpec]?
    public var filter: String?
    public var pageSize: Int?
    public var cursor: String?

    public init(
        view: String? = nil,
        fields: [String]? = nil,
        sort: [SortSpec]? = nil,
        filter: String? = nil,
        pageSize: Int? = nil,
        cursor: String? = nil
    ) {
        self.view = view
        self.fields = fields
        self.sort = sort
        self.filter = filter
        self.pageSize = pageSize
        self.cursor = cursor
    }

    /// The query as URL query items, in a stable order (so equal queries give equal URLs).
    public var queryItems: [(name: String, value: String)] {
        var items: [(String, String)] = []
        if let view { items.append(("view", view)) }
        if let fields, !fields.isEmpty { items.append(("fields", fields.joined(separator: ","))) }
        if let sort, !sort.isEmpty { items.append(("sort", SortSpec.format(sort))) }
        if let filter { items.append(("filter", filter)) }
        if let pageSize { items.append(("page_size", String(pageSize))) }
        if let cursor { items.append(("cursor", cursor)) }
        return items
    }
}
