import Foundation
import PyAirtableModels

/// Rules for fields and views beyond what decoding checks.
enum SchemaValidation {

    /// Checks a new field: name, known type and type-specific options.
    static func field(_ field: CreateFieldRequest) throws -> CreateFieldRequest {
        var field = field
        field.name = try InputRules.name(field.name, field: "fields.name")
        guard field.type.isKnown else {
            throw ServerError.validation(
                "unknown field type '\(field.type)'; known types: \(FieldType.allCases.map(\.rawValue).joined(separator: ", "))",
                field: field.name
            )
        }
        if field.name.contains("{") || field.name.contains("}") {
            throw ServerError.validation("field names may not contain braces", field: field.name)
        }
        try options(field.options, type: field.type, name: field.name)
        return field
    }

    static func options(_ options: FieldOptions?, type: FieldType, name: String) throws {
        if let choices = options?.choices {
            guard type == .singleSelect || type == .multipleSelects else {
                throw ServerError.validation("only select fields take choices", field: name)
            }
            let names = choices.map(\.name)
            guard Set(names).count == names.count, !names.contains(where: \.isEmpty) else {
                throw ServerError.validation("choices must be non-empty and distinct", field: name)
            }
        }
        if let precision = options?.precision, !(0...8).contains(precision) {
            throw ServerError.validation("precision must be between 0 and 8", field: name)
        }
        if options?.linkedTableID != nil, type != .multipleRecordLinks {
            throw ServerError.validation("only multipleRecordLinks fields take linked_table_id", field: name)
        }
    }

    /// Checks a new table: a name and 1…`maximumFields` distinct, valid fields. (The store checks the
    /// limit again as it inserts each field.)
    static func table(_ request: CreateTableRequest, maximumFields: Int) throws -> CreateTableRequest {
        var request = request
        request.name = try InputRules.name(request.name)
        guard !request.fields.isEmpty else {
            throw ServerError.validation("a table needs at least one field", field: "fields")
        }
        guard request.fields.count <= maximumFields else {
            throw ServerError.validation("a table has at most \(maximumFields) fields", field: "fields")
        }
        request.fields = try request.fields.map(field)
        var seen = Set<String>()
        for field in request.fields where !seen.insert(field.name).inserted {
            throw ServerError.validation("two fields are named '\(field.name)'", field: field.name)
        }
        if let primary = request.fields.first,
            [.multipleAttachments, .multipleRecordLinks, .checkbox].contains(primary.type)
        {
            throw ServerError.validation(
                "the first (primary) field cannot be of type \(primary.type)",
                field: primary.name
            )
        }
        return request
    }
}

/// Checks a view's filter, sort and visible fields against its table.
enum ViewValidation {
    static func validate(
        filter: String?,
        sort: [SortSpec]?,
        fields: [String]?,
        schema: TableSchema,
        limits: RequestLimits
    ) throws {
        if let filter, !filter.isEmpty {
            _ = try RecordsController.parseFilter(filter, schema: schema, parameter: "filter", limits: limits.formula)
        }
        try RecordsController.checkSortKeyCount(sort?.count ?? 0, limits: limits)
        for spec in sort ?? [] where schema.fieldsByName[spec.field] == nil {
            throw ServerError.validation("unknown field '\(spec.field)' in sort", field: spec.field)
        }
        for name in fields ?? [] where schema.fieldsByName[name] == nil {
            throw ServerError.validation("unknown field '\(name)' in fields", field: name)
        }
    }
}
