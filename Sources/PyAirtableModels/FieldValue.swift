import Foundation

/// A cell value of a record, as it travels on the wire.
///
/// Which cases a field accepts depends on its ``FieldType``: text types take ``string(_:)``,
/// `number` takes ``number(_:)``, `checkbox` ``bool(_:)``, `multipleSelects` and
/// `multipleRecordLinks` ``strings(_:)``, `multipleAttachments` ``attachments(_:)``.
/// ``null`` clears a cell.
public enum FieldValue: Sendable, Hashable {
    case null
    case string(String)
    case number(Double)
    case bool(Bool)
    case strings([String])
    case attachments([Attachment])

    /// Whether the value is blank in the formula sense: null, empty text, an empty list or unchecked.
    public var isBlank: Bool {
        switch self {
        case .null: true
        case .string(let string): string.isEmpty
        case .number: false
        case .bool(let bool): !bool
        case .strings(let strings): strings.isEmpty
        case .attachments(let attachments): attachments.isEmpty
        }
    }

    /// The value as a person reads it: text as is, whole numbers without a decimal point, lists
    /// joined with commas, blank as an empty string.
    public var displayText: String {
        switch self {
        case .null: ""
        case .string(let string): string
        case .number(let number):
            number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
        case .bool(let bool): bool ? "true" : "false"
        case .strings(let strings): strings.joined(separator: ", ")
        case .attachments(let attachments): attachments.map { $0.filename ?? $0.id.rawValue }.joined(separator: ", ")
        }
    }

    /// The value's JSON kind, for error messages.
    public var kindDescription: String {
        switch self {
        case .null: "null"
        case .string: "a string"
        case .number: "a number"
        case .bool: "a boolean"
        case .strings: "a list of strings"
        case .attachments: "a list of attachments"
        }
    }
}

extension FieldValue: ExpressibleByStringLiteral, ExpressibleByFloatLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByBooleanLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension FieldValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        // Most likely kinds first: every failed attempt throws, and throwing is the cost here.
        if container.decodeNil() {
            self = .null
        } else if let string = try? container.decode(String.self) {
            self = .string(string)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let bool = try? container.decode(Bool.self) {
            self = .bool(bool)
        } else if let strings = try? container.decode([String].self) {
            self = .strings(strings)
        } else if let attachments = try? container.decode([Attachment].self) {
            self = .attachments(attachments)
        } else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription:
                    "a field value must be null, a string, a number, a boolean, a list of strings or a list of attachments"
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .string(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .strings(let value): try container.encode(value)
        case .attachments(let value): try container.encode(value)
        }
    }
}

/// A file attached to a record: a reference to an uploaded file.
public struct Attachment: Codable, Sendable, Hashable {
    public var id: FileID
    public var filename: String?
    public var contentType: String?
    public var size: Int?
    /// Where the bytes are, filled in by the server: `/api/v1/files/{id}/content`.
    public var url: String?

    public init(
        id: FileID,
        filename: String? = nil,
        contentType: String? = nil,
        size: Int? = nil,
        url: String? = nil
    ) {
        self.id = id
        self.filename = filename
        self.contentType = contentType
        self.size = size
        self.url = url
    }

    enum CodingKeys: String, CodingKey {
        case id, filename
        case contentType = "content_type"
        case size, url
    }
}

/// A field's type, with Airtable's names.
public struct FieldType: RawRepresentable, Codable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let singleLineText = FieldType(rawValue: "singleLineText")
    public static let multilineText = FieldType(rawValue: "multilineText")
    public static let number = FieldType(rawValue: "number")
    public static let checkbox = FieldType(rawValue: "checkbox")
    public static let singleSelect = FieldType(rawValue: "singleSelect")
    public static let multipleSelects = FieldType(rawValue: "multipleSelects")
    public static let date = FieldType(rawValue: "date")
    public static let dateTime = FieldType(rawValue: "dateTime")
    public static let email = FieldType(rawValue: "email")
    public static let url = FieldType(rawValue: "url")
    public static let multipleAttachments = FieldType(rawValue: "multipleAttachments")
    public static let multipleRecordLinks = FieldType(rawValue: "multipleRecordLinks")

    /// Every type the platform knows.
    public static let allCases: [FieldType] = [
        .singleLineText, .multilineText, .number, .checkbox, .singleSelect, .multipleSelects, .date,
        .dateTime, .email, .url, .multipleAttachments, .multipleRecordLinks,
    ]

    /// Whether the platform knows this type.
    public var isKnown: Bool { Self.allCases.contains(self) }

    /// Whether values of this type are text (compared and searched as strings).
    public var isText: Bool {
        [.singleLineText, .multilineText, .singleSelect, .email, .url, .date, .dateTime].contains(self)
    }

    public var description: String { rawValue }
}
