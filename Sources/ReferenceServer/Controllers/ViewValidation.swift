import Foundation
import PyAirtableModels

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
            throw StorageError.invalid("unknown field '\(spec.field)' in sort", field: spec.field)
        }
        for name in fields ?? [] where schema.fieldsByName[name] == nil {
            throw StorageError.invalid("unknown field '\(name)' in fields", field: name)
        }
    }
}
