import Foundation
import PyAirtableModels

/// Rules for fields and views beyond what decoding checks.
enum SchemaValidation {

    /// Checks a new field: name, known type and type-specific options.
    static func field(_ field: CreateFieldRequest) throws -> CreateFieldRequest {
        var field = field
        field.name = try InputRules.name(field.name, field: "fields.name")
        guard field.type.isKnown else {
            throw StorageError.invalid(
                "unknown field type '\(field.type)'; known types: \(FieldType.allCases.map(\.rawValue).joined(separator: ", "))",
                field: field.name
            )
        }
        if field.name.contains("{") || field.name.contains("}") {
            throw StorageError.invalid("field names may not contain braces", field: field.name)
        }
        try options(field.options, type: field.type, name: field.name)
        return field
    }

    static func options(_ options: FieldOptions?, type: FieldType, name: String) throws {
        if let choices = options?.choices {
            guard type == .singleSelect || type == .multipleSelects else {
                throw StorageError.invalid("only select fields take choices", field: name)
            }
            let names = choices.map(\.name)
            guard Set(names).count == names.count, !names.contains(where: \.isEmpty) else {
                throw StorageError.invalid("choices must be non-empty and distinct", field: name)
            }
        }
        if let precision = options?.precision, !(0...8).contains(precision) {
            throw StorageError.invalid("precision must be between 0 and 8", field: name)
        }
        if options?.linkedTableID != nil, type != .multipleRecordLinks {
            throw StorageError.invalid("only multipleRecordLinks fields take linked_table_id", field: name)
        }
    }

    /// Checks a new table: a name and 1…`maximumFields` distinct, valid fields. (The store checks the
    /// limit again as it inserts each field.)
    static func table(_ request: CreateTableRequest, maximumFields: Int) throws -> CreateTableRequest {
        var request = request
        request.name = try InputRules.name(request.name)
        guard !request.fields.isEmpty else {
            throw StorageError.invalid("a table needs at least one field", field: "fields")
        }
        guard request.fields.count <= maximumFields else {
            throw StorageError.invalid("a table has at most \(maximumFields) fields", field: "fields")
        }
        request.fields = try request.fields.map(field)
        var seen = Set<String>()
        for field in request.fields where !seen.insert(field.name).inserted {
            throw StorageError.invalid("two fields are named '\(field.name)'", field: field.name)
        }
        if let primary = request.fields.first,
            [.multipleAttachments, .multipleRecordLinks, .checkbox].contains(primary.type)
        {
            throw StorageError.invalid(
                "the first (primary) field cannot be of type \(primary.type)",
                field: primary.name
            )
        }
        return request
    }
}
