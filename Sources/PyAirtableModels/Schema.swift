import Foundation

/// A choice of a `singleSelect` or `multipleSelects` field.
public struct SelectChoice: Codable, Sendable, Hashable {
    public var name: String
    public var color: String?

    public init(name: String, color: String? = nil) {
        self.name = name
        self.color = color
    }
}

/// Type-specific settings of a field.
public struct FieldOptions: Codable, Sendable, Hashable {
    /// The allowed choices of a select field.
    public var choices: [SelectChoice]?
    /// Digits after the decimal point of a number field (display only).
    public var precision: Int?
    /// The table a `multipleRecordLinks` field links to.
    public var linkedTableID: TableID?

    public init(choices: [SelectChoice]? = nil, precision: Int? = nil, linkedTableID: TableID? = nil) {
        self.choices = choices
        self.precision = precision
        self.linkedTableID = linkedTableID
    }

    enum CodingKeys: String, CodingKey {
        case choices, precision
        case linkedTableID = "linked_table_id"
    }
}

/// A column of a table.
public struct Field: Codable, Sendable, Hashable, Identifiable {
    public var id: FieldID
    public var tableID: TableID
    public var name: String
    public var type: FieldType
    public var options: FieldOptions?
    public var description: String?
    public var version: Int
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: FieldID,
        tableID: TableID,
        name: String,
        type: FieldType,
        options: FieldOptions? = nil,
        description: String? = nil,
        version: Int = 1,
        createdAt: Date,
        updatedAt: Date
    ) {
        self.id = id
        self.tableID = tableID
        self.name = name
        self.type = type
        self.options = options
        self.description = description
        self.version = version
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case id
        case tableID = "table_id"
        case name, type, options, description, version
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
}

/// `POST /tables/{id}/fields`, and each field of `POST /bases/{id}/tables`.
public struct CreateFieldRequest: Codable, Sendable, Hashable {
    public var name: String
    public var type: FieldType
    public var options: FieldOptions?
    public var description: String?

    public init(name: String, type: FieldType, options: FieldOptions? = nil, description: String? = nil) {
        self.name = name
        self.type = type
        self.options = options
        self.description = description
    }
}

extension CreateFieldRequest {
    /// A single line of text.
    public static func singleLineText(_ name: String, description: String? = nil) -> Self {
        Self(name: name, type: .singleLineText, description: description)
    }

    /// Text of several lines.
    public static func multilineText(_ name: String, description: String? = nil) -> Self {
        Self(name: name, type: .multilineText, description: description)
    }

    /// A number shown with `precision` digits after the point (0…8), when given.
    public static func number(_ name: String, precision: Int? = nil, description: String? = nil) -> Self {
        Self(
            name: name,
            type: .number,
            options: precision.map { FieldOptions(precision: $0) },
            description: description
        )
    }

    /// A checkbox (never the primary field).
    public static func checkbox(_ name: String, description: String? = nil) -> Self {
        Self(name: name, type: .checkbox, description: description)
    }

    /// One of `choices`: `.singleSelect("Status", choices: ["Todo", "Doing", "Done"])`.
    public static func singleSelect(_ name: String, choices: [String], description: String? = nil) -> Self {
        Self(
            name: name,
            type: .singleSelect,
            options: FieldOptions(choices: choices.map { SelectChoice(name: $0) }),
            description: description
        )
    }

    /// Any of `choices`.
    public static func multipleSelects(_ name: String, choices: [String], description: String? = nil) -> Self {
        Self(
            name: name,
            type: .multipleSelects,
            options: FieldOptions(choices: choices.map { SelectChoice(name: $0) }),
            description: description
        )
    }

    /// A calendar date (`2026-12-06`).
    public static func date(_ name: String, description: String? = nil) -> Self {
        Self(name: name, type: .date, description: description)
    }

    /// An instant (ISO 8601 with a time zone).
    public static func dateTime(_ name: String, description: String? = nil) -> Self {
        Self(name: name, type: .dateTime, description: description)
    }

    /// An email address.
    public static func email(_ name: String, description: String? = nil) -> Self {
        Self(name: name, type: .email, description: description)
    }

    /// A URL.
    public static func url(_ name: String, description: String? = nil) -> Self {
        Self(name: name, type: .url, description: description)
    }

    /// Files (never the primary field).
    public static func attachments(_ name: String, description: String? = nil) -> Self {
        Self(name: name, type: .multipleAttachments, description: description)
    }

    /// Links to records of `table` (never the primary field).
    public static func links(_ name: String, to table: TableID, description: String? = nil) -> Self {
        Self(
            name: name,
            type: .multipleRecordLinks,
            options: FieldOptions(linkedTableID: table),
            description: description
        )
    }
}

/// `PATCH /fields/{id}`: rename, re-describe or change options. A field's type does not change.
public struct UpdateFieldRequest: Codable, Sendable, Hashable {
    public var name: String?
    public var options: FieldOptions?
    public var description: String?

    public init(name: String? = nil, options: FieldOptions? = nil, description: String? = nil) {
        self.name = name
        self.options = options
        self.description = description
    }
}

/// A sort key: a field name and a direction.
public struct SortSpec: Codable, Sendable, Hashable {
    public enum Direction: String, Codable, Sendable, Hashable {
        case asc, desc
    }

    public var field: String
    public var direction: Direction

    public init(field: String, direction: Direction = .asc) {
        self.field = field
        self.direction = direction
    }

    /// `field`, smallest first: `.ascending("Name")`.
    public static func ascending(_ field: String) -> SortSpec { SortSpec(field: field, direction: .asc) }

    /// `field`, largest first: `.descending("Score")`.
    public static func descending(_ field: String) -> SortSpec { SortSpec(field: field, direction: .desc) }

    /// Parses the query form `Name:asc,Score:desc` (direction defaults to `asc`).
    /// - Throws: ``SortSpecError`` naming the bad part.
    public static func parseList(_ string: String) throws(SortSpecError) -> [SortSpec] {
        var specs: [SortSpec] = []
        for part in string.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = part.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { throw SortSpecError(part: String(part)) }
            if let colon = trimmed.lastIndex(of: ":") {
                let name = trimmed[..<colon].trimmingCharacters(in: .whitespaces)
                let direction = trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                guard !name.isEmpty, let parsed = Direction(rawValue: direction.lowercased()) else {
                    throw SortSpecError(part: trimmed)
                }
                specs.append(SortSpec(field: name, direction: parsed))
            } else {
                specs.append(SortSpec(field: trimmed))
            }
        }
        return specs
    }

    /// The query form of a list of sort keys.
    public static func format(_ specs: [SortSpec]) -> String {
        specs.map { "\($0.field):\($0.direction.rawValue)" }.joined(separator: ",")
    }
}

/// A malformed `sort` parameter.
public struct SortSpecError: Error, Sendable, Hashable, CustomStringConvertible {
    public var part: String
    public var description: String {
        "sort entry '\(part)' is not of the form Field:asc or Field:desc"
    }
}

/// A saved filter, sort and set of visible fields over a table.
public struct View: Codable, Sendable, Hashable, Identifiable {
    public var id: ViewID
    public var tableID: TableID
    public var name: String
    public var type: String
    public var filter: String?
    public var sort: [SortSpec]?
    public var fields: [String]?
    public var version: Int
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: ViewID,
        tableID: TableID,
        name: String,
        type: String = "grid",
        filter: String? = nil,
        sort: [SortSpec]? = nil,
        fields: [String]? = nil,
        version: Int = 1,
        createdAt: Date,
        updatedAt: Date
    ) {
        self.id = id
        self.tableID = tableID
        self.name = name
        self.type = type
        self.filter = filter
        self.sort = sort
        self.fields = fields
        self.version = version
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case id
        case tableID = "table_id"
        case name, type, filter, sort, fields, version
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
}

/// `POST /tables/{id}/views`.
public struct CreateViewRequest: Codable, Sendable, Hashable {
    public var name: String
    public var type: String?
    public var filter: String?
    public var sort: [SortSpec]?
    public var fields: [String]?

    public init(
        name: String,
        type: String? = nil,
        filter: String? = nil,
        sort: [SortSpec]? = nil,
        fields: [String]? = nil
    ) {
        self.name = name
        self.type = type
        self.filter = filter
        self.sort = sort
        self.fields = fields
    }
}

/// `PATCH /views/{id}`. An empty string `filter` clears the filter; an empty `sort` or `fields` clears them.
public struct UpdateViewRequest: Codable, Sendable, Hashable {
    public var name: String?
    public var filter: String?
    public var sort: [SortSpec]?
    public var fields: [String]?

    public init(name: String? = nil, filter: String? = nil, sort: [SortSpec]? = nil, fields: [String]? = nil) {
        self.name = name
        self.filter = filter
        self.sort = sort
        self.fields = fields
    }
}

/// A table with its fields and views.
public struct Table: Codable, Sendable, Hashable, Identifiable {
    public var id: TableID
    public var baseID: BaseID
    public var name: String
    public var description: String?
    public var primaryFieldID: FieldID
    public var fields: [Field]
    public var views: [View]
    public var version: Int
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: TableID,
        baseID: BaseID,
        name: String,
        description: String? = nil,
        primaryFieldID: FieldID,
        fields: [Field],
        views: [View],
        version: Int = 1,
        createdAt: Date,
        updatedAt: Date
    ) {
        self.id = id
        self.baseID = baseID
        self.name = name
        self.description = description
        self.primaryFieldID = primaryFieldID
        self.fields = fields
        self.views = views
        self.version = version
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// The field called `name`, if any.
    public func field(named name: String) -> Field? {
        fields.first { $0.name == name }
    }

    enum CodingKeys: String, CodingKey {
        case id
        case baseID = "base_id"
        case name, description
        case primaryFieldID = "primary_field_id"
        case fields, views, version
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
}

/// `POST /bases/{id}/tables`: a table is created with its fields; the first field is the primary one.
public struct CreateTableRequest: Codable, Sendable, Hashable {
    public var name: String
    public var description: String?
    public var fields: [CreateFieldRequest]

    public init(name: String, description: String? = nil, fields: [CreateFieldRequest]) {
        self.name = name
        self.description = description
        self.fields = fields
    }
}

/// `PATCH /tables/{id}`.
public struct UpdateTableRequest: Codable, Sendable, Hashable {
    public var name: String?
    public var description: String?

    public init(name: String? = nil, description: String? = nil) {
        self.name = name
        self.description = description
    }
}

/// A base: a set of related tables inside a workspace.
public struct Base: Codable, Sendable, Hashable, Identifiable {
    public var id: BaseID
    public var workspaceID: WorkspaceID
    public var name: String
    public var version: Int
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: BaseID,
        workspaceID: WorkspaceID,
        name: String,
        version: Int = 1,
        createdAt: Date,
        updatedAt: Date
    ) {
        self.id = id
        self.workspaceID = workspaceID
        self.name = name
        self.version = version
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case id
        case workspaceID = "workspace_id"
        case name, version
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
}

/// `POST /workspaces/{id}/bases`.
public struct CreateBaseRequest: Codable, Sendable, Hashable {
    public var name: String
    public init(name: String) { self.name = name }
}

/// `PATCH /bases/{id}`.
public struct UpdateBaseRequest: Codable, Sendable, Hashable {
    public var name: String?
    public init(name: String? = nil) { self.name = name }
}
