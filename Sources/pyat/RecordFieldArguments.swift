import ArgumentParser
import Foundation
import PyAirtableClient
import PyAirtableModels

/// The fields of a record write: `--field Name=value …` typed by the table's field types, and/or
/// `--json '{"Name": …}'` taken as it is. `--field` wins over `--json` for the same name.
struct RecordFieldArguments: ParsableArguments {
    @Option(
        name: .customLong("field"),
        help: ArgumentHelp(
            "A field value, typed by the field: numbers, true/false, comma lists for multipleSelects and links; Name= clears.",
            valueName: "Name=value"
        )
    )
    var assignments: [String] = []

    @Option(help: ArgumentHelp("Field values as a JSON object.", valueName: "{\"Name\": …}"))
    var json: String?

    func validate() throws {
        _ = try pairs()
        _ = try jsonFields()
    }

    /// Whether neither `--field` nor `--json` was given.
    var isEmpty: Bool { assignments.isEmpty && json == nil }

    /// Whether values need the table's field types.
    var needsSchema: Bool { !assignments.isEmpty }

    /// The values to send; `table` gives the field types of `--field` values.
    /// - Throws: `ValidationError` for an unknown field or a value its type does not take.
    func values(table: Table?) throws -> [String: FieldValue] {
        var values = try jsonFields()
        let pairs = try pairs()
        guard !pairs.isEmpty else { return values }
        guard let table else { throw ValidationError("--field needs the table's field types") }
        for (name, text) in pairs {
            let field = try Self.field(named: name, in: table)
            values[field.name] = try Self.value(text, for: field)
        }
        return values
    }

    private func pairs() throws -> [(name: String, value: String)] {
        try assignments.map { assignment in
            guard let equals = assignment.firstIndex(of: "="), equals != assignment.startIndex else {
                throw ValidationError("--field '\(assignment)' is not of the form Name=value")
            }
            return (String(assignment[..<equals]), String(assignment[assignment.index(after: equals)...]))
        }
    }

    private func jsonFields() throws -> [String: FieldValue] {
        guard let json else { return [:] }
        do {
            return try JSONCoding.decoder.decode([String: FieldValue].self, from: Data(json.utf8))
        } catch {
            throw ValidationError(
                "--json must be a JSON object of field values, such as '{\"Name\": \"Ada\", \"Score\": 3}'"
            )
        }
    }

    /// The field called `name`, or the only one whose name matches it ignoring case.
    static func field(named name: String, in table: Table) throws -> Field {
        if let field = table.field(named: name) { return field }
        let matches = table.fields.filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }
        if matches.count == 1 { return matches[0] }
        throw ValidationError(
            "table \(table.name) has no field '\(name)'; its fields are \(table.fields.map(\.name).joined(separator: ", "))"
        )
    }

    /// `text` as a value of `field`'s type; an empty text clears the cell.
    /// - Throws: `ValidationError` when the type does not take the text.
    static func value(_ text: String, for field: Field) throws -> FieldValue {
        if text.isEmpty { return .null }
        switch field.type {
        case .number:
            guard let number = Double(text.trimmingCharacters(in: .whitespaces)), number.isFinite else {
                throw ValidationError("field '\(field.name)' is a number; '\(text)' is not one")
            }
            return .number(number)
        case .checkbox:
            switch text.trimmingCharacters(in: .whitespaces).lowercased() {
            case "true", "yes", "y", "1", "on", "checked": return .bool(true)
            case "false", "no", "n", "0", "off", "unchecked": return .bool(false)
            default: throw ValidationError("field '\(field.name)' is a checkbox; give true or false, not '\(text)'")
            }
        case .multipleSelects:
            return .strings(list(text))
        case .multipleRecordLinks:
            return .strings(try list(text).map { try RecordArgument.argument($0).reference.rawValue })
        case .multipleAttachments:
            return .attachments(try list(text).map { Attachment(id: try FileID.argument($0)) })
        default:
            return .string(text)
        }
    }

    private static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
