import Foundation
import PyAirtableModels

/// Checks a cell value against its field's type and returns it in stored form.
enum FieldValueValidator {
    /// The value as stored: `nil` clears the cell.
    static func normalize(_ value: FieldValue, for field: Field) throws -> FieldValue? {
        if value == .null { return nil }
        func mismatch(_ expected: String) -> StorageError {
            StorageError.invalid(
                "field '\(field.name)' (\(field.type.rawValue)) takes \(expected), not \(value.kindDescription)",
                field: field.name
            )
        }
        switch field.type {
        case .singleLineText, .multilineText:
            guard case .string(let text) = value else { throw mismatch("a string") }
            if field.type == .singleLineText, text.contains("\n") {
                throw StorageError.invalid("field '\(field.name)' is single-line: no line breaks", field: field.name)
            }
            return text.isEmpty ? nil : value
        case .email:
            guard case .string(let text) = value else { throw mismatch("a string") }
            if text.isEmpty { return nil }
            let parts = text.split(separator: "@", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !text.contains(" ") else {
                throw StorageError.invalid("'\(text)' is not an email address", field: field.name)
            }
            return value
        case .url:
            guard case .string(let text) = value else { throw mismatch("a string") }
            if text.isEmpty { return nil }
            guard let url = URL(string: text), let scheme = url.scheme, !scheme.isEmpty, url.host != nil else {
                throw StorageError.invalid("'\(text)' is not an absolute URL", field: field.name)
            }
            return value
        case .number:
            guard case .number(let number) = value else { throw mismatch("a number") }
            guard number.isFinite else {
                throw StorageError.invalid("field '\(field.name)' takes a finite number", field: field.name)
            }
            return value
        case .checkbox:
            guard case .bool(let bool) = value else { throw mismatch("true or false") }
            return bool ? value : nil
        case .singleSelect:
            guard case .string(let choice) = value else { throw mismatch("a string") }
            if choice.isEmpty { return nil }
            try checkChoices([choice], field: field)
            return value
        case .multipleSelects:
            guard case .strings(let choices) = value else { throw mismatch("a list of strings") }
            if choices.isEmpty { return nil }
            try checkChoices(choices, field: field)
            return value
        case .date:
            guard case .string(let text) = value else { throw mismatch("a date string (YYYY-MM-DD)") }
            if text.isEmpty { return nil }
            guard isCalendarDate(text) else {
                throw StorageError.invalid("'\(text)' is not a date of the form YYYY-MM-DD", field: field.name)
            }
            return value
        case .dateTime:
            guard case .string(let text) = value else { throw mismatch("an ISO-8601 timestamp") }
            if text.isEmpty { return nil }
            guard let date = Timestamp.parse(text) else {
                throw StorageError.invalid("'\(text)' is not an ISO-8601 timestamp", field: field.name)
            }
            return .string(Timestamp.format(date))
        case .multipleRecordLinks:
            guard case .strings(let ids) = value else { throw mismatch("a list of record ids") }
            if ids.isEmpty { return nil }
            for id in ids where !RecordID.isValid(id) {
                throw StorageError.invalid("'\(id)' is not a record id", field: field.name)
            }
            var seen = Set<String>()
            return .strings(ids.filter { seen.insert($0).inserted })
        case .multipleAttachments:
            switch value {
            case .attachments(let attachments):
                return attachments.isEmpty ? nil : value
            case .strings(let ids):
                if ids.isEmpty { return nil }
                var attachments: [Attachment] = []
                for id in ids {
                    guard let fileID = FileID(id) else {
                        throw StorageError.invalid("'\(id)' is not a file id", field: field.name)
                    }
                    attachments.append(Attachment(id: fileID))
                }
                return .attachments(attachments)
            default:
                throw mismatch("a list of attachments")
            }
        default:
            throw StorageError.invalid("field '\(field.name)' has unknown type '\(field.type)'", field: field.name)
        }
    }

    private static func checkChoices(_ choices: [String], field: Field) throws {
        guard let allowed = field.options?.choices, !allowed.isEmpty else { return }
        let names = Set(allowed.map(\.name))
        for choice in choices where !names.contains(choice) {
            throw StorageError.invalid(
                "'\(choice)' is not a choice of field '\(field.name)' (choices: \(allowed.map(\.name).joined(separator: ", ")))",
                field: field.name
            )
        }
    }

    private static func isCalendarDate(_ text: String) -> Bool {
        let parts = text.split(separator: "-")
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
            let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2])
        else { return false }
        var components = DateComponents()
        components.year = year
        components.month = month
        components.day = day
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? .current
        return (1...12).contains(month) && components.isValidDate(in: calendar)
    }
}
