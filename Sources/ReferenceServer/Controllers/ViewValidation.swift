import Foundation
import PyAirtableModels

/// Checks a view's filter, sort and visible fields against its table, and the formulas and sort keys
/// of a records list. Storage calls it inside its transactions, so it speaks in ``StorageError``.
enum ViewValidation {
    static func validate(
        filter: String?,
        sort: [SortSpec]?,
        fields: [String]?,
        schema: TableSchema,
        limits: RequestLimits
    ) throws {
        if let filter, !filter.isEmpty {
            _ = try parseFilter(filter, schema: schema, parameter: "filter", limits: limits.formula)
        }
        try checkSortKeyCount(sort?.count ?? 0, limits: limits)
        for spec in sort ?? [] where schema.fieldsByName[spec.field] == nil {
            throw StorageError.invalid("unknown field '\(spec.field)' in sort", field: spec.field)
        }
        for name in fields ?? [] where schema.fieldsByName[name] == nil {
            throw StorageError.invalid("unknown field '\(name)' in fields", field: name)
        }
    }

    /// Parses and checks a formula against the table; errors, a formula past `limits` included, are
    /// 422 with the formula position.
    static func parseFilter(
        _ source: String,
        schema: TableSchema,
        parameter: String,
        limits: Formula.Limits
    ) throws -> Formula {
        do {
            let formula = try Formula.parse(source, limits: limits)
            try formula.validate(fieldTypes: schema.fieldsByName.mapValues(\.type))
            return formula
        } catch {
            throw StorageError.invalid(
                "bad \(parameter): \(error.description)",
                field: parameter,
                position: error.position
            )
        }
    }

    /// Refuses more sort keys than `limits` allow: each key nests the page query deeper.
    static func checkSortKeyCount(_ count: Int, limits: RequestLimits) throws {
        guard count <= limits.maximumSortKeys else {
            throw StorageError.invalid(
                "sort has \(count) keys, over the limit of \(limits.maximumSortKeys) (maximumSortKeys)",
                field: "sort"
            )
        }
    }
}
