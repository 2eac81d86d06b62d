import Foundation
import HTTPTypes
import PyAirtableModels

/// Cell values between Airtable's JSON and the store: what a v0 write may send for each field type
/// (with and without `typecast`), and how a stored record is shown (`{"id", "createdTime", "fields"}`,
/// keyed by name or field id, as JSON or as `cellFormat=string`).
enum AirtableCells {
    // MARK: Writes

    /// The value of a v0 write's cell for `field`, as the store takes it. With `typecast`, text is read
    /// as a number, a checkbox, a date or a list where the field needs one, and select choices that
    /// do not exist yet are collected in `newChoices` (the store adds them in the write's transaction).
    static func input(
        _ value: JSONValue,
        for field: Field,
        typecast: Bool,
        newChoices: inout [String]
    ) throws -> FieldValue {
        func mismatch(_ expected: String) -> ServerError {
            AirtableErrors.error(
                .unprocessableContent,
                "INVALID_VALUE_FOR_COLUMN",
                "Field \"\(field.name)\" cannot accept the provided value: it takes \(expected)"
            )
        }
        if value == .null { return .null }
        let converted: FieldValue
        switch field.type {
        case .singleLineText, .multilineText, .email, .url:
            switch value {
            case .string(let text): converted = .string(text)
            case .number(let number) where typecast: converted = .string(format(number))
            case .bool(let bool) where typecast: converted = .string(bool ? "true" : "false")
            default: throw mismatch("text")
            }
        case .number:
            switch value {
            case .number(let number): converted = .number(number)
            case .string(let text) where typecast:
                let trimmed = text.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: ",", with: "")
                if trimmed.isEmpty { return .null }
                guard let number = Double(trimmed), number.isFinite else { throw mismatch("a number") }
                converted = .number(number)
            default: throw mismatch("a number")
            }
        case .checkbox:
            switch value {
            case .bool(let bool): converted = .bool(bool)
            case .string(let text) where typecast:
                let lowered = text.trimmingCharacters(in: .whitespaces).lowercased()
                converted = .bool(!["", "false", "no", "0", "unchecked", "off"].contains(lowered))
            case .number(let number) where typecast: converted = .bool(number != 0)
            default: throw mismatch("true or false")
            }
        case .singleSelect:
            let name: String
            switch value {
            case .string(let text): name = text
            case .number(let number) where typecast: name = format(number)
            default: throw mismatch("the name of a choice")
            }
            try checkChoices([name], field: field, typecast: typecast, newChoices: &newChoices)
            converted = .string(name)
        case .multipleSelects:
            let names: [String]
            switch value {
            case .array(let items):
                names = try items.map { item in
                    guard case .string(let name) = item else { throw mismatch("a list of choice names") }
                    return name
                }
            case .string(let text) where typecast:
                names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                    .filter { !$0.isEmpty }
            default: throw mismatch("a list of choice names")
            }
            try checkChoices(names, field: field, typecast: typecast, newChoices: &newChoices)
            converted = .strings(names)
        case .date:
            guard case .string(let text) = value else { throw mismatch("a date (YYYY-MM-DD)") }
            // A full timestamp keeps its date, as Airtable does.
            if text.count > 10, let date = Timestamp.parse(text) {
                converted = .string(String(Timestamp.format(date).prefix(10)))
            } else {
                converted = .string(text)
            }
        case .dateTime:
            guard case .string(let text) = value else { throw mismatch("an ISO 8601 date and time") }
            // A bare date is midnight UTC.
            converted = .string(text.count == 10 && text.dropFirst(4).first == "-" ? text + "T00:00:00.000Z" : text)
        case .multipleRecordLinks:
            switch value {
            case .array(let items):
                converted = .strings(
                    try items.map { item in
                        switch item {
                        case .string(let id): return id
                        case .object(let object):
                            guard case .string(let id)? = object["id"] else { throw mismatch("a list of record ids") }
                            return id
                        default: throw mismatch("a list of record ids")
                        }
                    }
                )
            case .string(let id) where typecast: converted = .strings([id])
            default: throw mismatch("a list of record ids")
            }
        case .multipleAttachments:
            guard case .array(let items) = value else { throw mismatch("a list of attachment objects") }
            converted = .attachments(
                try items.map { item in
                    guard case .object(let object) = item else { throw mismatch("a list of attachment objects") }
                    if case .string(let id)? = object["id"] {
                        guard let fileID = FileID(id) else {
                            throw AirtableErrors.error(
                                .unprocessableContent,
                                "INVALID_ATTACHMENT_OBJECT",
                                "'\(id)' is not an attachment of this server"
                            )
                        }
                        return Attachment(id: fileID)
                    }
                    // Attachments by URL were downloaded before (AttachmentDownloads): a "url" left here is
                    // not a string.
                    throw AirtableErrors.error(
                        .unprocessableContent,
                        "INVALID_ATTACHMENT_OBJECT",
                        "an attachment object needs an \"id\" or a \"url\""
                    )
                }
            )
        default:
            throw mismatch("a value of type \(field.type.rawValue)")
        }
        // The store's own rules (single-line text, email and URL shapes, calendar dates, finite numbers).
        var checked = field
        if !newChoices.isEmpty {
            var options = checked.options ?? FieldOptions()
            options.choices = (options.choices ?? []) + newChoices.map { SelectChoice(name: $0) }
            checked.options = options
        }
        do {
            _ = try FieldValueValidator.normalize(converted, for: checked)
        } catch let error as StorageError {
            guard case .invalid(let message, _, _) = error else { throw error }
            throw AirtableErrors.error(.unprocessableContent, "INVALID_VALUE_FOR_COLUMN", message)
        }
        return converted
    }

    private static func checkChoices(
        _ names: [String],
        field: Field,
        typecast: Bool,
        newChoices: inout [String]
    ) throws {
        let known = Set((field.options?.choices ?? []).map(\.name))
        for name in names where !name.isEmpty && !known.contains(name) && !newChoices.contains(name) {
            guard typecast else {
                throw AirtableErrors.error(
                    .unprocessableContent,
                    "INVALID_MULTIPLE_CHOICE_OPTIONS",
                    "Insufficient permissions to create new select option \"\(name)\" of field \"\(field.name)\": "
                        + "send typecast: true to create it"
                )
            }
            newChoices.append(name)
        }
    }

    /// A number as text: whole numbers without a fraction (`42`, not `42.0`).
    static func format(_ number: Double) -> String {
        if number == number.rounded(), abs(number) < 1e15 { return String(Int64(number)) }
        return String(number)
    }

    // MARK: Reads

    /// How records are shown.
    struct Output: Sendable {
        /// `returnFieldsByFieldId`: cells keyed by field id instead of name.
        var byFieldID = false
        /// `cellFormat=string`: every cell a user-facing string.
        var strings: StringFormat?
        /// `recordMetadata=commentCount`: each record's count of comments by id (none: 0).
        var commentCounts: [String: Int]?
    }

    /// `cellFormat=string`'s settings: the time zone dateTimes are shown in and the names (primary
    /// field values) of linked records.
    struct StringFormat: Sendable {
        var timeZone: TimeZone
        var linkedNames: [String: String] = [:]
        /// Signed URLs for attachments; without, the stored one is shown.
        var attachments: AttachmentURLs?
    }

    /// A record as `/api/v1` answers it (the stored form the v0 routes start from).
    struct StoredRecordJSON: Decodable {
        var id: String
        var tableID: String
        var createdAt: String
        var fields: [String: JSONValue]

        enum CodingKeys: String, CodingKey {
            case id, fields
            case tableID = "table_id"
            case createdAt = "created_at"
        }
    }

    /// A record as Airtable answers it: exactly `id`, `createdTime` and `fields` (and `commentCount`
    /// only when asked), empty cells left out.
    struct AirtableRecord: Encodable {
        var id: String
        var createdTime: String
        var fields: [String: JSONValue]
        var commentCount: Int?
    }

    static func record(_ stored: StoredRecordJSON, schema: TableSchema, output: Output) -> AirtableRecord {
        var fields: [String: JSONValue] = [:]
        fields.reserveCapacity(stored.fields.count)
        for (name, value) in stored.fields {
            guard let field = schema.fieldsByName[name], !isEmpty(value) else { continue }
            let shown = output.strings.map { JSONValue.string(string(value, field: field, format: $0)) } ?? json(value)
            fields[output.byFieldID ? field.id.rawValue : name] = shown
        }
        return AirtableRecord(
            id: stored.id,
            createdTime: stored.createdAt,
            fields: fields,
            commentCount: output.commentCounts.map { $0[stored.id] ?? 0 }
        )
    }

    private static func isEmpty(_ value: JSONValue) -> Bool {
        switch value {
        case .null, .bool(false): true
        case .string(let text): text.isEmpty
        case .array(let items): items.isEmpty
        default: false
        }
    }

    /// A cell in `cellFormat=json`: stored values are Airtable's already, but for attachments, whose
    /// objects name the content type `type`.
    private static func json(_ value: JSONValue) -> JSONValue { renameContentType(value) }

    /// Attachment objects with `content_type` named `type`, as Airtable names it.
    static func renameContentType(_ value: JSONValue) -> JSONValue {
        guard case .array(let items) = value, items.contains(where: { $0["content_type"] != nil }) else {
            return value
        }
        return .array(
            items.map { item in
                guard case .object(var object) = item else { return item }
                if let type = object.removeValue(forKey: "content_type") { object["type"] = type }
                return .object(object)
            }
        )
    }

    /// A cell as a user sees it: numbers at the field's precision, `checked`, lists joined by `, `,
    /// linked records by their primary field, dateTimes in the requested time zone (`YYYY-MM-DD HH:mm`,
    /// the formats the meta API declares), attachments as `filename (url)`.
    static func string(_ value: JSONValue, field: Field, format: StringFormat) -> String {
        switch (field.type, value) {
        case (.number, .number(let number)):
            let precision = max(0, min(field.options?.precision ?? 0, 8))
            return String(format: "%.\(precision)f", number)
        case (.checkbox, _):
            return "checked"
        case (.dateTime, .string(let text)):
            guard let date = Timestamp.parse(text) else { return text }
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = format.timeZone
            let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: date)
            return String(
                format: "%04d-%02d-%02d %02d:%02d",
                parts.year ?? 0,
                parts.month ?? 0,
                parts.day ?? 0,
                parts.hour ?? 0,
                parts.minute ?? 0
            )
        case (.multipleRecordLinks, .array(let items)):
            return items.compactMap { item -> String? in
                guard case .string(let id) = item else { return nil }
                return format.linkedNames[id] ?? id
            }.joined(separator: ", ")
        case (.multipleAttachments, .array(let items)):
            return items.map { item -> String in
                let name = item["filename"].flatMap { if case .string(let s) = $0 { s } else { nil } } ?? ""
                var url = item["url"].flatMap { if case .string(let s) = $0 { s } else { nil } } ?? ""
                if let urls = format.attachments, case .string(let id)? = item["id"] {
                    url = urls.url(file: id, filename: name)
                }
                return "\(name) (\(url))"
            }.joined(separator: ", ")
        case (_, .array(let items)):
            return items.map { item in
                if case .string(let text) = item { return text }
                return plain(item)
            }.joined(separator: ", ")
        default:
            return plain(value)
        }
    }

    private static func plain(_ value: JSONValue) -> String {
        switch value {
        case .null: ""
        case .bool(let bool): bool ? "true" : "false"
        case .number(let number): format(number)
        case .string(let text): text
        case .array(let items): items.map(plain).joined(separator: ", ")
        case .object: ""
        }
    }
}
