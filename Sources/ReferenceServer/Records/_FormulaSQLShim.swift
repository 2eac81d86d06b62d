// TEMPORARY shim until the formula engine lands.
import GRDB
import PyAirtableModels
struct FormulaSQLPlan { var sql: String?; var arguments: [DatabaseValue]; var needsResidual: Bool }
enum FormulaSQL {
    static func compile(_ formula: Formula, fields: [String: (id: String, type: FieldType)]) -> FormulaSQLPlan {
        FormulaSQLPlan(sql: nil, arguments: [], needsResidual: true)
    }
}
