import ArgumentParser
import Foundation
import PyAirtableModels

/// A field described on the command line: `Name:type`, with options after a second colon —
/// `Status:singleSelect:Todo,Done`, `Score:number:2` (precision), `Project:multipleRecordLinks:tbl…`.
enum FieldDefinition {
    /// Parses `--field-def` text.
    /// - Throws: `ValidationError` naming the bad part.
    static func parse(_ text: String) throws -> CreateFieldRequest {
        let parts = text.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, !parts[0].isEmpty else {
            throw ValidationError("--field-def '\(text)' is not of the form Name:type[:options]")
        }
        let type = try fieldType(parts[1])
        let options = parts.count == 3 ? try FieldDefinition.options(type: type, text: parts[2]) : nil
        return CreateFieldRequest(name: parts[0], type: type, options: options)
    }

    /// A known field type.
    /// - Throws: `ValidationError` listing the known types.
    static func fieldType(_ text: String) throws -> FieldType {
        let type = FieldType(rawValue: text)
        guard type.isKnown else {
            throw ValidationError(
                "'\(text)' is not a field type; use one of \(FieldType.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        return type
    }

    /// The options a type takes, written after its second colon.
    static func options(type: FieldType, text: String) throws -> FieldOptions {
        switch type {
        case .singleSelect, .multipleSelects:
            return options(type: type, choices: text, precision: nil, linkedTable: nil) ?? FieldOptions()
        case .number:
            guard let precision = Int(text), (0...8).contains(precision) else {
                throw ValidationError("the precision of a number field is 0 to 8, not '\(text)'")
            }
            return FieldOptions(precision: precision)
        case .multipleRecordLinks:
            return FieldOptions(linkedTableID: try TableID.argument(text))
        default:
            throw ValidationError("a \(type) field takes no options, but got '\(text)'")
        }
    }

    /// Options from `--choices`, `--precision` and `--linked-table`; `nil` when none is given.
    static func options(type: FieldType?, choices: String?, precision: Int?, linkedTable: TableID?) -> FieldOptions? {
        guard choices != nil || precision != nil || linkedTable != nil else { return nil }
        let choiceList = choices.map { list in
            list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                .map { SelectChoice(name: $0) }
        }
        return FieldOptions(choices: choiceList, precision: precision, linkedTableID: linkedTable)
    }
}
